"""Shared behaviour of the diffusers adapters."""

from __future__ import annotations

from typing import Optional

from ..base import FoundationVAE


class DiffusersVAE(FoundationVAE):
    """Wraps a loaded diffusers VAE; subclasses say how latents are scaled."""

    def __init__(self, model, spec: str, subfolder: Optional[str], device: str, dtype) -> None:
        super().__init__(device, dtype or model.dtype)
        self.model = model
        self.spec = spec
        self.subfolder = subfolder
        self.name = type(model).__name__
        self.latent_channels = int(self.model.config.latent_channels if hasattr(self.model.config, "latent_channels") else self.model.config.z_dim)

    def _posterior(self, images):
        # diffusers VAEs take [-1, 1]; unit images are [0, 1].
        x = (images.to(self.device, self.dtype) * 2.0) - 1.0
        return self.model.encode(x).latent_dist

    def _sample(self, posterior, generator):
        if generator is None:
            return posterior.mode()
        return posterior.sample(generator=generator)

    def _to_unit(self, decoded):
        return ((decoded.float() + 1.0) / 2.0).clamp(0, 1)

    def describe(self) -> dict:
        return {**super().describe(), "spec": self.spec, "subfolder": self.subfolder,
                "input_range": [-1, 1], "class": self.name}
