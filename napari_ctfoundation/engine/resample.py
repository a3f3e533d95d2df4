"""Resample a volume or label map onto a new voxel spacing, keeping origin, direction and extent.

Used where a model is trained at one scale from CTs of many spacings
(generation caches, segmentation training). Coarsening a CT blurs it first
(Gaussian anti-alias, as a scanner's larger voxel would), so the training
data carries no aliasing the model could learn; labels use nearest neighbour.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .errors import ConfigError
from .volume import Volume

AIR_HU = -1000.0


def target_spacing(volume: Volume, spacing_xyz: Optional[Sequence[float]]) -> Optional[tuple]:
    """``spacing_xyz`` with 0 (or None) entries replaced by the volume's own spacing on that axis."""
    if spacing_xyz is None:
        return None
    if len(spacing_xyz) != 3 or any(s is not None and (not np.isfinite(s) or s < 0) for s in spacing_xyz):
        raise ConfigError(f"spacing {tuple(spacing_xyz)}: need three values x,y,z in mm (>= 0; 0 keeps the native spacing)")
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
    import SimpleITK as sitk

    source = volume
    if not labels:
        source = volume.with_array(np.maximum(volume.array.astype(np.float32, copy=False), AIR_HU))
    image = source.to_sitk()
    if not labels and anti_alias:
        sigmas = [float(np.sqrt(max(t * t - s * s, 0.0))) / 2.355 for s, t in zip(image.GetSpacing(), new)]
        if max(sigmas) > 0.1 * min(image.GetSpacing()):
            # a sampled (positive) kernel: no ringing below air or above bone, as recursive filters give
            image = sitk.DiscreteGaussian(image, [s * s for s in sigmas], 32, 0.01, True)
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), image.GetSpacing(), new)]
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing(list(new))
    f.SetSize(size)
    f.SetOutputOrigin(image.GetOrigin())
    f.SetOutputDirection(image.GetDirection())
    f.SetInterpolator(sitk.sitkNearestNeighbor if labels else sitk.sitkLinear)
    f.SetDefaultPixelValue(0 if labels else AIR_HU)
    out = Volume.from_sitk(f.Execute(image), volume.metadata)
    out.array = out.array.astype(volume.array.dtype, copy=False)
    return out
