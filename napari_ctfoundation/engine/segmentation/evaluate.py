"""Inference and per-case, per-class evaluation: Dice, NSD at tau mm, HD95.

Prediction runs on the training grid (sliding windows of the training
patch, Gaussian blending); the class probabilities are resampled linearly
onto the *native* label grid and arg-maxed there, so metrics are measured
against the original label map at its own spacing.

Metrics are MONAI's (``compute_dice``, ``compute_surface_dice``,
``compute_hausdorff_distance`` with ``percentile=95``), given the voxel
spacing in mm so distances are physical. Conventions for empty masks:
a class absent from the reference gets NaN for all three (nothing to
measure); a class present in the reference but not predicted gets Dice 0,
NSD 0 and HD95 = inf (counted as "missed" in summaries).
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..progress import CancelCheck, ProgressCallback, Tracker
from .data import SegCase
from .model import SegConfig

EVAL_CSV = "per_case.csv"
EVAL_JSON = "summary.json"
EVAL_COLUMNS = ["case", "class", "dice", "nsd", "hd95_mm", "tolerance_mm", "ref_voxels", "pred_voxels"]


def predict_probabilities(model, image_hu: np.ndarray, config: SegConfig, device: str = "cpu") -> np.ndarray:
    """Softmax probabilities (K+1, z, y, x) on the training grid."""
    import torch
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(config.normalise(image_hu)[None, None]).to(device)
    with torch.no_grad():
        logits = sliding_window_inference(x, roi_size=config.patch_zyx, sw_batch_size=4,
                                          predictor=model, overlap=0.5, mode="gaussian")
    return torch.softmax(logits, dim=1)[0].cpu().numpy()


def predict_case(model, case: SegCase, config: SegConfig, device: str = "cpu") -> np.ndarray:
    """Label map (uint8, 0..K) on the case's native label grid (display orientation)."""
    probs = predict_probabilities(model, case.image, config, device)
    if case.native_labels is None or case.grid is None or case.native_labels.shape == probs.shape[1:] \
            and case.native_labels.same_grid(case.grid):
        return probs.argmax(0).astype(np.uint8)
    import SimpleITK as sitk

    reference = case.native_labels.to_sitk()
    resampled = []
    for channel in probs:
        img = case.grid.with_array(channel.astype(np.float32)).to_sitk()
        out = sitk.Resample(img, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        resampled.append(sitk.GetArrayFromImage(out))
    return np.stack(resampled).argmax(0).astype(np.uint8)


def keep_largest_component(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class, keep only the largest 26-connected island (nnU-Net's usual post-processing)."""
    from scipy import ndimage

    out = labels.copy()
    for k in range(1, n_classes + 1):
        mask = labels == k
        comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        if n > 1:
            sizes = np.bincount(comp.ravel())[1:]
            out[mask & (comp != 1 + int(np.argmax(sizes)))] = 0
    return out


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing_zyx: Sequence[float], class_names: Sequence[str],
                 tolerance_mm: float, case: str = "") -> List[Dict]:
    """One row per class (labels 1..K) with Dice, NSD@tolerance and HD95 in mm."""
    import warnings

    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    k = len(class_names)
    p = torch.nn.functional.one_hot(torch.from_numpy(pred.astype(np.int64)), k + 1).permute(3, 0, 1, 2)[None]
    r = torch.nn.functional.one_hot(torch.from_numpy(ref.astype(np.int64)), k + 1).permute(3, 0, 1, 2)[None]
    spacing = [float(s) for s in spacing_zyx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on empty masks; handled below
        dice = compute_dice(p, r, include_background=False)[0].numpy()
        nsd = compute_surface_dice(p.float(), r.float(), [float(tolerance_mm)] * k,
                                   include_background=False, spacing=spacing)[0].numpy()
        hd95 = compute_hausdorff_distance(p, r, include_background=False, percentile=95,
                                          spacing=spacing)[0].numpy()
    rows = []
    for c in range(k):
        n_ref, n_pred = int(r[0, c + 1].sum()), int(p[0, c + 1].sum())
        if n_ref == 0:
            d = s = h = float("nan")
        elif n_pred == 0:
            d, s, h = 0.0, 0.0, float("inf")
        else:
            d, s, h = float(dice[c]), float(nsd[c]), float(hd95[c])
        rows.append({"case": case, "class": class_names[c], "dice": d, "nsd": s, "hd95_mm": h,
                     "tolerance_mm": float(tolerance_mm), "ref_voxels": n_ref, "pred_voxels": n_pred})
    return rows


def evaluate_cases(
    model,
    cases: Sequence[SegCase],
    config: SegConfig,
    *,
    tolerance_mm: float = 3.0,
    device: str = "cpu",
    predictions_dir: Optional[Union[str, os.PathLike]] = None,
    largest_component: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> List[Dict]:
    """Rows for every case and class (see :func:`case_metrics`).

    ``model`` and ``config`` come from :func:`load_segmenter`; ``cases``
    from :func:`load_seg_dataset`. Each row: ``case``, ``class``, ``dice``,
    ``nsd`` (normalised surface Dice at ``tolerance_mm``), ``hd95_mm``
    (mm), voxel counts. ``predictions_dir`` also writes each prediction as
    a label volume. ``largest_component`` keeps one island per class before
    measuring. Raises :class:`OperationCancelled` on ``cancel``; a
    prediction that cannot be written raises :class:`VolumeWriteError`.
    """
    tracker = Tracker(len(cases), "cases", progress, cancel)
    rows: List[Dict] = []
    for case in cases:
        pred = predict_case(model, case, config, device)
        if largest_component:
            pred = keep_largest_component(pred, config.n_classes)
        native = case.native_labels
        ref = native.array if native is not None else case.labels
        spacing = native.spacing_zyx if native is not None else case.spacing_zyx
        rows += case_metrics(pred, ref, spacing, config.class_names, tolerance_mm, case.name)
        if predictions_dir is not None and native is not None:
            from ..io import write_volume

            vol = native.with_array(pred).to_source_orientation()
            write_volume(vol, Path(predictions_dir) / f"{case.name}_pred.nii.gz")
        tracker.advance()
    return rows


def summarise(rows: Sequence[Dict]) -> Dict:
    """Per-class means over cases (NaN excluded; HD95 over hits, misses counted)."""
    out: Dict = {}
    for name in dict.fromkeys(r["class"] for r in rows):
        sel = [r for r in rows if r["class"] == name and not math.isnan(r["dice"])]
        hd = [r["hd95_mm"] for r in sel if math.isfinite(r["hd95_mm"])]
        out[name] = {
            "n_cases": len(sel),
            "dice": _mean([r["dice"] for r in sel]),
            "nsd": _mean([r["nsd"] for r in sel]),
            "hd95_mm": _mean(hd),
            "missed": sum(1 for r in sel if r["pred_voxels"] == 0),
        }
    return out


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def write_evaluation(rows: Sequence[Dict], out_dir: Union[str, os.PathLike], tolerance_mm: float,
                     extra: Optional[Dict] = None) -> Path:
    """``per_case.csv`` (tolerance in every row) and ``summary.json`` in ``out_dir``."""
    from ..batch.runner import atomic_write_text

    out = Path(out_dir)
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EVAL_COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(out / EVAL_CSV, buf.getvalue())
    summary = {"tolerance_mm": float(tolerance_mm), "nsd": f"normalised surface Dice at {tolerance_mm:g} mm",
               "hd95": "95th percentile symmetric Hausdorff distance, mm", "classes": summarise(rows),
               **(extra or {})}
    atomic_write_text(out / EVAL_JSON, json.dumps(summary, indent=2, default=str))
    return out / EVAL_CSV


def read_evaluation(path: Union[str, os.PathLike]) -> List[Dict]:
    """Rows of a ``per_case.csv`` (or of the one inside a folder), numbers parsed."""
    p = Path(path)
    if p.is_dir():
        p = p / EVAL_CSV
    from ..errors import ConfigError

    if not p.is_file():
        raise ConfigError(f"{p}: no evaluation table (run 'ctfoundation seg evaluate' first)")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            for k in ("dice", "nsd", "hd95_mm", "tolerance_mm"):
                r[k] = float(r[k])
            for k in ("ref_voxels", "pred_voxels"):
                r[k] = int(r[k])
    except (UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{p}: damaged evaluation table ({type(exc).__name__}: {exc})") from None
    return rows
