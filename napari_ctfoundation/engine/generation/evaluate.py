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
  and adds determinism (same seed twice) and the effect of a mask edit.
* ``estimate_shift`` / mask edit: the organ map is shifted sideways by
  ``s`` voxels and generated again with the same seed; the displacement of
  the generated anatomy is the shift maximising the normalised
  cross-correlation (inside the original organ masks) between the original
  and the edited generation, and between the real CT and the edited
  generation. A model that ignores the masks gives 0, one that follows them
  gives ``s``; ``follow_ratio`` is the least-squares slope of estimated vs
  requested shifts over all edits (1 = follows, 0 = ignores). Adherence to
  the edited vs the original mask is kept as well.

A case without an organ mask (e.g. a tumour-labelled chest CT) is generated
with the null organ condition on its CT's grid and counts for determinism
and the Frechet distance; organ HU figures, adherence and the mask edit need
organs, so they are skipped for it and the report says so (``skipped``).
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


def shift_array(array: np.ndarray, shift: int, axis: int = 2, fill: float = 0) -> np.ndarray:
    """``array`` moved by ``shift`` whole voxels along ``axis`` (no wrap-around; ``fill`` enters)."""
    out = np.full_like(array, fill)
    n = array.shape[axis]
    s = int(shift)
    if abs(s) >= n:
        return out
    src = [slice(None)] * array.ndim
    dst = [slice(None)] * array.ndim
    src[axis] = slice(max(0, -s), n - max(0, s))
    dst[axis] = slice(max(0, s), n - max(0, -s))
    out[tuple(dst)] = array[tuple(src)]
    return out


def estimate_shift(reference: np.ndarray, moved: np.ndarray, axis: int = 2, max_shift: int = 16,
                   mask: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Displacement ``d`` along ``axis`` such that ``moved[p + d]`` best matches ``reference[p]``.

    Normalised cross-correlation over the voxels ``p`` of ``mask`` (all when
    None) for every whole shift in ``[-max_shift, max_shift]``; the peak is
    refined to a fraction of a voxel with a parabola through its neighbours.
    Returns ``shift`` (sub-voxel), ``integer_shift``, ``ncc`` at the peak and
    ``ncc_at_zero``.
    """
    a_full = np.asarray(reference, np.float64)
    b_full = np.asarray(moved, np.float64)
    m_full = np.ones(a_full.shape, bool) if mask is None else np.asarray(mask, bool)
    n = a_full.shape[axis]
    shifts = list(range(-int(max_shift), int(max_shift) + 1))
    scores = []
    for d in shifts:
        if abs(d) >= n:
            scores.append(-np.inf)
            continue
        sa = [slice(None)] * a_full.ndim
        sb = [slice(None)] * a_full.ndim
        sa[axis] = slice(max(0, -d), n - max(0, d))
        sb[axis] = slice(max(0, d), n - max(0, -d))
        m = m_full[tuple(sa)]
        a, b = a_full[tuple(sa)][m], b_full[tuple(sb)][m]
        if a.size < 10:
            scores.append(-np.inf)
            continue
        a, b = a - a.mean(), b - b.mean()
        den = np.sqrt((a * a).sum() * (b * b).sum())
        scores.append(float((a * b).sum() / den) if den > 0 else 0.0)
    k = int(np.argmax(scores))
    best = float(shifts[k])
    if 0 < k < len(shifts) - 1 and np.isfinite(scores[k - 1]) and np.isfinite(scores[k + 1]):
        y0, y1, y2 = scores[k - 1], scores[k], scores[k + 1]
        curv = y0 - 2 * y1 + y2
        if curv < 0:
            best += float(np.clip(0.5 * (y0 - y2) / curv, -0.5, 0.5))
    return {"shift": best, "integer_shift": shifts[k], "ncc": float(scores[k]),
            "ncc_at_zero": float(scores[shifts.index(0)])}


def follow_ratio(requested: Sequence[float], estimated: Sequence[float]) -> float:
    """Least-squares slope through the origin of estimated vs requested shifts."""
    r = np.asarray(requested, float)
    e = np.asarray(estimated, float)
    return float((r * e).sum() / (r * r).sum()) if (r * r).sum() > 0 else float("nan")


def _organ_vs_real(real: Dict[str, Any], generated_mean: float, **extra: Any) -> Dict[str, Any]:
    """A generated organ mean beside the real organ's stats; the issue's test is whether it lies
    inside the real organ's [p10, p90]."""
    return {"real_mean": real["real_mean"], "real_p10": real["real_p10"], "real_p90": real["real_p90"],
            "generated_mean": generated_mean,
            "mean_in_real_p10_p90": bool(real["real_p10"] <= generated_mean <= real["real_p90"]), **extra}


def _organs_over_seeds(runs: Sequence[Dict[str, Any]], guidance_scales: Sequence[float]) -> Dict[float, Dict[str, Any]]:
    """Per guidance scale and organ: the generated mean HU averaged over seeds, and whether
    it lies inside the real organ's [p10, p90] (one seed is one draw: this is the steadier figure)."""
    out: Dict[float, Dict[str, Any]] = {}
    for g in guidance_scales:
        mine = [r["organs"] for r in runs if r["guidance"] == g]
        per: Dict[str, Any] = {}
        for name, o in mine[0].items():
            mean = float(np.mean([m[name]["generated_mean"] for m in mine]))
            per[name] = _organ_vs_real(o, mean, seeds=len(mine))
        out[g] = per
    return out


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
    cases: Sequence[Tuple[Volume, Optional[Volume], str]],
    *,
    guidance_scales: Sequence[float] = (1.0, 2.0),
    seeds: Sequence[int] = (0,),
    steps: int = 20,
    sampler: str = "ddim",
    edit_shifts: Sequence[int] = (4, -8, 12),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Dict[str, Any]:
    """Generate for every (CT, organ mask, report) and compare with the real CT.

    Volumes are compared in display orientation on the mask's grid.
    ``pipe`` is a :class:`GenerationPipeline`; ``cases`` are ``(CT volume,
    organ label volume or None, report)`` triples on one grid. Per guidance scale
    and seed it measures organ mean HU against the real organ (HU),
    adherence to the mask, a VAE-feature Frechet distance, determinism
    (same seed twice, max difference in HU) and whether shifting the mask
    by ``edit_shifts`` voxels along x moves the anatomy. Returns a
    JSON-ready dict; progress in generated volumes. Raises what
    :meth:`GenerationPipeline.generate` raises for bad masks. A case
    whose organ volume is None is generated with the null organ condition
    (an organ map without organs on the CT's grid); its organ HU figures,
    adherence and mask edits are skipped and listed under ``skipped``.
    """
    window = pipe.hu_window
    edit_shifts = [int(v) for v in edit_shifts if int(v) != 0]
    n_runs = sum(len(guidance_scales) * len(seeds) + 1 + (len(edit_shifts) if c[1] is not None else 0)
                 for c in cases)
    tracker = Tracker(n_runs, "volumes", progress, cancel)
    report: Dict[str, Any] = {"settings": {"steps": steps, "sampler": sampler, "seeds": list(seeds),
                                           "guidance_scales": list(guidance_scales), "hu_window": window.as_list()},
                              "cases": [], "by_guidance": {}, "skipped": []}
    real_feats, gen_feats = [], {g: [] for g in guidance_scales}
    start = time.perf_counter()
    for ci, (ct, organs, text) in enumerate(cases):
        ct_d = ct.to_display()
        real_hu = np.clip(ct_d.array, window.lo, window.hi)
        real_feats.append(vae_slice_features(real_hu, pipe.vae, window))
        if organs is None:
            # an organ map without organs is the null organ condition (conditioning.condition_tensor)
            condition, org_d, ref = ct.with_array(np.zeros(ct.shape, np.uint8)), None, {}
            entry: Dict[str, Any] = {"report": text, "no_organ_mask": True, "real_organs": ref, "runs": [],
                                     "mask_edits": []}
        else:
            condition, org_d = organs, organs.to_display()
            ref = organ_hu_stats(real_hu, org_d.array)
            entry = {"report": text, "real_organs": ref, "runs": []}
        first = None
        for g in guidance_scales:
            for seed in seeds:
                res = pipe.generate(condition, text, seed=seed, steps=steps, sampler=sampler, guidance=g,
                                    cancel=cancel)
                gen = res.volume.array
                first = gen if first is None else first
                gen_feats[g].append(vae_slice_features(gen, pipe.vae, window))
                run: Dict[str, Any] = {"guidance": g, "seed": seed}
                if org_d is not None:
                    adh = mask_adherence(gen, org_d.array, ref)
                    run.update(adherence=adh["adherence"], mean_abs_organ_error_hu=adh["mean_abs_organ_error_hu"],
                               organs={ref[k]["name"]: _organ_vs_real(
                                   {"real_mean": ref[k]["mean"], "real_p10": ref[k]["p10"], "real_p90": ref[k]["p90"]},
                                   ref[k]["mean"] + v["mean_error_hu"], in_range=v["in_range"])
                                   for k, v in adh["per_organ"].items()})
                run["seconds"] = res.seconds
                entry["runs"].append(run)
                tracker.advance()
        entry["organs_over_seeds"] = _organs_over_seeds(entry["runs"], guidance_scales) if org_d is not None else {}
        # determinism: the first run repeated with the same seed
        again = pipe.generate(condition, text, seed=seeds[0], steps=steps, sampler=sampler,
                              guidance=guidance_scales[0], cancel=cancel).volume.array
        entry["determinism_max_abs_diff_hu"] = float(np.abs(again - first).max())
        tracker.advance()
        if org_d is None:
            report["skipped"].append(f"case {ci}: no organ mask; organ HU figures, adherence and the "
                                     "mask-edit follow ratio skipped")
            report["cases"].append(entry)
            continue
        # mask edit: shift the organ map sideways (same seed); the anatomy should follow
        fg = org_d.array > 0
        guidance_edit = guidance_scales[-1]
        base = first if guidance_edit == guidance_scales[0] else pipe.generate(
            organs, text, seed=seeds[0], steps=steps, sampler=sampler, guidance=guidance_edit,
            cancel=cancel).volume.array
        unedited = estimate_shift(real_hu, base, axis=2, max_shift=2 * max(map(abs, edit_shifts or [4])), mask=fg)
        edits = []
        for s in edit_shifts:
            shifted = shift_array(org_d.array, s, axis=2)
            edited = pipe.generate(org_d.with_array(shifted), text, seed=seeds[0], steps=steps, sampler=sampler,
                                   guidance=guidance_edit, cancel=cancel).volume.array
            reach = 2 * abs(s)
            vs_gen = estimate_shift(base, edited, axis=2, max_shift=reach, mask=fg)
            vs_real = estimate_shift(real_hu, edited, axis=2, max_shift=reach, mask=fg)
            edits.append({"shift_voxels_x": s, "guidance": guidance_edit,
                          "estimated_vs_original_generation": vs_gen["shift"],
                          "estimated_vs_real_ct": vs_real["shift"],
                          "ncc_vs_original_generation": vs_gen["ncc"], "ncc_vs_real_ct": vs_real["ncc"],
                          "adherence_to_edited_mask": mask_adherence(edited, shifted, ref)["adherence"],
                          "adherence_to_original_mask": mask_adherence(edited, org_d.array, ref)["adherence"]})
            tracker.advance()
        entry["mask_edits"] = edits
        entry["unedited_shift_vs_real_ct"] = unedited["shift"]
        if edits:
            req = [e["shift_voxels_x"] for e in edits]
            entry["follow_ratio_vs_original_generation"] = follow_ratio(req, [e["estimated_vs_original_generation"] for e in edits])
            entry["follow_ratio_vs_real_ct"] = follow_ratio(req, [e["estimated_vs_real_ct"] for e in edits])
            entry["mask_edit"] = edits[0]  # first edit, as in earlier reports
        report["cases"].append(entry)
    real = np.concatenate(real_feats)
    for g in guidance_scales:
        # organ figures over the cases with an organ mask only (NaN when there is none)
        runs = [r for c in report["cases"] for r in c["runs"] if r["guidance"] == g and "adherence" in r]
        report["by_guidance"][str(g)] = {
            "adherence": float(np.mean([r["adherence"] for r in runs])) if runs else float("nan"),
            "mean_abs_organ_error_hu": (float(np.mean([r["mean_abs_organ_error_hu"] for r in runs]))
                                        if runs else float("nan")),
            "frechet_vae": frechet_distance(real, np.concatenate(gen_feats[g])),
        }
    followed = [c for c in report["cases"] if "follow_ratio_vs_original_generation" in c]
    if followed:
        report["mask_edit_follow_ratio"] = {
            "vs_original_generation": float(np.mean([c["follow_ratio_vs_original_generation"] for c in followed])),
            "vs_real_ct": float(np.mean([c["follow_ratio_vs_real_ct"] for c in followed]))}
    report["seconds"] = time.perf_counter() - start
    return report
