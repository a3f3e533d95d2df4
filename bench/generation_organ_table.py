"""Side-by-side organ HU table of `ctfoundation gen evaluate --out` reports (one held-out CT).

For each organ of the held-out CT: the real mean HU and [p10, p90], and each
model's generated mean HU (over seeds) with whether it lies inside; then per
model the count of organs inside, mask adherence, mean |organ HU error|,
Frechet distance and the mask-edit follow ratio.

    python bench/generation_organ_table.py demo=/tmp/gen/eval/demo_on_lidc.json lopo=/tmp/gen/eval/lopo_on_lidc.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    reports = {}
    for arg in args:
        name, _, path = arg.rpartition("=")
        reports[name or Path(path).stem] = json.loads(Path(path).read_text(encoding="utf-8"))
    first = next(iter(reports.values()))
    guidance = next(iter(first["by_guidance"]))
    organs = first["cases"][0]["organs_over_seeds"][guidance]
    names = list(reports)
    print("| organ | real mean [p10, p90] | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    inside = {n: 0 for n in names}
    for organ, ref in organs.items():
        cells = []
        for n in names:
            row = reports[n]["cases"][0]["organs_over_seeds"][guidance].get(organ)
            if row is None:
                cells.append("-")
                continue
            inside[n] += bool(row["mean_in_real_p10_p90"])
            cells.append(f"{row['generated_mean']:.0f}" + ("" if row["mean_in_real_p10_p90"] else " (out)"))
        print(f"| {organ} | {ref['real_mean']:.0f} [{ref['real_p10']:.0f}, {ref['real_p90']:.0f}] | " + " | ".join(cells) + " |")
    print(f"\n| figure (guidance {guidance}) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    print(f"| organs with mean inside [p10, p90] (of {len(organs)}) | " + " | ".join(str(inside[n]) for n in names) + " |")
    for key, label in (("adherence", "mask adherence"), ("mean_abs_organ_error_hu", "mean abs organ HU error"),
                       ("frechet_vae", "Frechet distance, VAE features")):
        print(f"| {label} | " + " | ".join(f"{reports[n]['by_guidance'][guidance][key]:.3f}" for n in names) + " |")
    print("| follow ratio vs unedited / vs real CT | " + " | ".join(
        f"{reports[n]['cases'][0]['follow_ratio_vs_original_generation']:.2f} / "
        f"{reports[n]['cases'][0]['follow_ratio_vs_real_ct']:.2f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
