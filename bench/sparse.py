"""Sparse-view CBCT timings: simulation, FDK, SART, DiCE inference; DiCE parameter counts.

    python bench/sparse.py                      # paper geometry (256^3 grid, 256^2 detector), CPU
    python bench/sparse.py --preset deepsparse-64 --sart-iterations 20
    python bench/sparse.py --skip-dice          # baselines only

The CT is the abdominal sample (resampled to the grid, padded with -1000 HU).
DiCE inference at 256^3 uses the paper-size network (random weights: timing
only) with features computed once and 100,000-point chunks as in the paper.
Prints one line per figure; nothing here is a pass/fail test.

DiCE query, dense vs fast (issue 13), printed as one table:

    python bench/sparse.py --only-dice --dense-planes 8     # paper config 256^3 + shipped checkpoint 64^3 / 256^3

For each model and grid: the feature pass; the dense query (every voxel,
``--query dense``); the fast query (the default); their ratio; PSNR of
fast against dense on the normalised output. ``--dense-planes K`` times
the dense query on K z-planes through the body and scales the time to the
whole grid (points are independent, so the time per point is constant);
PSNR is then computed on those planes. ``--dense-planes 0`` runs it all.
Random paper weights predict air (below 0) everywhere, so the fast query
stops after its coarse pass; two more rows give content-independent and
realistic figures: "every voxel exact" (the restructured decoder alone,
no coarse-to-fine) and "CT-steered" (the coarse-to-fine decisions taken
from the CT's own grid values, as a network that reconstructs it would
give, while every queried point still runs the paper network).
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
    parser.add_argument("--only-dice", action="store_true", help="skip preprocessing/simulation/FDK/SART timings")
    parser.add_argument("--dense-planes", type=int, default=0,
                        help="time the dense query on this many z-planes and scale to the grid (0: whole grid)")
    parser.add_argument("--shipped-grids", default="64,256", help="grids for the shipped checkpoint rows ('' = none)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.dice.model import DiCE, parameter_count
    from napari_ctfoundation.engine.sparse.geometry import get_preset
    from napari_ctfoundation.engine.sparse.methods import METHODS
    from napari_ctfoundation.engine.sparse.metrics import sparse_metrics
    from napari_ctfoundation.engine.sparse.preprocess import to_grid
    from napari_ctfoundation.engine.sparse.simulate import simulate_projections

    geo = get_preset(args.preset)
    print(f"geometry {geo.name}: grid {geo.grid_size}^3 at {geo.grid_spacing} mm, detector "
          f"{geo.detector_pixels[0]}x{geo.detector_pixels[1]} at {geo.detector_pitch[0]} mm; "
          f"{args.views} views; torch threads {args.threads}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"DiCE parameters: paper config {parameter_count(DiCE(DiCEConfig.paper())):,} "
          f"(REFERENCE: about 7.2 M); small config {parameter_count(DiCE(DiCEConfig.small())):,}")

    import itk  # noqa: F401 - import once outside the timings (slow first import)
    from itk import RTK  # noqa: F401

    if args.only_dice:
        query_table(args, geo)
        return
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
    query_table(args, geo)


def _simulate(ct: str, geo, views: int):
    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.sparse.pipeline import simulate_ct

    return simulate_ct(read_volume(ct), geo, views, seed=0)


def _psnr(a, b) -> float:
    import numpy as np

    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-20)))


def query_rows(name, model, ps, grid_unit, n, planes, device, steer=None):
    """Rows (label, seconds, note) for one model and output grid: features, dense, fast (+ ratio, PSNR)."""
    import numpy as np
    import torch

    from napari_ctfoundation.engine.sparse.dice.fast_query import (
        PointQuery, coarse_to_fine, grid_axis, query_points)
    from napari_ctfoundation.engine.sparse.dice.predict import default_stride

    geo = model.config.geo
    chunk = model.config.chunk_points
    with torch.inference_mode():
        proj = torch.as_tensor(ps.projections, dtype=torch.float32, device=device)[None]
        ang = torch.as_tensor(np.asarray(ps.angles, float), dtype=torch.float32, device=device)[None]
        t = time.perf_counter()
        feats, mats, qs, _ = model.features(proj, ang)
        vol3d = model.volume_from_quantised(qs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t_feat = time.perf_counter() - t
        axis = grid_axis(geo.grid_extent, n, device)
        # z-planes for the dense reference: spread over the body's z-range in the CT's grid volume
        body_z = np.nonzero((grid_unit > 0.01).any((1, 2)))[0] * n // grid_unit.shape[0]
        zs = (np.arange(n) if planes <= 0 or planes >= n else
              np.unique(np.linspace(body_z.min(), body_z.max(), planes).round().astype(int)))
        z, y, x = torch.meshgrid(axis[torch.as_tensor(zs, device=device)], axis, axis, indexing="ij")
        pts = torch.stack([x, y, z], -1).reshape(-1, 3)
        t = time.perf_counter()
        dense = query_points(lambda p: model.query(p[None], vol3d, feats, mats)[0], pts, chunk)
        dense = dense.clamp(0, 1).cpu().numpy().reshape(len(zs), n, n)
        t_dense = (time.perf_counter() - t) * n / len(zs)
        t = time.perf_counter()
        fn = PointQuery(model, vol3d, feats, mats)
        stats = {}
        fast = np.clip(coarse_to_fine(fn, geo.grid_extent, n, stride=default_stride(n, geo.grid_size),
                                      chunk=chunk, device=device, stats=stats), 0, 1)
        t_fast = time.perf_counter() - t
        t = time.perf_counter()
        exact = query_points(fn, pts, chunk).clamp(0, 1).cpu().numpy().reshape(len(zs), n, n)
        t_exact = (time.perf_counter() - t) * n / len(zs)
        rows = [
            (f"{name} {n}^3: features (once, both queries)", t_feat, ""),
            (f"{name} {n}^3: dense query", t_dense, "" if len(zs) == n else f"scaled from {len(zs)} planes"),
            (f"{name} {n}^3: fast query (default)", t_fast,
             f"dense/fast {t_dense / t_fast:.1f}x; PSNR vs dense {_psnr(fast[zs], dense):.1f} dB; "
             f"queried {100 * stats['queried_fraction']:.1f} % of voxels"),
            (f"{name} {n}^3: fast decoder, every voxel exact", t_exact,
             f"dense/exact {t_dense / t_exact:.2f}x; PSNR vs dense {_psnr(exact, dense):.1f} dB"
             + ("" if len(zs) == n else f"; scaled from {len(zs)} planes")),
        ]
        if steer is not None:
            # Coarse-to-fine decisions from the CT itself; every queried point still runs the network.
            unit = torch.as_tensor(steer)
            scale = unit.shape[0] / n

            def steered(p):
                fn(p)
                idx = ((p.cpu() / geo.grid_extent + 0.5) * n).floor().long().clamp(0, n - 1)
                idx = (idx.float() * scale).long()
                return unit[idx[:, 2], idx[:, 1], idx[:, 0]].to(p.device)

            stats = {}
            t = time.perf_counter()
            coarse_to_fine(steered, geo.grid_extent, n, stride=default_stride(n, geo.grid_size), chunk=chunk,
                           device=device, stats=stats)
            t_steer = time.perf_counter() - t
            rows.append((f"{name} {n}^3: fast query, CT-steered", t_steer,
                         f"dense/fast {t_dense / t_steer:.1f}x; queried {100 * stats['queried_fraction']:.1f} % "
                         "of voxels (decisions from the CT, values not scored)"))
    return rows


def query_table(args, geo) -> None:
    """DiCE dense vs fast query: paper config (random weights) on ``geo``; the shipped checkpoint."""
    import torch

    from napari_ctfoundation.engine.sparse.dice.checkpoint import load_dice
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.dice.model import DiCE, parameter_count
    from napari_ctfoundation.engine.vae import resolve_device

    device = resolve_device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"DiCE query on {device}, {args.views} views, torch threads {torch.get_num_threads()}, "
          f"load average {load:.1f} at start")
    rows = []

    def show(new_rows) -> None:  # print as they come: the whole table takes long on a shared CPU
        rows.extend(new_rows)
        for label_, seconds, note in new_rows:
            print(f"{label_:<52}  {seconds:9.2f} s  {note}", flush=True)

    torch.manual_seed(0)
    config = DiCEConfig.paper(geo) if geo.grid_size >= 128 else DiCEConfig.small(geo)
    model = DiCE(config).to(device).eval()
    grid, ps = _simulate(args.ct, geo, args.views)
    label = f"{'paper' if geo.grid_size >= 128 else 'small'} ({parameter_count(model) / 1e6:.2f} M, random)"
    show(query_rows(label, model, ps, grid.array, geo.grid_size, args.dense_planes, device, steer=grid.array))
    shipped = load_dice(None, device)
    sgrid, sps = _simulate(args.ct, shipped.config.geo, args.views)
    for n in [int(v) for v in args.shipped_grids.split(",") if v.strip()]:
        show(query_rows("shipped", shipped, sps, sgrid.array, n, args.dense_planes, device))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} at end")


if __name__ == "__main__":
    main()
