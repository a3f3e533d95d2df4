"""Label vocabularies: organ and lesion ids, their names and stable colours.

Two vocabularies:

* ``"organs"``: the 117 TotalSegmentator v2 classes shipped in
  ``data/organ_labels_totalsegmentator_v2.json`` (id -> name; 5 = liver).
* ``"lesions"``: the disease-mask classes of the foundation-VAE reference
  (REFERENCE section 1), ids 1..11 in the order listed there.

Colours are a pure function of ``(vocabulary, id)``: the same organ has the
same colour in every session, file and widget, neighbouring ids get clearly
different hues (golden-ratio hue steps with alternating lightness), and
background (0) is fully transparent. Headless: no napari, no Qt.
"""

from __future__ import annotations

import colorsys
import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import ConfigError

ORGAN_TABLE = Path(__file__).resolve().parent.parent / "data" / "organ_labels_totalsegmentator_v2.json"

#: disease-mask classes (REFERENCE section 1), id = position + 1
LESION_CLASSES: Tuple[str, ...] = (
    "atelectasis_consolidation",
    "bronchial_wall_thickening",
    "bronchiectasis",
    "emphysema",
    "ground_glass_opacity",
    "honeycombing",
    "linear_opacity",
    "micronodules",
    "pleural_effusion_thickening",
    "nodules_masses",
    "septal_thickening",
)

#: CT-RATE's 18 report-level abnormality labels (REFERENCE section 1);
#: these are per-scan findings, not mask ids.
CT_RATE_ABNORMALITIES: Tuple[str, ...] = (
    "medical material",
    "arterial wall calcification",
    "cardiomegaly",
    "pericardial effusion",
    "coronary artery wall calcification",
    "hiatal hernia",
    "lymphadenopathy",
    "emphysema",
    "atelectasis",
    "lung nodule",
    "lung opacity",
    "pulmonary fibrotic sequela",
    "pleural effusion",
    "mosaic attenuation",
    "peribronchial thickening",
    "consolidation",
    "bronchiectasis",
    "interlobular septal thickening",
)

VOCABULARIES = ("organs", "lesions")
BACKGROUND = "background"
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)
RGBA = Tuple[float, float, float, float]


@lru_cache(maxsize=None)
def _organ_names() -> Tuple[Tuple[int, str], ...]:
    try:
        table = json.loads(ORGAN_TABLE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{ORGAN_TABLE}: organ label table unreadable ({exc})") from None
    return tuple(sorted((int(k), str(v)) for k, v in table.items()))


def names(vocabulary: str = "organs") -> Dict[int, str]:
    """``{id: name}`` of a vocabulary, background (0) excluded."""
    if vocabulary == "organs":
        return dict(_organ_names())
    if vocabulary == "lesions":
        return {i + 1: name for i, name in enumerate(LESION_CLASSES)}
    raise ConfigError(f"unknown label vocabulary {vocabulary!r}; use one of {', '.join(VOCABULARIES)}")


def organ_names() -> Dict[int, str]:
    """``{id: name}`` of the organ vocabulary (TotalSegmentator v2 ids, background 0 excluded)."""
    return names("organs")


def lesion_names() -> Dict[int, str]:
    """``{id: name}`` of the lesion (disease mask) vocabulary, background 0 excluded."""
    return names("lesions")


def label_name(label_id: int, vocabulary: str = "organs") -> str:
    """Name of an id; ids outside the table read ``"label N"``."""
    label_id = int(label_id)
    if label_id == 0:
        return BACKGROUND
    return names(vocabulary).get(label_id, f"label {label_id}")


def id_of(name: str, vocabulary: str = "organs") -> int:
    """Id of a class name (case-insensitive, spaces or underscores)."""
    wanted = name.strip().lower().replace(" ", "_").replace("/", "_")
    for label_id, known in names(vocabulary).items():
        if known.lower() == wanted:
            return label_id
    raise ConfigError(f"unknown {vocabulary[:-1]} label {name!r} in the {vocabulary} vocabulary")


# Vocabularies get different hue offsets so a lesion never takes the colour
# of the organ with the same id when both are shown together.
_HUE_OFFSET = {"organs": 0.0, "lesions": 0.31}
_GOLDEN = 0.618033988749895


def label_color(label_id: int, vocabulary: str = "organs") -> RGBA:
    """Stable RGBA colour (floats in [0, 1]) of an id; 0 is transparent."""
    label_id = int(label_id)
    if label_id == 0:
        return TRANSPARENT
    if vocabulary not in _HUE_OFFSET:
        raise ConfigError(f"unknown label vocabulary {vocabulary!r}; use one of {', '.join(VOCABULARIES)}")
    hue = (_HUE_OFFSET[vocabulary] + label_id * _GOLDEN) % 1.0
    # three saturation/value bands so ids whose hues come close again differ
    band = label_id % 3
    saturation = (0.85, 0.6, 0.95)[band]
    value = (0.95, 0.85, 0.7)[band]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r, 4), round(g, 4), round(b, 4), 1.0)


def color_table(vocabulary: str = "organs", ids: Optional[List[int]] = None) -> Dict[int, RGBA]:
    """``{id: RGBA}`` for the vocabulary (and any extra ``ids``), 0 included."""
    wanted = set(names(vocabulary)) | set(int(i) for i in (ids or ())) | {0}
    return {i: label_color(i, vocabulary) for i in sorted(wanted)}


def features_table(array: Optional[np.ndarray] = None, vocabulary: str = "organs") -> Dict[str, list]:
    """Columns ``index`` and ``name`` for every id of the vocabulary.

    Ids present in ``array`` but missing from the table are added as
    ``"label N"`` so a label layer's status bar always has a name. The
    ``index`` column is what napari's Labels ``features`` uses to match
    label values to rows.
    """
    table = {0: BACKGROUND, **names(vocabulary)}
    if array is not None and np.asarray(array).size:
        present = present_ids(array)
        for label_id in present:
            table.setdefault(int(label_id), f"label {int(label_id)}")
    ids = sorted(table)
    return {"index": ids, "name": [table[i] for i in ids]}


def present_ids(array: np.ndarray) -> List[int]:
    """Sorted ids that occur in ``array`` (bincount: fast for small ids)."""
    array = np.asarray(array)
    if array.size == 0:
        return []
    top = int(array.max())
    if array.min() >= 0 and top < 1 << 20:
        counts = np.bincount(array.ravel().astype(np.int64, copy=False), minlength=top + 1)
        return [int(i) for i in np.nonzero(counts)[0]]
    return [int(i) for i in np.unique(array)]
