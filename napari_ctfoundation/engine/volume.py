"""The one volume type used everywhere.

Axis order (documented once, used everywhere):

* ``Volume.array`` is indexed ``[z, y, x]`` = ``[slice, row, column]``, the
  order of ``SimpleITK.GetArrayFromImage`` and of napari's axes.
* Geometry follows ITK: ``spacing`` and ``origin`` are given in ``(x, y, z)``
  order, ``origin`` is the physical position of voxel ``[0, 0, 0]`` in LPS
  millimetres, and ``direction`` is the 3x3 matrix whose columns are the LPS
  directions of the x, y and z index axes.

A volume in *display orientation* (see :meth:`Volume.to_display`) has an
identity direction: x runs to the patient's left, y to posterior, z to
superior. Shown by napari (x to the right, y downwards) that is how a
radiologist reads an axial slice: patient right on the image left, anterior
at the top.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .errors import GeometryError

Vec3 = Tuple[float, float, float]
DISPLAY_ORIENTATION = "LPS"
# NIfTI world is RAS, ITK world is LPS: the two differ by flipping x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Volume:
    """Voxels plus the geometry that places them in the patient.

    ``array`` is indexed ``[z, y, x]`` and holds float32 Hounsfield units for
    CT and integer ids for label maps. ``spacing`` (mm) and ``origin`` (mm,
    position of voxel ``[0, 0, 0]``) are in ``(x, y, z)`` order, in LPS
    patient coordinates as ITK uses them; ``direction`` is the 3x3 matrix
    whose columns are the LPS directions of the x, y, z index axes
    (``affine_ras()`` gives the NIfTI view). ``to_display()`` re-orders
    (never resamples) to LPS for axial slices; ``napari_scale()`` and
    ``napari_translate()`` place it in a napari viewer. Raises
    :class:`GeometryError` for a non-3D array or non-positive spacing.

    ``metadata`` carries where the volume came from (path, format, DICOM
    tags, orientation it was stored in) so writers and sidecars can report
    it.
    """

    array: np.ndarray
    spacing: Vec3 = (1.0, 1.0, 1.0)
    origin: Vec3 = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise GeometryError(
                f"a volume needs a 3D array [z, y, x], got shape {self.array.shape}"
            )
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise GeometryError(f"spacing must be 3 positive values, got {self.spacing}")

    # ----------------------------------------------------------------- shape
    @property
    def shape(self) -> Tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx(self) -> Vec3:
        return tuple(reversed(self.spacing))  # type: ignore[return-value]

    def with_array(self, array: np.ndarray, **metadata: Any) -> "Volume":
        """Same geometry, new voxels (shape must match)."""
        if array.shape != self.array.shape:
            raise GeometryError(
                f"new array shape {array.shape} does not match volume shape {self.array.shape}"
            )
        return replace(self, array=array, metadata={**self.metadata, **metadata})

    def cropped(self, z: slice = slice(None), y: slice = slice(None), x: slice = slice(None)) -> "Volume":
        """A sub-volume (step 1 slices) that keeps its place in the patient."""
        starts = [sl.indices(n)[0] for sl, n in zip((x, y, z), reversed(self.shape))]
        origin = np.asarray(self.origin) + self.direction @ (np.asarray(self.spacing) * starts)
        return replace(self, array=np.ascontiguousarray(self.array[z, y, x]), origin=tuple(origin),
                       metadata=dict(self.metadata))

    # -------------------------------------------------------------- geometry
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping ``(x, y, z, 1)`` voxel indices to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction @ np.diag(self.spacing)
        affine[:3, 3] = self.origin
        return affine

    def affine_ras(self) -> np.ndarray:
        """4x4 NIfTI-style matrix mapping ``(x, y, z, 1)`` indices to RAS mm."""
        affine = self.affine_lps()
        flip = np.eye(4)
        flip[:3, :3] = LPS_TO_RAS
        return flip @ affine

    def same_grid(self, other: "Volume", atol: float = 1e-3) -> bool:
        """True when both volumes have the same shape and voxel-to-world map."""
        return self.shape == other.shape and np.allclose(
            self.affine_lps(), other.affine_lps(), atol=atol
        )

    def is_oblique(self, tol: float = 1e-4) -> bool:
        return not np.allclose(np.abs(self.direction), np.round(np.abs(self.direction)), atol=tol)

    # ------------------------------------------------------------- SimpleITK
    def to_sitk(self):
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image, metadata: Optional[Dict[str, Any]] = None) -> "Volume":
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise GeometryError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=np.array(image.GetDirection()).reshape(3, 3),
            metadata=dict(metadata or {}),
        )

    # ----------------------------------------------------------- orientation
    def orientation_code(self) -> str:
        """DICOM-style code of the index axes, e.g. ``"LPS"`` or ``"LAS"``."""
        letters = (("L", "R"), ("P", "A"), ("S", "I"))
        code = ""
        for column in self.direction.T:
            axis = int(np.argmax(np.abs(column)))
            code += letters[axis][0 if column[axis] > 0 else 1]
        return code

    def reoriented(self, code: str) -> "Volume":
        """Permute/flip the axes to ``code``; the physical image is unchanged.

        Lossless (no resampling). An oblique residual rotation is kept in
        ``direction``.
        """
        if self.orientation_code() == code:
            return self
        import SimpleITK as sitk

        image = sitk.DICOMOrient(self.to_sitk(), code)
        out = Volume.from_sitk(image, self.metadata)
        out.array = out.array.astype(self.array.dtype, copy=False)
        return out

    def to_display(self) -> "Volume":
        """The volume in display orientation (LPS, radiological axial view).

        The source orientation is remembered in ``metadata`` so results
        computed on the display volume can be written back in the layout of
        the file they came from (:meth:`to_source_orientation`).
        """
        source = self.metadata.get("source_orientation", self.orientation_code())
        out = self.reoriented(DISPLAY_ORIENTATION)
        if out is self:
            out = replace(self, metadata=dict(self.metadata))
        out.metadata["source_orientation"] = source
        return out

    def to_source_orientation(self) -> "Volume":
        code = self.metadata.get("source_orientation")
        return self.reoriented(code) if code else self

    # --------------------------------------------------------------- napari
    def napari_scale(self) -> Vec3:
        """Layer ``scale`` for napari's (z, y, x) axes."""
        return self.spacing_zyx

    def napari_translate(self) -> Vec3:
        """Layer ``translate``: the origin in napari's (z, y, x) axis order.

        Exact for a display-oriented volume (identity direction); for an
        oblique one napari shows the de-obliqued grid and the true affine
        stays in ``metadata`` for saving.
        """
        return tuple(reversed(self.origin))  # type: ignore[return-value]

    def geometry_dict(self) -> Dict[str, Any]:
        """JSON-serialisable geometry (for sidecars, latents and layer metadata)."""
        return {
            "shape_zyx": list(self.shape),
            "spacing_xyz": list(self.spacing),
            "origin_xyz_lps": list(self.origin),
            "direction": self.direction.ravel().tolist(),
            "orientation": self.orientation_code(),
            "source_orientation": self.metadata.get("source_orientation", self.orientation_code()),
        }

    @classmethod
    def from_geometry_dict(cls, array: np.ndarray, geometry: Dict[str, Any], **metadata: Any) -> "Volume":
        vol = cls(
            array=array,
            spacing=geometry["spacing_xyz"],
            origin=geometry["origin_xyz_lps"],
            direction=np.array(geometry["direction"]).reshape(3, 3),
            metadata=dict(metadata),
        )
        if "source_orientation" in geometry:
            vol.metadata["source_orientation"] = geometry["source_orientation"]
        return vol

    @classmethod
    def from_napari(cls, data: np.ndarray, scale, translate, metadata: Optional[Dict[str, Any]] = None) -> "Volume":
        """Rebuild a display-oriented volume from a napari layer's data and transform."""
        scale = tuple(float(s) for s in scale)[-3:]
        translate = tuple(float(t) for t in translate)[-3:]
        meta = dict(metadata or {})
        return cls(
            array=np.asarray(data),
            spacing=tuple(reversed(scale)),
            origin=tuple(reversed(translate)),
            direction=np.eye(3),
            metadata=meta,
        )
