"""File helpers shared by the layout recognisers."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ...io import VOLUME_SUFFIXES, _is_dicom, suffix_of

IMAGE_SUFFIXES = tuple(s for s in VOLUME_SUFFIXES if s != ".dcm")


def stem(path: Path) -> str:
    """File name without its volume suffix (``a.nii.gz`` -> ``a``)."""
    suffix = suffix_of(path)
    return path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.name


def volume_files(folder: Path) -> List[Path]:
    """Volume files (not DICOM slices) directly in ``folder``, sorted, hidden ones left out."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and suffix_of(p) in IMAGE_SUFFIXES)


def holds_dicom(folder: Path) -> bool:
    """True when ``folder`` directly holds DICOM files (by suffix or by the DICM magic)."""
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith(".") and (suffix_of(p) == ".dcm" or _is_dicom(p)):
            return True
    return False


def first_existing(folder: Path, names) -> Optional[Path]:
    for name in names:
        if (folder / name).exists():
            return folder / name
    return None


def subfolders(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
