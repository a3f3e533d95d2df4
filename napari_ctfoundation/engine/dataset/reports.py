"""Reports tables (CT-RATE style): one row per scan, an id column and a text column.

The id column is the first of ``case, id, VolumeName, volume_name, image``
present (else the first column); the text column the first of ``report,
text, Findings_EN, findings, Impressions_EN, impression`` (else the second).
An id matches a case by its exact name, or by its file stem (CT-RATE ids
are file names such as ``train_1_a_1.nii.gz``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Sequence

from ..errors import ConfigError
from .layouts._files import stem

ID_COLUMNS = ("case", "id", "VolumeName", "volume_name", "image")
TEXT_COLUMNS = ("report", "text", "Findings_EN", "findings", "Impressions_EN", "impression")


def _pick(header: Sequence[str], wanted: Sequence[str], fallback: int, path: Path, what: str) -> str:
    for name in wanted:
        if name in header:
            return name
    if len(header) > fallback:
        return header[fallback]
    raise ConfigError(f"{path}: no {what} column (looked for {', '.join(wanted)})")


def read_reports_table(path) -> Dict[str, str]:
    """``{id: report text}``; ids are also entered by their file stem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: reports table not found")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        id_col = _pick(header, ID_COLUMNS, 0, path, "id")
        text_col = _pick(header, TEXT_COLUMNS, 1, path, "text")
        if id_col == text_col:
            raise ConfigError(f"{path}: needs an id column and a text column")
        table: Dict[str, str] = {}
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            key, text = row.get(id_col, ""), row.get(text_col, "")
            if key and text:
                table[key] = text
                table.setdefault(stem(Path(key)), text)
    if not table:
        raise ConfigError(f"{path}: no rows with both an id ({id_col}) and a text ({text_col})")
    return table


def read_regions_table(path) -> Dict[str, str]:
    """``{case: region}`` from a CSV with columns ``case,region``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: regions table not found")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not {"case", "region"} <= set(h.strip() for h in (reader.fieldnames or [])):
            raise ConfigError(f"{path}: a regions table needs columns case,region")
        return {r["case"].strip(): r["region"].strip() for r in reader if (r.get("case") or "").strip()}
