"""Image-quality metrics of a reconstruction, inside one HU window.

Definitions (both volumes are first clipped to the window [lo, hi] and
scaled to [0, 1]):

* ``psnr_db``: 10 log10(1 / MSE) over all voxels (data range 1).
* ``ssim``: 3D SSIM as MONAI's ``SSIMMetric`` defines it (Gaussian window 11,
  sigma 1.5, valid convolution, shortened along an axis thinner than 11
  voxels), data range 1.
* ``ms_ssim``: mean over axial slices of 2D multi-scale SSIM as MONAI's
  ``MultiScaleSSIMMetric`` defines it (5 scales, kernel shrunk so the
  coarsest scale fits); per-slice as in MedVAE's stitched evaluation, since a
  3D MS-SSIM needs over 160 slices.
* ``mae_hu``: mean absolute difference in HU of the clipped volumes.

Speed and memory: MONAI convolves with the full 11x11x11 kernel on the whole
volume (about 100 s and several GB for 20 slices of 512x512 on 2 CPU cores).
The Gaussian window is separable, so the same maps come from 1D convolutions
in torch on the given device, in one pass over slabs of slices: each slice's
five local means are filtered in-plane once, serve the first MS-SSIM scale
when its kernel is the same, and are then filtered along z for the 3D SSIM
with the last ``kernel - 1`` slices carried over (bounded working set).
``tests/test_reconstruct_progress_window.py`` checks the values against
MONAI's own metrics.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from .errors import GeometryError
from .memory import release_freed_memory
from .progress import ProgressArg, resolve_progress
from .window import HUWindow

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_SIGMA = 1.5
K1, K2 = 0.01, 0.03
#: slices per slab; the working set is about (slab + 10) slices x 20 maps
SLAB_SLICES = 8


def _odd_kernel(limit: int, preferred: int = 11) -> int:
    k = min(preferred, limit if limit % 2 == 1 else limit - 1)
    return max(k, 1)


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def _gaussian_1d(size: int, sigma: float = SSIM_SIGMA):
    """MONAI's Gaussian window (``monai.metrics.regression._gaussian_kernel``), one axis."""
    import torch

    dist = torch.arange(start=(1 - size) / 2, end=(1 + size) / 2, step=1)
    gauss = torch.exp(-torch.pow(dist / sigma, 2) / 2)
    return gauss / gauss.sum()


def _separable_valid_filter(maps, kernel_sizes: Sequence[int]):
    """Valid Gaussian filtering of ``(N, C, *spatial)`` along each spatial axis in turn."""
    import torch.nn.functional as F

    dims = len(kernel_sizes)
    conv = F.conv3d if dims == 3 else F.conv2d
    channels = maps.shape[1]
    for axis, size in enumerate(kernel_sizes):
        if size == 1:
            continue
        shape = [1] * dims
        shape[axis] = size
        kernel = _gaussian_1d(size).to(maps.device, maps.dtype).view(1, 1, *shape).repeat(channels, 1, *[1] * dims)
        maps = conv(maps, kernel, groups=channels)
    return maps


def _ssim_and_cs(means, data_range: float = 1.0) -> Tuple:
    """SSIM and contrast-sensitivity maps from the five filtered local means.

    ``means`` is ``(N, 5, ...)``: mu_x, mu_y, mu_xx, mu_yy, mu_xy, term for
    term as MONAI's ``compute_ssim_and_cs`` (x is the test image).
    """
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = means.unbind(1)
    sigma_x = mu_xx - mu_x * mu_x
    sigma_y = mu_yy - mu_y * mu_y
    sigma_xy = mu_xy - mu_x * mu_y
    cs = (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    ssim = ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * cs
    return ssim, cs


def _products(x, y):
    import torch

    return torch.cat([x, y, x * x, y * y, x * y], dim=1)


def _tensor(array: np.ndarray, device: str):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)


def _ms_ssim_setup(height: int, width: int) -> Tuple[int, np.ndarray]:
    smallest = min(height, width)
    scales = len(MS_SSIM_WEIGHTS)
    # The coarsest scale must still hold one kernel: side / 2**(scales-1) > kernel - 1.
    while scales > 1 and smallest // 2 ** (scales - 1) < 3:
        scales -= 1
    kernel = _odd_kernel(smallest // 2 ** (scales - 1) - 1 if scales > 1 else smallest)
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    return kernel, weights / weights.sum()


def _ms_ssim_batch(x, y, kernel: int, weights: np.ndarray, first_means=None):
    """Per-image MS-SSIM of ``(N, 1, H, W)`` batches, as MONAI's ``compute_ms_ssim``.

    ``first_means``: the full-resolution filtered means, when already computed.
    """
    import torch
    import torch.nn.functional as F

    levels = []
    for level in range(len(weights)):
        means = first_means if level == 0 and first_means is not None else \
            _separable_valid_filter(_products(x, y), (kernel, kernel))
        ssim, cs = _ssim_and_cs(means)
        levels.append(torch.relu(cs.reshape(cs.shape[0], -1).mean(1)))
        if level < len(weights) - 1:
            x, y = F.avg_pool2d(x, kernel_size=2), F.avg_pool2d(y, kernel_size=2)
    levels[-1] = torch.relu(ssim.reshape(ssim.shape[0], -1).mean(1))
    w = torch.tensor(weights, dtype=torch.float32, device=x.device).view(-1, 1)
    return torch.prod(torch.stack(levels) ** w, dim=0)


def volume_metrics(
    reference_hu: np.ndarray,
    test_hu: np.ndarray,
    window: HUWindow = HUWindow(),
    *,
    device: str = "cpu",
    progress: ProgressArg = None,
) -> Dict[str, float]:
    """PSNR, SSIM (3D), MS-SSIM and MAE (HU) of ``test`` against ``reference``.

    Both are HU arrays ``[z, y, x]`` of the same shape, clipped to
    ``window`` and scaled to [0, 1] first. Returns ``psnr_db`` (dB),
    ``ssim``, ``ms_ssim`` (mean over axial slices), ``mae_hu`` (HU) and
    ``window_hu``. Raises :class:`GeometryError` when the shapes differ.

    One pass over slabs of slices in torch on ``device`` (see module
    docstring), reported as ``progress(done, depth, "slices (metrics)")``.
    """
    import torch

    if reference_hu.shape != test_hu.shape:
        raise GeometryError(f"metric inputs differ in shape: {reference_hu.shape} vs {test_hu.shape}")
    depth, height, width = reference_hu.shape
    unit = "slices (metrics)"
    report = resolve_progress(progress) or (lambda done, total, unit: None)
    report(0, depth, unit)
    kz, kyx = _odd_kernel(depth), (_odd_kernel(height), _odd_kernel(width))  # thin volumes: shorter along z
    ms_kernel, ms_weights = _ms_ssim_setup(height, width)
    shared = (ms_kernel, ms_kernel) == kyx
    squared = absolute = ssim_sum = 0.0
    ssim_count = 0
    ms_values: list = []
    carry = None  # in-plane filtered means of the last kz - 1 slices
    with torch.inference_mode():
        for first in range(0, depth, SLAB_SLICES):
            rows = slice(first, first + SLAB_SLICES)
            ref, out = window.to_unit(reference_hu[rows]), window.to_unit(test_hu[rows])
            diff = ref.astype(np.float64) - out
            squared += float(np.sum(diff * diff))
            absolute += float(np.sum(np.abs(diff)))
            x, y = _tensor(out, device)[:, None], _tensor(ref, device)[:, None]
            planar = _separable_valid_filter(_products(x, y), kyx)  # (n, 5, H', W')
            ms = _ms_ssim_batch(x, y, ms_kernel, ms_weights, planar if shared else None)
            ms_values.extend(ms.double().cpu().tolist())
            stack = planar if carry is None else torch.cat([carry, planar])
            if stack.shape[0] >= kz:
                volume_means = _separable_valid_filter(stack.permute(1, 0, 2, 3)[None], (kz, 1, 1))
                ssim, _ = _ssim_and_cs(volume_means)
                ssim_sum += float(ssim.double().sum())
                ssim_count += ssim.numel()
            carry = stack[max(0, stack.shape[0] - (kz - 1)):].clone() if kz > 1 else None
            del stack, planar, x, y
            release_freed_memory()
            report(min(first + SLAB_SLICES, depth), depth, unit)
    mse = squared / reference_hu.size
    return {
        "psnr_db": float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse)),
        "ssim": ssim_sum / ssim_count,
        "ms_ssim": float(np.mean(ms_values)),
        "mae_hu": absolute / reference_hu.size * window.width,
        "window_hu": window.as_list(),
    }
