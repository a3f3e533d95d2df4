"""Adapters from diffusers VAE classes to the FoundationVAE contract, one per file."""
