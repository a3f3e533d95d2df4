"""Masks and reports turned into model conditions at latent resolution.

A label map (organ ids 1..117, lesion ids 1..11) becomes, for every class,
the *fraction* of each latent cell's voxels that belong to that class: the
image VAE maps an ``f x f`` block of an axial slice to one latent cell, so
the block mean of the one-hot mask is the exact soft mask on that grid.
Only the classes present are stored (``ids`` + a ``(K, t, h, w)`` array);
:func:`condition_tensor` expands them to the full channel layout

    [indicator, organ 1..117, lesion 1..11]

where ``indicator`` is 1 when an organ mask is given and 0 for the null
(classifier-free) condition, so "no organ here" and "no mask given" differ.
A CT without organ labels (``organs`` None, or a map with no organ at all)
has indicator and organ channels all zero: exactly what mask dropout
trains; its lesion channels (if any) are still filled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import GeometryError
from ..volume import Volume
from .vocab import CTRATE_ABNORMALITIES, lesion_names, organ_names


@dataclass
class LatentMask:
    """Per-class fractions on the latent grid: ``fractions[k]`` is class ``ids[k]``."""

    ids: List[int]
    fractions: np.ndarray  # float32 (K, t, h, w)

    @property
    def grid(self) -> Tuple[int, int, int]:
        return tuple(self.fractions.shape[1:])  # type: ignore[return-value]


def latent_grid(shape_zyx: Sequence[int], spatial_factor: int) -> Tuple[int, int, int, int, int]:
    """``(t, h, w, padded_h, padded_w)`` for an image VAE with stride ``f``."""
    z, y, x = (int(s) for s in shape_zyx)
    f = int(spatial_factor)
    ph, pw = -(-y // f) * f, -(-x // f) * f
    return z, ph // f, pw // f, ph, pw


def mask_to_latent(
    labels: np.ndarray,
    spatial_factor: int,
    padded_hw: Optional[Tuple[int, int]] = None,
    ids: Optional[Sequence[int]] = None,
) -> LatentMask:
    """Block-average each present class of a ``[z, y, x]`` label map.

    The slices are edge-padded at the bottom/right to ``padded_hw`` (the
    VAE's padded slice size) before averaging, exactly as
    ``engine.latents.encode_volume`` pads the CT slices.
    """
    labels = np.asarray(labels)
    f = int(spatial_factor)
    z, y, x = labels.shape
    ph, pw = padded_hw or latent_grid(labels.shape, f)[3:]
    if ph < y or pw < x or ph % f or pw % f:
        raise GeometryError(f"padded slice size {(ph, pw)} does not fit {y}x{x} with stride {f}")
    present = [int(i) for i in np.unique(labels) if i != 0] if ids is None else [int(i) for i in ids]
    padded = np.pad(labels, [(0, 0), (0, ph - y), (0, pw - x)], mode="edge")
    out = np.zeros((len(present), z, ph // f, pw // f), dtype=np.float32)
    for k, label in enumerate(present):
        binary = (padded == label).astype(np.float32)
        out[k] = binary.reshape(z, ph // f, f, pw // f, f).mean(axis=(2, 4))
    return LatentMask(present, out)


def condition_tensor(
    organs: Optional[LatentMask],
    disease: Optional[LatentMask],
    grid: Tuple[int, int, int],
    n_organs: int = 117,
    n_lesions: int = 11,
) -> np.ndarray:
    """Full ``(1 + n_organs + n_lesions, t, h, w)`` condition; zeros = null condition.

    ``organs`` None or without any id is "no organ mask": the indicator and
    organ channels stay zero, the same tensor as a dropped mask condition.
    """
    out = np.zeros((1 + n_organs + n_lesions,) + tuple(grid), dtype=np.float32)
    if organs is not None and len(organs.ids):
        out[0] = 1.0
    for mask, offset, limit in ((organs, 0, n_organs), (disease, n_organs, n_lesions)):
        if mask is None:
            continue
        for k, label in enumerate(mask.ids):
            if 1 <= label <= limit:
                out[offset + label] = mask.fractions[k]
    return out


def check_label_ids(labels: np.ndarray, kind: str, source: str) -> List[int]:
    """Present ids, raising when one is not in the ``kind`` vocabulary."""
    names = organ_names() if kind == "organ" else lesion_names()
    present = [int(i) for i in np.unique(labels) if i != 0]
    unknown = [i for i in present if i not in names]
    if unknown:
        raise GeometryError(
            f"{source}: unknown {kind} label id(s) {unknown[:10]}; "
            f"{kind} ids run from 1 to {max(names)}"
        )
    return present


def resample_labels_to(labels: Volume, reference: Volume) -> Volume:
    """Nearest-neighbour resampling of a label map onto ``reference``'s grid."""
    import SimpleITK as sitk

    image = sitk.Resample(labels.to_sitk(), reference.to_sitk(), sitk.Transform(),
                          sitk.sitkNearestNeighbor, 0, labels.to_sitk().GetPixelID())
    return reference.with_array(sitk.GetArrayFromImage(image).astype(labels.array.dtype))


# ----------------------------------------------------------------- findings
# Keyword patterns per CT-RATE finding (lower case, regular expressions).
_FINDING_PATTERNS: Dict[str, List[str]] = {
    "medical material": [r"medical material", r"\bstent", r"\bcatheter", r"pacemaker", r"\bport\b", r"surgical clip", r"prosthe"],
    "arterial wall calcification": [r"arterial (wall )?calcification", r"aortic (wall )?calcification", r"atheroscleros", r"calcified plaque"],
    "cardiomegaly": [r"cardiomegaly", r"enlarged heart", r"heart is enlarged"],
    "pericardial effusion": [r"pericardial effusion"],
    "coronary artery wall calcification": [r"coronary (artery )?(wall )?calcification", r"coronary calcium"],
    "hiatal hernia": [r"hiatal hernia", r"hiatus hernia"],
    "lymphadenopathy": [r"lymphadenopathy", r"enlarged lymph node", r"pathologic(al)? lymph node"],
    "emphysema": [r"emphysema"],
    "atelectasis": [r"atelectasis", r"atelectatic"],
    "lung nodule": [r"(lung |pulmonary )?nodule"],
    "lung opacity": [r"opacit", r"ground[- ]glass"],
    "pulmonary fibrotic sequela": [r"fibrotic", r"fibrosis", r"sequela"],
    "pleural effusion": [r"pleural effusion"],
    "mosaic attenuation": [r"mosaic attenuation", r"mosaic pattern"],
    "peribronchial thickening": [r"peribronchial (wall )?thickening", r"bronchial wall thickening"],
    "consolidation": [r"consolidat"],
    "bronchiectasis": [r"bronchiectasis"],
    "interlobular septal thickening": [r"septal thickening"],
}
_NEGATION = re.compile(r"\b(no|not|without|absence of|absent|negative for|free of|nor|neither|rule[sd]? out)\b")


def parse_findings(report: str) -> np.ndarray:
    """The 18 CT-RATE flags from free text: +1 stated, -1 negated, 0 not mentioned.

    A deliberately simple rule-based reader: the report is cut into clauses
    at sentence marks, semicolons and "but"/"however"; a finding in a clause
    whose text *before it* holds a negation cue counts as negated.
    """
    flags = np.zeros(len(CTRATE_ABNORMALITIES), dtype=np.float32)
    clauses = re.split(r"[.;\n]|\bbut\b|\bhowever\b", report.lower())
    for i, name in enumerate(CTRATE_ABNORMALITIES):
        for clause in clauses:
            for pattern in _FINDING_PATTERNS[name]:
                match = re.search(pattern, clause)
                if match is None:
                    continue
                negated = bool(_NEGATION.search(clause[: match.start()]))
                value = -1.0 if negated else 1.0
                # a positive mention anywhere wins over a negative one
                flags[i] = max(flags[i], value) if flags[i] != 0 else value
    return flags


def findings_from_dict(given: Dict[str, float]) -> np.ndarray:
    """Flags given explicitly as ``{finding name: +1/0/-1 or bool}``."""
    from ..errors import ConfigError

    flags = np.zeros(len(CTRATE_ABNORMALITIES), dtype=np.float32)
    for key, value in given.items():
        name = key.replace("_", " ").strip().lower()
        if name not in CTRATE_ABNORMALITIES:
            raise ConfigError(f"unknown finding {key!r}; known: {', '.join(CTRATE_ABNORMALITIES)}")
        flags[CTRATE_ABNORMALITIES.index(name)] = float(value) if not isinstance(value, bool) else (1.0 if value else -1.0)
    return flags
