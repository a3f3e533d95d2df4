"""Encode volumes to latents, decode them back, and keep them on disk.

Slices are axis 0 of ``Volume.array``; pass ``volume.to_display()`` to work
on axial slices in radiological orientation (the CLI and widgets do).

Image VAEs encode every slice on its own: latents ``(1, C, Z, h, w)``, one
latent frame per slice. Video VAEs see depth as time: the volume is cut into
windows of ``1 + 4k`` slices that overlap by ``overlap`` slices; latents are
``(n_windows, C, t, h, w)`` and decoding blends the overlaps with linear
ramps, so there is no seam at window borders (the reference code used
disjoint windows and showed seams).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import ConfigError, GeometryError, VolumeReadError
from .progress import CancelCheck, ProgressCallback, Tracker
from .volume import Volume
from .window import HUWindow

FORMAT_VERSION = 1


@dataclass
class LatentVolume:
    """Latents of one volume plus everything needed to decode and place them.

    ``latents`` is ``(n_windows, C, t, h, w)`` float32 (float16 when stored
    so): image VAEs give one window with ``t = Z`` frames (one per slice) and
    ``h, w`` = the padded slice size divided by the VAE's spatial factor.
    ``geometry`` is the source volume's ``Volume.geometry_dict()`` (spacing,
    origin, direction: LPS mm), ``shape_zyx`` its shape, ``hu_window`` the
    window it was encoded in, ``vae`` the backend description
    (``vae["spec"]`` reloads it). ``nbytes`` is the size in memory.
    """

    latents: np.ndarray  # (n_windows, C, t, h, w) float32
    window_starts: List[int]  # first slice of each window
    window_slices: int  # slices per window (Z for image VAEs)
    vae: Dict[str, Any]  # backend description; vae["spec"] reloads it
    hu_window: HUWindow
    geometry: Dict[str, Any]  # Volume.geometry_dict() of the encoded volume
    padded_hw: Tuple[int, int]
    shape_zyx: Tuple[int, int, int]
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(self.latents.nbytes)

    def metadata(self) -> Dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "window_starts": list(self.window_starts),
            "window_slices": int(self.window_slices),
            "vae": self.vae,
            "hu_window": self.hu_window.as_list(),
            "geometry": self.geometry,
            "padded_hw": list(self.padded_hw),
            "shape_zyx": list(self.shape_zyx),
            "latent_shape": list(self.latents.shape),
            "extra": self.extra,
        }


def _pad_to(unit: np.ndarray, factor: int) -> np.ndarray:
    """Edge-pad H and W up to multiples of ``factor`` (cropped after decoding)."""
    h, w = unit.shape[-2:]
    ph, pw = (-h) % factor, (-w) % factor
    if ph == 0 and pw == 0:
        return unit
    pad = [(0, 0)] * (unit.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(unit, pad, mode="edge")


def slab_generator(vae, seed: Optional[int], index: int):
    """The sampling generator of slab (batch or video window) ``index``, or None.

    One generator per slab, seeded from ``(seed, index)``, so sampled latents
    do not depend on the order slabs are encoded in (the viewed slice first).
    """
    if seed is None:
        return None
    import torch

    state = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator(device=vae.device).manual_seed(state)


def encode_image_slab(unit: np.ndarray, vae, generator=None) -> np.ndarray:
    """Unit slices ``(n, H, W)`` (H, W padded) -> latents ``(n, C, h, w)`` float32."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(unit))[:, None].repeat(1, 3, 1, 1)
    return vae.encode(x, generator=generator).float().cpu().numpy()


def decode_image_slab(latents: np.ndarray, vae) -> np.ndarray:
    """Latents ``(n, C, h, w)`` -> unit slices ``(n, H, W)`` (mean of the RGB channels)."""
    import torch

    z = torch.from_numpy(np.ascontiguousarray(latents))
    return vae.decode(z).float().mean(dim=1).cpu().numpy()


def encode_video_window(unit: np.ndarray, frames: int, vae, generator=None) -> np.ndarray:
    """Unit slices of one window -> latents ``(1, C, t, h, w)``; a short window repeats its last slice."""
    import torch

    block = unit
    if block.shape[0] < frames:  # short volume: replicate the last slice
        block = np.concatenate([block, np.repeat(block[-1:], frames - block.shape[0], 0)])
    x = torch.from_numpy(np.ascontiguousarray(block))[None, None].repeat(1, 3, 1, 1, 1)
    return vae.encode(x, generator=generator).float().cpu().numpy()


def decode_video_window(latents: np.ndarray, vae) -> np.ndarray:
    """Latents ``(1, C, t, h, w)`` of one window -> unit slices ``(T, H, W)``."""
    import torch

    return vae.decode(torch.from_numpy(latents)).float().mean(dim=1)[0].cpu().numpy()


def video_windows(depth: int, frames: int, overlap: int) -> List[int]:
    """Start slices of overlapping windows of ``frames`` slices covering ``depth``."""
    if depth <= frames:
        return [0]
    step = max(1, frames - overlap)
    starts = list(range(0, depth - frames + 1, step))
    if starts[-1] + frames < depth:
        starts.append(depth - frames)
    return starts


def encode_volume(
    volume: Volume,
    vae,
    window: HUWindow = HUWindow(),
    *,
    batch_size: int = 8,
    overlap: int = 8,
    window_slices: Optional[int] = None,
    seed: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> LatentVolume:
    """Encode every slice (or video window) of ``volume`` through ``vae``.

    ``volume`` is HU ``[z, y, x]``; slices are axis 0 (pass
    ``volume.to_display()`` for axial slices). ``vae`` is a loaded VAE (see
    :func:`load_vae`); HU are clipped to ``window`` and scaled to [0, 1].
    Latents are deterministic (posterior mean) unless ``seed`` is given.
    Video VAEs: ``window_slices`` (1 + 4k, default the backend's 65) slices
    per window, consecutive windows sharing ``overlap`` slices. Returns a
    :class:`LatentVolume`; progress is reported in slices.

    Raises :class:`ConfigError` for ``batch_size < 1`` or an overlap not
    smaller than the video window, :class:`OperationCancelled` on ``cancel``.
    """
    import torch

    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    depth, height, width = volume.shape
    unit = _pad_to(window.to_unit(volume.array), vae.spatial_factor)
    tracker = Tracker(depth, "slices", progress, cancel)
    with torch.inference_mode():
        if vae.kind == "video":
            frames = video_frames(vae, depth, window_slices, overlap)
            starts = video_windows(depth, frames, overlap)
            chunks = []
            for index, start in enumerate(starts):
                chunks.append(encode_video_window(unit[start:start + frames], frames, vae,
                                                  slab_generator(vae, seed, index)))
                tracker.advance(min(start + frames, depth) - tracker.done)  # newly covered slices
            latents = np.concatenate(chunks, axis=0)
            window_slices = frames
        else:
            starts, window_slices, frames_out = [0], depth, []
            for index, first in enumerate(range(0, depth, batch_size)):
                slab = unit[first:first + batch_size]
                frames_out.append(encode_image_slab(slab, vae, slab_generator(vae, seed, index)))
                tracker.advance(slab.shape[0])
            latents = np.concatenate(frames_out, axis=0).transpose(1, 0, 2, 3)[None]
    return LatentVolume(
        latents=np.ascontiguousarray(latents, dtype=np.float32),
        window_starts=starts,
        window_slices=window_slices,
        vae=vae.describe(),
        hu_window=window,
        geometry=volume.geometry_dict(),
        padded_hw=tuple(unit.shape[-2:]),
        shape_zyx=(depth, height, width),
        extra={"seed": seed, "overlap": overlap if vae.kind == "video" else 0},
    )


def video_frames(vae, depth: int, requested: Optional[int] = None, overlap: int = 0) -> int:
    """Window length 1 + step*k: requested or the backend's, shorter for thin volumes."""
    t = vae.frame_step
    frames = requested or vae.window_frames
    if frames < 1 + t or (frames - 1) % t:
        raise ConfigError(f"window of {frames} slices: {vae.name} needs 1 + {t}k slices (k >= 1)")
    needed = 1 + t * int(np.ceil(max(depth - 1, 0) / t))
    frames = min(frames, max(needed, 1 + t))
    if overlap >= frames:
        raise ConfigError(f"overlap ({overlap}) must be smaller than the window ({frames} slices)")
    return frames


def decode_latents(
    latent: LatentVolume,
    vae=None,
    *,
    batch_size: int = 8,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Volume:
    """Decode latents back to a float32 HU volume with the source geometry.

    ``latent`` is a :class:`LatentVolume` (from :func:`encode_volume` or
    :func:`load_latents`); ``vae`` defaults to reloading the one named in
    ``latent.vae["spec"]``. Returns a :class:`Volume` of ``latent.shape_zyx``
    (``[z, y, x]``, HU within the encoding window) placed where the source
    was. Raises :class:`ConfigError` when the VAE's channel count or kind
    (image/video) does not match the latents.
    """
    import torch

    if vae is None:
        from .vae import load_vae

        vae = load_vae(latent.vae.get("spec", latent.vae["backend"]), subfolder=latent.vae.get("subfolder"))
    _check_compatible(latent, vae)
    depth, height, width = latent.shape_zyx
    tracker = Tracker(depth, "slices", progress, cancel)
    with torch.inference_mode():
        if latent.vae["kind"] == "video":
            unit = _decode_video(latent, vae, tracker)
        else:
            frames = latent.latents[0].transpose(1, 0, 2, 3)  # (Z, C, h, w)
            parts = []
            for first in range(0, depth, batch_size):
                parts.append(decode_image_slab(frames[first:first + batch_size], vae))
                tracker.advance(parts[-1].shape[0])
            unit = np.concatenate(parts, axis=0)
    hu = latent.hu_window.from_unit(unit[:, :height, :width])
    return Volume.from_geometry_dict(hu, latent.geometry, decoded_from=latent.vae.get("spec"))


def _decode_video(latent: LatentVolume, vae, tracker: Tracker) -> np.ndarray:
    depth = latent.shape_zyx[0]
    frames = latent.window_slices
    ph, pw = latent.padded_hw
    acc = np.zeros((depth, ph, pw), np.float64)
    weight = np.zeros((depth, 1, 1), np.float64)
    overlap = int(latent.extra.get("overlap", 0))
    for index, start in enumerate(latent.window_starts):
        block = decode_video_window(latent.latents[index:index + 1], vae)  # (T, H, W)
        n = min(frames, depth - start)
        ramp = blend_ramp(frames, overlap, first=index == 0, last=index == len(latent.window_starts) - 1)
        acc[start:start + n] += block[:n] * ramp[:n, None, None]
        weight[start:start + n, 0, 0] += ramp[:n]
        tracker.advance(start + n - tracker.done)  # newly covered slices
    return (acc / np.maximum(weight, 1e-8)).astype(np.float32)


def blend_ramp(frames: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """Per-slice weights: linear ramps over the overlaps, flat in between."""
    ramp = np.ones(frames)
    if overlap > 0:
        up = (np.arange(overlap) + 1) / (overlap + 1)
        if not first:
            ramp[:overlap] = up
        if not last:
            ramp[-overlap:] = up[::-1]
    return ramp


def _check_compatible(latent: LatentVolume, vae) -> None:
    want = latent.vae.get("latent_channels")
    if want is not None and int(want) != int(vae.latent_channels):
        raise ConfigError(
            f"latents have {want} channels but VAE {vae.name!r} expects {vae.latent_channels}"
        )
    if latent.vae.get("kind") != vae.kind:
        raise ConfigError(f"latents come from a {latent.vae.get('kind')} VAE, {vae.name!r} is a {vae.kind} VAE")


# ------------------------------------------------------------------ on disk
def save_latents(latent: LatentVolume, path: Union[str, Path]) -> Path:
    """Write latents as safetensors with their JSON metadata (atomic).

    ``path`` must end in ``.safetensors``; parent folders are created.
    Returns the path. Raises :class:`ConfigError` for another suffix.
    """
    import os
    import tempfile

    from safetensors.numpy import save_file

    out = Path(path)
    if out.suffix != ".safetensors":
        raise ConfigError(f"{out}: latent files end in .safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=out.parent)
    os.close(fd)
    try:
        save_file({"latents": latent.latents}, tmp, metadata={"ctfoundation": json.dumps(latent.metadata())})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def load_latents(path: Union[str, Path]) -> LatentVolume:
    """Read a latent file written by :func:`save_latents` into a :class:`LatentVolume`.

    Raises :class:`VolumeReadError` for a missing file or one that is not a
    napari-ctfoundation latent file, :class:`GeometryError` when the stored
    array does not match its metadata.
    """
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise VolumeReadError(f"{p}: no such latent file")
    try:
        with safe_open(str(p), framework="numpy") as fh:
            meta = json.loads((fh.metadata() or {})["ctfoundation"])
            latents = fh.get_tensor("latents")
    except (KeyError, ValueError, OSError, Exception) as exc:  # safetensors raises its own error types
        raise VolumeReadError(f"{p}: not a napari-ctfoundation latent file ({exc})") from None
    if not isinstance(meta, dict) or list(latents.shape) != meta.get("latent_shape"):
        raise GeometryError(f"{p}: latent shape {latents.shape} does not match its metadata")
    try:
        return LatentVolume(
            latents=latents,
            window_starts=meta["window_starts"],
            window_slices=meta["window_slices"],
            vae=meta["vae"],
            hu_window=HUWindow(*meta["hu_window"]),
            geometry=meta["geometry"],
            padded_hw=tuple(meta["padded_hw"]),
            shape_zyx=tuple(meta["shape_zyx"]),
            extra=meta.get("extra", {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VolumeReadError(f"{p}: incomplete latent metadata ({type(exc).__name__}: {exc})") from None
