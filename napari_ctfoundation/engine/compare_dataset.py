"""The MedVAE comparison over a dataset: one row per case, per body region, and the mean.

Each case runs :func:`compare_reconstruction` (every backend, axial slices,
metrics in one HU window). Optionally only ``max_slices`` axial slices per
case are used, evenly spaced over the volume (first and last included) and
stacked: the 2D backends see exactly those slices, PSNR and the per-slice
MS-SSIM are unaffected by the stacking, while the 3D SSIM's z-window then
spans slices that are further apart than in the scan. The slice count used
is recorded in every row.

``matched_bicubic`` adds the row ``bicubic_matched``: bicubic down- and
up-sampling to ``1/sqrt(2)`` per axis, i.e. 0.5 values per voxel, as many
numbers as taef2's latent keeps (32 channels at 1/8 x 1/8), the comparison
at equal size that ``bench/vae_quality.py`` also makes. (The registered
``bicubic_f16/f64`` baselines compare at equal *spatial* factor, as MedVAE.)

A case's region is the manifest's ``region`` cell, else the ``regions``
table entry, else its case id up to the first ``_`` or digit (``sts_001``
-> ``sts``). Region and mean rows average the *cases* (each case counts
once, whatever its slice count).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .compare import CompareResult, compare_reconstruction
from .dataset.manifest import DatasetCase
from .errors import ConfigError
from .progress import CancelCheck, ProgressCallback, Tracker
from .volume import Volume
from .window import HUWindow

METRICS = ("psnr_db", "ssim", "ms_ssim", "mae_hu")
MATCHED = "bicubic_matched"
MATCHED_VALUES_PER_VOXEL = 0.5  # taef2: 32 channels / (8 x 8)


@dataclass
class CaseComparison:
    case: str
    region: str
    slices: int  # axial slices measured
    total_slices: int  # axial slices in the scan
    shape_zyx: tuple
    result: CompareResult


@dataclass
class DatasetComparison:
    """What :func:`compare_dataset` returns: one ``CaseComparison`` per case.

    Each holds the case name, its body ``region``, the axial slices measured
    (of ``total_slices``) and its :class:`CompareResult` (metrics in
    ``window``, HU). ``methods()`` lists the backends run, ``skipped()`` the
    ones that could not be loaded, with the reason.
    """

    cases: List[CaseComparison] = field(default_factory=list)
    window: HUWindow = field(default_factory=HUWindow)
    max_slices: Optional[int] = None

    def methods(self) -> List[str]:
        seen: List[str] = []
        for c in self.cases:
            for r in c.result.rows:
                if r.method not in seen:
                    seen.append(r.method)
        return seen

    def skipped(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for c in self.cases:
            out.update(c.result.skipped)
        return out


def region_of(case: DatasetCase, regions: Optional[Dict[str, str]] = None) -> str:
    """Region of a case: manifest cell, else ``regions`` table, else the case id's prefix."""
    if case.region:
        return case.region
    if regions and case.case in regions:
        return regions[case.case]
    prefix = re.split(r"[_\d]", case.case, maxsplit=1)[0]
    return prefix or case.case


def subsample_slices(volume: Volume, max_slices: Optional[int]) -> Volume:
    """``max_slices`` axial slices evenly spaced over ``volume`` (display orientation), stacked."""
    n = volume.shape[0]
    if not max_slices or max_slices >= n:
        return volume
    if max_slices < 1:
        raise ConfigError(f"--max-slices must be at least 1, got {max_slices}")
    index = np.unique(np.linspace(0, n - 1, max_slices).round().astype(int))
    step = (n - 1) / max(len(index) - 1, 1)
    spacing = (volume.spacing[0], volume.spacing[1], volume.spacing[2] * step)
    return Volume(np.ascontiguousarray(volume.array[index]), spacing, volume.origin, volume.direction,
                  {**volume.metadata, "slices_used": index.tolist()})


def matched_bicubic_row(volume: Volume, window: HUWindow,
                        values_per_voxel: float = MATCHED_VALUES_PER_VOXEL):
    """The ``bicubic_matched`` row: bicubic down/up keeping ``values_per_voxel`` of each slice's samples."""
    import time

    import torch
    import torch.nn.functional as F

    from .compare import CompareRow
    from .metrics import volume_metrics

    t0 = time.perf_counter()
    unit = torch.from_numpy(window.to_unit(volume.array))[:, None]
    h, w = unit.shape[-2:]
    scale = math.sqrt(values_per_voxel)
    small = F.interpolate(unit, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bicubic",
                          align_corners=False, antialias=True)
    back = window.from_unit(F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)[:, 0].numpy())
    m = volume_metrics(volume.array, back, window)
    return CompareRow(method=MATCHED, f=round(1 / values_per_voxel), channels=1,
                      values_per_voxel=values_per_voxel, psnr_db=float(m["psnr_db"]), ms_ssim=float(m["ms_ssim"]),
                      ssim=float(m["ssim"]), mae_hu=float(m["mae_hu"]), seconds=time.perf_counter() - t0,
                      kind="interpolation")


def compare_dataset(
    cases: Sequence[DatasetCase],
    backends: Sequence[str],
    window: HUWindow = HUWindow(),
    *,
    max_slices: Optional[int] = None,
    matched_bicubic: bool = False,
    regions: Optional[Dict[str, str]] = None,
    done: Optional[Dict[str, CaseComparison]] = None,
    on_case: Optional[Callable[[CaseComparison], None]] = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 8,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> DatasetComparison:
    """Compare ``backends`` on every case (progress in cases).

    ``cases`` are :class:`DatasetCase` rows (``index_dataset(...).cases`` or
    ``read_dataset_manifest(path)``); each CT is compared on its axial
    slices (at most ``max_slices``, evenly spaced) as
    :func:`compare_reconstruction` does, metrics in ``window`` (HU).
    ``done`` holds earlier results (same slice budget) per case: only the
    backends missing from them are run, so adding a backend to a finished
    table costs that backend alone. ``format_dataset_table(result)`` gives
    the Markdown table. Raises :class:`ConfigError` when there are no
    cases, :class:`VolumeReadError` for an unreadable CT and
    :class:`OperationCancelled` on ``cancel``.
    """
    from .io import read_volume

    if not cases:
        raise ConfigError("no cases to compare")
    out = DatasetComparison(window=window, max_slices=max_slices)
    tracker = Tracker(len(cases), "cases", progress, cancel)
    for case in cases:
        prior = (done or {}).get(case.case)
        have = {r.method for r in prior.result.rows} if prior else set()
        missing = [b for b in backends if b not in have]
        need_matched = matched_bicubic and MATCHED not in have
        if prior and not missing and not need_matched:
            prior.region = region_of(case, regions)
            out.cases.append(prior)
            tracker.advance()
            continue
        volume = read_volume(case.image).to_display()
        used = subsample_slices(volume, max_slices)
        result = (compare_reconstruction(used, missing, window, device=device, precision=precision,
                                         batch_size=batch_size, cancel=cancel)
                  if missing else CompareResult(window=window, shape_zyx=used.shape))
        if prior:
            result.rows += prior.result.rows
        if need_matched:
            result.rows.append(matched_bicubic_row(used, window))
        result.rows.sort(key=lambda r: (r.f, r.kind != "interpolation", r.method))
        item = CaseComparison(case.case, region_of(case, regions), used.shape[0], volume.shape[0],
                              volume.shape, result)
        out.cases.append(item)
        if on_case:
            on_case(item)
        tracker.advance()
    return out


def _mean(items: Sequence[CaseComparison], method: str, metric: str) -> float:
    values = [getattr(r, metric) for c in items for r in c.result.rows if r.method == method]
    values = [v for v in values if not math.isinf(v)]
    return float(np.mean(values)) if values else float("nan")


def _groups(comparison: DatasetComparison) -> List[tuple]:
    """``(kind, name, region cell, slices cell, cases)`` for every case, region and the mean, in table order."""
    cases = comparison.cases
    regions: Dict[str, List[CaseComparison]] = {}
    for c in cases:
        regions.setdefault(c.region, []).append(c)
    return ([("case", c.case, c.region, f"{c.slices}/{c.total_slices}", [c]) for c in cases]
            + [("region", name, f"{len(items)} cases", str(sum(c.slices for c in items)), items)
               for name, items in sorted(regions.items())]
            + [("mean", "mean", f"{len(cases)} cases", str(sum(c.slices for c in cases)), list(cases))])


def summary_rows(comparison: DatasetComparison) -> List[dict]:
    """Long-format rows: per case, per region (mean of its cases), and the overall mean."""
    rows: List[dict] = []
    for kind, name, _, _, items in _groups(comparison):
        for method in comparison.methods():
            measured = [r for c in items for r in c.result.rows if r.method == method]
            if not measured:
                continue
            row = {"row": kind, "name": name, "region": items[0].region if kind != "mean" else "all",
                   "cases": len(items), "slices": sum(c.slices for c in items), "method": method,
                   "f": measured[0].f, "channels": measured[0].channels}
            row.update({m: _mean(items, method, m) for m in METRICS})
            rows.append(row)
    return rows


def format_dataset_table(comparison: DatasetComparison, reference: str = "bicubic_f64") -> str:
    """Markdown: one row per case, per region and the mean; a column per method (never raises).

    Each cell is ``PSNR dB / SSIM / MS-SSIM`` in the HU window; the last
    columns are taef2's PSNR minus ``reference``'s and minus the matched
    bicubic's, when those were run (negative: taef2 loses).
    """
    methods = comparison.methods()
    rows = summary_rows(comparison)
    cell = {(r["row"], r["name"], r["method"]): r for r in rows}
    info = {r["method"]: r for r in rows}
    deltas = [ref for ref in (reference, MATCHED) if "taef2" in methods and ref in methods]
    header = ["", "region", "slices"] + [f"{m} (f={info[m]['f']}, C={info[m]['channels']})" for m in methods]
    header += [f"taef2 - {ref} dB" for ref in deltas]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, name, region, slices, _ in _groups(comparison):
        label = {"case": name, "region": f"**region {name}**", "mean": "**mean**"}[kind]
        cells = [label, region, slices]
        for m in methods:
            r = cell.get((kind, name, m))
            cells.append("-" if r is None else f"{r['psnr_db']:.2f} / {r['ssim']:.3f} / {r['ms_ssim']:.3f}")
        for ref in deltas:
            a, b = cell.get((kind, name, "taef2")), cell.get((kind, name, ref))
            cells.append(f"{a['psnr_db'] - b['psnr_db']:+.2f}" if a and b else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lo, hi = comparison.window.lo, comparison.window.hi
    sampled = (f"at most {comparison.max_slices} axial slices per case, evenly spaced (slices column: used/total)"
               if comparison.max_slices else "every axial slice")
    lines.append(f"\nCells: PSNR dB / SSIM / MS-SSIM in the HU window [{lo:g}, {hi:g}]; {sampled}. "
                 "Region and mean rows average the cases (each case once)."
                 + (f" {MATCHED}: bicubic down/up keeping {MATCHED_VALUES_PER_VOXEL} values per voxel, "
                    "as many as taef2's latent." if MATCHED in methods else ""))
    for name, why in comparison.skipped().items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


# ----------------------------------------------------------- per-case CSV (resume)
CASE_CSV_COLUMNS = ("case", "region", "slices", "total_slices", "method", "f", "channels", "values_per_voxel",
                    "psnr_db", "ssim", "ms_ssim", "mae_hu", "seconds", "kind")


def case_rows(item: CaseComparison) -> List[dict]:
    """The per-case CSV rows of one case (one per backend)."""
    return [{"case": item.case, "region": item.region, "slices": item.slices, "total_slices": item.total_slices,
             "method": r.method, "f": r.f, "channels": r.channels, "values_per_voxel": r.values_per_voxel,
             "psnr_db": r.psnr_db, "ssim": r.ssim, "ms_ssim": r.ms_ssim, "mae_hu": r.mae_hu,
             "seconds": r.seconds, "kind": r.kind} for r in item.result.rows]


def cases_from_rows(rows: Sequence[dict], window: HUWindow, backends: Sequence[str],
                    max_slices: Optional[int]) -> Dict[str, CaseComparison]:
    """Cases of an earlier per-case CSV measured with the same slice budget (rows of ``backends`` only)."""
    from .compare import CompareRow

    grouped: Dict[str, List[dict]] = {}
    for row in rows:
        grouped.setdefault(row["case"], []).append(row)
    out: Dict[str, CaseComparison] = {}
    for name, items in grouped.items():
        total, used = int(items[0]["total_slices"]), int(items[0]["slices"])
        if used != (min(max_slices, total) if max_slices else total):
            continue  # another slice budget: measure again
        result = CompareResult(window=window)
        for r in items:
            if r["method"] in backends or r["method"] == MATCHED:
                result.rows.append(CompareRow(
                    method=r["method"], f=int(r["f"]), channels=int(r["channels"]),
                    values_per_voxel=float(r["values_per_voxel"]), psnr_db=float(r["psnr_db"]),
                    ms_ssim=float(r["ms_ssim"]), ssim=float(r["ssim"]), mae_hu=float(r["mae_hu"]),
                    seconds=float(r["seconds"]), kind=r["kind"]))
        result.rows.sort(key=lambda r: (r.f, r.kind != "interpolation", r.method))
        out[name] = CaseComparison(name, items[0]["region"], used, total, (), result)
    return out
