"""Latent cache: every CT of a manifest encoded once through the frozen VAE.

Layout of a cache folder::

    cache.json                    index: VAE, HU window, vocabularies, cases,
                                  per-channel latent mean/std (for scaling)
    case_0000.latents.safetensors engine.latents format (LatentVolume)
    case_0000.cond.safetensors    organ / disease class fractions on the latent
                                  grid (float16) + JSON: ids, report, findings

A case without an organ mask (manifest cell empty) has ``organ_mask: null``
in the index and no organ ids (a one-channel zero placeholder, as for any
empty organ set); it loads with ``organs=None``, the null organ condition.

Volumes are encoded in display orientation (axial slices, radiological
view), as the rest of the product does; the masks are reoriented the same
way and block-averaged onto the latent grid. Training reads only this
folder and never touches the VAE encoder again.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError, VolumeReadError
from ..io import CTFoundationWarning
from ..progress import CancelCheck, ProgressCallback, Tracker
from ..window import HUWindow
from .augment import augment_case, draw_params
from .conditioning import LatentMask, mask_to_latent, parse_findings
from .manifest import read_manifest
from .vocab import vocabulary

CACHE_VERSION = 1
INDEX = "cache.json"


@dataclass
class CachedCase:
    name: str
    latents: np.ndarray  # (C, t, h, w) float32, raw VAE latents
    organs: Optional[LatentMask]  # None: the CT has no organ mask
    disease: Optional[LatentMask]
    report: str
    findings: np.ndarray  # (18,)
    meta: Dict[str, Any]


def _atomic_json(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


def _save_cond(path: Path, organs: LatentMask, disease: Optional[LatentMask], meta: Dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    tensors = {"organs": organs.fractions.astype(np.float16)}
    info = dict(meta, organ_ids=organs.ids)
    if disease is not None:
        tensors["disease"] = disease.fractions.astype(np.float16)
        info["disease_ids"] = disease.ids
    if not organs.ids:  # safetensors refuses zero-sized tensors
        tensors["organs"] = np.zeros((1,) + organs.fractions.shape[1:], np.float16)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    save_file(tensors, tmp, metadata={"ctfoundation_cond": json.dumps(info)})
    os.replace(tmp, path)


def _case_key(entry: Dict[str, Any]) -> str:
    """Identity of a cached case: source files + augmentation parameters (None = original)
    + the resampling spacing when one was asked (absent: native, as caches had before)."""
    key = [entry["image"], entry["organ_mask"], entry.get("disease_mask"), entry.get("augment")]
    if entry.get("resampled_to") is not None:
        key.append(entry["resampled_to"])
    return json.dumps(key, sort_keys=True)


def _read_row(row, spacing_xyz: Optional[Sequence[float]] = None) -> tuple:
    """(CT volume, organ array or None, lesion array or None) of a manifest row, display orientation,
    resampled to ``spacing_xyz`` mm when given (0 keeps an axis native; CT anti-aliased, masks nearest)."""
    from ..io import read_labels, read_volume
    from ..resample import resample_to_spacing

    ct = resample_to_spacing(read_volume(row.image).to_display(), spacing_xyz, labels=False)
    masks = []
    for path in (row.organ_mask, row.disease_mask):
        if path is None:
            masks.append(None)
            continue
        mask = resample_to_spacing(read_labels(path).to_display(), spacing_xyz, labels=True)
        if mask.shape != ct.shape:
            raise VolumeReadError(f"{path}: shape {mask.shape} differs from CT {ct.shape}")
        masks.append(mask.array)
    return ct, masks[0], masks[1]


def build_cache(
    manifest: Union[str, Path],
    cache_dir: Union[str, Path],
    vae: str = "taef2",
    window: HUWindow = HUWindow(),
    *,
    device: str = "auto",
    batch_size: int = 8,
    overwrite: bool = False,
    augment: int = 0,
    seed: int = 0,
    spacing_xyz: Optional[Sequence[float]] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Path:
    """Validate ``manifest``, encode each case once, write ``cache_dir``.

    ``spacing_xyz`` (mm, x,y,z; 0 keeps an axis native; None: every CT at its own
    spacing) resamples each CT and its masks first, so CTs of many scanners
    train one model at one scale.

    Cases already in the folder with the same source files and VAE are kept
    (a cache can be extended by re-running with a longer manifest).
    ``augment`` > 0 adds that many augmented copies of every case (flip with
    left/right label swap, shift, zoom, rotation; see ``augment.py``), drawn
    from ``seed`` and the row number, so the same options give the same cache.

    ``manifest`` is a CSV/JSONL with ``image,organ_mask,disease_mask,report``
    (see :func:`read_generation_manifest`; either mask may be empty); each CT is encoded in display
    orientation through ``vae`` inside ``window`` (HU) and its masks are
    reduced to the latent grid. Returns ``cache_dir``, the input of
    :func:`train_generation`; progress in cases. Raises
    :class:`ConfigError` (a ``ManifestError`` listing every bad row) before
    any encoding, or when ``cache_dir`` was built with another VAE or window.
    """
    from ..latents import encode_volume, load_latents, save_latents
    from ..vae import load_vae

    if int(augment) < 0:
        raise ConfigError(f"augment {augment}: the number of augmented copies cannot be negative")
    rows = read_manifest(manifest)  # every row checked before any encoding
    out = Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX
    old = _read_old_index(index_path) if not overwrite else {}
    model = load_vae(vae, device=device)
    vae_info = dict(model.describe(), spec=model.describe().get("spec", vae))
    if old and (old.get("vae", {}).get("spec") != vae_info["spec"] or old.get("hu_window") != window.as_list()):
        raise ConfigError(f"{out}: cache was built with VAE {old.get('vae', {}).get('spec')!r} and window "
                          f"{old.get('hu_window')}; use another folder or --overwrite")
    known = {_case_key(c): c for c in old.get("cases", [])}
    resampled_to = None if spacing_xyz is None else [float(v) for v in spacing_xyz]
    if resampled_to is not None:
        from ..resample import check_spacing

        check_spacing(resampled_to)  # bad values fail before any encoding
    tracker = Tracker(len(rows) * (1 + int(augment)), "cases", progress, cancel)
    cases: List[Dict[str, Any]] = []
    sums = np.zeros(model.latent_channels, np.float64)
    sq = np.zeros(model.latent_channels, np.float64)
    count = 0
    for n, row in enumerate(rows):
        base = (str(row.image), str(row.organ_mask) if row.organ_mask else None,
                str(row.disease_mask) if row.disease_mask else None)
        loaded: Optional[tuple] = None  # (ct, organs, disease) arrays, read once per row when needed
        for copy in range(1 + int(augment)):
            params = None
            if copy:
                rng = np.random.default_rng([int(seed), n, copy])
                loaded = loaded or _read_row(row, spacing_xyz)
                params = draw_params(rng, tuple(loaded[0].shape[1:]))
            name = f"case_{n:04d}" if not copy else f"case_{n:04d}_aug{copy:02d}"
            aug = None if params is None else dict(params.as_dict(), copy=copy, seed=int(seed))
            key = _case_key({"image": base[0], "organ_mask": base[1], "disease_mask": base[2], "augment": aug,
                             "resampled_to": resampled_to})
            entry = known.get(key)
            lv = _intact_entry(out, entry["name"]) if entry is not None else None
            if lv is not None:
                entry = dict(entry, report=row.report, findings=parse_findings(row.report).tolist())
            else:
                loaded = loaded or _read_row(row, spacing_xyz)
                ct_vol, org_arr, dis_arr = loaded
                if params is not None:
                    ct_arr, org_arr, dis_arr = augment_case(ct_vol.array, org_arr, dis_arr, params)
                    ct_vol = ct_vol.with_array(ct_arr)
                lv = encode_volume(ct_vol, model, window, batch_size=batch_size, cancel=cancel)
                lv.vae = vae_info
                f = model.spatial_factor
                # no organ mask: no organ ids (stored as the zero placeholder), the null organ condition
                organs = (LatentMask([], np.zeros((0,) + tuple(lv.latents.shape[2:]), np.float32))
                          if org_arr is None else mask_to_latent(org_arr, f, lv.padded_hw))
                disease = None if dis_arr is None else mask_to_latent(dis_arr, f, lv.padded_hw)
                findings = parse_findings(row.report)
                save_latents(lv, out / f"{name}.latents.safetensors")
                entry = {
                    "name": name, "image": base[0], "organ_mask": base[1], "disease_mask": base[2],
                    "report": row.report, "report_source": row.report_source,
                    "findings": findings.tolist(), "shape_zyx": list(ct_vol.shape),
                    "latent_shape": list(lv.latents.shape[1:]), "spacing_xyz": list(ct_vol.spacing),
                    "augment": aug, "resampled_to": resampled_to,
                }
                _save_cond(out / f"{name}.cond.safetensors", organs, disease, {"name": name})
            lat = lv.latents[0].astype(np.float64)
            sums += lat.sum(axis=(1, 2, 3))
            sq += (lat ** 2).sum(axis=(1, 2, 3))
            count += lat[0].size
            cases.append(entry)
            tracker.advance()
    mean = sums / count
    std = np.sqrt(np.maximum(sq / count - mean ** 2, 1e-12))
    _atomic_json({
        "format_version": CACHE_VERSION, "manifest": str(Path(manifest).resolve()),
        "vae": vae_info, "hu_window": window.as_list(), "vocabulary": vocabulary(),
        "latent_mean": mean.tolist(), "latent_std": std.tolist(),
        "augment": {"copies": int(augment), "seed": int(seed)}, "cases": cases,
    }, index_path)
    return out


def _read_old_index(path: Path) -> Dict[str, Any]:
    """The index of an existing cache to extend; a damaged one is rebuilt from scratch, with a warning."""
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(index, dict) and isinstance(index.get("cases", []), list):
            return index
    except (ValueError, UnicodeDecodeError):
        pass
    warnings.warn(f"{path}: damaged cache index, rebuilding the cache", CTFoundationWarning, stacklevel=3)
    return {}


def _intact_entry(root: Path, name: str):
    """The cached latents of ``name`` if both its files read back; None (so it is rebuilt) otherwise."""
    from safetensors import safe_open

    from ..latents import load_latents

    try:
        lv = load_latents(root / f"{name}.latents.safetensors")
        with safe_open(str(root / f"{name}.cond.safetensors"), framework="numpy") as fh:
            json.loads(fh.metadata()["ctfoundation_cond"])
            fh.get_tensor("organs")
        return lv
    except Exception as exc:  # any damage means: do not trust, encode again
        warnings.warn(f"{root / name}: damaged cache entry, encoding it again ({type(exc).__name__})",
                      CTFoundationWarning, stacklevel=3)
        return None


def read_index(cache_dir: Union[str, Path]) -> Dict[str, Any]:
    path = Path(cache_dir) / INDEX
    if not path.is_file():
        raise ConfigError(f"{cache_dir}: not a latent cache (no {INDEX}); build one with `ctfoundation gen cache`")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: damaged cache index ({exc}); rebuild it with `ctfoundation gen cache`") from None
    if not isinstance(index, dict):
        raise ConfigError(f"{path}: not a cache index (a JSON object is expected)")
    if index.get("format_version") != CACHE_VERSION:
        raise ConfigError(f"{path}: cache format {index.get('format_version')} is not {CACHE_VERSION}")
    if not index.get("cases"):
        raise ConfigError(f"{path}: the cache holds no cases")
    return index


def load_cache(cache_dir: Union[str, Path]) -> List[CachedCase]:
    """All cases of a cache, latents as stored (unnormalised)."""
    from safetensors import safe_open

    from ..latents import load_latents

    root = Path(cache_dir)
    index = read_index(root)
    cases = []
    for entry in index["cases"]:
        lv = load_latents(root / f"{entry['name']}.latents.safetensors")
        if lv.latents.shape[0] != 1:
            raise ConfigError(f"{root}: {entry['name']} has {lv.latents.shape[0]} video windows; "
                              "generation supports image VAEs (one latent frame per slice)")
        cond_path = root / f"{entry['name']}.cond.safetensors"
        try:
            with safe_open(str(cond_path), framework="numpy") as fh:
                info = json.loads(fh.metadata()["ctfoundation_cond"])
                organs = LatentMask(info["organ_ids"], fh.get_tensor("organs").astype(np.float32)[: len(info["organ_ids"])])
                if entry.get("organ_mask") is None:  # no organ mask given: the null organ condition
                    organs = None
                disease = None
                if "disease_ids" in info:
                    disease = LatentMask(info["disease_ids"], fh.get_tensor("disease").astype(np.float32))
        except (OSError, KeyError, ValueError) as exc:
            raise VolumeReadError(f"{cond_path}: unreadable condition file ({exc})") from None
        cases.append(CachedCase(entry["name"], lv.latents[0], organs, disease, entry["report"],
                                np.asarray(entry["findings"], np.float32),
                                dict(entry, geometry=lv.geometry, padded_hw=lv.padded_hw)))
    return cases
