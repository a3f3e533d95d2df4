"""``GenerationPipeline``: a trained conditional latent-diffusion model, ready to sample.

A pipeline folder holds ``pipeline.json`` (denoiser config, scheduler
config, VAE spec and HU window, text-encoder spec, label vocabularies,
latent scaling, window size, training summary, and ``spacing_xyz`` when the
model was trained on a cache resampled to one spacing) and
``denoiser.safetensors``.
The VAE and the text encoder are *references* (specs), loaded on first use,
so a checkpoint stays small and the frozen models are shared.
``from_pretrained("demo")`` loads the checkpoint shipped in the package.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ..errors import ConfigError
from ..progress import CancelCheck, ProgressCallback
from ..volume import Volume
from ..window import HUWindow
from .conditioning import check_label_ids, condition_tensor, findings_from_dict, latent_grid, mask_to_latent, parse_findings

PIPELINE_VERSION = 1
CONFIG_NAME = "pipeline.json"
WEIGHTS_NAME = "denoiser.safetensors"
DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "generation_demo"
# Shown wherever the demo is used: it exists so the tool runs offline, not to generate usable CT.
DEMO_NOTE = ("demo: a toy model trained here on two patients; it overfits them and is not a CT generator: "
             "on a chest CT it never saw, 10 of 46 organs get a mean HU in the real range (docs/generation.md). "
             "Train your own with: ctfoundation gen train.")


def resolve_model_dir(spec: Union[str, Path]) -> Path:
    """``demo`` -> the shipped checkpoint; otherwise a pipeline folder."""
    path = DEMO_DIR if str(spec) == "demo" else Path(spec).expanduser()
    if not (path / CONFIG_NAME).is_file():
        what = "the shipped demo checkpoint is missing" if str(spec) == "demo" else "not a generation model folder"
        raise ConfigError(f"{path}: {what} (no {CONFIG_NAME})")
    return path


@dataclass
class GenerationResult:
    """What :meth:`GenerationPipeline.generate` returns.

    ``volume``: the generated CT, float32 HU ``[z, y, x]`` in display
    orientation (LPS) on the organ mask's grid (None with ``decode=False``);
    ``latents``: ``(C, t, h, w)`` raw VAE latents, on the grid the model
    sampled (the training spacing for a model that has one); ``settings``:
    model, report, seed, steps, sampler, guidance, versions, and
    ``generated_at_spacing`` for such a model (the sidecar);
    ``seconds`` and per-stage ``timings``.
    """

    volume: Volume  # float32 HU, display orientation, geometry of the organ mask
    latents: np.ndarray  # (C, t, h, w) raw VAE latents
    settings: Dict[str, Any]
    seconds: float
    timings: Dict[str, float] = field(default_factory=dict)


class GenerationPipeline:
    """A trained conditional latent-diffusion model, ready to sample CT from masks and a report.

    ``GenerationPipeline.from_pretrained("demo")`` loads the toy checkpoint
    shipped in the package (trained on two patients; it overfits them), a
    folder loads one written by :func:`train_generation` or
    :meth:`save_pretrained`. :meth:`generate` samples a CT for an organ
    label map (TotalSegmentator v2 ids), an optional disease mask and a
    report, from a seed. The frozen VAE and text encoder are loaded on
    first use.
    """

    def __init__(self, denoiser, config: Dict[str, Any], device: str = "cpu") -> None:
        self.denoiser = denoiser.to(device).eval()
        self.config = config
        self.device = device
        self._vae = None
        self._text = None

    # ------------------------------------------------------------ persistence
    def save_pretrained(self, folder: Union[str, Path]) -> Path:
        """Write ``pipeline.json`` and ``denoiser.safetensors`` to ``folder`` (atomically); returns it."""
        from safetensors.torch import save_file

        from ..atomic import atomic_path, atomic_write_json

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.denoiser.state_dict().items()}
        with atomic_path(out / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp))
        atomic_write_json(out / CONFIG_NAME, self.config, indent=1)
        return out

    @classmethod
    def from_pretrained(cls, spec: Union[str, Path] = "demo", device: str = "auto") -> "GenerationPipeline":
        """Load ``"demo"`` (shipped) or a pipeline folder (``pipeline.json`` + ``denoiser.safetensors``).

        Raises :class:`ConfigError` for a folder that is not a generation
        model, another format version, or weights that do not fit the config.
        """
        from ..read_guard import build_checked, load_weights, read_json_object
        from ..vae import resolve_device
        from .denoiser import ConditionalDenoiser


        folder = resolve_model_dir(spec)
        config = read_json_object(folder / CONFIG_NAME, "pipeline config")
        if config.get("format_version") != PIPELINE_VERSION:
            raise ConfigError(f"{folder}: pipeline format {config.get('format_version')} is not {PIPELINE_VERSION}")
        if config.get("spacing_xyz") is not None:  # older files lack it: they generate on the mask's grid
            _check_spacing(config["spacing_xyz"], folder / CONFIG_NAME)
        model = build_checked(lambda: ConditionalDenoiser(config["denoiser"]), folder / WEIGHTS_NAME,
                              folder / CONFIG_NAME, "denoiser")
        try:
            model.load_state_dict(load_weights(folder / WEIGHTS_NAME), strict=True)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(f"{folder / WEIGHTS_NAME}: weights do not fit the config ({str(exc)[:200]})") from None
        pipe = cls(model, config, resolve_device(device))
        pipe.config["source"] = str(spec)
        return pipe

    # --------------------------------------------------------------- helpers
    @property
    def vae(self):
        if self._vae is None:
            from ..vae import load_vae

            self._vae = load_vae(self.config["vae"]["spec"], device=self.device)
        return self._vae

    @property
    def text_encoder(self):
        if self._text is None:
            from .text import load_text_encoder

            te = self.config["text_encoder"]
            self._text = load_text_encoder(te["spec"], max_tokens=te["max_tokens"], device=self.device)
        return self._text

    @property
    def hu_window(self) -> HUWindow:
        return HUWindow(*self.config["hu_window"])

    def encode_report(self, report: str, findings: Optional[Dict[str, float]] = None):
        """Token embeddings (1, L, D) and finding flags (18,) for one report."""
        if report and report.strip():
            tokens, _ = self.text_encoder.encode([report.strip()])
        else:  # empty report = the null text condition
            te = self.config["text_encoder"]
            tokens = np.zeros((1, te["max_tokens"], te["dim"]), np.float32)
        flags = findings_from_dict(findings) if findings else parse_findings(report or "")
        return tokens, flags

    def normalise(self, latents: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.config["latent_mean"], np.float32)[:, None, None, None]
        std = np.asarray(self.config["latent_std"], np.float32)[:, None, None, None]
        return (latents - mean) / std

    def denormalise(self, latents: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.config["latent_mean"], np.float32)[:, None, None, None]
        std = np.asarray(self.config["latent_std"], np.float32)[:, None, None, None]
        return latents * std + mean

    def condition(self, organ_mask: np.ndarray, disease_mask: Optional[np.ndarray], padded_hw) -> np.ndarray:
        f = int(self.config["vae"]["spatial_factor"])
        organs = mask_to_latent(organ_mask, f, padded_hw)
        disease = None if disease_mask is None else mask_to_latent(disease_mask, f, padded_hw)
        d = self.config["denoiser"]
        return condition_tensor(organs, disease, organs.grid, d["n_organs"], d["n_lesions"])

    # --------------------------------------------------------------- sampling
    def generate(
        self,
        organ_mask: Volume,
        report: str = "",
        disease_mask: Optional[Volume] = None,
        *,
        findings: Optional[Dict[str, float]] = None,
        seed: int = 0,
        steps: int = 20,
        sampler: str = "ddim",
        guidance: float = 1.0,
        guidance_text: Optional[float] = None,
        window: Optional[int] = None,
        overlap: Optional[int] = None,
        decode: bool = True,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelCheck] = None,
    ) -> GenerationResult:
        """CT conditioned on an organ label map (its grid is the output grid).

        ``organ_mask`` is a label :class:`Volume` (TotalSegmentator v2 ids,
        any orientation; see :func:`read_labels`), ``disease_mask`` an
        optional lesion label map on the same grid, ``report`` free text
        (findings are parsed from it unless ``findings`` is given). The same
        ``seed`` gives the same CT. ``steps`` sampler steps of ``sampler``
        (ddim, dpmpp, ddpm); ``guidance`` scales the mask condition and,
        unless ``guidance_text`` is given, the text condition too. The
        result is in display orientation; write it with
        ``volume.to_source_orientation()``. Progress in steps.

        A model trained at one spacing (``config["spacing_xyz"]``, 0 = native
        on that axis) learned anatomy at that scale: the masks are resampled
        there (nearest), sampled there, and the CT is resampled back (linear)
        onto the organ mask's exact grid; ``settings["generated_at_spacing"]``
        records where. Masks already at that spacing are used as they are.

        Raises :class:`ConfigError` for label ids outside the vocabularies,
        a disease mask of another shape, or an unknown sampler;
        :class:`OperationCancelled` on ``cancel``.
        """
        from ..latents import LatentVolume, decode_latents
        from .sampling import sample_latents

        start = time.perf_counter()
        organs = organ_mask.to_display()
        check_label_ids(organs.array, "organ", "organ mask")
        disease = None
        if disease_mask is not None:
            disease = disease_mask.to_display()
            if disease.shape != organs.shape:
                raise ConfigError(f"disease mask shape {disease.shape} differs from organ mask shape {organs.shape}")
            check_label_ids(disease.array, "lesion", "disease mask")
        # the grid the model samples on: the organ mask's own, or its resampling to the training spacing
        grid, grid_disease = organs, disease
        at_spacing = None
        if self.config.get("spacing_xyz") is not None:
            from ..resample import resample_to_spacing, target_spacing

            at_spacing = target_spacing(organs, self.config["spacing_xyz"])
            grid = resample_to_spacing(organs, at_spacing, labels=True)
            if disease is not None:  # "on the same grid" as the organ mask, as without resampling
                grid_disease = resample_to_spacing(organs.with_array(disease.array), at_spacing, labels=True)
        f = int(self.config["vae"]["spatial_factor"])
        t, h, w, ph, pw = latent_grid(grid.shape, f)
        cond = self.condition(grid.array, None if grid_disease is None else grid_disease.array, (ph, pw))
        tokens, flags = self.encode_report(report, findings)
        t_text = time.perf_counter()
        g_text = guidance if guidance_text is None else guidance_text
        win = int(window or self.config["window"]["depth"])
        ovl = int(self.config["window"]["overlap"] if overlap is None else overlap)
        z = sample_latents(
            self.denoiser, self.config["scheduler"], cond, tokens,
            flags if self.config["denoiser"].get("use_findings") else None,
            latent_channels=int(self.config["denoiser"]["latent_channels"]), seed=seed, steps=steps,
            sampler=sampler, guidance_mask=guidance, guidance_text=g_text, window=win,
            overlap=min(ovl, max(win - 1, 0)), device=self.device, progress=progress, cancel=cancel)
        t_sample = time.perf_counter()
        latents = self.denormalise(z)
        settings = {
            "model": self.config.get("source", ""), "report": report, "findings": flags.tolist(),
            "seed": int(seed), "steps": int(steps), "sampler": sampler, "guidance_mask": float(guidance),
            "guidance_text": float(g_text), "window": win, "overlap": ovl,
            "vae": self.config["vae"]["spec"], "text_encoder": self.config["text_encoder"]["spec"],
            "hu_window": self.config["hu_window"], "versions": versions(),
        }
        if at_spacing is not None:
            settings["generated_at_spacing"] = [float(v) for v in at_spacing]
        volume = None
        if decode:
            lv = LatentVolume(latents=latents[None].astype(np.float32), window_starts=[0], window_slices=t,
                              vae=self.config["vae"], hu_window=self.hu_window,
                              geometry=grid.geometry_dict(), padded_hw=(ph, pw), shape_zyx=grid.shape)
            volume = decode_latents(lv, self.vae, cancel=cancel)
            if grid is not organs:
                from ..resample import resample_onto

                # nearest-value edges: the rounded coarse grid can fall short of the mask's far edge
                volume = resample_onto(volume, organs, labels=False, extrapolate=True)
            volume.metadata.update(generation=settings)
        end = time.perf_counter()
        return GenerationResult(volume, latents, settings, end - start,
                                {"text_s": t_text - start, "sample_s": t_sample - t_text, "decode_s": end - t_sample})


def _check_spacing(value: Any, where: Path) -> None:
    """A pipeline's ``spacing_xyz`` must be three numbers >= 0 (0 = native on that axis)."""
    from ..resample import check_spacing

    try:
        check_spacing(value)
        ok = isinstance(value, list) and None not in value  # JSON: a list of numbers, no nulls
    except ConfigError:
        ok = False
    if not ok:
        raise ConfigError(f"{where}: spacing_xyz {value!r} is not three values x,y,z in mm (>= 0; 0 = native)")


def versions() -> Dict[str, str]:
    """Package versions for sidecars."""
    import importlib.metadata as md

    out = {}
    for name in ("napari-ctfoundation", "torch", "diffusers", "monai", "transformers", "sentence-transformers"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out
