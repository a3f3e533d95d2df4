"""DiCE grid prediction: features once, then the output grid queried densely or fast (coarse to fine)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ...errors import ConfigError
from ...progress import CancelCheck, ProgressArg, Tracker
from .fast_query import QUERIES, PointQuery, coarse_to_fine, grid_axis, query_points

MAX_GRID = 1024  # a 1024^3 float32 output is 4 GB; larger grids are a typo more often than a wish
AIR = 0.01  # normalised value (20 HU above the window's floor for a 2000 HU window) treated as air


def check_query_options(grid: Optional[int], query: str) -> None:
    """Raise :class:`ConfigError` (one line) for an unusable ``--grid`` or ``--query``."""
    if query not in QUERIES:
        raise ConfigError(f"--query {query!r}: use {' or '.join(QUERIES)}")
    if grid is not None and (isinstance(grid, bool) or not isinstance(grid, (int, np.integer))
                             or not 2 <= int(grid) <= MAX_GRID):
        raise ConfigError(f"--grid {grid!r}: expected a whole number of voxels per side from 2 to {MAX_GRID}")


def default_stride(n: int, trained_n: int) -> int:
    """Coarse lattice step in output voxels: 4 trained-grid voxels' worth, within [2, 8]; 1 (no coarse pass) under 16.

    Measured on the shipped checkpoint (bench/sparse.py): fast vs dense stays far above 45 dB at these steps.
    """
    if n < 16:
        return 1
    return min(8, max(2, int(round(4 * n / trained_n))))


def predict_grid(
    model,
    projections: np.ndarray,
    angles: np.ndarray,
    *,
    grid: Optional[int] = None,
    query: str = "fast",
    device: str = "cpu",
    chunk: Optional[int] = None,
    stride: Optional[int] = None,
    air: float = AIR,
    progress: ProgressArg = None,
    cancel: Optional[CancelCheck] = None,
    stats: Optional[Dict[str, Any]] = None,
) -> np.ndarray:
    """Prediction [z, y, x] in [0, 1] on a ``grid``^3 cube (default: the trained grid) of the same extent.

    ``query="dense"`` runs ``DiCE.query`` at every voxel; ``"fast"`` runs the
    same decoder restructured (:class:`PointQuery`) and, above 16 voxels,
    coarse to fine: every ``stride``-th voxel first, then every voxel of
    the cells that are not all air (normalised value <= ``air``) or touch
    such a cell; the rest is interpolated. Progress is reported in point
    chunks (the first unit is the feature pass). ``stats`` (if given)
    receives how many points were queried.
    """
    import torch

    check_query_options(grid, query)
    geo = model.config.geo
    n = int(grid or geo.grid_size)
    extent = geo.grid_extent
    chunk = int(chunk or model.config.chunk_points)
    tracker = Tracker(2, "chunks", progress, cancel)
    with torch.inference_mode():
        proj = torch.as_tensor(projections, dtype=torch.float32, device=device)[None]
        ang = torch.as_tensor(np.asarray(angles, float), dtype=torch.float32, device=device)[None]
        feats, mats, qs, _ = model.features(proj, ang)
        vol3d = model.volume_from_quantised(qs)
        tracker.total = 1 + -(-n ** 3 // chunk)
        tracker.advance()
        if query == "dense":
            a = grid_axis(extent, n, device)
            z, y, x = torch.meshgrid(a, a, a, indexing="ij")
            pts = torch.stack([x, y, z], -1).reshape(-1, 3)
            out = query_points(lambda p: model.query(p[None], vol3d, feats, mats)[0], pts, chunk, tracker)
            raw = out.cpu().numpy().reshape(n, n, n)
            if stats is not None:
                stats.update(queried_fraction=1.0, coarse_points=0, refined_points=n ** 3)
        else:
            fn = PointQuery(model, vol3d, feats, mats)
            step = default_stride(n, geo.grid_size) if stride is None else int(stride)
            if step <= 1:
                a = grid_axis(extent, n, device)
                z, y, x = torch.meshgrid(a, a, a, indexing="ij")
                raw = query_points(fn, torch.stack([x, y, z], -1).reshape(-1, 3), chunk, tracker).cpu().numpy()
                raw = raw.reshape(n, n, n)
                if stats is not None:
                    stats.update(queried_fraction=1.0, coarse_points=0, refined_points=n ** 3)
            else:
                raw = coarse_to_fine(fn, extent, n, stride=step, air=air, chunk=chunk, device=device,
                                     tracker=tracker, stats=stats)
    return np.clip(raw, 0.0, 1.0).astype(np.float32)


def regrid(grid: Dict[str, Any], trained_n: int, trained_spacing: float, n: int) -> Dict[str, Any]:
    """A projection set's grid placement (``Volume.geometry_dict``) for ``n`` voxels over the same cube."""
    if n == trained_n:
        return grid
    spacing = trained_n * trained_spacing / n
    shift = (trained_n - 1) / 2.0 * trained_spacing - (n - 1) / 2.0 * spacing  # the cube's centre stays put
    direction = np.asarray(grid["direction"], float).reshape(3, 3)
    origin = np.asarray(grid["origin_xyz_lps"], float) + direction @ np.full(3, shift)
    return {**grid, "shape_zyx": [n] * 3, "spacing_xyz": [spacing] * 3, "origin_xyz_lps": [float(v) for v in origin]}
