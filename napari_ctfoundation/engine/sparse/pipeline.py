"""End-to-end helpers used by the CLI, the widget and the bench."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError
from ..progress import CancelCheck, ProgressCallback
from ..volume import Volume
from .geometry import ConeBeamGeometry
from .simulate import NoiseModel, ProjectionSet


def simulate_ct(
    volume: Volume,
    geometry: ConeBeamGeometry,
    n_views: int,
    *,
    noise: NoiseModel = NoiseModel(),
    seed: Optional[int] = 0,
    source: str = "",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Tuple[Volume, ProjectionSet]:
    """CT (HU) -> (normalised grid volume, projections at ``n_views`` uniform candidates)."""
    from .preprocess import to_grid

    views = geometry.select_views(n_views)  # checks 1 <= n <= candidates first
    grid = to_grid(volume, geometry, name=source or "CT")
    from .simulate import simulate_projections

    ps = simulate_projections(grid, geometry, views, noise=noise, seed=seed, source=source,
                              progress=progress, cancel=cancel)
    return grid, ps


def default_geometry_for(methods: Sequence[str], checkpoint: Union[str, Path, None]) -> ConeBeamGeometry:
    """The checkpoint's geometry when DiCE is asked for, else the deepsparse preset."""
    from .geometry import PRESETS

    if "dice" in methods:
        from .dice.checkpoint import SHIPPED, read_checkpoint_meta
        from .dice.config import DiCEConfig

        meta = read_checkpoint_meta(checkpoint or SHIPPED)
        return DiCEConfig.from_dict(meta["config"]).geo
    return PRESETS["deepsparse"]


def evaluate_ct(
    volume: Volume,
    geometry: ConeBeamGeometry,
    views: Sequence[int],
    methods: Sequence[str],
    *,
    noise: NoiseModel = NoiseModel(),
    seed: Optional[int] = 0,
    method_options: Optional[Dict[str, Dict[str, Any]]] = None,
    source: str = "",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> List[Dict[str, Any]]:
    """Simulate from the CT at each view count, reconstruct with each method, score vs the grid volume.

    Rows: method, views, psnr, ssim, seconds (reconstruction time only).
    """
    from .methods import METHODS
    from .metrics import sparse_metrics
    from .preprocess import to_grid
    from .simulate import simulate_projections

    for m in methods:
        METHODS.get(m)  # unknown names fail before any work
    views = [int(v) for v in views]
    idx_sets = [geometry.select_views(v) for v in views]
    grid = to_grid(volume, geometry, name=source or "CT")
    # One noisy simulation of all needed candidates, so every view count sees the same noise draw.
    needed = np.unique(np.concatenate(idx_sets))
    full = simulate_projections(grid, geometry, needed, noise=noise, seed=seed, source=source)
    pos = {int(c): i for i, c in enumerate(needed)}
    rows: List[Dict[str, Any]] = []
    total = len(views) * len(methods)
    for vi, (n, idx) in enumerate(zip(views, idx_sets)):
        ps = full.subset(np.array([pos[int(c)] for c in idx]))
        for mi, m in enumerate(methods):
            if cancel is not None and cancel():
                from ..errors import OperationCancelled

                raise OperationCancelled("evaluation cancelled")
            t = time.perf_counter()
            out = METHODS.create(m, ps, **(method_options or {}).get(m, {}))
            seconds = time.perf_counter() - t
            scores = sparse_metrics(grid.array, out.array)
            rows.append({"method": m, "views": n, "psnr": scores["psnr"], "ssim": scores["ssim"], "seconds": seconds})
            if progress is not None:
                progress(vi * len(methods) + mi + 1, total, "reconstructions")
    return rows
