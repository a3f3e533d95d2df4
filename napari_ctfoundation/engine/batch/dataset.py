"""Finding the cases of a dataset: a folder, an nnU-Net raw dataset or a manifest.

Every case knows where its image (and, when there is one, its label map) is,
and the *relative path* its outputs take below an output folder, so batch
tools mirror the input dataset file for file.

* **nnU-Net v2 raw layout** (a folder with ``imagesTr``/``imagesTs``): images
  are the channel-0 files ``NAME_0000.nii.gz``; labels ``labelsTr/NAME.nii.gz``.
* **Manifest**: a ``.csv``/``.tsv`` with an ``image`` column (optional
  ``label`` and ``name``), or a ``.txt`` with one image path a line. Relative
  paths are relative to the manifest. A dataset manifest from ``ctfoundation
  data index`` reads the same way: ``case`` names the case and
  ``organ_mask`` is its label map (when there is no ``label`` column).
* **Plain folder**: every volume file below it (NIfTI, NRRD, MHA, ...) and
  every folder that holds a DICOM series. DICOM series are mirrored as
  ``FOLDER.nii.gz``: there is no faithful way to write a new DICOM series.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

from ..errors import ConfigError, VolumeReadError
from ..io import VOLUME_SUFFIXES, _is_dicom, suffix_of

PathLike = Union[str, os.PathLike]
NNUNET_IMAGE_DIRS = ("imagesTr", "imagesTs")
# outputs keep the input's format where we can write it
_OUTPUT_SUFFIX = {".nii": ".nii", ".nii.gz": ".nii.gz", ".nrrd": ".nrrd", ".nhdr": ".nrrd",
                  ".mha": ".mha", ".mhd": ".mha", ".dcm": ".nii.gz"}


@dataclass(frozen=True)
class Case:
    """One image of a dataset (and its label map, when known).

    ``name`` is unique in the dataset, ``image`` / ``label`` are absolute
    paths, ``rel`` the output path below a batch OUT_DIR (mirrors the input
    layout).
    """

    name: str
    image: Path
    rel: Path  # relative output path (mirrors the input layout)
    label: Optional[Path] = None

    def output_path(self, out_dir: PathLike) -> Path:
        return Path(out_dir) / self.rel


def discover_cases(source: PathLike, pattern: Optional[str] = None) -> List[Case]:
    """All cases of ``source`` (folder, nnU-Net raw dataset or manifest), sorted by name.

    ``source`` is a folder of volumes / DICOM series (``pattern`` filters by
    glob), an nnU-Net raw dataset (``imagesTr``/``labelsTr``), a CSV/TSV/TXT
    manifest, or one volume file. Returns :class:`Case` objects for
    :func:`run_batch`. Raises :class:`ConfigError` for a missing source, no
    volumes, or two cases with one name or one output path.
    """
    src = Path(source).expanduser()
    if not src.exists():
        raise ConfigError(f"{src}: no such dataset folder or manifest")
    if src.is_file():
        if suffix_of(src) in (".csv", ".tsv", ".txt"):
            cases = _from_manifest(src)
        elif suffix_of(src) in VOLUME_SUFFIXES:
            cases = [Case(_stem(src), src, Path(src.name[: -len(suffix_of(src))] + _out_suffix(src)))]
        else:
            raise ConfigError(f"{src}: a manifest must be .csv, .tsv or .txt")
    elif any((src / d).is_dir() for d in NNUNET_IMAGE_DIRS):
        cases = _from_nnunet(src)
    else:
        cases = _from_folder(src, pattern)
    if not cases:
        raise ConfigError(f"{src}: no CT volumes found (NIfTI, NRRD, MHA or DICOM series)")
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{src}: several cases share the name(s) {', '.join(dupes[:5])}")
    rels = [c.rel for c in cases]
    if len(set(rels)) != len(rels):
        raise ConfigError(f"{src}: two cases would be written to the same output path")
    return sorted(cases, key=lambda c: c.name)


def _stem(path: Path) -> str:
    suffix = suffix_of(path)
    return path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.name


def _out_suffix(path: Path) -> str:
    if path.is_dir():
        return ".nii.gz"
    return _OUTPUT_SUFFIX.get(suffix_of(path), ".nii.gz")


def _from_nnunet(root: Path) -> List[Case]:
    cases = []
    for sub in NNUNET_IMAGE_DIRS:
        folder = root / sub
        if not folder.is_dir():
            continue
        label_dir = root / sub.replace("images", "labels")
        for f in sorted(folder.iterdir()):
            m = re.match(r"^(.*)_(\d{4})(\.nii\.gz|\.nii|\.nrrd|\.mha)$", f.name)
            if not m:
                continue
            name, channel, ext = m.groups()
            if channel != "0000":
                continue  # CT is single channel; other channels are not ours to rewrite
            label = label_dir / f"{name}{ext}"
            cases.append(Case(name if sub == "imagesTr" else f"{sub}/{name}", f,
                              Path(sub) / f.name, label if label.is_file() else None))
    return cases


def _from_manifest(path: Path) -> List[Case]:
    from ..read_guard import read_text_table

    return read_text_table(path, _manifest_cases, "manifest")


def _manifest_cases(path: Path) -> List[Case]:
    base = path.parent
    rows: List[dict] = []
    if suffix_of(path) == ".txt":
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append({"image": line})
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix_of(path) == ".tsv" else ",")
            if not reader.fieldnames or "image" not in reader.fieldnames:
                raise ConfigError(f"{path}: a manifest needs an 'image' column (optional: label, name)")
            rows = [dict(r) for r in reader]
    cases = []
    for i, row in enumerate(rows, start=2 if suffix_of(path) != ".txt" else 1):
        image = Path(row["image"]).expanduser()
        image = image if image.is_absolute() else base / image
        if not image.exists():
            raise VolumeReadError(f"{path}: line {i}: image {image} does not exist")
        label = None
        label_value = row.get("label") or row.get("organ_mask")
        if label_value:
            label = Path(label_value).expanduser()
            label = label if label.is_absolute() else base / label
            if not label.exists():
                raise VolumeReadError(f"{path}: line {i}: label {label} does not exist")
        name = (row.get("name") or row.get("case") or "").strip() or _default_name(image, base)
        cases.append(Case(name, image, Path(name + _out_suffix(image)), label))
    return cases


def _default_name(image: Path, base: Path) -> str:
    """``a/b/ct.nii.gz`` -> ``a_b_ct`` relative to the manifest, so names stay unique."""
    try:
        rel = image.resolve().relative_to(base.resolve())
    except ValueError:
        rel = Path(image.name)
    parts = list(rel.parts[:-1]) + [_stem(rel)] if image.is_file() else list(rel.parts)
    return "_".join(p for p in parts if p not in ("", ".", ".."))


def _from_folder(root: Path, pattern: Optional[str]) -> List[Case]:
    cases = []
    dicom_dirs = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        files = sorted(f for f in filenames if not f.startswith("."))
        volume_files = [f for f in files if suffix_of(f) in VOLUME_SUFFIXES and suffix_of(f) != ".dcm"]
        # DICOM files often have no suffix or a UID-like one (CT.1.2.840...): sniff the rest
        others = (f for f in files if suffix_of(f) not in VOLUME_SUFFIXES or suffix_of(f) == ".dcm")
        has_dicom = any(suffix_of(f) == ".dcm" or _is_dicom(here / f) for f in others)
        if has_dicom and here != root:
            dicom_dirs.add(here)
        for f in volume_files:
            p = here / f
            rel = p.relative_to(root)
            if pattern and not rel.match(pattern):
                continue
            out_rel = rel.with_name(_stem(p) + _out_suffix(p))
            name = str(rel.parent / _stem(p)) if rel.parent != Path(".") else _stem(p)
            cases.append(Case(name, p, out_rel))
    for d in sorted(dicom_dirs):
        rel = d.relative_to(root)
        if pattern and not rel.match(pattern):
            continue
        cases.append(Case(str(rel), d, Path(str(rel) + ".nii.gz")))
    return cases
