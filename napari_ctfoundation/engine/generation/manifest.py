"""Training manifests: one row per CT with its organ mask, disease mask, report.

CSV (header ``image,organ_mask,disease_mask,report``) or JSONL (one object
per line with those keys). ``organ_mask`` and ``disease_mask`` may be
empty: a CT without organ labels (e.g. a tumour-labelled chest CT) trains
with the null organ condition, the one classifier-free-guidance dropout
trains; a row with neither mask is report-only. ``report`` is the
text itself or a path to a ``.txt``/``.md`` file. Relative paths are taken
from the manifest's folder. :func:`read_manifest` checks *every* row before
anything is encoded and reports all problems at once, each naming the row
and the file: missing file, unreadable image, shape or geometry mismatch
between CT and masks, unknown label ids, empty report.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union


from ..errors import ConfigError, CTFoundationError

PathLike = Union[str, os.PathLike]
COLUMNS = ("image", "organ_mask", "disease_mask", "report")
REPORT_SUFFIXES = (".txt", ".md")


class ManifestError(ConfigError):
    """A manifest row (or the manifest file) is not usable."""


@dataclass
class ManifestRow:
    """One validated manifest row: absolute paths, report text (``report_source``: inline or the file)."""

    index: int
    image: Path
    organ_mask: Optional[Path]  # None: no organ labels (null organ condition)
    disease_mask: Optional[Path]
    report: str
    report_source: str = "inline"
    extra: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        return {
            "index": self.index, "image": str(self.image), "organ_mask": str(self.organ_mask) if self.organ_mask else None,
            "disease_mask": str(self.disease_mask) if self.disease_mask else None,
            "report": self.report, "report_source": self.report_source,
        }


def _raw_rows(path: Path) -> List[Dict[str, str]]:
    from ..read_guard import read_text_table

    return read_text_table(path, _parse_rows, "CSV", ManifestError)


def _parse_rows(path: Path) -> List[Dict[str, str]]:
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in ("image", "organ_mask", "report") if c not in header]
            if missing:
                raise ManifestError(f"{path}: CSV header lacks column(s) {missing}; need {list(COLUMNS)}")
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path} line {n}: not JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise ManifestError(f"{path} line {n}: expected a JSON object")
                rows.append({k: "" if v is None else str(v).strip() for k, v in obj.items()})
        return rows
    raise ManifestError(f"{path}: manifest must be .csv or .jsonl")


def _resolve(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _grid(path: Path):
    """A voxel-free stand-in Volume carrying the file's grid (the dataset indexer's check)."""
    from ..dataset.checks import image_grid

    return image_grid(path)


def read_manifest(path: PathLike, *, check_labels: bool = True) -> List[ManifestRow]:
    """Read and validate a manifest; raise one :class:`ManifestError` listing every problem."""
    from ..io import read_labels
    from .conditioning import check_label_ids

    path = Path(path)
    base = path.parent
    raw = _raw_rows(path)
    if not raw:
        raise ManifestError(f"{path}: the manifest has no rows")
    rows: List[ManifestRow] = []
    problems: List[str] = []
    for i, entry in enumerate(raw, 1):
        where = f"{path.name} row {i}"
        before = len(problems)
        files: Dict[str, Optional[Path]] = {}
        for col in ("image", "organ_mask", "disease_mask"):
            value = entry.get(col, "")
            if not value:
                if col == "image":  # masks are optional: an empty cell means none
                    problems.append(f"{where}: column {col!r} is empty")
                files[col] = None
                continue
            p = _resolve(value, base)
            if not p.exists():
                problems.append(f"{where}: {col} {p} does not exist")
            files[col] = p
        report_value = entry.get("report", "")
        report, source = report_value, "inline"
        candidate = _resolve(report_value, base) if report_value else None
        if candidate is not None and report_value.lower().endswith(REPORT_SUFFIXES):
            if not candidate.is_file():
                problems.append(f"{where}: report file {candidate} does not exist")
                report = ""
            else:
                try:
                    report, source = candidate.read_text(encoding="utf-8").strip(), str(candidate)
                except UnicodeDecodeError as exc:
                    problems.append(f"{where}: report file {candidate} is not UTF-8 text (byte {exc.start})")
                    report = ""
                except OSError as exc:
                    problems.append(f"{where}: report file {candidate} unreadable ({exc.strerror or exc})")
                    report = ""
        if not report.strip() and len(problems) == before:
            problems.append(f"{where}: the report is empty")
        if len(problems) > before:
            continue
        # Geometry: every mask must cover the CT's voxel grid. Axis order and
        # flips may differ (e.g. LAS mask, LPS DICOM): both are compared in
        # display orientation, which is how the cache encodes them.
        try:
            image_grid = _grid(files["image"]).to_display()
        except CTFoundationError as exc:
            problems.append(f"{where}: image {files['image']}: {exc}")
            continue
        for col, kind in (("organ_mask", "organ"), ("disease_mask", "lesion")):
            p = files[col]
            if p is None:
                continue
            try:
                mask_grid = _grid(p).to_display()
            except CTFoundationError as exc:
                problems.append(f"{where}: {col} {p}: {exc}")
                continue
            if mask_grid.shape != image_grid.shape:
                problems.append(f"{where}: {col} {p} has shape {mask_grid.shape} (z,y,x in display "
                                f"orientation) but the image has {image_grid.shape}")
            elif not mask_grid.same_grid(image_grid):
                problems.append(f"{where}: {col} {p} is not on the image's grid (spacing/origin/direction differ)")
            elif check_labels:
                try:
                    check_label_ids(read_labels(p).array, kind, f"{where}: {col} {p}")
                except CTFoundationError as exc:
                    problems.append(str(exc))
        if len(problems) == before:
            rows.append(ManifestRow(i, files["image"], files["organ_mask"], files["disease_mask"],
                                    report.strip(), source,
                                    {k: v for k, v in entry.items() if k not in COLUMNS}))
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ManifestError(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")
    return rows
