"""diffusers ``AutoencoderKLWan``: Wan 2.1 / 2.2 video VAE, depth as time."""

from __future__ import annotations

from ..diffusers_loader import DIFFUSERS_CLASSES
from ._common import DiffusersVAE


@DIFFUSERS_CLASSES.register("AutoencoderKLWan")
class AutoencoderKLWanAdapter(DiffusersVAE):
    """Video VAE: slices are frames; T = 1 + 4k frames -> 1 + k latent frames.

    Latents are normalised per channel with the config's ``latents_mean`` and
    ``latents_std``, as the Wan pipelines do.
    """

    kind = "video"

    def __init__(self, model, **kwargs) -> None:
        super().__init__(model, **kwargs)
        import torch

        config = model.config
        # Strides from the architecture itself (the config's scale_factor_*
        # fields are informational and need not match a custom config).
        self.temporal_factor = 2 ** sum(bool(d) for d in config.temperal_downsample)
        self.spatial_factor = 2 ** (len(config.dim_mult) - 1) * int(config.patch_size or 1)
        # Wan's causal encoder eats the first frame, then chunks of 4 frames:
        # a window must hold 1 + 4k slices. 65 slices = 17 latent frames at 4x,
        # as in the reference code.
        self.frame_step = 4
        self.window_frames = 1 + self.frame_step * 16
        shape = (1, self.latent_channels, 1, 1, 1)
        self.mean = torch.tensor(config.latents_mean, dtype=self.dtype, device=self.device).view(shape)
        self.std = torch.tensor(config.latents_std, dtype=self.dtype, device=self.device).view(shape)

    def encode(self, images, generator=None):
        z = self._sample(self._posterior(images), generator)
        return (z - self.mean) / self.std

    def decode(self, latents):
        z = latents.to(self.device, self.dtype) * self.std + self.mean
        return self._to_unit(self.model.decode(z).sample)

    def describe(self) -> dict:
        return {**super().describe(), "window_frames": self.window_frames}
