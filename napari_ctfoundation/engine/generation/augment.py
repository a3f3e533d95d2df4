"""Image-space augmentation of (CT, organ map, lesion map) before encoding.

Two real samples are far too few for a denoiser to learn *mask -> anatomy*
rather than memorise the two volumes at fixed positions. Augmented copies
are encoded once more through the frozen VAE when the cache is built (they
are extra cached cases; training still never re-encodes):

* left-right flip, with the organ labels' left/right ids swapped
  (``kidney_left`` <-> ``kidney_right``), so the flipped map still names
  each side correctly;
* in-plane shifts by whole voxels drawn uniformly (mostly *not* multiples of
  the VAE stride, so the model sees the anatomy at every sub-cell phase of
  the latent grid and cannot tie anatomy to absolute latent positions);
* small in-plane zooms and rotations about the slice centre.

The CT is resampled linearly (outside the field of view: air), the label
maps with nearest neighbour (outside: background). Volumes are in display
orientation ``[z, y, x]``; ``x`` runs across the patient's left/right.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .vocab import organ_names

AIR_HU = -1000.0


@lru_cache(maxsize=None)
def _lr_pairs() -> Tuple[Tuple[int, int], ...]:
    """``(id, mirrored id)`` for every organ whose name has a left/right side."""
    names = organ_names()
    by_name = {v: k for k, v in names.items()}
    out = []
    for label, name in names.items():
        parts = name.split("_")
        swapped = ["right" if p == "left" else "left" if p == "right" else p for p in parts]
        other = by_name.get("_".join(swapped))
        if other is not None and other != label:
            out.append((label, other))
    return tuple(out)


def lr_swap_table(size: Optional[int] = None) -> np.ndarray:
    """Lookup table ``t`` with ``t[id]`` = the id of the mirrored organ.

    Ids without a side, or whose mirror is not in the table (e.g.
    ``lung_middle_lobe_right``), map to themselves.
    """
    names = organ_names()
    n = max(names) + 1 if size is None else int(size)
    table = np.arange(n, dtype=np.int64)
    for a, b in _lr_pairs():
        if a < n and b < n:
            table[a] = b
    return table


def swap_left_right_labels(labels: np.ndarray) -> np.ndarray:
    """Organ label map with every ``*_left`` id replaced by its ``*_right`` id and back."""
    labels = np.asarray(labels)
    table = lr_swap_table(max(int(labels.max(initial=0)) + 1, max(organ_names()) + 1))
    return table[labels].astype(labels.dtype)


@dataclass
class AugmentParams:
    flip_lr: bool = False
    shift_yx: Tuple[int, int] = (0, 0)  # voxels, + moves the content down / towards +x
    zoom: float = 1.0
    rotation_deg: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["shift_yx"] = [int(v) for v in self.shift_yx]
        return d


def draw_params(rng: np.random.Generator, shape_yx: Tuple[int, int], max_shift: float = 0.12,
                zoom: float = 0.1, rotation_deg: float = 10.0) -> AugmentParams:
    """Random parameters: shifts up to ``max_shift`` of the slice size, zoom 1 +- ``zoom``."""
    shifts = tuple(int(rng.integers(-int(max_shift * n), int(max_shift * n) + 1)) for n in shape_yx)
    return AugmentParams(flip_lr=bool(rng.random() < 0.5), shift_yx=shifts,  # type: ignore[arg-type]
                         zoom=float(rng.uniform(1 - zoom, 1 + zoom)),
                         rotation_deg=float(rng.uniform(-rotation_deg, rotation_deg)))


def _transform(array: np.ndarray, p: AugmentParams, order: int, fill: float) -> np.ndarray:
    from scipy import ndimage

    z, h, w = array.shape
    if p.zoom == 1.0 and p.rotation_deg == 0.0:
        # pure integer shift: exact, no interpolation
        out = np.full_like(array, fill)
        dy, dx = (int(v) for v in p.shift_yx)
        src = array[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        out[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
        return out
    # output (y, x) -> input: A (o - c - s) + c, A = R(-theta) / zoom
    th = np.deg2rad(p.rotation_deg)
    rot = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]]) / p.zoom
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    shift = np.asarray(p.shift_yx, float)
    matrix = np.eye(3)
    matrix[1:, 1:] = rot
    offset = np.zeros(3)
    offset[1:] = centre - rot @ (centre + shift)
    return ndimage.affine_transform(array, matrix, offset=offset, output_shape=array.shape, order=order,
                                    mode="constant", cval=fill, prefilter=False).astype(array.dtype)


def augment_case(ct: np.ndarray, organs: Optional[np.ndarray], disease: Optional[np.ndarray],
                 params: AugmentParams) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Apply ``params`` to a CT (HU) and its label maps, all ``[z, y, x]`` in display orientation.

    ``organs`` or ``disease`` may be None (a CT without that mask): it stays None.
    """
    ct = np.asarray(ct, np.float32)
    if params.flip_lr:
        ct = ct[:, :, ::-1]
        organs = None if organs is None else swap_left_right_labels(organs[:, :, ::-1])
        disease = None if disease is None else disease[:, :, ::-1]  # lesion classes have no side
    ct_out = _transform(np.ascontiguousarray(ct), params, 1, AIR_HU)
    org_out = None if organs is None else _transform(np.ascontiguousarray(organs), params, 0, 0)
    dis_out = None if disease is None else _transform(np.ascontiguousarray(disease), params, 0, 0)
    return ct_out, org_out, dis_out
