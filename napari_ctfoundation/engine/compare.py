"""MedVAE-style comparison: every available backend on the same volume.

Interpolation baselines (``nearest``/``bilinear``/``bicubic`` at area factors
16 and 64) are registered VAE backends, so every row goes through the same
code: ``reconstruct_volume`` on the display-oriented volume (axial slices),
metrics inside one HU window. Rows follow the MedVAE reconstruction table
(REFERENCE section 2): method, f (area downsizing per latent position), C
(latent channels), PSNR dB / MS-SSIM; we add SSIM (3D), MAE and the number of
latent values per voxel (C / f), which is what storage and downstream
compute actually pay: a 32-channel f=64 latent holds *more* numbers per voxel
than a 1-channel f=16 image.

Backends that cannot be created here (the optional ``medvae`` package
missing, no weights) are listed as skipped with the reason, never silently.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .errors import ConfigError, CTFoundationError
from .progress import CancelCheck, ProgressCallback, Tracker
from .volume import Volume
from .window import HUWindow


@dataclass
class CompareRow:
    method: str
    f: int  # voxels per latent position (area factor for 2D backends)
    channels: int
    values_per_voxel: float
    psnr_db: float
    ms_ssim: float
    ssim: float
    mae_hu: float
    seconds: float
    kind: str = "vae"  # "interpolation" or "vae"


@dataclass
class CompareResult:
    """What :func:`compare_reconstruction` returns.

    ``rows``: one :class:`CompareRow` per backend (method, ``f`` voxels per
    latent position, latent ``channels``, ``values_per_voxel``, ``psnr_db``,
    ``ms_ssim``, ``ssim``, ``mae_hu`` in HU, ``seconds``, ``kind``
    "interpolation" or "vae"), sorted by factor; ``skipped``: ``{backend:
    reason}`` for backends that could not be loaded here; ``window``: the HU
    window of the metrics; ``shape_zyx``: the compared volume's shape.
    """

    rows: List[CompareRow] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    window: HUWindow = field(default_factory=HUWindow)
    shape_zyx: tuple = ()


def default_backends() -> List[str]:
    """Every registered backend: interpolation baselines, embedded and optional VAEs."""
    from .vae import VAE_BACKENDS

    return VAE_BACKENDS.names()


def compare_reconstruction(
    volume: Volume,
    backends: Optional[Sequence[str]] = None,
    window: HUWindow = HUWindow(),
    *,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 8,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> CompareResult:
    """Reconstruct ``volume`` with each backend and measure it (progress in backends).

    ``volume`` is a CT in HU (``[z, y, x]``, any orientation: it is compared
    on axial slices of ``volume.to_display()``). ``backends`` are VAE
    registry names, hub ids or folders (default: every registered backend,
    including the interpolation baselines ``nearest/bilinear/bicubic_f16``
    and ``_f64``, which downsample each slice by the same area factor as a
    VAE latent and upsample it back). Metrics are computed in ``window``
    (HU). A backend that cannot be loaded is listed in ``result.skipped``
    with the reason (an unknown name too), not raised; ``cancel`` raises
    :class:`OperationCancelled` between slices.
    ``format_compare_table(result)`` gives a Markdown table.
    """
    from .reconstruct import reconstruct_volume
    from .vae import load_vae

    names = list(backends) if backends else default_backends()
    if not names:
        raise ConfigError("no backends to compare")
    display = volume.to_display()
    result = CompareResult(window=window, shape_zyx=display.shape)
    tracker = Tracker(len(names), "backends", progress, cancel)
    for name in names:
        try:
            vae = load_vae(name, device=device, precision=precision)
        except CTFoundationError as exc:
            result.skipped[name] = str(exc)
            tracker.advance()
            continue
        t0 = time.perf_counter()
        rec = reconstruct_volume(display, vae, window, batch_size=batch_size, cancel=cancel)
        seconds = time.perf_counter() - t0
        info = vae.describe()
        f = int(vae.spatial_factor) ** 2 * (int(vae.temporal_factor) if vae.kind == "video" else 1)
        m = rec.metrics
        result.rows.append(CompareRow(
            method=name, f=f, channels=int(vae.latent_channels),
            values_per_voxel=float(vae.latent_channels) / f,
            psnr_db=float(m["psnr_db"]), ms_ssim=float(m["ms_ssim"]), ssim=float(m["ssim"]),
            mae_hu=float(m["mae_hu"]), seconds=seconds,
            kind="interpolation" if "interpolation" in info else "vae"))
        tracker.advance()
    # MedVAE's order: by factor, interpolation above the learned models
    result.rows.sort(key=lambda r: (r.f, r.kind != "interpolation", r.method))
    return result


def format_compare_table(result: CompareResult, column: str = "this CT") -> str:
    """Markdown in the MedVAE layout, plus SSIM, MAE, values/voxel and time.

    ``result`` is a :class:`CompareResult`; ``column`` heads the metric
    column. Never raises for a valid result; skipped backends are listed
    under the table with their reason.
    """
    lo, hi = result.window.lo, result.window.hi
    lines = [f"| method | f | C | C/f | {column}: PSNR dB / MS-SSIM | SSIM (3D) | MAE HU | s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result.rows:
        psnr = "inf" if math.isinf(r.psnr_db) else f"{r.psnr_db:.2f}"
        lines.append(f"| {r.method} | {r.f} | {r.channels} | {r.values_per_voxel:.3g} | "
                     f"{psnr}/{r.ms_ssim:.3f} | {r.ssim:.3f} | {r.mae_hu:.1f} | {r.seconds:.1f} |")
    z, y, x = result.shape_zyx if result.shape_zyx else (0, 0, 0)
    lines.append(f"\nHU window [{lo:g}, {hi:g}]; {z} axial slices of {x} x {y}; MS-SSIM per slice "
                 "(MedVAE's stitched 2D evaluation), SSIM over the volume.")
    by_reason: Dict[str, List[str]] = {}
    for name, why in result.skipped.items():
        by_reason.setdefault(why, []).append(name)
    for why, names in by_reason.items():
        lines.append(f"skipped {', '.join(names)}: {why}")
    return "\n".join(lines)


def rows_as_dicts(result: CompareResult) -> List[dict]:
    from dataclasses import asdict

    return [asdict(r) for r in result.rows]
