"""Optional adapter for the MedVAE 2D autoencoders (``pip install medvae``).

MedVAE is an *optional* comparison point (REFERENCE section 2); nothing else
in the product needs it. Its package is imported only when one of these
backends is created, and its absence is a :class:`ConfigError` that says how
to install it. Its weights come from a model hub at construction, so the
first use needs network access.

Only the 2D models are wrapped: they fit the slice-wise volume code like any
image VAE. MedVAE's CT preprocessing clips HU to [-1000, 1000] and scales to
[-1, 1]; our unit images in the default CT window map to that range exactly.
Latents are the posterior mean (MedVAE samples by default; we stay
deterministic so reconstructions are reproducible).

Not exercised here: this machine has no network access to fetch the
weights, so the adapter is checked only for its missing-package message.
"""

from __future__ import annotations

from ...errors import ConfigError
from ..base import VAE_BACKENDS, FoundationVAE

# name: (linear factor per axis, latent channels)
MEDVAE_2D = {
    "medvae_4_1_2d": (4, 1),
    "medvae_4_3_2d": (4, 3),
    "medvae_8_1_2d": (8, 1),
    "medvae_8_4_2d": (8, 4),
}
INSTALL_HINT = "pip install 'napari-ctfoundation[medvae]' (or: pip install medvae)"


def _import_mvae():
    try:
        from medvae import MVAE  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ConfigError(
            f"VAE backend 'medvae_*' needs the optional package 'medvae', which is not "
            f"installed ({exc}); install it with: {INSTALL_HINT}"
        ) from None
    return MVAE


class MedVAEBackend(FoundationVAE):
    """A MedVAE 2D autoencoder seen through the FoundationVAE contract."""

    kind = "image"

    def __init__(self, model_name: str, device: str = "cpu", dtype=None) -> None:
        super().__init__(device, dtype)
        if model_name not in MEDVAE_2D:
            raise ConfigError(
                f"unknown MedVAE model {model_name!r}; known: {', '.join(MEDVAE_2D)}"
            )
        MVAE = _import_mvae()
        self.name = model_name
        self.spatial_factor, self.latent_channels = MEDVAE_2D[model_name]
        try:
            wrapper = MVAE(model_name=model_name, modality="ct")
        except Exception as exc:  # hub download or checkpoint problems
            raise ConfigError(f"MedVAE model {model_name!r} could not be loaded: {exc}") from None
        # The wrapper's forward returns latents only; its inner autoencoder
        # has the LDM-style encode() -> posterior and decode(z).
        self.model = wrapper.model.eval().requires_grad_(False).to(device=device, dtype=self.dtype)
        self._single_channel = "_1_2d" in model_name

    def _to_model(self, images):
        x = images.to(self.device, self.dtype) * 2.0 - 1.0
        return x.mean(dim=1, keepdim=True) if self._single_channel else x

    def encode(self, images, generator=None):
        posterior = self.model.encode(self._to_model(images))
        if generator is not None and hasattr(posterior, "sample"):
            try:
                return posterior.sample(generator=generator)
            except TypeError:
                return posterior.sample()
        return posterior.mode() if hasattr(posterior, "mode") else posterior

    def decode(self, latents):
        out = self.model.decode(latents.to(self.device, self.dtype))
        unit = ((out + 1.0) / 2.0).clamp(0, 1)
        if unit.shape[1] == 1:
            unit = unit.expand(-1, 3, -1, -1)
        return unit.contiguous()

    def describe(self) -> dict:
        return {**super().describe(), "spec": self.name, "input_range": [-1, 1],
                "deterministic": True, "package": "medvae"}


def medvae_available() -> bool:
    """True when the optional ``medvae`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("medvae") is not None


def _make_factory(model_name: str):
    def factory(device: str = "cpu", dtype=None) -> MedVAEBackend:
        return MedVAEBackend(model_name, device=device, dtype=dtype)

    factor, channels = MEDVAE_2D[model_name]
    factory.__doc__ = (
        f"MedVAE 2D, {factor}x per axis (area {factor * factor}), {channels} ch "
        "(optional package 'medvae')"
    )
    return factory


for _name in MEDVAE_2D:
    VAE_BACKENDS.register(_name)(_make_factory(_name))
