"""Shared part of the ``dataset.json`` layouts (MSD and nnU-Net v2 raw)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

from ...errors import ConfigError, CTFoundationError
from ..base import IndexContext, LayoutScan, Skipped
from ..labelmap import LabelMapping, remap_labels
from ..manifest import DatasetCase


def read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable dataset.json ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def add_case(scan: LayoutScan, layout: str, case: str, image: Path, label: Optional[Path],
             mapping: LabelMapping, context: IndexContext) -> None:
    """One row; its label map (if any) remapped to organ / lesion ids under the manifest's folder."""
    organs = lesions = None
    if label is not None and context.write_masks:
        try:
            organs, lesions = remap_labels(label, mapping, context.masks_dir, case)
        except (CTFoundationError, OSError) as exc:  # an unreadable label file breaks this case only
            scan.skipped.append(Skipped(case, layout, f"label {label.name}: {str(exc).splitlines()[0]}", broken=True))
            return
    scan.cases.append(DatasetCase(case=case, image=image, layout=layout, organ_mask=organs, disease_mask=lesions))


def mapping_note(mapping: LabelMapping, names: Dict[int, str]) -> str:
    parts = []
    if mapping.organs:
        parts.append(f"{len(mapping.organs)} label(s) -> organs")
    if mapping.lesions:
        parts.append(f"{len(mapping.lesions)} -> lesions")
    if mapping.unmapped:
        parts.append(f"unmapped (left as background, not guessed): {mapping.describe_unmapped()}")
    return "labels: " + ("; ".join(parts) if parts else "none besides background")
