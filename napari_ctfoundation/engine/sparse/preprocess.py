"""CT -> normalised grid volume, as the paper prepares its data.

Resample to the grid spacing (with an anti-alias blur when coarsening),
crop/pad to the grid cube around the body (pad value -1000 HU), clip to the
HU window and scale to [0, 1]. Values below -1000 HU (field-of-view padding,
-2048 or -3024) become air before any blurring or interpolation. The result
is a :class:`Volume` whose geometry places the grid in the CT's world coordinates (identity direction,
LPS), so reconstructions can be written back as NIfTI aligned with the CT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import GeometryError
from ..volume import Volume
from .geometry import ConeBeamGeometry

PAD_HU = -1000.0
BODY_HU = -500.0  # voxels above this are "body" when centring the grid
AIR_CEILING_HU = 1e9  # no upper clamp before resampling (the window clips later)


@dataclass(frozen=True)
class Augment:
    """Random geometric augmentation applied while resampling (training only).

    ``zoom`` scales the anatomy about the body centre (patients differ in
    size); ``slab_mm`` keeps only a z-slab of the body (the rest becomes air),
    like a short scan range: clinical series often cover a few centimetres,
    and a network trained only on long ranges meets them out of distribution.
    """

    rotation_deg: float = 0.0  # about the patient z (rotation) axis
    shift_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # grid centre offset (x, y, z)
    flip_x: bool = False
    zoom: float = 1.0
    slab_mm: Optional[float] = None  # thickness of the kept z-slab; None keeps everything
    slab_position: float = 0.5  # slab centre as a fraction of the body's z extent

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        max_rotation: float = 15.0,
        max_shift: float = 20.0,
        zoom_range: Tuple[float, float] = (0.9, 1.35),
        slab_probability: float = 0.5,
        slab_range_mm: Tuple[float, float] = (25.0, 80.0),
    ) -> "Augment":
        rotation = float(rng.uniform(-max_rotation, max_rotation))
        shift = tuple(float(v) for v in rng.uniform(-max_shift, max_shift, 3))
        flip = bool(rng.random() < 0.5)
        zoom = float(rng.uniform(*zoom_range))
        slab = float(rng.uniform(*slab_range_mm)) if rng.random() < slab_probability else None
        return cls(rotation_deg=rotation, shift_mm=shift, flip_x=flip, zoom=zoom,
                   slab_mm=slab, slab_position=float(rng.uniform(0.0, 1.0)))


def keep_slab(hu: np.ndarray, spacing_z: float, thickness_mm: float, position: float) -> np.ndarray:
    """Set every z-row of ``hu`` [z, y, x] outside a slab of the body to air.

    The slab (``thickness_mm`` thick) is centred at ``position`` (0..1) of the
    body's z extent; a volume with no body is returned unchanged.
    """
    rows = np.flatnonzero((hu > BODY_HU).any(axis=(1, 2)))
    if rows.size == 0:
        return hu
    centre = rows[0] + position * (rows[-1] - rows[0])
    half = 0.5 * thickness_mm / spacing_z
    z = np.arange(hu.shape[0])
    out = hu.copy()
    out[(z < centre - half) | (z > centre + half)] = PAD_HU
    return out


def body_center(volume: Volume) -> np.ndarray:
    """Physical (x, y, z) LPS centre of the body's bounding box (whole volume if no body)."""
    mask = volume.array > BODY_HU
    if mask.any():
        idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
        center_zyx = np.array([(i[0] + i[-1]) / 2.0 for i in idx])
    else:
        center_zyx = (np.array(volume.shape) - 1) / 2.0
    ijk = np.append(center_zyx[::-1], 1.0)
    return (volume.affine_lps() @ ijk)[:3]


def physical_extent(volume: Volume) -> np.ndarray:
    """Extent in mm along the CT's own index axes (x, y, z)."""
    return np.array(volume.spacing) * np.array(volume.shape[::-1])


def check_fits(volume: Volume, geometry: ConeBeamGeometry, min_coverage: float = 0.05, name: str = "CT") -> None:
    """A CT smaller than ``min_coverage`` of the grid along an axis is an error."""
    extent = physical_extent(volume)
    need = min_coverage * geometry.grid_extent
    small = [f"{axis}: {e:.0f} mm" for axis, e in zip("xyz", extent) if e < need]
    if small:
        raise GeometryError(
            f"{name} is too small for the reconstruction grid of geometry {geometry.name!r} "
            f"({geometry.grid_size} voxels x {geometry.grid_spacing} mm = {geometry.grid_extent:.0f} mm): "
            f"extent {', '.join(small)} is under {need:.0f} mm ({min_coverage:.0%} of the grid)"
        )


def to_grid(
    volume: Volume,
    geometry: ConeBeamGeometry,
    *,
    center: Optional[np.ndarray] = None,
    augment: Optional[Augment] = None,
    min_coverage: float = 0.05,
    name: str = "CT",
) -> Volume:
    """Resample ``volume`` (HU) onto the geometry's grid and scale to [0, 1]."""
    import SimpleITK as sitk

    check_fits(volume, geometry, min_coverage, name)
    center = body_center(volume) if center is None else np.asarray(center, dtype=float)
    # Padding outside the scanner's field of view (-2048, -3024 HU) is air: raise everything below air
    # to air *before* blurring and interpolating, or the padding would darken the tissue next to it.
    image = sitk.Clamp(sitk.Cast(volume.to_sitk(), sitk.sitkFloat32), sitk.sitkFloat32, PAD_HU, AIR_CEILING_HU)
    # Anti-alias: blur by the extra width of the coarser grid voxel.
    sigmas = [np.sqrt(max(geometry.grid_spacing ** 2 - s ** 2, 0.0)) / 2.355 for s in volume.spacing]
    if max(sigmas) > 0.1 * min(volume.spacing):
        image = sitk.SmoothingRecursiveGaussian(image, [max(s, 1e-3) for s in sigmas])
    n, sp = geometry.grid_size, geometry.grid_spacing
    out_center = center.copy()
    transform = sitk.AffineTransform(3)
    transform.SetCenter(tuple(center))
    if augment is not None:
        out_center = center + np.asarray(augment.shift_mm)
        c, s_ = np.cos(np.deg2rad(augment.rotation_deg)), np.sin(np.deg2rad(augment.rotation_deg))
        rotation = np.array([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]])
        # The transform maps output (grid) points to input (CT) points: zoom > 1 enlarges the anatomy.
        transform.SetMatrix(tuple((rotation / augment.zoom).ravel()))
    origin = out_center + geometry.grid_origin()
    ref = sitk.Image([n, n, n], sitk.sitkFloat32)
    ref.SetSpacing([sp] * 3)
    ref.SetOrigin(tuple(origin))
    ref.SetDirection(tuple(np.eye(3).ravel()))
    resampled = sitk.Resample(image, ref, transform, sitk.sitkLinear, PAD_HU, sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(resampled)
    if augment is not None and augment.flip_x:
        hu = hu[:, :, ::-1]
    if augment is not None and augment.slab_mm is not None:
        hu = keep_slab(hu, sp, augment.slab_mm, augment.slab_position)
    lo, hi = geometry.window
    unit = np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return Volume(
        array=np.ascontiguousarray(unit),
        spacing=(sp, sp, sp),
        origin=tuple(origin),
        direction=np.eye(3),
        metadata={"unit": "normalised [0, 1]", "window_hu": list(geometry.window), "source_orientation": "LPS"},
    )


def unit_to_hu(unit: np.ndarray, window: Tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return (np.clip(unit, 0.0, 1.0) * (hi - lo) + lo).astype(np.float32)
