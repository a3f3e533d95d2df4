"""DiCE checkpoints: ``config.json`` + ``model.safetensors`` in a folder; inference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ...errors import ConfigError
from ...progress import CancelCheck, ProgressCallback
from ...volume import Volume
from ..geometry import ConeBeamGeometry
from .config import DiCEConfig

FORMAT = "ctfoundation-dice/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SHIPPED = Path(__file__).resolve().parents[3] / "data" / "dice"
# Shown wherever the shipped checkpoint is used, so nobody mistakes it for a trained-at-scale model.
SHIPPED_NOTE = ("shipped DiCE: a small 64^3 network trained here on 7 CTs of 6 patients (5 public chest/abdomen "
                "CTs + the 2 samples). Cross-validated on unseen patients it beats SART in SSIM at 6, 8 and 10 views "
                "and in PSNR at 6 views (25.8 vs 24.3 dB), not at 10 (26.6 vs 27.1 dB; docs/sparse.md). "
                "Train your own with: ctfoundation sparse train.")


def save_dice(model, folder: Union[str, Path], extra: Optional[Dict[str, Any]] = None) -> Path:
    """Weights then config, each written atomically (a reader never sees half a file)."""
    from safetensors.torch import save_file

    from ...atomic import atomic_path, atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "config": model.config.to_dict(), "training": extra or {}}
    atomic_write_json(folder / CONFIG_FILE, meta)
    return folder


def read_checkpoint_meta(folder: Union[str, Path]) -> Dict[str, Any]:
    folder = Path(folder)
    cfg = folder / CONFIG_FILE
    if not cfg.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ConfigError(f"--checkpoint {folder}: not a DiCE checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        meta = json.loads(cfg.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg}: invalid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ConfigError(f"{cfg}: not a DiCE checkpoint config (no \"config\" object)")
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{cfg}: format {meta.get('format')!r} is not {FORMAT!r}")
    return meta


def load_dice(folder: Union[str, Path, None] = None, device: str = "cpu"):
    """Load a DiCE checkpoint folder (None: the shipped one) as a torch model in eval mode.

    A folder holds ``config.json`` (:class:`DiCEConfig`, with its geometry:
    ``model.config.geo``) and ``model.safetensors``, as :func:`train_dice`
    writes it. Raises :class:`ConfigError` for a folder that is not a
    checkpoint, invalid JSON, another format, or weights that do not fit
    the config.
    """
    from ...errors import CTFoundationError
    from ...read_guard import build_checked, load_weights
    from .model import DiCE

    folder = Path(folder) if folder is not None else SHIPPED
    meta = read_checkpoint_meta(folder)
    config_path = folder / CONFIG_FILE
    weights = folder / WEIGHTS_FILE
    try:
        config = DiCEConfig.from_dict(meta["config"])
    except CTFoundationError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    except Exception as exc:  # wrong types or values in a damaged config.json
        first = (str(exc).splitlines() or [""])[0][:200]
        raise ConfigError(f"{config_path}: invalid DiCE config ({type(exc).__name__}: {first})") from None
    # Built on the "meta" device first and checked against the weights file's header, so a damaged
    # or hostile config.json cannot make it allocate a huge model.
    model = build_checked(lambda: DiCE(config), weights, config_path, "DiCE",
                          mismatch=f"--checkpoint {folder}: weights do not match its config.json")
    model.load_state_dict(load_weights(weights))
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
    grid: Optional[int] = None,
    query: str = "fast",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> np.ndarray:
    """Prediction [z, y, x] in [0, 1] on a ``grid``^3 cube (default: the trained grid); see ``predict.predict_grid``.

    ``query="fast"`` (default) gives the dense result (PSNR >= 45 dB against
    it, bench/sparse.py) with far fewer point evaluations; ``"dense"``
    queries every voxel.
    """
    from .predict import predict_grid

    return predict_grid(model, projections, angles, grid=grid, query=query, device=device, chunk=chunk,
                        progress=progress, cancel=cancel)
