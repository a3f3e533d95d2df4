"""Segmentation cases: CT + labels (+ reconstruction) on one training grid.

Everything is brought to display orientation (LPS) so an image and a label
map stored in different axis layouts (the sample DICOM series is LPS, its
label NIfTI LAS) line up voxel for voxel, then resampled to the training
spacing: linear for CT, nearest for labels. The chosen organ ids are
renumbered 1..K (0 is background; every other organ becomes background).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError, GeometryError
from ..volume import Volume

PathLike = Union[str, os.PathLike]


@dataclass
class SegCase:
    """One training/evaluation case on the training grid.

    ``image`` (float32 HU) and ``labels`` (uint8, 0 = background, 1..K the
    configured classes) are ``[z, y, x]`` arrays in display orientation,
    resampled to the training spacing; ``recon`` is the VAE reconstruction
    on the same grid when one was given.
    """

    name: str
    image: np.ndarray  # [z, y, x] float32 HU
    labels: np.ndarray  # [z, y, x] uint8, 0..K
    spacing_zyx: Tuple[float, float, float]
    recon: Optional[np.ndarray] = None  # [z, y, x] float32 HU, same grid
    native_labels: Optional[Volume] = None  # display orientation, renumbered, native grid
    grid: Optional[Volume] = None  # geometry of the training grid (array = image)


def organ_table() -> Dict[int, str]:
    """TotalSegmentator v2 id -> organ name (the shipped label table)."""
    path = resources.files("napari_ctfoundation") / "data" / "organ_labels_totalsegmentator_v2.json"
    return {int(k): v for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def parse_classes(spec: Union[str, Sequence, Dict[int, str]]) -> Dict[int, str]:
    """``"liver,spleen"`` or ``"5,1"`` or ``{5: "liver"}`` -> {source id: name}."""
    if isinstance(spec, dict):
        return {int(k): str(v) for k, v in spec.items()}
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
    table = organ_table()
    by_name = {v: k for k, v in table.items()}
    out: Dict[int, str] = {}
    for item in items:
        if not item:
            continue
        if item.isdigit():
            out[int(item)] = table.get(int(item), f"label_{item}")
        elif item in by_name:
            out[by_name[item]] = item
        else:
            raise ConfigError(f"--classes: unknown organ {item!r}; use ids or names from "
                              "organ_labels_totalsegmentator_v2.json (e.g. liver, spleen, stomach)")
    if not out:
        raise ConfigError("--classes: choose at least one organ")
    return out


def remap(labels: np.ndarray, classes: Dict[int, str]) -> np.ndarray:
    """Source ids -> 1..K in the (sorted) order of ``classes``; others -> 0."""
    lut = np.zeros(max(int(labels.max()), max(classes)) + 1, dtype=np.uint8)
    for i, src in enumerate(sorted(classes)):
        lut[src] = i + 1
    return lut[labels]


def class_names(classes: Dict[int, str]) -> List[str]:
    return [classes[k] for k in sorted(classes)]


def resample(volume: Volume, spacing_xyz: Optional[Sequence[float]], *, labels: bool) -> Volume:
    """Resample onto ``spacing_xyz`` keeping origin, direction and extent (linear for CT, no
    anti-alias blur: segmenters train on the plain interpolation they meet at inference)."""
    from ..resample import resample_to_spacing

    return resample_to_spacing(volume, spacing_xyz, labels=labels, anti_alias=False)


def load_case(
    image_path: PathLike,
    label_path: PathLike,
    classes: Dict[int, str],
    *,
    spacing_xyz: Optional[Sequence[float]] = None,
    recon_path: Optional[PathLike] = None,
    name: Optional[str] = None,
) -> SegCase:
    """One case (CT + organ label map, optional reconstruction) on the training grid.

    Both are read, put in display orientation, resampled to ``spacing_xyz``
    mm (None: native) and the labels renumbered to 1..K after ``classes``
    ``{organ id: name}``. Raises :class:`VolumeReadError` for unreadable
    files and :class:`GeometryError` when the label map or reconstruction is
    off the image's grid.
    """
    from ..io import read_labels, read_volume

    image = read_volume(image_path).to_display()
    labels = read_labels(label_path).to_display()
    if not labels.same_grid(image):
        raise GeometryError(f"{label_path}: label map is not on the grid of {image_path} "
                            f"(shapes {labels.shape} vs {image.shape})")
    labels = labels.with_array(remap(labels.array, classes))
    recon = None
    if recon_path is not None:
        rv = read_volume(recon_path).to_display()
        if not rv.same_grid(image):
            raise GeometryError(f"{recon_path}: reconstruction is not on the grid of {image_path}")
        recon = resample(rv, spacing_xyz, labels=False).array.astype(np.float32)
    img_t = resample(image, spacing_xyz, labels=False)
    lab_t = resample(labels, spacing_xyz, labels=True)
    return SegCase(
        name=name or Path(str(image_path)).name,
        image=img_t.array.astype(np.float32),
        labels=lab_t.array.astype(np.uint8),
        spacing_zyx=img_t.spacing_zyx,
        recon=recon,
        native_labels=labels,
        grid=img_t,
    )


def load_dataset(
    source: PathLike,
    classes: Dict[int, str],
    *,
    spacing_xyz: Optional[Sequence[float]] = None,
    recon_dir: Optional[PathLike] = None,
    names: Optional[Sequence[str]] = None,
) -> List[SegCase]:
    """Cases of a dataset (nnU-Net folder or manifest with labels) on the training grid.

    ``recon_dir`` is the OUT_DIR of ``batch reconstruct`` on the same dataset;
    reconstructions are found by mirrored path. ``names`` picks cases.
    ``classes`` is ``{organ id: name}``; ``spacing_xyz`` (mm) the training
    grid (None: native). Raises :class:`ConfigError` for unknown case names,
    a case without labels or without its reconstruction, and
    :class:`GeometryError` for label maps off the image grid.
    """
    from ..batch.dataset import discover_cases

    cases = discover_cases(source)
    if names:
        known = {c.name for c in cases}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"--cases: {', '.join(unknown)} not in {source} (cases: {', '.join(sorted(known))})")
        cases = [c for c in cases if c.name in set(names)]
    out = []
    for c in cases:
        if c.label is None:
            raise ConfigError(f"{source}: case {c.name} has no label map; segmentation needs labels "
                              "(nnU-Net labelsTr or a manifest 'label' or 'organ_mask' column)")
        recon = None
        if recon_dir is not None:
            recon = c.output_path(recon_dir)
            if not recon.exists():
                raise ConfigError(f"{recon}: no reconstruction of case {c.name}; run "
                                  f"'ctfoundation batch reconstruct {source} {recon_dir}' first")
        out.append(load_case(c.image, c.label, classes, spacing_xyz=spacing_xyz, recon_path=recon, name=c.name))
    return out
