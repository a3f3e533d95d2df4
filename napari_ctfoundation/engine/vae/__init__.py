"""Frozen foundation autoencoders (VAE backends) and volume-level use of them."""

from .base import FoundationVAE, VAE_BACKENDS, load_vae, resolve_device

__all__ = ["FoundationVAE", "VAE_BACKENDS", "load_vae", "resolve_device"]
