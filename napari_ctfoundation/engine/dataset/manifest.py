"""The dataset manifest: one row per case, the input every dataset-level command takes.

CSV columns ``case,image,organ_mask,disease_mask,report,layout`` (and an
optional ``region``, e.g. ``chest``, used to group comparison tables).
Paths are relative to the manifest's folder; an empty cell means none.
``organ_mask`` holds TotalSegmentator v2 ids, ``disease_mask`` lesion ids
(``engine/labels.py``); ``report`` is the report text itself.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..errors import ConfigError

PathLike = Union[str, os.PathLike]
MANIFEST_COLUMNS = ("case", "image", "organ_mask", "disease_mask", "report", "layout")
OPTIONAL_COLUMNS = ("region",)


@dataclass
class DatasetCase:
    """One case of a dataset; paths are absolute (resolved from the manifest)."""

    case: str
    image: Path
    layout: str
    organ_mask: Optional[Path] = None
    disease_mask: Optional[Path] = None
    report: str = ""
    region: str = ""


def _relative(path: Optional[Path], base: Path) -> str:
    if path is None:
        return ""
    try:
        return os.path.relpath(Path(path).absolute(), base.absolute())
    except ValueError:  # another drive (Windows): keep it absolute
        return str(Path(path).absolute())


def write_manifest(cases: Sequence[DatasetCase], path: PathLike) -> Path:
    """Write ``cases`` as a manifest CSV (paths relative to its folder); atomic.

    Columns ``case,image,organ_mask,disease_mask,report,layout`` (plus
    ``region`` when a case has one); an empty cell means none. Parent
    folders are created; returns ``path``. Raises ``OSError`` when the
    folder cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with_region = any(c.region for c in cases)
    columns = list(MANIFEST_COLUMNS) + (["region"] if with_region else [])
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for c in cases:
            row = [c.case, _relative(c.image, path.parent), _relative(c.organ_mask, path.parent),
                   _relative(c.disease_mask, path.parent), c.report, c.layout]
            writer.writerow(row + ([c.region] if with_region else []))
    os.replace(tmp, path)
    return path


def is_dataset_manifest(path: PathLike) -> bool:
    """True when ``path`` is a CSV whose header has ``case``, ``image`` and ``layout``."""
    path = Path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    return {"case", "image", "layout"} <= {h.strip() for h in header}


def read_dataset_manifest(path: PathLike, *, check_files: bool = True) -> List[DatasetCase]:
    """Cases of a manifest written by ``ctfoundation data index`` (or by hand).

    Raises one :class:`ConfigError` listing every missing column, duplicate
    case or missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: manifest not found")
    base = path.parent
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("case", "image") if c not in header]
        if missing:
            raise ConfigError(f"{path}: header lacks column(s) {', '.join(missing)}; "
                              f"expected {','.join(MANIFEST_COLUMNS)}")
        raw = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not raw:
        raise ConfigError(f"{path}: the manifest has no rows")
    problems: List[str] = []
    cases: List[DatasetCase] = []
    seen = set()

    def resolve(value: str, column: str, line: int) -> Optional[Path]:
        if not value:
            return None
        p = Path(value).expanduser()
        p = p if p.is_absolute() else base / p
        if check_files and not p.exists():
            problems.append(f"line {line}: {column} {p} does not exist")
        return p

    for line, row in enumerate(raw, start=2):
        name = row.get("case", "")
        if not name:
            problems.append(f"line {line}: empty case id")
        elif name in seen:
            problems.append(f"line {line}: case {name!r} appears twice")
        seen.add(name)
        image = resolve(row.get("image", ""), "image", line)
        if image is None:
            problems.append(f"line {line}: empty image")
            continue
        cases.append(DatasetCase(
            case=name, image=image, layout=row.get("layout", ""),
            organ_mask=resolve(row.get("organ_mask", ""), "organ_mask", line),
            disease_mask=resolve(row.get("disease_mask", ""), "disease_mask", line),
            report=row.get("report", ""), region=row.get("region", "")))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ConfigError(f"{path}: {shown}")
    return cases
