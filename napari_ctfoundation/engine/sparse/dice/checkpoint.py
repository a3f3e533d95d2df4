"""DiCE checkpoints: ``config.json`` + ``model.safetensors`` in a folder; inference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ...errors import ConfigError
from ...progress import CancelCheck, ProgressCallback, Tracker
from ...volume import Volume
from ..geometry import ConeBeamGeometry
from .config import DiCEConfig

FORMAT = "ctfoundation-dice/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SHIPPED = Path(__file__).resolve().parents[3] / "data" / "dice"
# Shown wherever the shipped checkpoint is used, so nobody mistakes it for a trained-at-scale model.
SHIPPED_NOTE = ("shipped DiCE: a small network trained here on one patient; on an unseen CT it is below "
                "SART in PSNR (docs/sparse.md). Train your own with: ctfoundation sparse train.")


def save_dice(model, folder: Union[str, Path], extra: Optional[Dict[str, Any]] = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / ("tmp_" + WEIGHTS_FILE)
    save_file(state, str(tmp), metadata={"format": FORMAT})
    tmp.replace(folder / WEIGHTS_FILE)
    meta = {"format": FORMAT, "config": model.config.to_dict(), "training": extra or {}}
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def read_checkpoint_meta(folder: Union[str, Path]) -> Dict[str, Any]:
    folder = Path(folder)
    cfg = folder / CONFIG_FILE
    if not cfg.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ConfigError(f"--checkpoint {folder}: not a DiCE checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        meta = json.loads(cfg.read_text())
    except ValueError as exc:
        raise ConfigError(f"{cfg}: invalid JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{cfg}: format {meta.get('format')!r} is not {FORMAT!r}")
    return meta


def load_dice(folder: Union[str, Path, None] = None, device: str = "cpu"):
    """Load a checkpoint folder (None: the shipped one). Wrong shapes -> ConfigError."""
    from safetensors.torch import load_file

    from .model import DiCE

    folder = Path(folder) if folder is not None else SHIPPED
    meta = read_checkpoint_meta(folder)
    config = DiCEConfig.from_dict(meta["config"])
    model = DiCE(config)
    state = load_file(str(folder / WEIGHTS_FILE))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{name}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys
        )
        raise ConfigError(f"--checkpoint {folder}: weights do not match its config.json ({detail})")
    model.load_state_dict(state)
    model.training_info = meta.get("training", {})
    return model.to(device).eval()


GEOMETRY_KEYS = ("sod", "sdd", "detector_pixels", "detector_pitch", "detector_offset", "grid_size", "grid_spacing", "window")


def check_geometry(config: DiCEConfig, geometry: ConeBeamGeometry, where: str = "checkpoint") -> None:
    """A checkpoint only works on the geometry it was trained for."""
    trained = config.geo.to_dict()
    given = geometry.to_dict()
    diff = [f"{k} {given[k]} (trained: {trained[k]})" for k in GEOMETRY_KEYS if trained[k] != given[k]]
    if diff:
        raise ConfigError(
            f"{where} was trained for geometry {trained['name']!r}, the projections use {given['name']!r}: "
            + ", ".join(diff)
        )


def dice_predict(
    model,
    projections: np.ndarray,
    angles: np.ndarray,
    *,
    device: str = "cpu",
    chunk: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> np.ndarray:
    """Full-grid prediction [z, y, x] in [0, 1]: features once, points in chunks."""
    import torch

    from .model import grid_points

    geo = model.config.geo
    chunk = int(chunk or model.config.chunk_points)
    pts = grid_points(geo, device=device)
    tracker = Tracker((len(pts) + chunk - 1) // chunk + 1, "chunks", progress, cancel)
    with torch.inference_mode():
        proj = torch.as_tensor(projections, dtype=torch.float32, device=device)[None]
        ang = torch.as_tensor(np.asarray(angles, float), dtype=torch.float32, device=device)[None]
        feats, mats, qs, _ = model.features(proj, ang)
        vol3d = model.volume_from_quantised(qs)
        tracker.advance()
        out = []
        for start in range(0, len(pts), chunk):
            out.append(model.query(pts[None, start:start + chunk], vol3d, feats, mats)[0].float().cpu())
            tracker.advance()
    n = geo.grid_size
    return np.clip(torch.cat(out).numpy().reshape(n, n, n), 0.0, 1.0).astype(np.float32)
