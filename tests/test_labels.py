"""Organ and lesion label vocabularies: names, ids and stable colours."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ctfoundation.engine import labels
from napari_ctfoundation.engine.errors import ConfigError


def test_organ_table_matches_shipped_json():
    raw = json.loads(labels.ORGAN_TABLE.read_text())
    names = labels.organ_names()
    assert len(names) == len(raw) == 117
    assert names[5] == "liver" and names[1] == "spleen"
    assert labels.id_of("liver") == 5
    assert labels.id_of("Kidney Right") == 2
    assert labels.label_name(0) == "background"
    assert labels.label_name(999) == "label 999"


def test_lesion_vocabulary_from_reference():
    lesions = labels.lesion_names()
    assert len(lesions) == 11
    assert lesions[1] == "atelectasis_consolidation"
    assert labels.id_of("ground-glass opacity".replace("-", " "), "lesions") == 5
    assert len(labels.CT_RATE_ABNORMALITIES) == 18
    with pytest.raises(ConfigError, match="vocabulary"):
        labels.names("tumours")
    with pytest.raises(ConfigError, match="unknown organ label 'brain_stem_x'"):
        labels.id_of("brain_stem_x")


@pytest.mark.parametrize("vocabulary", labels.VOCABULARIES)
def test_colours_stable_distinct_background_transparent(vocabulary):
    table = labels.color_table(vocabulary)
    assert table[0] == labels.TRANSPARENT
    colours = np.array([table[i][:3] for i in sorted(table) if i])
    assert np.all(colours >= 0) and np.all(colours <= 1)
    assert all(table[i][3] == 1.0 for i in table if i)
    # pairwise distinct, neighbouring ids clearly different
    dist = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 0.02
    steps = np.linalg.norm(np.diff(colours, axis=0), axis=1)
    assert steps.min() > 0.3
    # a pure function of (vocabulary, id): same answer after clearing caches
    labels._organ_names.cache_clear()
    assert labels.color_table(vocabulary) == table


def test_vocabularies_do_not_share_colours():
    assert labels.label_color(3, "organs") != labels.label_color(3, "lesions")


def test_features_table_names_unknown_ids():
    array = np.array([[[0, 5, 5], [200, 1, 0]]], dtype=np.uint8)
    table = labels.features_table(array)
    assert table["index"][0] == 0 and table["name"][0] == "background"
    lookup = dict(zip(table["index"], table["name"]))
    assert lookup[5] == "liver" and lookup[200] == "label 200"
    assert labels.present_ids(array) == [0, 1, 5, 200]
