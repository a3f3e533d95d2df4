"""Sparse-view CBCT timings: simulation, FDK, SART, DiCE inference; DiCE parameter counts.

    python bench/sparse.py                      # paper geometry (256^3 grid, 256^2 detector), CPU
    python bench/sparse.py --preset deepsparse-64 --sart-iterations 20
    python bench/sparse.py --skip-dice          # baselines only

The CT is the abdominal sample (resampled to the grid, padded with -1000 HU).
DiCE inference at 256^3 uses the paper-size network (random weights: timing
only) with features computed once and 100,000-point chunks as in the paper.
Prints one line per figure; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ct", default=str(ROOT / "sample_data" / "ct_abdomen_3mm" / "ct.nii.gz"))
    parser.add_argument("--preset", default="deepsparse")
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--sart-iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-dice", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.sparse.dice.checkpoint import dice_predict
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.dice.model import DiCE, parameter_count
    from napari_ctfoundation.engine.sparse.geometry import get_preset
    from napari_ctfoundation.engine.sparse.methods import METHODS
    from napari_ctfoundation.engine.sparse.metrics import sparse_metrics
    from napari_ctfoundation.engine.sparse.preprocess import to_grid
    from napari_ctfoundation.engine.sparse.simulate import simulate_projections
    from napari_ctfoundation.engine.vae import resolve_device

    geo = get_preset(args.preset)
    print(f"geometry {geo.name}: grid {geo.grid_size}^3 at {geo.grid_spacing} mm, detector "
          f"{geo.detector_pixels[0]}x{geo.detector_pixels[1]} at {geo.detector_pitch[0]} mm; "
          f"{args.views} views; torch threads {args.threads}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"DiCE parameters: paper config {parameter_count(DiCE(DiCEConfig.paper())):,} "
          f"(REFERENCE: about 7.2 M); small config {parameter_count(DiCE(DiCEConfig.small())):,}")

    import itk  # noqa: F401 - import once outside the timings (slow first import)
    from itk import RTK  # noqa: F401

    t = time.perf_counter()
    grid = to_grid(read_volume(args.ct), geo)
    print(f"preprocess (resample/crop/pad/clip/scale): {time.perf_counter() - t:.2f} s")
    views = geo.select_views(args.views)
    simulate_projections(grid, geo, views[:1])  # warm up the projector
    t = time.perf_counter()
    ps = simulate_projections(grid, geo, views, seed=0)
    print(f"simulation, {args.views} views (Joseph + noise): {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    simulate_projections(grid, geo, range(geo.n_available), seed=0)
    print(f"simulation, all {geo.n_available} candidates (the training cache): {time.perf_counter() - t:.2f} s")
    for name, opts in (("fdk", {}), ("sart", {"iterations": args.sart_iterations})):
        t = time.perf_counter()
        out = METHODS.create(name, ps, **opts)
        dt = time.perf_counter() - t
        m = sparse_metrics(grid.array, out.array)
        extra = f" ({dt / args.sart_iterations:.2f} s/iteration)" if name == "sart" else ""
        print(f"{name.upper()} {opts or ''}: {dt:.2f} s{extra}; PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}")
    if args.skip_dice:
        return
    device = resolve_device(args.device)
    model = DiCE(DiCEConfig.paper(geo) if geo.grid_size == 256 else DiCEConfig.small(geo)).to(device).eval()
    t = time.perf_counter()
    dice_predict(model, ps.projections, ps.angles, device=device, chunk=100_000)
    print(f"DiCE inference ({'paper' if geo.grid_size == 256 else 'small'} config, {parameter_count(model):,} "
          f"parameters, random weights) on {device}, {geo.grid_size}^3 points: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
