"""FDK (itk-rtk), with Parker short-scan weights when the views span under a full turn."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ...progress import CancelCheck, ProgressCallback, Tracker
from ...volume import Volume
from ..simulate import ProjectionSet
from . import METHODS


def angular_span(angles_deg: np.ndarray) -> float:
    """Degrees covered by the views (360 minus the largest gap, plus one mean step)."""
    a = np.sort(np.asarray(angles_deg, float) % 360.0)
    if len(a) < 2:
        return 0.0
    gaps = np.diff(np.concatenate([a, a[:1] + 360.0]))
    return float(360.0 - gaps.max() + (360.0 - gaps.max()) / max(len(a) - 1, 1))


def fan_angle(geometry) -> float:
    """Full fan angle (degrees) of the detector's width."""
    half_width = geometry.detector_pixels[0] * geometry.detector_pitch[0] / 2.0
    return float(2 * np.degrees(np.arctan(half_width / geometry.sdd)))


@METHODS.register("fdk", "Feldkamp-Davis-Kress filtered back-projection (itk-rtk)")
def fdk(
    projections: ProjectionSet,
    *,
    hann_cut: float = 0.0,
    short_scan: Optional[bool] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Volume:
    import itk
    from itk import RTK as rtk

    from ..rtk import projection_image, rtk_geometry, volume_array, volume_image

    geometry = projections.geometry
    tracker = Tracker(2, "steps", progress, cancel)
    geo = rtk_geometry(projections.angles, geometry)
    proj = projection_image(projections.projections, projections.n_views, geometry)
    span = angular_span(projections.angles)
    # Parker weights need a short scan: 180 degrees plus the full fan angle.
    # Below that (the deepsparse preset's 180-degree range) they zero out
    # data RTK needs, so only RTK's angular-gap weighting is used.
    enough = span >= 180.0 + fan_angle(geometry) - 1e-6
    if short_scan is None:
        short_scan = span < 359.0 and enough
    elif short_scan and not enough:
        warnings.warn(
            f"FDK: the views span {span:.0f} degrees, under a short scan (180 + fan "
            f"{fan_angle(geometry):.0f}); Parker weights will be incomplete"
        )
    if short_scan and projections.n_views > 1:
        parker = rtk.ParkerShortScanImageFilter[type(proj)].New()
        parker.SetInput(proj)
        parker.SetGeometry(geo)
        parker.Update()
        proj = parker.GetOutput()
        proj.DisconnectPipeline()
    tracker.advance()
    vol = volume_image(None, geometry)
    f = rtk.FDKConeBeamReconstructionFilter[type(vol)].New()
    f.SetInput(0, vol)
    f.SetInput(1, proj)
    f.SetGeometry(geo)
    f.GetRampFilter().SetHannCutFrequency(float(hann_cut))
    f.Update()
    out = np.clip(volume_array(f.GetOutput()), 0.0, 1.0)
    tracker.advance()
    return projections.grid_volume(out, method="fdk", short_scan=bool(short_scan), views=projections.n_views)
