"""Evaluation without downloaded models.

* ``organ_hu_stats``: mean/std/percentiles of HU inside every organ mask.
* ``mask_adherence``: fraction of generated voxels of each organ whose HU lies
  within the real organ's [p10, p90] interval (voxel-weighted over organs),
  plus the per-organ error of the mean HU.
* ``frechet_distance`` of per-slice features of the *frozen VAE encoder*
  (channel means and standard deviations of each slice's latent) between
  real and generated sets (the FID recipe with the VAE as feature network;
  with few slices the covariances are regularised, so compare values
  computed the same way only).
* ``evaluate_pipeline`` ties these together over cases and guidance scales,
  and adds determinism (same seed twice) and the effect of a mask edit
  (the organ mask shifted: adherence to the edited vs the original mask).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..progress import CancelCheck, ProgressCallback, Tracker
from ..volume import Volume
from ..window import HUWindow
from .vocab import organ_names


def organ_hu_stats(hu: np.ndarray, labels: np.ndarray, min_voxels: int = 20) -> Dict[int, Dict[str, float]]:
    names = organ_names()
    out = {}
    for label in np.unique(labels):
        if label == 0:
            continue
        values = hu[labels == label]
        if values.size < min_voxels:
            continue
        p10, p50, p90 = np.percentile(values, [10, 50, 90])
        out[int(label)] = {"name": names.get(int(label), f"label {label}"), "n": int(values.size),
                           "mean": float(values.mean()), "std": float(values.std()),
                           "p10": float(p10), "median": float(p50), "p90": float(p90)}
    return out


def mask_adherence(generated: np.ndarray, labels: np.ndarray, reference: Dict[int, Dict[str, float]]) -> Dict[str, Any]:
    """How well generated HU follow the organ masks, judged by real-CT organ HU."""
    per, inside, total, errors = {}, 0, 0, []
    for label, ref in reference.items():
        values = generated[labels == label]
        if values.size == 0:
            continue
        hit = int(((values >= ref["p10"]) & (values <= ref["p90"])).sum())
        per[label] = {"name": ref["name"], "in_range": hit / values.size,
                      "mean_error_hu": float(values.mean() - ref["mean"])}
        inside += hit
        total += values.size
        errors.append(abs(per[label]["mean_error_hu"]))
    return {"adherence": inside / total if total else float("nan"),
            "mean_abs_organ_error_hu": float(np.mean(errors)) if errors else float("nan"), "per_organ": per}


def vae_slice_features(volume_hu: np.ndarray, vae, window: HUWindow) -> np.ndarray:
    """(slices, 2C): channel means and std of each slice's frozen-VAE latent."""
    from ..latents import encode_volume

    lv = encode_volume(Volume(np.ascontiguousarray(volume_hu, np.float32)), vae, window)
    lat = lv.latents[0]  # (C, t, h, w)
    return np.concatenate([lat.mean(axis=(2, 3)).T, lat.std(axis=(2, 3)).T], axis=1).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` and ``b`` (rows = samples)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = np.cov(a, rowvar=False) + eps * np.eye(a.shape[1])
    s2 = np.cov(b, rowvar=False) + eps * np.eye(b.shape[1])
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = (covmean[0] if isinstance(covmean, tuple) else covmean).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def evaluate_pipeline(
    pipe,
    cases: Sequence[Tuple[Volume, Volume, str]],
    *,
    guidance_scales: Sequence[float] = (1.0, 2.0),
    seeds: Sequence[int] = (0,),
    steps: int = 20,
    sampler: str = "ddim",
    edit_shift: int = 4,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Dict[str, Any]:
    """Generate for every (CT, organ mask, report) and compare with the real CT.

    Volumes are compared in display orientation on the mask's grid.
    """
    window = pipe.hu_window
    n_runs = len(cases) * (len(guidance_scales) * len(seeds) + 2)
    tracker = Tracker(n_runs, "volumes", progress, cancel)
    report: Dict[str, Any] = {"settings": {"steps": steps, "sampler": sampler, "seeds": list(seeds),
                                           "guidance_scales": list(guidance_scales), "hu_window": window.as_list()},
                              "cases": [], "by_guidance": {}}
    real_feats, gen_feats = [], {g: [] for g in guidance_scales}
    start = time.perf_counter()
    for ci, (ct, organs, text) in enumerate(cases):
        ct_d, org_d = ct.to_display(), organs.to_display()
        real_hu = np.clip(ct_d.array, window.lo, window.hi)
        ref = organ_hu_stats(real_hu, org_d.array)
        real_feats.append(vae_slice_features(real_hu, pipe.vae, window))
        entry: Dict[str, Any] = {"report": text, "real_organs": ref, "runs": []}
        first = None
        for g in guidance_scales:
            for seed in seeds:
                res = pipe.generate(organs, text, seed=seed, steps=steps, sampler=sampler, guidance=g, cancel=cancel)
                gen = res.volume.array
                first = gen if first is None else first
                adh = mask_adherence(gen, org_d.array, ref)
                gen_feats[g].append(vae_slice_features(gen, pipe.vae, window))
                entry["runs"].append({"guidance": g, "seed": seed, "adherence": adh["adherence"],
                                      "mean_abs_organ_error_hu": adh["mean_abs_organ_error_hu"],
                                      "organs": {ref[k]["name"]: {"real_mean": ref[k]["mean"],
                                                                  "generated_mean": ref[k]["mean"] + v["mean_error_hu"],
                                                                  "in_range": v["in_range"]}
                                                 for k, v in adh["per_organ"].items()},
                                      "seconds": res.seconds})
                tracker.advance()
        # determinism: the first run repeated with the same seed
        again = pipe.generate(organs, text, seed=seeds[0], steps=steps, sampler=sampler,
                              guidance=guidance_scales[0], cancel=cancel).volume.array
        entry["determinism_max_abs_diff_hu"] = float(np.abs(again - first).max())
        tracker.advance()
        # mask edit: shift the organ map sideways; anatomy should follow the edit
        shifted = np.zeros_like(org_d.array)
        shifted[:, :, edit_shift:] = org_d.array[:, :, :-edit_shift] if edit_shift > 0 else org_d.array
        edited = pipe.generate(org_d.with_array(shifted), text, seed=seeds[0], steps=steps, sampler=sampler,
                               guidance=guidance_scales[-1], cancel=cancel).volume.array
        entry["mask_edit"] = {"shift_voxels_x": edit_shift,
                              "adherence_to_edited_mask": mask_adherence(edited, shifted, ref)["adherence"],
                              "adherence_to_original_mask": mask_adherence(edited, org_d.array, ref)["adherence"]}
        tracker.advance()
        report["cases"].append(entry)
    real = np.concatenate(real_feats)
    for g in guidance_scales:
        runs = [r for c in report["cases"] for r in c["runs"] if r["guidance"] == g]
        report["by_guidance"][str(g)] = {
            "adherence": float(np.mean([r["adherence"] for r in runs])),
            "mean_abs_organ_error_hu": float(np.mean([r["mean_abs_organ_error_hu"] for r in runs])),
            "frechet_vae": frechet_distance(real, np.concatenate(gen_feats[g])),
        }
    report["seconds"] = time.perf_counter() - start
    return report
