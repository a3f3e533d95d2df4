"""Cheap consistency checks of a case: readable image, masks on the image's grid."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import CTFoundationError
from ..volume import Volume
from .manifest import DatasetCase


def image_grid(path: Path) -> Volume:
    """A voxel-free stand-in (uint8 zeros of the right shape) carrying the file's grid.

    Files are read header-only through SimpleITK; DICOM folders through the
    project reader (which also checks for missing slices).
    """
    from ..io import read_volume

    if path.is_dir():
        vol = read_volume(path)
        return Volume(np.zeros(vol.shape, np.uint8), vol.spacing, vol.origin, vol.direction)
    import SimpleITK as sitk

    from ..read_guard import check_size, itk_reason, quiet_itk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_itk() as chatter:  # ITK's own lines go into the reason, not onto the terminal
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise CTFoundationError(f"not a readable image ({itk_reason(exc, chatter, path)})") from None
    size = reader.GetSize()
    if len(size) != 3:
        raise CTFoundationError(f"{len(size)}D image; expected 3D")
    check_size(path, size, 1)
    return Volume(np.zeros(tuple(reversed(size)), np.uint8), reader.GetSpacing(), reader.GetOrigin(),
                  np.array(reader.GetDirection()).reshape(3, 3))


def check_case(case: DatasetCase) -> Optional[str]:
    """Why ``case`` is broken (image unreadable, a mask off the image grid), or None.

    Masks are compared in display orientation, so a LAS mask of an LPS DICOM
    series is fine, as it is for every reader in this package.
    """
    try:
        image = image_grid(case.image).to_display()
    except CTFoundationError as exc:
        return f"image {case.image.name}: {exc}"
    for column, path in (("organ_mask", case.organ_mask), ("disease_mask", case.disease_mask)):
        if path is None:
            continue
        try:
            mask = image_grid(path).to_display()
        except CTFoundationError as exc:
            return f"{column} {path.name}: {exc}"
        if mask.shape != image.shape:
            return (f"{column} {path.name} has shape {mask.shape} (z,y,x) but the image has {image.shape}: "
                    "label grid does not match the image")
        if not mask.same_grid(image):
            return f"{column} {path.name}: label grid does not match the image (spacing/origin/direction differ)"
    return None
