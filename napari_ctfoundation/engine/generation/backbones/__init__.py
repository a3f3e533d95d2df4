"""Denoiser backbones, one per file (see ``generation.denoiser``)."""
