"""``compare reconstruct`` on a dataset (manifest CSV or dataset folder): per case, region and mean."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List

from ._common import progress_bar


def is_dataset_input(path: str) -> bool:
    """A dataset manifest CSV, or a folder that is not itself one DICOM series."""
    from ..engine.dataset import is_dataset_manifest
    from ..engine.io import looks_like_volume

    p = Path(path)
    return is_dataset_manifest(p) or (p.is_dir() and not looks_like_volume(p))


def load_cases(path: str):
    """Cases of a manifest, or of a folder indexed in memory (no derived masks written)."""
    from ..engine.dataset import index_dataset, is_dataset_manifest, read_dataset_manifest

    if is_dataset_manifest(path):
        return read_dataset_manifest(path)
    return index_dataset([path], write_masks=False).cases


def run_dataset(args, backends: List[str], window) -> int:
    from ..engine.compare_dataset import (CASE_CSV_COLUMNS, case_rows, cases_from_rows, compare_dataset,
                                          format_dataset_table)
    from ..engine.dataset.reports import read_regions_table
    from ..engine.errors import ConfigError

    if args.resume and not args.csv:
        raise ConfigError("--resume needs --csv (the per-case table it continues)")
    cases = load_cases(args.input)
    regions = read_regions_table(args.regions) if args.regions else None
    done = {}
    csv_path = Path(args.csv) if args.csv else None
    if csv_path and args.resume and csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            done = cases_from_rows(list(csv.DictReader(fh)), window, backends, args.max_slices)
        done = {k: v for k, v in done.items() if k in {c.case for c in cases}}
    kept = dict(done)

    def write_csv() -> None:  # after every case, so a stopped run keeps what it measured
        if csv_path:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = csv_path.with_name(f".{csv_path.name}.tmp")
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=CASE_CSV_COLUMNS)
                writer.writeheader()
                for item in kept.values():
                    writer.writerows(case_rows(item))
            tmp.replace(csv_path)

    def on_case(item) -> None:
        kept[item.case] = item
        write_csv()

    write_csv()

    callback, close = progress_bar("cases")
    try:
        comparison = compare_dataset(cases, backends, window, max_slices=args.max_slices, regions=regions,
                                     matched_bicubic=args.matched_bicubic,
                                     done=done, on_case=on_case, device=args.device, precision=args.precision,
                                     batch_size=args.batch_size, progress=callback)
    finally:
        close()
    table = format_dataset_table(comparison)
    print(table)
    if args.table:
        Path(args.table).write_text(table + "\n", encoding="utf-8")
        print(f"wrote {args.table}")
    if csv_path:
        print(f"wrote {csv_path}")
    return 0 if comparison.methods() else 2
