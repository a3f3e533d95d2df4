"""Thin, lazily imported itk-rtk helpers shared by the simulator and baselines.

``import itk`` is slow, so nothing here runs at import time. Volumes travel
as numpy ``[z, y, x]`` grid arrays and are handed to RTK transposed to
``[y, z, x]`` so that the patient z axis is RTK's rotation axis y
(:func:`.geometry.grid_to_rtk`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .geometry import ConeBeamGeometry


def _itk():
    import itk
    from itk import RTK as rtk

    return itk, rtk


def rtk_geometry(angles_deg: Sequence[float], geometry: ConeBeamGeometry):
    _, rtk = _itk()
    g = rtk.ThreeDCircularProjectionGeometry.New()
    for angle in angles_deg:
        g.AddProjection(float(geometry.sod), float(geometry.sdd), float(angle), 0.0, 0.0)
    return g


def volume_image(array_zyx: Optional[np.ndarray], geometry: ConeBeamGeometry):
    """Grid array -> itk image in RTK's frame (zeros if ``array_zyx`` is None)."""
    itk, _ = _itk()
    n = geometry.grid_size
    if array_zyx is None:
        array_zyx = np.zeros((n, n, n), np.float32)
    image = itk.image_from_array(np.ascontiguousarray(np.asarray(array_zyx, np.float32).transpose(1, 0, 2)))
    image.SetSpacing([geometry.grid_spacing] * 3)
    image.SetOrigin([geometry.grid_origin()] * 3)
    return image


def volume_array(image) -> np.ndarray:
    itk, _ = _itk()
    return np.ascontiguousarray(itk.array_from_image(image).transpose(1, 0, 2)).astype(np.float32)


def projection_image(stack: Optional[np.ndarray], n_views: int, geometry: ConeBeamGeometry):
    """(views, v, u) array -> itk projection stack with detector spacing/origin."""
    itk, _ = _itk()
    nu, nv = geometry.detector_pixels
    if stack is None:
        stack = np.zeros((n_views, nv, nu), np.float32)
    image = itk.image_from_array(np.ascontiguousarray(stack, dtype=np.float32))
    image.SetSpacing([geometry.detector_pitch[0], geometry.detector_pitch[1], 1.0])
    ou, ov = geometry.detector_origin()
    image.SetOrigin([ou, ov, 0.0])
    return image


def forward_project(array_zyx: np.ndarray, angles_deg: Sequence[float], geometry: ConeBeamGeometry) -> np.ndarray:
    """Joseph line integrals (mm x voxel value) of the grid volume, (views, v, u)."""
    itk, rtk = _itk()
    vol = volume_image(array_zyx, geometry)
    proj = projection_image(None, len(angles_deg), geometry)
    fp = rtk.JosephForwardProjectionImageFilter[type(proj), type(vol)].New()
    fp.SetInput(0, proj)
    fp.SetInput(1, vol)
    fp.SetGeometry(rtk_geometry(angles_deg, geometry))
    fp.Update()
    return itk.array_from_image(fp.GetOutput()).astype(np.float32)
