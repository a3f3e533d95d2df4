"""The per-case function of ``batch reconstruct``: read, reconstruct, write, measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ..errors import ConfigError
from ..window import HUWindow
from .dataset import Case

OUTPUT_DTYPES = ("float32", "int16")


def make_reconstruct_case(
    vae: Union[str, Any] = "taef2",
    window: Optional[HUWindow] = None,
    *,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 8,
    seed: Optional[int] = None,
    output_dtype: str = "float32",
    subfolder: Optional[str] = None,
):
    """A :data:`CaseFunction` that writes the VAE reconstruction of each case.

    The VAE is loaded once, on the first case that needs it (a resumed run
    whose cases are all finished never loads it). ``output_dtype="int16"``
    rounds to whole HU (the reference code truncated) and clips to int16.

    Use it as ``run_batch(discover_cases(src), out_dir,
    make_reconstruct_case("taef2", HUWindow()))``: each case is read,
    reconstructed on axial slices, written in its own voxel layout (float32
    HU, never over the input) and gives a CSV row (``psnr_db``, ``ssim``,
    ``ms_ssim``, ``mae_hu`` in HU, seconds, slices). Raises
    :class:`ConfigError` for an unknown ``output_dtype``; per-case errors
    land in ``BatchSummary.failed``.
    """
    if output_dtype not in OUTPUT_DTYPES:
        raise ConfigError(f"--dtype {output_dtype!r}: use one of {', '.join(OUTPUT_DTYPES)}")
    window = window or HUWindow()
    loaded: Dict[str, Any] = {}

    def get_vae():
        if "vae" not in loaded:
            if isinstance(vae, str):
                from ..vae import load_vae

                loaded["vae"] = load_vae(vae, device=_device(device), precision=precision,
                                         subfolder=subfolder)
            else:
                loaded["vae"] = vae
        return loaded["vae"]

    def process(case: Case, out_path: Path, progress=None, cancel=None) -> Dict[str, Any]:
        import time

        from ..io import read_volume, write_volume
        from ..reconstruct import reconstruct_volume

        started = time.perf_counter()
        volume = read_volume(case.image)
        # slices are axial in display orientation; written back in the file's own layout
        result = reconstruct_volume(volume.to_display(), get_vae(), window, device=_device(device),
                                    precision=precision, batch_size=batch_size, seed=seed,
                                    progress=progress, cancel=cancel)
        recon = result.volume.to_source_orientation()
        if output_dtype == "int16":
            arr = np.clip(np.rint(recon.array), -32768, 32767).astype(np.int16)
            recon = recon.with_array(arr)
        write_volume(recon, out_path, protect=(case.image,))
        m = result.metrics
        return {
            "psnr_db": float(m["psnr_db"]),
            "ssim": float(m["ssim"]),
            "mae_hu": float(m["mae_hu"]),
            "ms_ssim": float(m.get("ms_ssim", float("nan"))),
            "seconds": round(time.perf_counter() - started, 3),  # read + reconstruct + metrics + write
            "reconstruct_seconds": round(float(result.seconds), 3),
            "slices": int(volume.shape[0]),
        }

    return process


def _device(device: str) -> str:
    """Under ``accelerate launch`` each process takes its own GPU."""
    if device not in (None, "", "auto"):
        return device
    from .runner import distributed_state

    state = distributed_state()
    if state is not None and state.num_processes > 1:
        return "cpu" if state.device.type == "cpu" else str(state.device)
    return "auto"
