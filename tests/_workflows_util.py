"""Small helpers for the dataset-workflow tests (issue 5): real-data crops."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from napari_ctfoundation.engine.volume import Volume


def crop(volume: Volume, z: Tuple[int, int], y: Tuple[int, int], x: Tuple[int, int]) -> Volume:
    """A sub-block with the geometry that places it where it was (origin moved)."""
    arr = np.ascontiguousarray(volume.array[z[0]:z[1], y[0]:y[1], x[0]:x[1]])
    origin = volume.affine_lps() @ np.array([x[0], y[0], z[0], 1.0])
    return Volume(arr, volume.spacing, tuple(origin[:3]), volume.direction)


def write_nnunet_crops(ct_path: Path, labels_path: Path, root: Path, n: int = 3,
                       size=(6, 48, 48)) -> Path:
    """``root/imagesTr/caseI_0000.nii.gz`` + ``labelsTr/caseI.nii.gz`` from real CT crops."""
    from napari_ctfoundation.engine.io import read_labels, read_volume, write_volume

    ct, lab = read_volume(ct_path), read_labels(labels_path)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    dz, dy, dx = size
    for i in range(n):
        z0, y0, x0 = 8 + 4 * i, 30, 20 + 6 * i  # through liver/stomach of the abdomen sample
        box = ((z0, z0 + dz), (y0, y0 + dy), (x0, x0 + dx))
        write_volume(crop(ct, *box), root / "imagesTr" / f"case{i}_0000.nii.gz")
        write_volume(crop(lab, *box), root / "labelsTr" / f"case{i}.nii.gz")
    return root
