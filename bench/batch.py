"""Batch reconstruction throughput: cases/hour (and slices/s) on this machine.

Runs ``batch reconstruct`` (read, to display orientation, encode, decode,
metrics, atomic write) over the real sample cases, or over a dataset you
name, in a fresh temporary output folder, and prints the per-case times and
the rate. Each case's time is the whole case (I/O and metrics included).

    OMP_NUM_THREADS=1 python bench/batch.py [--input DATASET] [--vae taef2] [--device cpu] [--repeat 1]

On a GPU: ``python bench/batch.py --device cuda``; several GPUs:
``accelerate launch --multi_gpu --num_processes N -m napari_ctfoundation.cli batch reconstruct IN OUT``
and read the seconds column of OUT/metrics.csv.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=None, help="dataset (folder, nnU-Net folder, manifest); default: the samples")
    ap.add_argument("--vae", default="taef2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1, help="list each sample case this many times")
    args = ap.parse_args()

    import torch

    from napari_ctfoundation.engine.batch import discover_cases, run_batch
    from napari_ctfoundation.engine.batch.reconstruct import make_reconstruct_case
    from napari_ctfoundation.engine.io import read_volume

    with tempfile.TemporaryDirectory() as tmp:
        if args.input:
            source = args.input
        else:
            source = Path(tmp) / "manifest.csv"
            lines = ["name,image"]
            for i in range(args.repeat):
                lines.append(f"abdomen3mm_{i},{SAMPLES / 'ct_abdomen_3mm/ct.nii.gz'}")
                lines.append(f"dicom512_{i},{SAMPLES / 'ct_dicom_series/dicom'}")
            source.write_text("\n".join(lines) + "\n")
        cases = discover_cases(source)
        process = make_reconstruct_case(args.vae, device=args.device, batch_size=args.batch_size)
        t0 = time.perf_counter()
        summary = run_batch(cases, Path(tmp) / "out", process, distributed=False)
        wall = time.perf_counter() - t0
        from napari_ctfoundation.engine.batch.runner import read_csv

        _, rows = read_csv(summary.csv_path)
        print(f"VAE {args.vae}, device {args.device}, torch threads {torch.get_num_threads()}, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        print("| case | shape (x, y, z) | seconds | slices/s | PSNR dB | SSIM |")
        print("|---|---|---|---|---|---|")
        for r, c in zip(rows, cases):
            shape = read_volume(c.image).shape
            print(f"| {r['case']} | {shape[2]} x {shape[1]} x {shape[0]} | {float(r['seconds']):.1f} | "
                  f"{int(r['slices']) / float(r['seconds']):.2f} | {float(r['psnr_db']):.2f} | {float(r['ssim']):.3f} |")
        print(f"{len(summary.done)} cases in {wall:.1f} s: {3600 * len(summary.done) / wall:.1f} cases/hour "
              f"(first case includes loading the VAE)")
        if summary.failed:
            print("failed:", summary.failed)


if __name__ == "__main__":
    main()
