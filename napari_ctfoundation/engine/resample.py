"""Resample a volume or label map onto a new voxel spacing (keeping origin, direction and extent) or onto another grid.

Used where a model is trained at one scale from CTs of many spacings
(generation caches, segmentation training). Coarsening a CT blurs it first
(Gaussian anti-alias, as a scanner's larger voxel would), so the training
data carries no aliasing the model could learn; labels use nearest neighbour.
A model trained at such a spacing generates there and its output is put back
on the mask's own grid with :func:`resample_onto`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from .errors import ConfigError
from .volume import Volume

AIR_HU = -1000.0


def check_spacing(spacing_xyz: Sequence[Optional[float]]) -> None:
    """Three numbers >= 0 in mm (0 or None keeps that axis native), else one :class:`ConfigError` line."""
    sequence = isinstance(spacing_xyz, (list, tuple))
    ok = sequence and len(spacing_xyz) == 3 and all(
        s is None or (isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool)
                      and np.isfinite(s) and s >= 0) for s in spacing_xyz)
    if not ok:
        shown = tuple(spacing_xyz) if sequence else spacing_xyz
        raise ConfigError(f"spacing {shown!r}: need three values x,y,z in mm (>= 0; 0 keeps the native spacing)")


def target_spacing(volume: Volume, spacing_xyz: Optional[Sequence[float]]) -> Optional[tuple]:
    """``spacing_xyz`` with 0 (or None) entries replaced by the volume's own spacing on that axis."""
    if spacing_xyz is None:
        return None
    check_spacing(spacing_xyz)
    return tuple(float(s) if s else float(own) for s, own in zip(spacing_xyz, volume.spacing))


def resample_to_spacing(volume: Volume, spacing_xyz: Optional[Sequence[float]], *, labels: bool,
                        anti_alias: bool = True) -> Volume:
    """``volume`` on ``spacing_xyz`` mm (x, y, z; 0 keeps an axis native; None: unchanged).

    CTs: values below -1000 HU (field-of-view padding) become air first, then a
    Gaussian blur of sigma = sqrt(new^2 - old^2) / 2.355 per coarsened axis
    (``anti_alias``), then linear interpolation; voxels outside the source are air.
    Labels: nearest neighbour, 0 outside.
    """
    new = target_spacing(volume, spacing_xyz)
    if new is None or np.allclose(volume.spacing, new, atol=1e-4):
        return volume
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(reversed(volume.shape), volume.spacing, new)]
    grid = Volume(np.zeros((1, 1, 1), np.uint8), new, volume.origin, volume.direction)
    out = Volume.from_sitk(_resample(volume, grid, size, labels=labels, anti_alias=anti_alias, extrapolate=False),
                           volume.metadata)
    out.array = out.array.astype(volume.array.dtype, copy=False)
    return out


def resample_onto(volume: Volume, reference: Volume, *, labels: bool, anti_alias: bool = True,
                  extrapolate: bool = False) -> Volume:
    """``volume`` on ``reference``'s grid: its shape, spacing, origin and direction exactly; ``volume``'s metadata.

    Same interpolation as :func:`resample_to_spacing` (CT: padding to air,
    anti-aliased where the reference is coarser, linear; labels: nearest).
    Outside ``volume`` voxels are air / 0, or with ``extrapolate`` the nearest
    voxel's value (for a grid derived from the same extent, whose far edge the
    rounded coarse grid may miss by a fraction of a voxel). A reference already
    on ``volume``'s grid returns ``volume`` unchanged.
    """
    if volume.same_grid(reference, atol=1e-4):
        return volume
    image = _resample(volume, reference, list(reversed(reference.shape)), labels=labels, anti_alias=anti_alias,
                      extrapolate=extrapolate)
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image).astype(volume.array.dtype, copy=False)
    # the reference's geometry itself, not its float round trip through ITK: layers overlay exactly
    return replace(reference, array=array, metadata=dict(volume.metadata))


def _resample(volume: Volume, grid: Volume, size: Sequence[int], *, labels: bool, anti_alias: bool,
              extrapolate: bool):
    """SimpleITK image of ``volume`` sampled on ``grid``'s spacing, origin and direction with ``size`` (x, y, z)."""
    import SimpleITK as sitk

    source = volume
    if not labels:
        source = volume.with_array(np.maximum(volume.array.astype(np.float32, copy=False), AIR_HU))
    image = source.to_sitk()
    new = grid.spacing
    if not labels and anti_alias:
        # blur per source axis by how much coarser the target is along it (no blur where it is finer)
        along = np.abs(volume.direction.T @ grid.direction) @ np.asarray(new)
        sigmas = [float(np.sqrt(max(t * t - s * s, 0.0))) / 2.355 for s, t in zip(image.GetSpacing(), along)]
        if max(sigmas) > 0.1 * min(image.GetSpacing()):
            # a sampled (positive) kernel: no ringing below air or above bone, as recursive filters give
            image = sitk.DiscreteGaussian(image, [s * s for s in sigmas], 32, 0.01, True)
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing([float(v) for v in new])
    f.SetSize([int(v) for v in size])
    f.SetOutputOrigin([float(v) for v in grid.origin])
    f.SetOutputDirection([float(v) for v in grid.direction.ravel()])
    f.SetInterpolator(sitk.sitkNearestNeighbor if labels else sitk.sitkLinear)
    f.SetDefaultPixelValue(0 if labels else AIR_HU)
    f.SetUseNearestNeighborExtrapolator(bool(extrapolate))
    return f.Execute(image)
