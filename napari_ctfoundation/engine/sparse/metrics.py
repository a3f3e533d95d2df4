"""PSNR and 3D SSIM as the paper defines them: on [0, 1], data_range 1, clipped predictions."""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..errors import GeometryError


def psnr(reference: np.ndarray, prediction: np.ndarray) -> float:
    ref = np.clip(np.asarray(reference, np.float64), 0, 1)
    pred = np.clip(np.asarray(prediction, np.float64), 0, 1)
    mse = float(np.mean((ref - pred) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def ssim3d(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Mean 3D SSIM (7^3 uniform window, K1 .01, K2 .03, data_range 1), as skimage computes it."""
    from scipy.ndimage import uniform_filter

    x = np.clip(np.asarray(reference, np.float64), 0, 1)
    y = np.clip(np.asarray(prediction, np.float64), 0, 1)
    win = 7
    if min(x.shape) < win:
        raise GeometryError(f"3D SSIM needs at least {win} voxels per axis, got {x.shape}")
    npix = win ** 3
    cov_norm = npix / (npix - 1)
    ux, uy = uniform_filter(x, win), uniform_filter(y, win)
    uxx, uyy, uxy = uniform_filter(x * x, win), uniform_filter(y * y, win), uniform_filter(x * y, win)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad, pad:-pad].mean())


def sparse_metrics(reference: np.ndarray, prediction: np.ndarray) -> Dict[str, float]:
    """``{"psnr": dB, "ssim": 3D SSIM}`` of a sparse-view reconstruction, as DeepSparse scores it.

    Both arrays are grid volumes ``[z, y, x]`` in the normalised [0, 1]
    domain (``geometry.window`` HU mapped to [0, 1]), e.g. the grid volume
    from :func:`simulate_sparse_views` and a method's output; both are
    clipped to [0, 1], data range 1. Raises :class:`GeometryError` when the
    shapes differ or an axis is thinner than the 7-voxel SSIM window.
    """
    if np.shape(reference) != np.shape(prediction):
        raise GeometryError(f"reference {np.shape(reference)} and prediction {np.shape(prediction)} differ in shape")
    return {"psnr": psnr(reference, prediction), "ssim": ssim3d(reference, prediction)}
