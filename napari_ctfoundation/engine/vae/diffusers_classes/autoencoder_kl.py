"""diffusers ``AutoencoderKL`` (Stable Diffusion / SDXL / FLUX.1 style image VAE)."""

from __future__ import annotations

from ..diffusers_loader import DIFFUSERS_CLASSES
from ._common import DiffusersVAE


@DIFFUSERS_CLASSES.register("AutoencoderKL")
class AutoencoderKLAdapter(DiffusersVAE):
    """Image VAE; latents are (z - shift_factor) * scaling_factor."""

    kind = "image"

    def __init__(self, model, **kwargs) -> None:
        super().__init__(model, **kwargs)
        config = model.config
        self.spatial_factor = 2 ** (len(config.block_out_channels) - 1)
        self.scaling = float(config.scaling_factor or 1.0)
        self.shift = float(config.shift_factor or 0.0)

    def encode(self, images, generator=None):
        z = self._sample(self._posterior(images), generator)
        return (z - self.shift) * self.scaling

    def decode(self, latents):
        z = latents.to(self.device, self.dtype) / self.scaling + self.shift
        return self._to_unit(self.model.decode(z).sample)

    def describe(self) -> dict:
        return {**super().describe(), "scaling_factor": self.scaling, "shift_factor": self.shift}
