"""The sampling loop: classifier-free guidance and seamless deep volumes.

``sample_latents`` denoises one latent volume ``(C, t, h, w)``. When ``t``
is deeper than the window the model was trained on, every denoising step
runs the model on overlapping depth windows and blends their predictions
with linear ramps *before* the scheduler step (MultiDiffusion-style), so one
global latent is updated and there is no seam to repair afterwards.

Guidance (classifier-free, compositional)::

    pred = p(0, 0) + g_mask * (p(m, 0) - p(0, 0)) + g_text * (p(m, t) - p(m, 0))

``p(m, t)`` is the prediction with masks ``m`` and text ``t``; 0 is the null
condition the model saw under condition dropout. With ``g_mask == g_text``
this is ordinary CFG (two passes); with both 1 a single pass.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..errors import ConfigError
from ..progress import CancelCheck, ProgressCallback, Tracker
from ..latents import blend_ramp, video_windows
from .schedule import make_sampler


# Latent depth windows are cut and blended exactly like video-VAE windows.
depth_windows = video_windows


def blend_weights(window: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """Linear ramps over the overlaps (never zero), flat inside; float32 for torch."""
    return blend_ramp(window, overlap, first, last).astype(np.float32)


def guided_prediction(model, x, t, cond, tokens, findings, g_mask: float, g_text: float):
    """One guided model prediction for a batch of one (see module docstring)."""
    import torch

    zc, zt = torch.zeros_like(cond), torch.zeros_like(tokens)
    zf = None if findings is None else torch.zeros_like(findings)
    if g_mask == 1.0 and g_text == 1.0:
        return model(x, t, cond, tokens, findings)
    if g_mask == g_text:
        xs = torch.cat([x, x])
        out = model(xs, torch.cat([t, t]), torch.cat([zc, cond]), torch.cat([zt, tokens]),
                    None if findings is None else torch.cat([zf, findings]))
        uncond, full = out.chunk(2)
        return uncond + g_mask * (full - uncond)
    xs = torch.cat([x, x, x])
    out = model(xs, torch.cat([t, t, t]), torch.cat([zc, cond, cond]), torch.cat([zt, zt, tokens]),
                None if findings is None else torch.cat([zf, zf, findings]))
    uncond, masks_only, full = out.chunk(3)
    return uncond + g_mask * (masks_only - uncond) + g_text * (full - masks_only)


def sample_latents(
    model,
    scheduler_config: dict,
    cond: np.ndarray,
    tokens: np.ndarray,
    findings: Optional[np.ndarray],
    *,
    latent_channels: int,
    seed: int = 0,
    steps: int = 20,
    sampler: str = "ddim",
    guidance_mask: float = 1.0,
    guidance_text: float = 1.0,
    window: int = 16,
    overlap: int = 8,
    device: str = "cpu",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> np.ndarray:
    """Denoise from seeded noise to a normalised latent ``(C, t, h, w)``."""
    import torch

    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    if window < 1 or not 0 <= overlap < window:
        raise ConfigError(f"window {window} / overlap {overlap}: need window >= 1 and 0 <= overlap < window")
    scheduler = make_sampler(sampler, scheduler_config)
    scheduler.set_timesteps(int(steps), device=device)
    t_len, h, w = cond.shape[1:]
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    # Noise drawn on the CPU so a seed gives the same start on every device.
    x = torch.randn((1, latent_channels, t_len, h, w), generator=generator).to(device)
    x = x * scheduler.init_noise_sigma
    cond_t = torch.from_numpy(cond)[None].to(device)
    tok_t = torch.from_numpy(tokens).reshape(1, *tokens.shape[-2:]).to(device)
    find_t = None if findings is None else torch.from_numpy(findings).reshape(1, -1).to(device)
    win = min(int(window), t_len)
    starts = depth_windows(t_len, win, min(overlap, win - 1))
    weights = [torch.from_numpy(blend_weights(win, min(overlap, win - 1), i == 0, i == len(starts) - 1)).to(device)
               for i in range(len(starts))]
    tracker = Tracker(len(scheduler.timesteps), "steps", progress, cancel)
    model.eval()
    with torch.inference_mode():
        for ts in scheduler.timesteps:
            model_in = scheduler.scale_model_input(x, ts)
            pred = torch.zeros_like(x)
            total = torch.zeros((t_len,), device=device)
            tb = ts.reshape(1).to(device)
            for start, wt in zip(starts, weights):
                sl = slice(start, start + win)
                p = guided_prediction(model, model_in[:, :, sl], tb, cond_t[:, :, sl], tok_t, find_t,
                                      float(guidance_mask), float(guidance_text))
                pred[:, :, sl] += p * wt[None, None, :, None, None]
                total[sl] += wt
            pred = pred / total[None, None, :, None, None]
            x = scheduler.step(pred, ts, x, generator=generator).prev_sample
            tracker.advance()
    return x[0].float().cpu().numpy()
