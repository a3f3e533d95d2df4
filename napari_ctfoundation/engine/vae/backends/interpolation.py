"""Interpolation baselines registered as VAE backends (MedVAE comparison suite).

MedVAE (REFERENCE section 2) compares its autoencoders with plain
interpolation at the same *area* downsizing factor: f=16 keeps one value per
4 x 4 pixels, f=64 one per 8 x 8, one channel (C=1). Registering them as
backends lets every volume-level tool (reconstruct, compare, latents) run them
exactly like a VAE, so users see where a learned latent stands against
"just shrink the image".

Encode: mean of the RGB channels (CT slices are replicated grey), then a
downsample by ``sqrt(f)`` with the named kernel (antialiased for bilinear and
bicubic, as an image library's resize does; nearest simply subsamples).
Decode: upsample by the same factor with the same kernel, clamp, replicate to
three channels.
"""

from __future__ import annotations

import math

from ..base import VAE_BACKENDS, FoundationVAE

MODES = ("nearest", "bilinear", "bicubic")
AREA_FACTORS = (16, 64)


class InterpolationBackend(FoundationVAE):
    """Down/up-sampling baseline; no weights, deterministic."""

    kind = "image"
    latent_channels = 1

    def __init__(self, mode: str, area_factor: int, device: str = "cpu", dtype=None) -> None:
        super().__init__(device, dtype)
        self.mode = mode
        self.area_factor = int(area_factor)
        self.spatial_factor = int(round(math.sqrt(area_factor)))
        self.name = f"{mode}_f{area_factor}"

    def encode(self, images, generator=None):
        import torch.nn.functional as F

        grey = images.to(self.device, self.dtype).mean(dim=1, keepdim=True)
        h, w = grey.shape[-2:]
        size = (h // self.spatial_factor, w // self.spatial_factor)
        if self.mode == "nearest":
            return F.interpolate(grey, size=size, mode="nearest")
        return F.interpolate(grey, size=size, mode=self.mode, align_corners=False, antialias=True)

    def decode(self, latents):
        import torch.nn.functional as F

        z = latents.to(self.device, self.dtype)
        h, w = z.shape[-2:]
        size = (h * self.spatial_factor, w * self.spatial_factor)
        if self.mode == "nearest":
            up = F.interpolate(z, size=size, mode="nearest")
        else:
            up = F.interpolate(z, size=size, mode=self.mode, align_corners=False)
        return up.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()

    def describe(self) -> dict:
        return {
            **super().describe(),
            "spec": self.name,
            "input_range": [0, 1],
            "deterministic": True,
            "area_factor": self.area_factor,
            "interpolation": self.mode,
        }


def _make_factory(mode: str, area_factor: int):
    def factory(device: str = "cpu", dtype=None) -> InterpolationBackend:
        return InterpolationBackend(mode, area_factor, device=device, dtype=dtype)

    factory.__doc__ = (
        f"{mode} interpolation baseline, area factor {area_factor} "
        f"({int(math.sqrt(area_factor))}x per axis), 1 channel"
    )
    return factory


for _mode in MODES:
    for _f in AREA_FACTORS:
        VAE_BACKENDS.register(f"{_mode}_f{_f}")(_make_factory(_mode, _f))

INTERPOLATION_BACKENDS = tuple(f"{m}_f{f}" for m in MODES for f in AREA_FACTORS)
