"""Slab-by-slab D(E(x)): the viewed slice first, then outward, into one output array.

A *slab* is the unit of work a plain run already has: one batch of
``batch_size`` slices for an image VAE (batches on the plain run's grid, so
every forward pass sees exactly the inputs of a plain run), one window of
slices for a video VAE. Slabs run in :func:`outward_order` from the one
holding ``start_slice`` (for video VAEs, the windows covering it come first); each finished stretch of slices is written to
``out`` and handed to ``on_slab(z0, z1, hu)``.

Video windows overlap and are blended; a slice is final only once every
window covering it is decoded. Final slices are blended from the kept
window outputs in window order, the same float64 sums as
:func:`engine.latents.decode_latents`, so any order gives the same volume.
Only windows with unfinished slices are kept in memory.

The working set is one slab (plus, for video VAEs, the windows still
needed); the whole volume exists only as the caller's input and ``out``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .errors import ConfigError, OperationCancelled
from .latents import (
    _pad_to,
    blend_ramp,
    decode_image_slab,
    decode_video_window,
    encode_image_slab,
    encode_video_window,
    slab_generator,
    video_frames,
    video_windows,
)
from .memory import release_freed_memory
from .progress import CancelCheck, ProgressCallback
from .window import HUWindow

#: ``on_slab(z0, z1, hu)``: slices ``z0..z1-1`` are final; ``hu`` is their float32 HU
SlabCallback = Callable[[int, int, np.ndarray], None]
PASS_UNIT = "slice passes (encode + decode)"


def outward_order(n_slabs: int, first: int, above_first: bool = False) -> List[int]:
    """``first``, then alternately the next slab below and above it (above first if asked)."""
    if not 0 <= first < n_slabs:
        raise ConfigError(f"first slab {first} is outside 0..{n_slabs - 1}")
    order, below, above = [first], first - 1, first + 1
    while below >= 0 or above < n_slabs:
        if above_first and above < n_slabs:
            order.append(above)
            above += 1
        if below >= 0:
            order.append(below)
            below -= 1
        if not above_first and above < n_slabs:
            order.append(above)
            above += 1
    return order


def check_start_slice(start_slice: Optional[int], depth: int) -> int:
    if start_slice is None:
        return 0
    if not 0 <= int(start_slice) < depth:
        raise ConfigError(f"start_slice {start_slice} is outside the volume's slices 0..{depth - 1}")
    return int(start_slice)


class SlabOutput:
    """Writes final slices to ``out`` (with the outside-window fill), reports, checks cancel."""

    def __init__(self, source: np.ndarray, out: np.ndarray, window: HUWindow, keep_outside_window: bool,
                 on_slab: Optional[SlabCallback], progress: Optional[ProgressCallback],
                 cancel: Optional[CancelCheck]) -> None:
        self.source, self.out, self.window = source, out, window
        self.keep_outside_window = keep_outside_window
        self.on_slab, self.progress, self.cancel = on_slab, progress, cancel
        self.depth = source.shape[0]
        self.passes = 0
        self.final = 0

    def count(self, slices: int) -> None:
        """One encoder or decoder pass over ``slices`` slices."""
        self.passes = min(2 * self.depth, self.passes + slices)
        if self.progress is not None:
            self.progress(self.passes, 2 * self.depth, PASS_UNIT)

    def write(self, z0: int, unit: np.ndarray) -> None:
        """Slices ``z0..`` are final: to HU, crop the padding, fill outside the window, store, hand on."""
        height, width = self.source.shape[1:]
        hu = self.window.from_unit(unit[:, :height, :width])
        z1 = z0 + hu.shape[0]
        if self.keep_outside_window:
            src = self.source[z0:z1]
            outside = (src < self.window.lo) | (src > self.window.hi)
            hu[outside] = src[outside]
        self.out[z0:z1] = hu
        self.final += hu.shape[0]
        if self.on_slab is not None:
            self.on_slab(z0, z1, hu)

    def check_cancel(self) -> None:
        release_freed_memory()  # between slabs: keep the heap at one slab's working set
        if self.cancel is not None and self.cancel():
            raise OperationCancelled(f"cancelled after {self.final} of {self.depth} slices")


def run_image_slabs(output: SlabOutput, vae, window: HUWindow, batch_size: int, start_slice: int,
                    seed: Optional[int]) -> Tuple[int, ...]:
    """Image VAE: one batch per slab; returns the latent shape of a plain run ``(1, C, Z, h, w)``."""
    import torch

    depth = output.depth
    n_slabs = -(-depth // batch_size)
    latent_chw = None
    with torch.inference_mode():
        for index in outward_order(n_slabs, start_slice // batch_size):
            z0 = index * batch_size
            unit = _pad_to(window.to_unit(output.source[z0:z0 + batch_size]), vae.spatial_factor)
            latents = encode_image_slab(unit, vae, slab_generator(vae, seed, index))
            output.count(unit.shape[0])
            decoded = decode_image_slab(latents, vae)
            output.count(unit.shape[0])
            latent_chw = latents.shape[1:]
            output.write(z0, decoded)
            output.check_cancel()
    return (1, latent_chw[0], depth, *latent_chw[1:])


def run_video_slabs(output: SlabOutput, vae, window: HUWindow, frames: Optional[int], overlap: int,
                    start_slice: int, seed: Optional[int]) -> Dict[str, object]:
    """Video VAE: one window per slab, blended as a plain run; returns latent shape and window settings."""
    import torch

    depth = output.depth
    frames = video_frames(vae, depth, frames, overlap)
    starts = video_windows(depth, frames, overlap)
    spans = [(start, min(start + frames, depth)) for start in starts]
    covering = [[i for i, (a, b) in enumerate(spans) if a <= z < b] for z in range(depth)]
    # The start slice is final once every window covering it is decoded: one
    # window when it lies in a window's own stretch, else the two it straddles.
    holding = covering[start_slice]
    first, above_first = holding[0], len(holding) > 1
    blocks: Dict[int, np.ndarray] = {}
    done = np.zeros(depth, bool)
    latent_shape: Tuple[int, ...] = ()
    with torch.inference_mode():
        for index in outward_order(len(starts), first, above_first):
            a, b = spans[index]
            unit = _pad_to(window.to_unit(output.source[a:b]), vae.spatial_factor)
            latents = encode_video_window(unit, frames, vae, slab_generator(vae, seed, index))
            latent_shape = (len(starts), *latents.shape[1:])
            output.count(b - a)
            blocks[index] = decode_video_window(latents, vae)
            output.count(b - a)
            ready = [z for z in range(a, b) if not done[z] and all(i in blocks for i in covering[z])]
            for z0, z1 in _runs(ready):
                output.write(z0, _blend(blocks, spans, starts, frames, overlap, covering, z0, z1))
                done[z0:z1] = True
            for i in [i for i in blocks if done[spans[i][0]:spans[i][1]].all()]:
                del blocks[i]  # every slice it covers is final
            output.check_cancel()
    return {"latent_shape": latent_shape, "window_slices": frames, "overlap": overlap}


def _runs(slices: List[int]) -> List[Tuple[int, int]]:
    """Sorted slice indices -> contiguous ``(z0, z1)`` runs."""
    runs: List[Tuple[int, int]] = []
    for z in slices:
        if runs and runs[-1][1] == z:
            runs[-1] = (runs[-1][0], z + 1)
        else:
            runs.append((z, z + 1))
    return runs


def _blend(blocks, spans, starts, frames: int, overlap: int, covering, z0: int, z1: int) -> np.ndarray:
    """Blended unit slices ``z0..z1-1``: float64 sums in window order, as ``decode_latents`` does."""
    last = len(starts) - 1
    shape = next(iter(blocks.values())).shape[1:]
    acc = np.zeros((z1 - z0, *shape), np.float64)
    weight = np.zeros((z1 - z0, 1, 1), np.float64)
    for index in sorted({i for z in range(z0, z1) for i in covering[z]}):
        a, b = spans[index]
        lo, hi = max(a, z0), min(b, z1)
        ramp = blend_ramp(frames, overlap, first=index == 0, last=index == last)
        acc[lo - z0:hi - z0] += blocks[index][lo - a:hi - a] * ramp[lo - a:hi - a, None, None]
        weight[lo - z0:hi - z0, 0, 0] += ramp[lo - a:hi - a]
    return (acc / np.maximum(weight, 1e-8)).astype(np.float32)
