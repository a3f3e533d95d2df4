"""Shared learning-rate schedules; DiCE's simulation cache shared by cross-validation folds."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.lr_schedule import lr_multiplier


def test_cosine_decays_to_zero_and_constant_stays():
    cosine = lr_multiplier("cosine", total_steps=100)
    assert cosine(0) == pytest.approx(1.0)
    assert cosine(50) == pytest.approx(0.5 * (1 + math.cos(math.pi * 49 / 99)))
    assert cosine(100) == pytest.approx(0.0) and cosine(500) == pytest.approx(0.0)
    assert [cosine(s) for s in range(0, 100, 10)] == sorted([cosine(s) for s in range(0, 100, 10)], reverse=True)
    constant = lr_multiplier("constant", total_steps=100, warmup_steps=10)
    assert constant(0) == pytest.approx(0.1) and constant(9) == pytest.approx(1.0) and constant(99) == 1.0


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ConfigError, match="choose one of constant, cosine"):
        lr_multiplier("linear", 10)


def test_dice_settings_reject_unknown_schedule():
    pytest.importorskip("torch")
    from napari_ctfoundation.engine.sparse.train import TrainSettings

    with pytest.raises(ConfigError, match="--lr-schedule 'step'"):
        TrainSettings(stage="step1", lr_schedule="step")
    assert TrainSettings(stage="step1", lr_schedule="cosine").lr_schedule == "cosine"


def _blob_ct(path, shift):
    from napari_ctfoundation.engine.io import write_volume
    from napari_ctfoundation.engine.volume import Volume

    hu = np.full((12, 24, 24), -1000.0, np.float32)
    hu[3:9, 6 + shift:18 + shift, 7:17] = 40.0
    write_volume(Volume(hu, spacing=(8.0, 8.0, 8.0)), path)
    return path


def test_fold_lists_share_cache_entries(tmp_path):
    """The augmentation draws depend on the CT, not on its place in the list, so a CT is
    simulated once for every fold that trains on it."""
    pytest.importorskip("itk")
    from napari_ctfoundation.engine.sparse.geometry import PRESETS
    from napari_ctfoundation.engine.sparse.simulate import NoiseModel
    from napari_ctfoundation.engine.sparse.train import build_cache

    geo = replace(PRESETS["deepsparse"].scaled(16, name="test-16"), n_candidates=4)
    a, b = _blob_ct(tmp_path / "a.nii.gz", 0), _blob_ct(tmp_path / "b.nii.gz", 2)
    cache = tmp_path / "cache"
    only_a = build_cache([a], cache, geo, augment=1, noise=NoiseModel(), seed=0)
    stamps = {p: p.stat().st_mtime_ns for p in only_a}
    b_then_a = build_cache([b, a], cache, geo, augment=1, noise=NoiseModel(), seed=0)
    assert b_then_a[2:] == only_a  # a's entries reused, not re-simulated
    assert {p: p.stat().st_mtime_ns for p in only_a} == stamps
    assert len(set(b_then_a)) == 4  # b has its own entries
