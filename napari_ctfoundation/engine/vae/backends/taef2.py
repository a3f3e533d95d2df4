"""Embedded default backend: the pretrained TAEF2 shipped in the package."""

from __future__ import annotations

from importlib import resources

from ..base import VAE_BACKENDS, FoundationVAE


@VAE_BACKENDS.register("taef2", "TAEF2 tiny FLUX.2 autoencoder (embedded, 2.7 M params, 32 ch, 8x)")
class TAEF2Backend(FoundationVAE):
    """TAEF2 tiny FLUX.2 autoencoder (embedded, 2.7 M params, 32 ch, 8x)."""

    name = "taef2"
    kind = "image"
    latent_channels = 32
    spatial_factor = 8

    def __init__(self, device: str = "cpu", dtype=None) -> None:
        super().__init__(device, dtype)
        from safetensors.torch import load_file

        from ..taef2_model import TAEF2

        weights = resources.files("napari_ctfoundation") / "data" / "taef2" / "taef2.safetensors"
        model = TAEF2(self.latent_channels)
        with resources.as_file(weights) as path:
            model.load_state_dict(load_file(str(path)), strict=True)
        self.model = model.eval().requires_grad_(False).to(device=device, dtype=self.dtype)

    def encode(self, images, generator=None):
        # TAEF2 is a deterministic autoencoder: there is no posterior to sample.
        return self.model.encoder(images.to(self.device, self.dtype))

    def decode(self, latents):
        return self.model.decoder(latents.to(self.device, self.dtype)).clamp(0, 1)

    def describe(self) -> dict:
        return {**super().describe(), "spec": "taef2", "input_range": [0, 1], "deterministic": True}
