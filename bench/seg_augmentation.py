"""Reconstruction augmentation on the real sample CTs: baseline (p=0) vs p>0.

Two real cases with organ labels (sample_data: abdomen 3 mm NIfTI, 512^2
DICOM series), so the only honest protocol is two-fold cross-testing:
train on one case, test on the other, both ways, for each arm. Everything
goes through the CLI, so the commands printed are the ones to re-run.

    OMP_NUM_THREADS=1 python bench/seg_augmentation.py [--work /tmp/seg_exp] [--epochs 30] [--p 0.5]

Reconstructions come from ``batch reconstruct`` (taef2, resumable). Expect
~4 min per training on one CPU thread with the defaults.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_data"


def run(argv) -> None:
    from napari_ctfoundation.cli import main

    print("$ ctfoundation " + " ".join(shlex.quote(str(a)) for a in argv), flush=True)
    t0 = time.perf_counter()
    code = main([str(a) for a in argv])
    print(f"  ({time.perf_counter() - t0:.0f} s, exit {code})", flush=True)
    if code != 0:
        sys.exit(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/seg_exp")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--classes", default="liver,spleen,stomach")
    ap.add_argument("--tolerance", type=float, default=3.0)
    ap.add_argument("--arch", default="segresnet")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.csv"
    manifest.write_text(
        "name,image,label\n"
        f"abdomen3mm,{SAMPLES / 'ct_abdomen_3mm/ct.nii.gz'},{SAMPLES / 'ct_abdomen_3mm/organs.nii.gz'}\n"
        f"dicom512,{SAMPLES / 'ct_dicom_series/dicom'},{SAMPLES / 'ct_dicom_series/organs.nii.gz'}\n")
    recon = work / "recon_taef2"
    run(["batch", "reconstruct", manifest, recon, "--vae", "taef2", "--device", "cpu"])
    folds = [("abdomen3mm", "dicom512"), ("dicom512", "abdomen3mm")]
    common = ["--classes", args.classes, "--epochs", args.epochs, "--steps", args.steps,
              "--arch", args.arch, "--seed", args.seed]
    for train, test in folds:
        for arm, p in (("baseline", 0.0), ("recon", args.p)):
            model = work / f"model_{arm}_train-{train}"
            extra = ["--recon-dir", recon] if p > 0 else []
            run(["seg", "train", manifest, model, "--cases", train, "--p", p, *extra, *common])
            run(["seg", "evaluate", model, manifest, work / f"eval_{arm}_test-{test}", "--cases", test,
                 "--tolerance", args.tolerance])
        run(["seg", "compare", work / f"eval_baseline_test-{test}", work / f"eval_recon_test-{test}",
             "--out", work / f"compare_test-{test}.md"])
    # pooled over both test cases
    from napari_ctfoundation.engine.segmentation import compare_tables, format_table, read_evaluation

    base = sum((read_evaluation(work / f"eval_baseline_test-{t}") for _, t in folds), [])
    aug = sum((read_evaluation(work / f"eval_recon_test-{t}") for _, t in folds), [])
    table = format_table(compare_tables(base, aug))
    (work / "compare_pooled.md").write_text(table + "\n")
    print("\npooled over both folds (one test case each):\n" + table)


if __name__ == "__main__":
    main()
