"""Conditional CT generation in a frozen foundation-VAE latent space (issue 4).

Pieces, each in its own small module (heavy libraries load lazily):

* ``manifest``   CSV/JSONL dataset rows, validated up front
* ``cache``      each CT encoded once (engine.latents) + masks on the latent grid
* ``conditioning`` per-class mask fractions, CT-RATE findings from report text
* ``text``       text-encoder registry (``minilm`` embedded default, ``hf``)
* ``denoiser``   masks concatenated + report cross-attention around a backbone
  registry (``monai3d``: MONAI DiffusionModelUNet 3D)
* ``schedule``   DDPM training schedule, sampler registry (ddim, dpmpp, ddpm)
* ``sampling``   classifier-free guidance, seamless windows over depth
* ``pipeline``   GenerationPipeline.from_pretrained / save_pretrained / generate
* ``train``      accelerate training: EMA, accumulation, AMP, checkpoints
* ``evaluate``   HU statistics, mask adherence, Frechet distance, determinism
"""

from .manifest import ManifestError, ManifestRow, read_manifest

__all__ = ["ManifestError", "ManifestRow", "read_manifest"]
