"""Where a sparse-view reconstruction loses: error inside the body vs in the air around it.

    python bench/sparse_error_regions.py                          # shipped DiCE vs SART, 6 views
    python bench/sparse_error_regions.py --views 10 --checkpoint DIR

Simulates the held-out DICOM sample with the `deepsparse-64` preset and the
default noise (seed 0; `sparse evaluate` draws its noise over the union of all
view counts, so its PSNR differs by 0.1-0.2 dB) and prints, per method, PSNR /
SSIM, the mean bias and RMSE inside the body (normalised intensity > 0.25) and
in the air, the RMSE per z-row of the body slab, and the body's share of the
squared error. Diagnostic figures only; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", default="sample_data/ct_dicom_series/dicom")
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--checkpoint", default=None, help="DiCE checkpoint (default: the shipped one)")
    ap.add_argument("--sart-iterations", type=int, default=20)
    args = ap.parse_args()

    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.sparse.geometry import get_preset
    from napari_ctfoundation.engine.sparse.methods import METHODS
    from napari_ctfoundation.engine.sparse.metrics import sparse_metrics
    from napari_ctfoundation.engine.sparse.pipeline import simulate_ct
    from napari_ctfoundation.engine.sparse.simulate import NoiseModel

    grid, projections = simulate_ct(read_volume(args.ct), get_preset("deepsparse-64"), args.views,
                                    noise=NoiseModel(), seed=0)
    truth = grid.array
    body = truth > 0.25
    rows = np.flatnonzero(truth.max(axis=(1, 2)) > 0.05)
    z_range = range(max(rows.min() - 2, 0), min(rows.max() + 3, truth.shape[0]))
    dice_kw = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    for method, kwargs in (("sart", {"iterations": args.sart_iterations}), ("dice", dice_kw)):
        out = np.clip(METHODS.create(method, projections, **kwargs).array, 0, 1)
        err = out - truth
        m = sparse_metrics(truth, out)
        print(f"{method} {args.views} views: PSNR {m['psnr']:.2f} dB, SSIM {100 * m['ssim']:.2f} %; "
              f"body bias {err[body].mean():+.4f}, body RMSE {np.sqrt((err[body] ** 2).mean()):.4f}, "
              f"air RMSE {np.sqrt((err[~body] ** 2).mean()):.4f}, "
              f"body share of squared error {(err[body] ** 2).sum() / (err ** 2).sum():.2f}")
        print("  RMSE per z-row (body slab +-2):", " ".join(f"{np.sqrt((err[z] ** 2).mean()):.3f}" for z in z_range))


if __name__ == "__main__":
    main()
