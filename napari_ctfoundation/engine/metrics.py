"""Image-quality metrics of a reconstruction, inside one HU window.

Definitions (both volumes are first clipped to the window [lo, hi] and
scaled to [0, 1]):

* ``psnr_db``: 10 log10(1 / MSE) over all voxels (data range 1).
* ``ssim``: 3D SSIM (MONAI ``SSIMMetric``, Gaussian window 11, sigma 1.5,
  shortened along an axis thinner than 11 voxels), data range 1.
* ``ms_ssim``: mean over axial slices of 2D multi-scale SSIM (MONAI
  ``MultiScaleSSIMMetric``, 5 scales, kernel shrunk so the coarsest scale
  fits); per-slice as in MedVAE's stitched evaluation, since a 3D MS-SSIM
  needs over 160 slices.
* ``mae_hu``: mean absolute difference in HU of the clipped volumes.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from .errors import GeometryError
from .window import HUWindow

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _odd_kernel(limit: int, preferred: int = 11) -> int:
    k = min(preferred, limit if limit % 2 == 1 else limit - 1)
    return max(k, 1)


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim3d(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    import torch
    from monai.metrics import SSIMMetric

    window = [_odd_kernel(side) for side in reference.shape]  # thin volumes: shorter along z
    metric = SSIMMetric(spatial_dims=3, data_range=data_range, win_size=window)
    x = torch.from_numpy(np.ascontiguousarray(test, dtype=np.float32))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))[None, None]
    return float(metric(x, y).mean())


def ms_ssim_slices(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    import torch
    from monai.metrics import MultiScaleSSIMMetric

    smallest = min(reference.shape[1:])
    scales = len(MS_SSIM_WEIGHTS)
    # The coarsest scale must still hold one kernel: side / 2**(scales-1) > kernel - 1.
    while scales > 1 and smallest // 2 ** (scales - 1) < 3:
        scales -= 1
    kernel = _odd_kernel(smallest // 2 ** (scales - 1) - 1 if scales > 1 else smallest)
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    metric = MultiScaleSSIMMetric(
        spatial_dims=2, data_range=data_range, kernel_size=kernel, weights=tuple(weights / weights.sum())
    )
    x = torch.from_numpy(np.ascontiguousarray(test, dtype=np.float32))[:, None]
    y = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))[:, None]
    return float(metric(x, y).mean())


def volume_metrics(reference_hu: np.ndarray, test_hu: np.ndarray, window: HUWindow = HUWindow()) -> Dict[str, float]:
    """PSNR, SSIM (3D), MS-SSIM and MAE (HU) of ``test`` against ``reference``."""
    if reference_hu.shape != test_hu.shape:
        raise GeometryError(f"metric inputs differ in shape: {reference_hu.shape} vs {test_hu.shape}")
    ref = window.to_unit(reference_hu)
    out = window.to_unit(test_hu)
    return {
        "psnr_db": psnr(ref, out),
        "ssim": ssim3d(ref, out),
        "ms_ssim": ms_ssim_slices(ref, out),
        "mae_hu": float(np.mean(np.abs(ref - out)) * window.width),
        "window_hu": window.as_list(),
    }
