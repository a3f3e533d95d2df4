"""Baseline vs reconstruction-augmented: one table per class and the mean."""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

from ..errors import ConfigError
from .evaluate import summarise


def compare_tables(baseline: Sequence[Dict], augmented: Sequence[Dict],
                   labels=("baseline", "recon-aug")) -> Dict:
    """Per-class means of both runs and their differences (aug - base)."""
    tol_b = {r["tolerance_mm"] for r in baseline}
    tol_a = {r["tolerance_mm"] for r in augmented}
    if tol_a != tol_b or len(tol_a) != 1:
        raise ConfigError(f"the two evaluations used different NSD tolerances ({sorted(tol_b)} vs "
                          f"{sorted(tol_a)} mm); evaluate both with the same --tolerance")
    cases_b = {r["case"] for r in baseline}
    cases_a = {r["case"] for r in augmented}
    if cases_a != cases_b:
        raise ConfigError("the two evaluations cover different cases; compare them on the same test set")
    sb, sa = summarise(baseline), summarise(augmented)
    classes = [c for c in sb if c in sa]
    rows = []
    for c in classes + ["mean"]:
        if c == "mean":
            b = {m: _mean([sb[k][m] for k in classes]) for m in ("dice", "nsd", "hd95_mm")}
            a = {m: _mean([sa[k][m] for k in classes]) for m in ("dice", "nsd", "hd95_mm")}
            n = sb[classes[0]]["n_cases"] if classes else 0
        else:
            b, a, n = sb[c], sa[c], sb[c]["n_cases"]
        rows.append({"class": c, "n_cases": n,
                     **{f"{m}_{s}": v for m in ("dice", "nsd", "hd95_mm")
                        for s, v in ((labels[0], b[m]), (labels[1], a[m]), ("delta", a[m] - b[m]))}})
    return {"tolerance_mm": tol_a.pop(), "labels": list(labels), "rows": rows}


def _mean(values: List[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def format_table(result: Dict) -> str:
    """Markdown table: Dice, NSD@tau, HD95 for both runs and the change."""
    b, a = result["labels"]
    tol = result["tolerance_mm"]
    head = (f"| class | n | Dice {b} | Dice {a} | dDice | NSD@{tol:g}mm {b} | NSD@{tol:g}mm {a} | dNSD "
            f"| HD95 mm {b} | HD95 mm {a} | dHD95 |")
    lines = [head, "|" + "---|" * 11]
    for r in result["rows"]:
        cells = [r["class"], str(r["n_cases"])]
        for m, fmt in (("dice", "{:.3f}"), ("nsd", "{:.3f}"), ("hd95_mm", "{:.1f}")):
            for s in (b, a, "delta"):
                v = r[f"{m}_{s}"]
                cells.append("n/a" if math.isnan(v) else (("{:+.3f}" if m != "hd95_mm" else "{:+.1f}").format(v)
                                                          if s == "delta" else fmt.format(v)))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\nNSD tolerance {tol:g} mm; HD95 averaged over cases where the class was predicted.")
    return "\n".join(lines)
