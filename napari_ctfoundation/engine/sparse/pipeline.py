"""End-to-end helpers used by the CLI, the widget and the bench."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError
from ..progress import CancelCheck, ProgressArg, ProgressCallback, resolve_progress
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
    progress: ProgressArg = None,
    cancel: Optional[CancelCheck] = None,
) -> Tuple[Volume, ProjectionSet]:
    """Simulate a sparse-view cone-beam scan of a CT: ``(grid volume, projections)``.

    ``volume`` is a CT in HU (``[z, y, x]``, any orientation). It is resampled
    onto the geometry's reconstruction grid, a cube of ``grid_size`` voxels
    of ``grid_spacing`` mm centred on the body, in display orientation
    (LPS), with HU clipped to ``geometry.window`` and scaled to [0, 1]; that
    grid volume is the reference every reconstruction is scored against.
    The projections (a :class:`ProjectionSet`: line integrals
    ``(views, v, u)`` in mm, angles in degrees) are DRRs at ``n_views``
    uniformly spread candidate angles, with Poisson + Gaussian ``noise``
    drawn from ``seed``. Progress is reported in views.

    Raises :class:`ConfigError` when ``n_views`` is outside
    ``[1, geometry.n_available]`` and :class:`GeometryError` when the CT does
    not overlap the grid.
    """
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
    progress: ProgressArg = None,
    cancel: Optional[CancelCheck] = None,
) -> List[Dict[str, Any]]:
    """Simulate from the CT at each view count, reconstruct with each method, score vs the grid volume.

    ``volume`` is a CT in HU; ``views`` are view counts (e.g. ``[6, 10]``);
    ``methods`` are registered names (``"fdk"``, ``"sart"``, ``"dice"``);
    ``method_options`` maps a method to its keyword arguments (e.g.
    ``{"dice": {"checkpoint": folder}, "sart": {"iterations": 10}}``).
    Returns one row per (view count, method): ``method``, ``views``,
    ``psnr`` (dB) and ``ssim`` (3D) on the normalised [0, 1] grid, and
    ``seconds`` (reconstruction time only). Progress is reported per phase,
    the phase named in the unit: "views simulated", then each run's own
    unit, e.g. "iterations (sart, 6 views, run 2/9)". Raises :class:`ConfigError` for an unknown method or a
    view count the geometry cannot give.
    """
    progress = resolve_progress(progress)
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
    full = simulate_projections(grid, geometry, needed, noise=noise, seed=seed, source=source,
                                progress=_labelled(progress, "{unit} simulated"), cancel=cancel)
    pos = {int(c): i for i, c in enumerate(needed)}
    rows: List[Dict[str, Any]] = []
    total = len(views) * len(methods)
    for vi, (n, idx) in enumerate(zip(views, idx_sets)):
        ps = full.subset(np.array([pos[int(c)] for c in idx]))
        for mi, m in enumerate(methods):
            if cancel is not None and cancel():
                from ..errors import OperationCancelled

                raise OperationCancelled("evaluation cancelled")
            run = f"{{unit}} ({m}, {n} views, run {vi * len(methods) + mi + 1}/{total})"
            t = time.perf_counter()
            out = METHODS.create(m, ps, progress=_labelled(progress, run), cancel=cancel,
                                 **(method_options or {}).get(m, {}))
            seconds = time.perf_counter() - t
            scores = sparse_metrics(grid.array, out.array)
            rows.append({"method": m, "views": n, "psnr": scores["psnr"], "ssim": scores["ssim"], "seconds": seconds})
    return rows


def _labelled(progress: Optional[ProgressCallback], template: str) -> Optional[ProgressCallback]:
    """Pass a phase's progress on with the phase named in its unit (``template`` holds ``{unit}``)."""
    if progress is None:
        return None
    return lambda done, total, unit: progress(done, total, template.format(unit=unit))
