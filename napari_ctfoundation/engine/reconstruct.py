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

from .errors import ConfigError, GeometryError
from .metrics import volume_metrics
from .progress import CancelCheck, ProgressArg, resolve_progress
from .slabs import SlabCallback, SlabOutput, check_start_slice, run_image_slabs, run_video_slabs
from .volume import Volume
from .window import HUWindow


@dataclass
class ReconstructionResult:
    """What :func:`reconstruct_volume` returns.

    * ``volume``: the reconstruction, float32 HU, ``[z, y, x]``, on the
      input's grid (same spacing, origin and direction, LPS mm).
    * ``difference``: reconstruction minus the input clipped to the HU
      window, float32 HU, same grid (computed when asked for, so a run
      holds only its input and output; see :func:`difference_hu`).
    * ``metrics``: ``psnr_db``, ``ssim``, ``ms_ssim``, ``mae_hu`` (HU) and
      ``window_hu``, computed inside the window (see :func:`volume_metrics`).
    * ``settings``: VAE, window, latent shape, geometry and versions (what
      the CLI writes to its JSON sidecar, with ``timing_s`` per phase);
      ``seconds``: wall time of the reconstruction (model load included,
      metrics not).
    """

    volume: Volume  # reconstruction, float32 HU, input geometry
    source: Volume  # the input (not a copy)
    window: HUWindow = HUWindow()
    metrics: Dict[str, float] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    keep_outside_window: bool = False

    @property
    def difference(self) -> Volume:
        return self.source.with_array(
            difference_hu(self.source.array, self.volume.array, self.window, self.keep_outside_window))


def difference_hu(source_hu: np.ndarray, recon_hu: np.ndarray, window: HUWindow,
                  keep_outside_window: bool = False) -> np.ndarray:
    """Reconstruction minus the input clipped to the window (float32 HU).

    With ``keep_outside_window`` the voxels outside the window hold the input
    itself, so they are compared with the unclipped input (difference 0).
    """
    reference = source_hu if keep_outside_window else np.clip(source_hu, window.lo, window.hi)
    return (recon_hu - reference).astype(np.float32, copy=False)


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
    start_slice: Optional[int] = None,
    on_slab: Optional[SlabCallback] = None,
    keep_outside_window: bool = False,
    out: Optional[np.ndarray] = None,
    progress: ProgressArg = None,
    cancel: Optional[CancelCheck] = None,
) -> ReconstructionResult:
    """Reconstruct ``volume`` through a frozen foundation VAE: D(E(x)), slice by slice.

    ``volume`` holds HU in ``[z, y, x]``; slices are taken along axis 0. For
    axial slices in radiological orientation pass ``volume.to_display()``
    (the CLI does, then writes ``result.volume.to_source_orientation()``).
    ``vae`` is a registry name (``"taef2"``, ``"bicubic_f64"``, ...), a hub
    id or a folder (see :func:`load_vae`), or an already loaded VAE.
    ``window`` (an :class:`HUWindow`, e.g. ``HUWindow.preset("lung")``) is
    the HU range mapped to the model's input; metrics are measured in it.
    Voxels outside the window come back at the window's edge (bone at
    1839 HU becomes 1000 in [-1000, 1000]): the output is pure D(E(x)).
    ``keep_outside_window=True`` fills them from the input instead (the
    settings say so).
    ``seed`` samples the latent posterior instead of taking its mean.

    Slab by slab (see :mod:`engine.slabs`): a slab is one batch of
    ``batch_size`` slices (image VAEs) or one window (video VAEs). The first
    slab holds ``start_slice`` (default 0), the rest follow outward from it,
    alternating below and above. After each, ``on_slab(z0, z1, hu)`` gets
    the final float32 HU of slices ``z0..z1-1``; the stretches delivered add
    up exactly to the returned volume, which equals a plain run's. ``out``
    (e.g. a ``np.memmap``, the input's shape, float32) receives the slices
    instead of a new array. Memory: the input, the output and one slab.

    ``progress`` is ``None``, ``"auto"`` (a tqdm bar) or
    ``progress(done, total, unit)``, phase by phase: "loading VAE ..."
    (``total`` 0: no count) when ``vae`` is a name, then encoder and decoder
    passes, then "slices (metrics)". ``cancel()`` returning True stops
    between slabs with :class:`OperationCancelled`; no result is returned.

    Returns a :class:`ReconstructionResult`. Raises :class:`ConfigError` for
    an unknown VAE, device or precision and :class:`GeometryError` for a
    volume that is not 3D.
    """
    from .vae import load_vae

    progress = resolve_progress(progress)
    started = time.perf_counter()
    if volume.array.ndim != 3:
        raise GeometryError(f"reconstruction needs a 3D volume [z, y, x], got shape {volume.array.shape}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    depth = volume.shape[0]
    start_slice = check_start_slice(start_slice, depth)
    if isinstance(vae, str):
        if progress is not None:
            progress(0, 0, f"loading VAE {vae}")
        vae = load_vae(vae, device=device, precision=precision, subfolder=subfolder)
    if out is None:
        out = np.empty(volume.shape, np.float32)
    elif tuple(out.shape) != tuple(volume.shape) or out.dtype != np.float32:
        raise ConfigError(f"out must be float32 of shape {volume.shape}, got {out.dtype} {tuple(out.shape)}")
    output = SlabOutput(volume.array, out, window, keep_outside_window, on_slab, progress, cancel)
    output.count(0)
    settings: Dict[str, Any] = {
        "vae": vae.describe(),
        "hu_window": window.as_list(),
        "outside_window": ("filled from the input (--keep-outside-window)" if keep_outside_window
                           else "clipped to the window's edge (pure D(E(x)))"),
        "keep_outside_window": bool(keep_outside_window),
        "batch_size": batch_size,
        "seed": seed,
        "precision": precision,
    }
    if vae.kind == "video":
        video = run_video_slabs(output, vae, window, window_slices, overlap, start_slice, seed)
        latent_shape = video.pop("latent_shape")
        settings.update(video)
    else:
        latent_shape = run_image_slabs(output, vae, window, batch_size, start_slice, seed)
    recon = Volume(out, volume.spacing, volume.origin, volume.direction,
                   {**volume.metadata, "reconstructed_by": vae.describe()})
    settings.update(
        latent_shape=list(latent_shape),
        latent_values_per_voxel=float(np.prod(latent_shape)) / volume.array.size,
        geometry=volume.geometry_dict(),
        versions=versions(),
    )
    recon_seconds = time.perf_counter() - started
    metrics: Dict[str, Any] = {}
    if compute_metrics:
        metrics = volume_metrics(volume.array, out, window, device=str(vae.device), progress=progress)
        if keep_outside_window:
            settings["metrics_note"] = "voxels outside the window hold the input, so they count as exact"
    settings["timing_s"] = {"reconstruction": round(recon_seconds, 3),
                            "metrics": round(time.perf_counter() - started - recon_seconds, 3)}
    return ReconstructionResult(recon, volume, window, metrics, settings, recon_seconds, bool(keep_outside_window))
