"""Latents as data: export volumes to latent files, decode them, count the bytes.

Each exported case is one ``.safetensors`` (latents + JSON metadata: VAE
spec, HU window, source geometry; see ``engine.latents``) at the mirrored
path of its source. The storage report compares the latent file with the
source on disk (compressed NIfTI or the DICOM files) and with the raw int16
voxels, the figure MedVAE quotes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ..errors import ConfigError
from ..window import HUWindow
from .dataset import Case

LATENT_SUFFIX = ".safetensors"
STORAGE_COLUMNS = ["case", "source_bytes", "latent_bytes", "compression_factor", "raw_int16_bytes",
                   "raw_factor", "latent_shape", "seconds"]


def disk_bytes(path: Union[str, os.PathLike]) -> int:
    """Size on disk of a file, or of all files in a folder (a DICOM series)."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def latent_rel(case: Case) -> Path:
    name = case.rel.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(suffix):
            return case.rel.with_name(name[: -len(suffix)] + LATENT_SUFFIX)
    return case.rel.with_name(name + LATENT_SUFFIX)


def storage_row(source: Union[str, os.PathLike], latent_file: Union[str, os.PathLike],
                shape_zyx, latent_shape) -> Dict[str, Any]:
    src, lat = disk_bytes(source), disk_bytes(latent_file)
    raw = int(np.prod(shape_zyx)) * 2
    return {"source_bytes": src, "latent_bytes": lat, "compression_factor": src / lat,
            "raw_int16_bytes": raw, "raw_factor": raw / lat,
            "latent_shape": "x".join(str(s) for s in latent_shape)}


def make_export_case(
    vae: Union[str, Any] = "taef2",
    window: Optional[HUWindow] = None,
    *,
    device: str = "auto",
    precision: str = "fp32",
    subfolder: Optional[str] = None,
    batch_size: int = 8,
    storage_dtype: str = "float32",
):
    """A batch :data:`CaseFunction` that encodes a case and saves its latents.

    ``storage_dtype="float16"`` halves the file; decoding casts back. With
    :func:`run_batch` each case becomes a ``.safetensors`` latent file
    (axial slices, :func:`load_latents` reads it) and a CSV row of storage
    figures (source and latent bytes, compression factors, latent shape).
    Raises :class:`ConfigError` for a ``storage_dtype`` other than float32
    or float16; per-case errors land in ``BatchSummary.failed``.
    """
    if storage_dtype not in ("float32", "float16"):
        raise ConfigError(f"--storage {storage_dtype!r}: use float32 or float16")
    window = window or HUWindow()
    loaded: Dict[str, Any] = {}

    def process(case: Case, out_path: Path, progress=None, cancel=None) -> Dict[str, Any]:
        from ..io import read_volume
        from ..latents import encode_volume, save_latents
        from ..vae import load_vae

        t0 = time.perf_counter()
        if "vae" not in loaded:
            loaded["vae"] = load_vae(vae, device=device, precision=precision, subfolder=subfolder) \
                if isinstance(vae, str) else vae
        volume = read_volume(case.image)
        lv = encode_volume(volume.to_display(), loaded["vae"], window, batch_size=batch_size,
                           progress=progress, cancel=cancel)
        if isinstance(vae, str):
            lv.vae.setdefault("spec", vae)
            if subfolder:
                lv.vae.setdefault("subfolder", subfolder)
        if storage_dtype == "float16":
            lv.latents = lv.latents.astype(np.float16)
            lv.extra["storage_dtype"] = "float16"
        save_latents(lv, out_path)
        row = storage_row(case.image, out_path, volume.shape, lv.latents.shape)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        return row

    return process
