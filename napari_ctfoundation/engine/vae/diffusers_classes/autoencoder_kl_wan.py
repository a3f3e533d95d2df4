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
        self.temporal_factor = int(getattr(config, "scale_factor_temporal", None) or 4)
        self.spatial_factor = int(getattr(config, "scale_factor_spatial", None) or 8)
        # 65 slices per window (17 latent frames), as in the reference code.
        self.window_frames = 1 + self.temporal_factor * 16
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
