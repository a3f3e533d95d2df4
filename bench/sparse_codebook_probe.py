"""Does DiCE's codebook limit it on an unseen patient? Training CT vs held-out CT, with and without VQ.

    python bench/sparse_codebook_probe.py                      # shipped DiCE, 6 and 24 views
    python bench/sparse_codebook_probe.py --checkpoint DIR --views 6,10

For the training CT (abdominal sample) and the held-out CT (DICOM sample),
simulated with `deepsparse-64` and the default noise (seed 0), prints per view
count: the relative quantisation error of each scale's 3D features
(|z - q|^2 / |z - mean z|^2), PSNR / SSIM of DiCE as shipped, and PSNR / SSIM
with the quantisers bypassed (the decoder fed the unquantised features). If the
codebooks, learnt on one patient, could not express an unseen one, the held-out
error would be large and the bypass would gain. Diagnostic figures only.
"""

from __future__ import annotations

import argparse

import numpy as np

CTS = (("training CT", "sample_data/ct_abdomen_3mm/ct.nii.gz"), ("held-out CT", "sample_data/ct_dicom_series/dicom"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="DiCE checkpoint (default: the shipped one)")
    ap.add_argument("--views", default="6,24")
    args = ap.parse_args()

    import torch

    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.sparse.dice.checkpoint import SHIPPED, load_dice
    from napari_ctfoundation.engine.sparse.dice.model import grid_points
    from napari_ctfoundation.engine.sparse.metrics import sparse_metrics
    from napari_ctfoundation.engine.sparse.pipeline import simulate_ct
    from napari_ctfoundation.engine.sparse.simulate import NoiseModel

    model = load_dice(args.checkpoint or SHIPPED, "cpu").eval()
    geo = model.config.geo
    points = grid_points(geo)[None]

    def predict(quantised, feats, mats) -> np.ndarray:
        vol3d = model.volume_from_quantised(quantised)
        out = torch.cat([model.query(points[:, i:i + 100_000], vol3d, feats, mats)[0]
                         for i in range(0, points.shape[1], 100_000)])
        return np.clip(out.numpy().reshape((geo.grid_size,) * 3), 0, 1)

    for name, path in CTS:
        ct = read_volume(path)
        for n in (int(v) for v in args.views.split(",")):
            grid, ps = simulate_ct(ct, geo, n, noise=NoiseModel(), seed=0)
            with torch.inference_mode():
                proj = torch.as_tensor(ps.projections, dtype=torch.float32)[None]
                mats = model.matrices(torch.as_tensor(np.asarray(ps.angles, float), dtype=torch.float32)[None])
                feats = model.encode_views(proj)
                raw = [pre(v) for pre, v in zip(model.pre_quant, model.back_project(feats, mats))]
                quantised = [vq(z)[0] for vq, z in zip(model.quant, raw)]
                rel = [float(((z - q) ** 2).sum() / ((z - z.mean((2, 3, 4), keepdim=True)) ** 2).sum())
                       for z, q in zip(raw, quantised)]
                if model.denoise is not None:  # as in DiCE.features: the denoise layers follow the quantisers
                    raw = [d(z) for d, z in zip(model.denoise, raw)]
                    quantised = [d(q) for d, q in zip(model.denoise, quantised)]
                with_vq = sparse_metrics(grid.array, predict(quantised, feats, mats))
                without = sparse_metrics(grid.array, predict(raw, feats, mats))
            print(f"{name:<12} {n:>2} views: quantisation error per scale {' '.join(f'{r:.3f}' for r in rel)}; "
                  f"DiCE {with_vq['psnr']:.2f} dB / {100 * with_vq['ssim']:.2f} %, "
                  f"VQ bypassed {without['psnr']:.2f} dB / {100 * without['ssim']:.2f} %", flush=True)


if __name__ == "__main__":
    main()
