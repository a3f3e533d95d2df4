"""SART (itk-rtk, Joseph projectors), one iteration at a time for progress and cancel."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...errors import ConfigError
from ...progress import CancelCheck, ProgressCallback, Tracker
from ...volume import Volume
from ..simulate import ProjectionSet
from . import METHODS


@METHODS.register("sart", "Simultaneous algebraic reconstruction technique (itk-rtk)")
def sart(
    projections: ProjectionSet,
    *,
    iterations: int = 20,
    relaxation: float = 0.5,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Volume:
    from itk import RTK as rtk

    from ..rtk import projection_image, rtk_geometry, volume_array, volume_image

    if int(iterations) < 1:
        raise ConfigError(f"--iterations {iterations}: SART needs at least 1 iteration")
    geometry = projections.geometry
    geo = rtk_geometry(projections.angles, geometry)
    proj = projection_image(projections.projections, projections.n_views, geometry)
    current = None
    tracker = Tracker(int(iterations), "iterations", progress, cancel)
    for _ in range(int(iterations)):
        vol = volume_image(current, geometry)
        f = rtk.SARTConeBeamReconstructionFilter[type(vol), type(vol)].New()
        f.SetInput(0, vol)
        f.SetInput(1, proj)
        f.SetGeometry(geo)
        f.SetNumberOfIterations(1)
        f.SetLambda(float(relaxation))
        f.SetEnforcePositivity(True)
        f.Update()
        current = volume_array(f.GetOutput())
        tracker.advance()
    out = np.clip(current, 0.0, 1.0)
    return projections.grid_volume(out, method="sart", iterations=int(iterations), views=projections.n_views)
