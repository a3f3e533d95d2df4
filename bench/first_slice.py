"""Time to the viewed slice against the whole reconstruction, and what the metrics cost.

Issue 13 part 1 and issue 14 item 6. The 512x512 DICOM sample (20 slices)
is tiled to 60 slices; the user looks at the middle slice. The script loads
TAEF2 once, times one slice on its own, then runs ``reconstruct_volume``
as the widget does on a CPU (one slice per slab, starting at the viewed
slice) and reports when that slice arrived, when the volume was complete,
and how long the metrics took afterwards.

Targets: the viewed slice in under 2x one slice's time; metrics at most
10 % of the reconstruction time.

    python bench/first_slice.py            # about 3 to 10 minutes on 2 CPU cores
    python bench/first_slice.py --slices 12 --vae bicubic_f16   # a quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def tiled_sample(slices: int):
    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.volume import Volume

    volume = read_volume(ROOT / "sample_data" / "ct_dicom_series" / "dicom").to_display()
    reps = -(-slices // volume.shape[0])
    array = np.ascontiguousarray(np.concatenate([volume.array] * reps)[:slices])
    return Volume(array, volume.spacing, volume.origin, volume.direction)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--vae", default="taef2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1, help="slices per slab (the widget uses 1 on a CPU)")
    args = parser.parse_args()

    import torch

    from napari_ctfoundation.engine.reconstruct import reconstruct_volume
    from napari_ctfoundation.engine.vae import load_vae

    volume = tiled_sample(args.slices)
    viewed = args.slices // 2
    t0 = time.perf_counter()
    vae = load_vae(args.vae, device=args.device)
    load_s = time.perf_counter() - t0

    one = volume.cropped(z=slice(viewed, viewed + 1))
    reconstruct_volume(one, vae, compute_metrics=False)  # warm-up
    t0 = time.perf_counter()
    reconstruct_volume(one, vae, compute_metrics=False)
    one_slice_s = time.perf_counter() - t0

    arrivals = {}
    phases = {}
    started = time.perf_counter()

    def on_slab(z0, z1, hu):
        for z in range(z0, z1):
            arrivals[z] = time.perf_counter() - started

    def progress(done, total, unit):
        phases.setdefault(unit, time.perf_counter() - started)

    result = reconstruct_volume(volume, vae, batch_size=args.batch_size, start_slice=viewed,
                                on_slab=on_slab, progress=progress)
    total_s = time.perf_counter() - started
    recon_s = result.settings["timing_s"]["reconstruction"]
    metrics_s = result.settings["timing_s"]["metrics"]
    first_s = arrivals[viewed]

    print(f"volume {volume.shape[2]}x{volume.shape[1]}x{volume.shape[0]} (DICOM sample tiled), VAE {args.vae}, "
          f"device {args.device}, torch threads {torch.get_num_threads()}, slab {args.batch_size} slice(s)")
    rows = [
        ("model load (s)", f"{load_s:.2f}"),
        ("one slice alone (s)", f"{one_slice_s:.2f}"),
        (f"viewed slice {viewed} on screen after (s)", f"{first_s:.2f}"),
        ("  = x one slice (target < 2)", f"{first_s / one_slice_s:.2f}"),
        ("whole volume reconstructed after (s)", f"{recon_s:.2f}"),
        ("  viewed slice / whole volume", f"{first_s / recon_s:.3f}"),
        ("before: first slice seen after (s), encode all then decode all", f"{recon_s:.2f}"),
        ("metrics (s)", f"{metrics_s:.2f}"),
        ("  metrics / reconstruction (target <= 10 %)", f"{100 * metrics_s / recon_s:.1f} %"),
        ("end to end (s)", f"{total_s:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    m = result.metrics
    print(f"PSNR {m['psnr_db']:.2f} dB  SSIM {m['ssim']:.4f}  MS-SSIM {m['ms_ssim']:.4f}  MAE {m['mae_hu']:.1f} HU")


if __name__ == "__main__":
    main()
