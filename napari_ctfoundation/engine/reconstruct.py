"""Whole-volume reconstruction through a frozen foundation VAE: D(E(x)).

HU window -> unit range -> 3-channel slices (or video windows) -> encoder ->
decoder -> channel mean -> HU. Output is float32 HU on the input's grid (no
int16 truncation); metrics are computed inside the window.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

import numpy as np

from .latents import decode_latents, encode_volume
from .metrics import volume_metrics
from .progress import CancelCheck, ProgressCallback
from .volume import Volume
from .window import HUWindow


@dataclass
class ReconstructionResult:
    volume: Volume  # reconstruction, float32 HU, input geometry
    difference: Volume  # reconstruction - input clipped to the window, HU
    metrics: Dict[str, float] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _two_stage_progress(progress: Optional[ProgressCallback], depth: int):
    """Encode and decode each count their slices; report one 2*depth bar.

    Every slice passes twice (encoder, then decoder), so the unit says so:
    "3/6 slice passes" for a 3-slice volume is half done, not 6 slices.
    """
    if progress is None:
        return None, None
    unit = "slice passes (encode + decode)"
    return (lambda done, total, _unit: progress(done, 2 * depth, unit),
            lambda done, total, _unit: progress(depth + done, 2 * depth, unit))


def versions() -> Dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("napari-ctfoundation", "torch", "diffusers", "monai", "SimpleITK", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def reconstruct_volume(
    volume: Volume,
    vae: Union[str, Any] = "taef2",
    window: HUWindow = HUWindow(),
    *,
    device: str = "auto",
    precision: str = "fp32",
    subfolder: Optional[str] = None,
    batch_size: int = 8,
    overlap: int = 8,
    window_slices: Optional[int] = None,
    seed: Optional[int] = None,
    compute_metrics: bool = True,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> ReconstructionResult:
    """Reconstruct ``volume`` (slices along axis 0) through ``vae``."""
    from .vae import load_vae

    started = time.perf_counter()
    if isinstance(vae, str):
        vae = load_vae(vae, device=device, precision=precision, subfolder=subfolder)
    enc_progress, dec_progress = _two_stage_progress(progress, volume.shape[0])
    latent = encode_volume(volume, vae, window, batch_size=batch_size, overlap=overlap,
                           window_slices=window_slices, seed=seed, progress=enc_progress, cancel=cancel)
    recon = decode_latents(latent, vae, batch_size=batch_size, progress=dec_progress, cancel=cancel)
    recon = Volume(recon.array, volume.spacing, volume.origin, volume.direction,
                   {**volume.metadata, "reconstructed_by": vae.describe()})
    clipped = np.clip(volume.array, window.lo, window.hi)
    difference = volume.with_array((recon.array - clipped).astype(np.float32))
    seconds = time.perf_counter() - started
    settings = {
        "vae": vae.describe(),
        "hu_window": window.as_list(),
        "batch_size": batch_size,
        "seed": seed,
        "precision": precision,
        "latent_shape": list(latent.latents.shape),
        "latent_values_per_voxel": latent.latents.size / volume.array.size,
        "geometry": volume.geometry_dict(),
        "versions": versions(),
    }
    if vae.kind == "video":
        settings.update(window_slices=latent.window_slices, overlap=latent.extra["overlap"])
    metrics = volume_metrics(volume.array, recon.array, window) if compute_metrics else {}
    return ReconstructionResult(recon, difference, metrics, settings, seconds)
