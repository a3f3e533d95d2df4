"""The contract every VAE backend fulfils, and ``load_vae``.

A backend wraps one frozen autoencoder and speaks *unit images*: RGB values
in [0, 1]. It maps them to its model's own input range, applies the model's
latent scaling/shift, and reports its strides so the volume code can pad.

* image backends (``kind == "image"``): ``encode`` takes ``(B, 3, H, W)`` and
  returns ``(B, C, H/f, W/f)``.
* video backends (``kind == "video"``): ``encode`` takes ``(B, 3, T, H, W)``
  with ``T = 1 + temporal_factor * k`` and returns ``(B, C, 1 + k, H/f, W/f)``.

``H`` and ``W`` must be multiples of ``spatial_factor``; the volume code pads
and crops. Latents are deterministic (the posterior mean) unless
``generator`` is given, in which case they are sampled from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import ConfigError
from ..registry import Registry

VAE_BACKENDS: Registry = Registry("VAE backend", "napari_ctfoundation.engine.vae.backends")
DEFAULT_VAE = "taef2"


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` picks cuda, then mps, then cpu; explicit names are checked.

    Returns the torch device string. Raises :class:`ConfigError` for an
    unknown name or a device that is not available here.
    """
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but MPS is not available")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda[:N] or mps")
    return device


def resolve_dtype(precision: str, device: str):
    import torch

    if precision in ("fp32", "float32", None):
        return torch.float32
    if precision in ("bf16", "bfloat16"):
        if device == "cpu":
            raise ConfigError("bf16 is offered on GPU only; use fp32 on the CPU")
        return torch.bfloat16
    raise ConfigError(f"unknown precision {precision!r}; use fp32 or bf16")


class FoundationVAE(ABC):
    """A frozen autoencoder speaking unit RGB images (see module docstring).

    What :func:`load_vae` returns. ``encode`` maps ``(B, 3, H, W)`` torch
    images in [0, 1] (``(B, 3, T, H, W)`` for video VAEs) to latents of
    ``latent_channels`` channels, ``spatial_factor`` times smaller in H and
    W; ``decode`` maps them back, clamped to [0, 1]. Volumes go through
    :func:`encode_volume` / :func:`decode_latents`, which apply the HU
    window and pad H and W to multiples of ``spatial_factor``.
    """

    name: str = "?"
    kind: str = "image"  # "image" or "video"
    latent_channels: int = 0
    spatial_factor: int = 8
    temporal_factor: int = 1
    #: video VAEs take windows of 1 + frame_step * k slices
    frame_step: int = 1
    #: preferred number of slices per video window
    window_frames: int = 1

    def __init__(self, device: str = "cpu", dtype=None) -> None:
        import torch

        self.device = device
        self.dtype = dtype or torch.float32

    @abstractmethod
    def encode(self, images, generator=None):
        """Unit images -> latents (scaled and shifted as the model expects)."""

    @abstractmethod
    def decode(self, latents):
        """Latents -> unit images, clamped to [0, 1]."""

    def describe(self) -> Dict[str, Any]:
        """Settings written to sidecars, latents and layer metadata."""
        return {
            "backend": self.name,
            "kind": self.kind,
            "latent_channels": self.latent_channels,
            "spatial_factor": self.spatial_factor,
            "temporal_factor": self.temporal_factor,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
        }


def load_vae(
    spec: str = DEFAULT_VAE,
    device: str = "auto",
    precision: str = "fp32",
    subfolder: Optional[str] = None,
) -> FoundationVAE:
    """Load a VAE backend by registry name, hub id or local folder.

    ``spec`` is a registered name (``taef2``), a local folder holding a
    diffusers VAE (``config.json`` + weights, optionally below ``subfolder``)
    or a hub id such as ``black-forest-labs/FLUX.2-dev`` (``subfolder="vae"``).
    Folders and hub ids go through the diffusers backend, which picks the
    model class from the config's ``_class_name``. ``VAE_BACKENDS.names()``
    lists the registered names (``taef2``, the interpolation baselines
    ``nearest_f16`` ... ``bicubic_f64``, optional ``medvae_*``).
    ``device`` is auto, cpu, cuda[:N] or mps; ``precision`` fp32 or bf16
    (GPU only).

    Raises :class:`ConfigError` for an unknown name, a file instead of a
    folder, an unavailable device, bf16 on the CPU, or a model that cannot
    be loaded (no network, missing weights or optional package).
    """
    device = resolve_device(device)
    dtype = resolve_dtype(precision, device)
    if spec in VAE_BACKENDS:
        return VAE_BACKENDS.create(spec, device=device, dtype=dtype)
    from .diffusers_loader import load_diffusers_vae

    path = Path(spec).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{spec}: a diffusers VAE is a folder with config.json, not a file")
    return load_diffusers_vae(spec, subfolder=subfolder, device=device, dtype=dtype)
