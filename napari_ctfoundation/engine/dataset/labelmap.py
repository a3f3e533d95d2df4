"""Label names of a dataset (MSD / nnU-Net ``dataset.json``) -> our vocabularies.

A name maps when, lower-cased with spaces and hyphens as underscores, it is
exactly an organ name of the TotalSegmentator v2 table or a lesion class of
``engine/labels.py``. Nothing else is guessed: ``cancer``, ``tumour`` or
``vessel`` have no class of their own in those vocabularies and are
reported as unmapped (their voxels become background in the written maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .. import labels


def normalise(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_").replace("/", "_")


@dataclass
class LabelMapping:
    """Source label id -> organ id / lesion id; names that map to neither."""

    organs: Dict[int, int] = field(default_factory=dict)
    lesions: Dict[int, int] = field(default_factory=dict)
    unmapped: Dict[int, str] = field(default_factory=dict)

    def describe_unmapped(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in sorted(self.unmapped.items()))


def map_label_names(names: Dict[int, str]) -> LabelMapping:
    """Map ``{source id: name}`` (background 0 ignored) by exact normalised name."""
    organ_ids = {normalise(n): i for i, n in labels.organ_names().items()}
    lesion_ids = {normalise(n): i for i, n in labels.lesion_names().items()}
    out = LabelMapping()
    for src, name in sorted(names.items()):
        if int(src) == 0:
            continue
        key = normalise(name)
        if key in organ_ids:
            out.organs[int(src)] = organ_ids[key]
        elif key in lesion_ids:
            out.lesions[int(src)] = lesion_ids[key]
        else:
            out.unmapped[int(src)] = str(name)
    return out


def remap_labels(label_path: Path, mapping: LabelMapping, masks_dir: Path,
                 case: str) -> Tuple[Optional[Path], Optional[Path]]:
    """Write ``<case>_organs.nii.gz`` / ``<case>_lesions.nii.gz`` under ``masks_dir``.

    Each is written only when the mapping has ids of that kind; returns the
    written paths (or None). The maps keep the label file's grid.
    """
    from ..io import read_labels, write_volume

    if not mapping.organs and not mapping.lesions:
        return None, None
    source = read_labels(label_path)
    written: List[Optional[Path]] = []
    for kind, table in (("organs", mapping.organs), ("lesions", mapping.lesions)):
        if not table:
            written.append(None)
            continue
        lut = np.zeros(int(max(int(source.array.max()), max(table))) + 1, np.uint8)
        for src, dst in table.items():
            if src < lut.size:
                lut[src] = dst
        array = lut[np.clip(source.array, 0, lut.size - 1).astype(np.int64)]
        out = masks_dir / f"{case}_{kind}.nii.gz"
        write_volume(source.with_array(array), out, protect=(label_path,))
        written.append(out)
    return written[0], written[1]


def lesion_class_id(name: str) -> int:
    """Lesion id of a class name of ``labels.lesion_names()`` (normalised as above).

    Raises a one-line :class:`ConfigError` listing the valid names.
    """
    from ..errors import ConfigError

    table = {normalise(n): i for i, n in labels.lesion_names().items()}
    key = normalise(name)
    if key not in table:
        raise ConfigError(f"unknown lesion class {name!r}; choose one of {', '.join(labels.lesion_names().values())}")
    return table[key]


def binary_to_lesion(mask_path: Path, lesion_id: int, masks_dir: Path, case: str) -> Tuple[Path, List[int]]:
    """Write ``<case>_lesions.nii.gz`` under ``masks_dir``: every nonzero voxel of ``mask_path`` -> ``lesion_id``.

    For tumour masks, which carry no class of their own (1 = tumour, or
    KiTS-style 1/2 = organ/tumour: every nonzero value becomes the class).
    The source grid (spacing, origin, direction) is kept exactly; returns
    the written path and the nonzero source values that were mapped.
    """
    from ..io import read_labels, write_volume

    source = read_labels(mask_path)
    values = [int(v) for v in np.unique(source.array) if v != 0]
    array = np.where(source.array != 0, np.uint8(lesion_id), np.uint8(0)).astype(np.uint8)
    out = masks_dir / f"{case}_lesions.nii.gz"
    write_volume(source.with_array(array), out, protect=(mask_path,))
    return out, values
