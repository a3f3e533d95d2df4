"""Aggregate per-patient `ctfoundation sparse evaluate` CSVs of a cross-validation into tables.

Input: a folder of CSVs written by ``sparse evaluate --out``, named
``FOLD_CASE.csv`` (the fold's checkpoint as method dice; may also hold fdk, sart),
``shipped_FOLD_CASE.csv`` (the shipped checkpoint on the same CT; method dice) or
``base_FOLD_CASE.csv`` (fdk, sart and the shipped checkpoint as dice).
Prints markdown tables: per patient, mean +- sd over the test patients, best and
worst unseen patient, and the issue's targets. ``--check-rule`` exits 0 only if
the fold checkpoints' mean DiCE beats the shipped checkpoint's mean at every
view count in both PSNR and SSIM (the shipping rule in docs/sparse.md), else 1.
``--against OTHER`` (with ``--check-rule``) compares this folder's CV DiCE with
OTHER's CV DiCE instead (a second CV run against the first, same patients).

    python bench/sparse_cv.py /tmp/dice_cv/eval [--check-rule] [--exclude sample_abdomen,sample_dicom]
    python bench/sparse_cv.py docs/sparse_cv2 --check-rule --against docs/sparse_cv --exclude sample_abdomen,sample_dicom
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Tuple

# (fold, case) -> {(method, views): (psnr, ssim)}; method "shipped" = the shipped DiCE.
Results = Dict[Tuple[str, str], Dict[Tuple[str, int], Tuple[float, float]]]
METHODS = ("fdk", "sart", "dice", "shipped")
LABELS = {"fdk": "FDK", "sart": "SART", "dice": "DiCE (CV fold)", "shipped": "DiCE shipped"}


def read_results(folder: Path) -> Results:
    """Read every FOLD_CASE.csv / shipped_FOLD_CASE.csv in ``folder``."""
    results: Results = {}
    for path in sorted(folder.glob("*.csv")):
        prefix, stem = "", path.stem
        for p in ("shipped_", "base_"):
            if stem.startswith(p):
                prefix, stem = p, stem[len(p):]
        fold, _, case = stem.partition("_")
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if "method" not in (reader.fieldnames or []):
                continue  # not an evaluation table (e.g. a loss log kept beside them)
            rows = results.setdefault((fold, case), {})
            for row in reader:
                # shipped_*: only the shipped DiCE; base_*: FDK, SART and the shipped DiCE.
                method = "shipped" if prefix and row["method"] == "dice" else row["method"]
                rows[(method, int(row["views"]))] = (float(row["psnr"]), float(row["ssim"]))
    return results


def _mean_sd(values: List[float]) -> Tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def complete_patients(results: Results, views: List[int]) -> List[Tuple[str, str]]:
    """Patients that have all four methods at every view count (a fold still running is left out)."""
    return [key for key, rows in sorted(results.items())
            if all((m, v) in rows for m in METHODS for v in views)]


def summarise(results: Results, views: List[int]) -> Dict[Tuple[str, int], Tuple[Tuple[float, float], ...]]:
    """(method, views) -> ((psnr mean, sd), (ssim mean, sd)) over the complete patients."""
    keys = complete_patients(results, views)
    out = {}
    for m in METHODS:
        for v in views:
            psnr = [results[k][(m, v)][0] for k in keys]
            ssim = [results[k][(m, v)][1] for k in keys]
            out[(m, v)] = (_mean_sd(psnr), _mean_sd(ssim))
    return out


def print_tables(results: Results, views: List[int]) -> None:
    keys = complete_patients(results, views)
    if not keys:
        print("no patient has all of FDK, SART, the fold's DiCE and the shipped DiCE at every view count yet")
        return
    head = "| patient (fold) | method | " + " | ".join(f"{v} views" for v in views) + " |"
    rule = "|---|---|" + "---|" * len(views)
    print("Per patient, PSNR dB / SSIM %:\n")
    print(head)
    print(rule)
    for fold, case in keys:
        for m in METHODS:
            cells = [f"{p:.2f} / {100 * s:.2f}" for p, s in (results[(fold, case)][(m, v)] for v in views)]
            print(f"| {case} ({fold}) | {LABELS[m]} | " + " | ".join(cells) + " |")
    summary = summarise(results, views)
    print(f"\nMean +- sd over the {len(keys)} unseen patients, PSNR dB / SSIM %:\n")
    print("| method | " + " | ".join(f"{v} views" for v in views) + " |")
    print("|---|" + "---|" * len(views))
    for m in METHODS:
        cells = [f"{p[0]:.2f} +- {p[1]:.2f} / {100 * s[0]:.2f} +- {100 * s[1]:.2f}"
                 for p, s in (summary[(m, v)] for v in views)]
        print(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    folds = sorted({fold for fold, _ in keys})
    print(f"\nMean +- sd over the {len(folds)} test folds (each fold = the mean of its patients), PSNR dB / SSIM %:\n")
    print("| method | " + " | ".join(f"{v} views" for v in views) + " |")
    print("|---|" + "---|" * len(views))
    for m in METHODS:
        cells = []
        for v in views:
            per_fold = [[results[k][(m, v)] for k in keys if k[0] == f] for f in folds]
            p = _mean_sd([statistics.fmean(r[0] for r in rows) for rows in per_fold])
            q = _mean_sd([statistics.fmean(r[1] for r in rows) for rows in per_fold])
            cells.append(f"{p[0]:.2f} +- {p[1]:.2f} / {100 * q[0]:.2f} +- {100 * q[1]:.2f}")
        print(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    by_psnr = sorted(keys, key=lambda k: results[k][("dice", views[0])][0])
    for label, (fold, case) in (("worst", by_psnr[0]), ("best", by_psnr[-1])):
        cells = ", ".join(f"{v} views DiCE {results[(fold, case)][('dice', v)][0]:.2f} dB "
                          f"(SART {results[(fold, case)][('sart', v)][0]:.2f})" for v in views)
        print(f"\n{label} unseen patient (DiCE PSNR at {views[0]} views): {case} ({fold}): {cells}")
    print("\nIssue targets (CV DiCE vs SART, means):")
    for v in views:
        dp = summary[("dice", v)][0][0] - summary[("sart", v)][0][0]
        ds = summary[("dice", v)][1][0] - summary[("sart", v)][1][0]
        print(f"  {v} views: DiCE - SART = {dp:+.2f} dB PSNR, {100 * ds:+.2f} SSIM points")
    gain = summary[("dice", views[-1])][0][0] - summary[("dice", views[0])][0][0]
    print(f"  DiCE PSNR gain {views[0]} -> {views[-1]} views: {gain:+.2f} dB")


def check_rule(results: Results, views: List[int], against: Results = None) -> Tuple[bool, List[str]]:
    """The shipping rule: CV DiCE mean above the shipped DiCE mean (or, with ``against``, above that
    run's CV DiCE mean on the same patients) at every view count, PSNR and SSIM."""
    keys = complete_patients(results, views)
    if against is not None:
        keys = [k for k in keys if k in set(complete_patients(against, views))]
    if not keys:
        return False, ["no complete patient results"]
    other, label = (against, "other run's CV") if against is not None else (results, "shipped")
    lines, ok = [], True
    for v in views:
        for i, name in enumerate(("PSNR", "SSIM")):
            cv = statistics.fmean(results[k][("dice", v)][i] for k in keys)
            ref = statistics.fmean(other[k][("dice" if against is not None else "shipped", v)][i] for k in keys)
            ok &= cv > ref
            lines.append(f"{v} views {name}: CV {cv:.4f} vs {label} {ref:.4f} ({'beats' if cv > ref else 'falls short'})")
    return ok, lines + [f"over {len(keys)} patients: {', '.join(c for _, c in keys)}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder of FOLD_CASE.csv and shipped_FOLD_CASE.csv files")
    parser.add_argument("--views", default="6,8,10")
    parser.add_argument("--check-rule", action="store_true", help="exit 0 only if the shipping rule is met")
    parser.add_argument("--exclude", default="", help="comma-separated cases to leave out (e.g. leaky rows)")
    parser.add_argument("--against", type=Path, default=None,
                        help="with --check-rule: compare with this folder's CV DiCE (an earlier CV run)")
    parser.add_argument("--min-patients", type=int, default=1,
                        help="--check-rule fails with fewer complete patients (a fold that did not finish)")
    args = parser.parse_args(argv)
    views = [int(v) for v in args.views.split(",")]
    results = read_results(args.folder)
    excluded = {c.strip() for c in args.exclude.split(",") if c.strip()}
    results = {key: rows for key, rows in results.items() if key[1] not in excluded}
    if not results:
        print(f"no CSVs in {args.folder}", file=sys.stderr)
        return 2
    if args.check_rule:
        against = None
        if args.against is not None:
            against = {k: r for k, r in read_results(args.against).items() if k[1] not in excluded}
        ok, lines = check_rule(results, views, against)
        n = len(complete_patients(results, views))
        if n < args.min_patients:
            ok, lines = False, lines + [f"only {n} complete patients, {args.min_patients} expected"]
        print("shipping rule " + ("met" if ok else "NOT met") + ":\n  " + "\n  ".join(lines))
        return 0 if ok else 1
    print_tables(results, views)
    return 0


if __name__ == "__main__":
    sys.exit(main())
