"""diffusers ``AutoencoderKLFlux2``: the full FLUX.2 VAE (TAEF2's teacher)."""

from __future__ import annotations

from ..diffusers_loader import DIFFUSERS_CLASSES
from ._common import DiffusersVAE


@DIFFUSERS_CLASSES.register("AutoencoderKLFlux2")
class AutoencoderKLFlux2Adapter(DiffusersVAE):
    """Image VAE; raw latents (scaling 1, no shift), the space TAEF2 imitates.

    FLUX.2 pipelines additionally patchify 2x2 and batch-normalise latents
    for their transformer; that normalisation belongs to a generator, not to
    the autoencoder, so latents here stay raw and comparable with TAEF2.
    """

    kind = "image"

    def __init__(self, model, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.spatial_factor = 2 ** (len(model.config.block_out_channels) - 1)

    def encode(self, images, generator=None):
        return self._sample(self._posterior(images), generator)

    def decode(self, latents):
        return self._to_unit(self.model.decode(latents.to(self.device, self.dtype)).sample)
