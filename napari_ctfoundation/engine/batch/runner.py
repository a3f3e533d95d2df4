"""Resumable, shardable batch runs over the cases of a dataset.

How a killed run loses nothing:

* every output volume is written atomically (``io.write_volume``: temp file
  + rename), so a file under OUT_DIR is either complete or absent;
* after a case's outputs are in place, its CSV row is written as a small JSON
  *record* (also atomically) under ``OUT_DIR/.ctfoundation_batch/records``;
* a case counts as finished when its record and all outputs it lists exist,
  and finished cases are skipped on the next run;
* the CSV (``OUT_DIR/<csv_name>``) is rebuilt from the records at the end of
  every run, so it is never half-written and never disagrees with the files.

Data-parallel: under ``accelerate launch`` every process takes every n-th
case (``PartialState().process_index::num_processes``) and writes only its
own records; the main process waits for the others and merges the CSV. The
same code runs single-process without a launcher.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..atomic import atomic_write_text, public_mode  # noqa: F401  (re-exported for callers)
from ..errors import CTFoundationError, OperationCancelled
from ..progress import CancelCheck, ProgressCallback, Tracker
from .dataset import Case

STATE_DIR = ".ctfoundation_batch"
DEFAULT_CSV = "metrics.csv"
CSV_COLUMNS = ["case", "psnr_db", "ssim", "mae_hu", "seconds"]

#: process(case, out_path, progress, cancel) -> row dict (metrics); it must
#: write the case's output(s) atomically and return the CSV values.
CaseFunction = Callable[[Case, Path, Optional[ProgressCallback], Optional[CancelCheck]], Dict[str, Any]]


@dataclass
class BatchSummary:
    """What :func:`run_batch` returns: case names ``done``, ``skipped`` (finished earlier) and ``failed`` (with the reason), the merged ``csv_path``, ``seconds``."""

    out_dir: Path
    csv_path: Optional[Path]
    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    process_index: int = 0
    num_processes: int = 1


def _record_path(out_dir: Path, case: Case) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "__", case.name)
    return out_dir / STATE_DIR / "records" / f"{safe}.json"


def is_finished(out_dir: Path, case: Case) -> bool:
    rec = _record_path(out_dir, case)
    if not rec.is_file():
        return False
    try:
        record = json.loads(rec.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return _outputs_intact(out_dir, record)


def _sizes(out_dir: Path, outputs: Sequence[str]) -> Dict[str, int]:
    return {p: (out_dir / p).stat().st_size for p in outputs if (out_dir / p).is_file()}


def _outputs_intact(out_dir: Path, record: Dict[str, Any]) -> bool:
    """Every output still there with the size it was written with (a damaged one is redone)."""
    outputs = record.get("outputs", [])
    if not all((out_dir / p).exists() for p in outputs):
        return False
    return _sizes(out_dir, outputs) == record.get("output_bytes", _sizes(out_dir, outputs))


def shard(cases: Sequence[Case], process_index: int, num_processes: int) -> List[Case]:
    """The cases process ``process_index`` of ``num_processes`` works on."""
    return list(cases)[process_index::num_processes]


def distributed_state():
    """accelerate's PartialState (one process without a launcher), or None without accelerate."""
    try:
        from accelerate import PartialState
    except ImportError:  # accelerate is a dependency, but keep the runner usable without it
        return None
    import torch

    # Without CUDA, accelerate only forms a process group (gloo) when asked
    # for the CPU explicitly; with CUDA each process gets cuda:LOCAL_RANK.
    return PartialState(cpu=not torch.cuda.is_available())


def run_batch(
    cases: Sequence[Case],
    out_dir: os.PathLike,
    process: CaseFunction,
    *,
    csv_name: str = DEFAULT_CSV,
    columns: Sequence[str] = CSV_COLUMNS,
    overwrite: bool = False,
    distributed: bool = True,
    progress: Optional[ProgressCallback] = None,
    item_progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
    stop_on_error: bool = False,
    output_rel: Optional[Callable[[Case], Path]] = None,
) -> BatchSummary:
    """Run ``process`` on every unfinished case; rebuild the CSV from the records.

    ``progress`` reports cases, ``item_progress`` the units inside one case
    (slices). ``output_rel(case)`` is the output path below ``out_dir``
    (default: the mirrored input path). A case that raises a :class:`CTFoundationError` is reported in
    ``summary.failed`` and retried by the next run; cancellation stops at the
    next case or slice boundary, leaving every finished case in place.
    ``process`` is e.g. :func:`make_reconstruct_case` or
    :func:`make_export_case`; both progress arguments accept ``"auto"``.
    Returns a :class:`BatchSummary`; raises :class:`OperationCancelled` on
    ``cancel`` (and a case's own error with ``stop_on_error``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = distributed_state() if distributed else None
    index, count = (state.process_index, state.num_processes) if state is not None else (0, 1)
    mine = shard(cases, index, count)
    summary = BatchSummary(out, None, process_index=index, num_processes=count)
    start = time.perf_counter()
    tracker = Tracker(len(mine), "cases", progress, cancel)
    try:
        for case in mine:
            tracker.check()
            if not overwrite and is_finished(out, case):
                summary.skipped.append(case.name)
                tracker.advance()
                continue
            rel = output_rel(case) if output_rel is not None else case.rel
            out_path = out / rel
            try:
                t0 = time.perf_counter()
                row = dict(process(case, out_path, item_progress, cancel))
                row.setdefault("seconds", round(time.perf_counter() - t0, 3))
            except OperationCancelled:
                raise
            except CTFoundationError as exc:
                if stop_on_error:
                    raise
                summary.failed[case.name] = str(exc)
                tracker.advance()
                continue
            except Exception as exc:  # a bug or a device failure: report, keep the others going
                if stop_on_error:
                    raise
                summary.failed[case.name] = f"{type(exc).__name__}: {exc}"
                _log_failure(out, case, traceback.format_exc())
                tracker.advance()
                continue
            outputs = row.pop("outputs", None) or [str(rel)]
            record = {"case": case.name, "row": {"case": case.name, **row}, "outputs": outputs,
                      "image": str(case.image), "output_bytes": _sizes(out, outputs)}
            atomic_write_text(_record_path(out, case), json.dumps(record, indent=1, default=float))
            summary.done.append(case.name)
            tracker.advance()
    finally:
        summary.seconds = time.perf_counter() - start
        if state is not None and count > 1:
            state.wait_for_everyone()
        if index == 0:
            summary.csv_path = merge_csv(out, cases, csv_name, columns)
    return summary


def _log_failure(out: Path, case: Case, text: str) -> None:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "__", case.name)
    atomic_write_text(out / STATE_DIR / "failed" / f"{safe}.txt", text)


def load_rows(out_dir: os.PathLike, cases: Optional[Sequence[Case]] = None) -> List[Dict[str, Any]]:
    """Rows of all finished cases (of ``cases`` when given), sorted by case name."""
    out = Path(out_dir)
    folder = out / STATE_DIR / "records"
    wanted = {c.name for c in cases} if cases is not None else None
    rows = []
    for rec in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(rec.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if wanted is not None and record.get("case") not in wanted:
            continue
        if _outputs_intact(out, record):
            rows.append(record["row"])
    return sorted(rows, key=lambda r: str(r.get("case")))


def merge_csv(out_dir: os.PathLike, cases: Optional[Sequence[Case]], csv_name: str = DEFAULT_CSV,
              columns: Sequence[str] = CSV_COLUMNS) -> Path:
    """Rewrite ``OUT_DIR/csv_name`` (atomically) from the per-case records."""
    out = Path(out_dir)
    rows = load_rows(out, cases)
    extra = sorted({k for r in rows for k in r} - set(columns))
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns) + extra, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _fmt(v) for k, v in r.items()})
    path = out / csv_name
    atomic_write_text(path, buf.getvalue())
    return path


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def read_csv(path: os.PathLike) -> Tuple[List[str], List[Dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)
