"""Training the conditional denoiser on a latent cache, with ``accelerate``.

One optimisation step = ``grad_accum`` micro-batches of random latent
windows ``crop = (t, h, w)`` (smaller cases are zero-padded and the padding
is left out of the loss). Conditions are dropped for classifier-free
guidance: masks with ``p_drop_mask``, report + findings with
``p_drop_text``, independently. The loss is the MSE of the eps or v
prediction (DDPM noise schedule of ``schedule.py``).

``accelerate`` gives CPU / one GPU / many GPUs (``accelerate launch``),
mixed precision on GPU and gradient accumulation. Checkpoints
(``checkpoints/step_N``: weights, EMA, optimiser, scheduler, RNG states and
a copy of the log) are atomic and pickle-free (``engine/checkpointing.py``);
resuming takes the newest intact one. An exponential moving average of
the weights is kept beside and is what ``model/`` holds. ``loss.jsonl`` logs
every ``log_every`` steps, each step once even across resumes; ``previews/`` gets a PNG (real vs generated middle
slice of the first case) every ``preview_every`` steps.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError
from ..lr_schedule import LR_SCHEDULES, lr_multiplier
from ..progress import CancelCheck, ProgressCallback, Tracker
from .cache import CachedCase, load_cache, read_index
from .conditioning import condition_tensor


@dataclass
class TrainConfig:
    """Settings of :func:`train_generation` (field comments give the details).

    ``steps`` optimiser steps of ``batch_size`` x ``grad_accum`` random
    latent windows of ``crop = (t, h, w)`` latent cells; ``lr`` with
    ``warmup_steps`` and ``lr_schedule``; ``ema_decay``; condition dropout
    ``p_drop_mask`` / ``p_drop_text`` for classifier-free guidance;
    ``denoiser`` overrides the network sizes; ``checkpoint_every`` and
    ``preview_every`` in steps. Raises :class:`ConfigError` for out-of-range
    values.
    """

    steps: int = 1000
    batch_size: int = 2
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    # "constant" after warm-up, or "cosine": decays to 0 at `steps`, which lets a
    # long constant-rate run settle into a lower loss
    lr_schedule: str = "constant"
    ema_decay: float = 0.999
    p_drop_mask: float = 0.1
    p_drop_text: float = 0.1
    crop: Tuple[int, int, int] = (8, 16, 16)
    prediction_type: str = "epsilon"
    mixed_precision: str = "auto"  # auto: bf16 on GPU if supported else fp16; no on CPU
    device: str = "auto"
    seed: int = 0
    text_encoder: str = "minilm"
    max_tokens: int = 64
    denoiser: Dict[str, Any] = field(default_factory=dict)
    window_overlap: Optional[int] = None  # sampling default; None = half the crop depth
    log_every: int = 10
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    preview_every: int = 250
    preview_steps: int = 10
    threads: Optional[int] = None  # torch CPU threads (None: leave as is)
    # Rare classes: probability that a window is centred on a cell of a class
    # drawn uniformly from the classes in the cache (nnU-Net-style
    # oversampling), and a loss weight per latent cell
    # 1 + sum_k fraction_k (c_k - 1), c_k = clip((mean class mass / mass_k)^power, 1, max).
    balance_classes: float = 0.0
    class_weight_power: float = 0.0
    class_weight_max: float = 5.0
    init_from: Optional[str] = None  # warm start: a model folder (or "demo") with the same denoiser config

    def __post_init__(self) -> None:
        self.crop = tuple(int(c) for c in self.crop)  # type: ignore[assignment]
        if len(self.crop) != 3 or min(self.crop) < 1:
            raise ConfigError(f"crop {self.crop}: need three positive sizes (t, h, w) in latent cells")
        for name in ("steps", "batch_size", "grad_accum"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("p_drop_mask", "p_drop_text", "balance_classes"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1]")
        if self.class_weight_power < 0 or self.class_weight_max < 1:
            raise ConfigError("class_weight_power must be >= 0 and class_weight_max >= 1")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule {self.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be within [0, 1), got {self.ema_decay}")



def lr_factor(cfg: TrainConfig):
    """Multiplier of ``cfg.lr`` per optimiser step: linear warm-up, then constant or cosine to 0."""
    return lr_multiplier(cfg.lr_schedule, cfg.steps, cfg.warmup_steps)


@dataclass
class TrainResult:
    model_dir: Path
    steps: int
    last_loss: float
    seconds: float
    resumed_from: Optional[int]


class EMA:
    """Exponential moving average of parameters (warm-up: decay grows with steps)."""

    def __init__(self, model, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    def update(self, model, step: int) -> None:
        import torch

        d = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if v.dtype.is_floating_point:
                    self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
                else:
                    self.shadow[k].copy_(v)


# ------------------------------------------------------------------- data
class WindowSampler:
    """Random latent windows with their conditions, as numpy batches."""

    def __init__(self, cases: List[CachedCase], tokens: np.ndarray, crop: Sequence[int],
                 mean: np.ndarray, std: np.ndarray, n_organs: int, n_lesions: int, seed: int,
                 balance: float = 0.0, weight_power: float = 0.0, weight_max: float = 5.0) -> None:
        self.cases = cases
        self.tokens = tokens  # (n_cases, L, D)
        self.crop = tuple(crop)
        self.rng = np.random.default_rng(seed)
        self.n_organs, self.n_lesions = n_organs, n_lesions
        self.balance = float(balance)
        self.latents = [((c.latents - mean[:, None, None, None]) / std[:, None, None, None]).astype(np.float32)
                        for c in cases]
        # a case without an organ mask (organs None) gets indicator and organ channels zero: the
        # dropped-mask condition; it adds no organ mass, so balancing and weights skip it
        self.conds = [condition_tensor(c.organs, c.disease, c.latents.shape[1:], n_organs, n_lesions)
                      for c in cases]
        # class mass (sum of fractions over all cells of all cases), channel 0 = indicator
        mass = np.sum([c[1:].sum(axis=(1, 2, 3)) for c in self.conds], axis=0)
        self.present = np.nonzero(mass > 0)[0] + 1  # condition channels of classes in the cache
        self.class_weights = np.ones(len(mass) + 1, np.float32)
        if weight_power > 0 and len(self.present):
            ref = mass[self.present - 1].mean()
            c = np.clip((ref / np.maximum(mass[self.present - 1], 1e-6)) ** weight_power, 1.0, weight_max)
            self.class_weights[self.present] = c
        self.weighted = weight_power > 0
        # cells where each class is the majority (or at least present), for centred windows
        self.centres: Dict[int, List[Tuple[int, np.ndarray]]] = {}
        if self.balance > 0:
            for ch in self.present:
                for i, cond in enumerate(self.conds):
                    frac = cond[ch]
                    cells = np.argwhere(frac >= 0.5)
                    if not len(cells):
                        cells = np.argwhere(frac > 0)
                    if len(cells):
                        self.centres.setdefault(int(ch), []).append((i, cells))

    def cell_weights(self, cond: np.ndarray) -> np.ndarray:
        """(1, t, h, w) loss weight: 1 + sum_k fraction_k (c_k - 1)."""
        extra = np.tensordot(self.class_weights[1:] - 1.0, cond[1:], axes=(0, 0))
        return (1.0 + extra)[None].astype(np.float32)

    def _start(self, i: int) -> Tuple[int, int, int]:
        """Window origin: random, or (with probability ``balance``) around a cell of a random class."""
        t, h, w = self.latents[i].shape[1:]
        if self.centres and self.rng.random() < self.balance:
            ch = list(self.centres)[int(self.rng.integers(len(self.centres)))]
            options = self.centres[ch]
            i, cells = options[int(self.rng.integers(len(options)))]
            t, h, w = self.latents[i].shape[1:]
            cell = cells[int(self.rng.integers(len(cells)))]
            # the cell lands anywhere inside the window, not always in its centre
            starts = [int(np.clip(c - self.rng.integers(0, k), 0, max(n - k, 0)))
                      for c, k, n in zip(cell, self.crop, (t, h, w))]
            return i, tuple(starts)  # type: ignore[return-value]
        return i, tuple(int(self.rng.integers(0, max(n - c, 0) + 1))  # type: ignore[return-value]
                        for n, c in zip((t, h, w), self.crop))

    def batch(self, size: int) -> Dict[str, np.ndarray]:
        ct, ch, cw = self.crop
        C = self.latents[0].shape[0]
        out = {
            "x": np.zeros((size, C, ct, ch, cw), np.float32),
            "cond": np.zeros((size, self.conds[0].shape[0], ct, ch, cw), np.float32),
            "valid": np.zeros((size, 1, ct, ch, cw), np.float32),
            "tokens": np.zeros((size,) + self.tokens.shape[1:], np.float32),
            "findings": np.zeros((size, len(self.cases[0].findings)), np.float32),
        }
        for b in range(size):
            i, (st, sh, sw) = self._start(int(self.rng.integers(len(self.cases))))
            lat, cond = self.latents[i], self.conds[i]
            sl = (slice(st, st + ct), slice(sh, sh + ch), slice(sw, sw + cw))
            piece = lat[(slice(None),) + sl]
            nt, nh, nw = piece.shape[1:]
            out["x"][b, :, :nt, :nh, :nw] = piece
            out["cond"][b, :, :nt, :nh, :nw] = cond[(slice(None),) + sl]
            # "valid" doubles as the loss weight (0 on padding)
            out["valid"][b, :, :nt, :nh, :nw] = (self.cell_weights(cond[(slice(None),) + sl])
                                                  if self.weighted else 1.0)
            out["tokens"][b] = self.tokens[i]
            out["findings"][b] = self.cases[i].findings
        return out


# --------------------------------------------------------------- training
def training_spacing(index: Dict[str, Any]) -> Optional[List[float]]:
    """The spacing (x, y, z mm; 0 = native on that axis) every case of a cache was resampled to, else None.

    Only a cache whose cases all share one ``resampled_to`` taught the model a
    single scale; mixed or native caches record nothing, so the model samples
    on the mask's own grid as before.
    """
    values = {None if c.get("resampled_to") is None else tuple(float(v) for v in c["resampled_to"])
              for c in index.get("cases", [])}
    if len(values) != 1:
        return None
    only = values.pop()
    return None if only is None else list(only)


def _pipeline_config(index: Dict[str, Any], cfg: TrainConfig, denoiser_cfg: Dict[str, Any],
                     sched_cfg: Dict[str, Any], text_desc: Dict[str, Any], step: int, loss: float) -> Dict[str, Any]:
    from .pipeline import PIPELINE_VERSION, versions

    overlap = cfg.window_overlap if cfg.window_overlap is not None else cfg.crop[0] // 2
    config = {
        "format_version": PIPELINE_VERSION,
        "denoiser": denoiser_cfg,
        "scheduler": sched_cfg,
        "vae": index["vae"],
        "hu_window": index["hu_window"],
        "text_encoder": {"spec": text_desc["spec"], "dim": text_desc["dim"], "max_tokens": text_desc["max_tokens"]},
        "vocabulary": index["vocabulary"],
        "latent_mean": index["latent_mean"],
        "latent_std": index["latent_std"],
        "window": {"depth": int(cfg.crop[0]), "overlap": int(min(overlap, cfg.crop[0] - 1))},
        "training": {"steps": step, "last_loss": loss, "config": asdict(cfg),
                     "cases": [c["name"] for c in index["cases"]], "versions": versions()},
    }
    spacing = training_spacing(index)
    if spacing is not None:  # the scale the model learned: generate() samples there (pipeline.py)
        config["spacing_xyz"] = spacing
    return config


def train(
    cache_dir: Union[str, Path],
    out_dir: Union[str, Path],
    config: Optional[TrainConfig] = None,
    *,
    resume: bool = True,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
    notify: Optional[Callable[[str], None]] = None,
) -> TrainResult:
    """Train (or resume) a conditional denoiser; the EMA model lands in ``out_dir/model``.

    ``cache_dir`` comes from :func:`build_generation_cache`; ``config`` is a
    :class:`GenerationTrainConfig` (default: its defaults). With
    ``resume=True`` a run continues from the last checkpoint in
    ``out_dir``. ``out_dir/model`` loads with
    ``GenerationPipeline.from_pretrained``. Returns a ``TrainResult``
    (``model_dir``, ``steps``, ``last_loss``, ``seconds``,
    ``resumed_from``); progress in steps. ``notify`` gets one line when the
    run resumes (which checkpoint, which step). Raises :class:`ConfigError`
    for a missing or invalid cache or mixed precision on the CPU;
    :class:`OperationCancelled` on ``cancel``.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from ..checkpointing import describe, latest_checkpoint, preserved_rng, restore_file, set_rng_state
    from ..vae import resolve_device
    from .denoiser import ConditionalDenoiser, denoiser_config
    from .pipeline import GenerationPipeline
    from .schedule import scheduler_config, training_scheduler
    from .text import load_text_encoder

    cfg = config or TrainConfig()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = read_index(cache_dir)
    cases = load_cache(cache_dir)
    device = resolve_device(cfg.device)
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "no" if device == "cpu" else ("bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16")
    if device == "cpu" and mp != "no":
        raise ConfigError(f"mixed precision {mp!r} is for GPUs; use 'no' on the CPU")
    accelerator = Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.grad_accum,
                              cpu=device == "cpu", project_dir=str(out))
    set_seed(cfg.seed + accelerator.process_index)

    # Frozen text encoder: every report encoded once, kept in memory.
    text = load_text_encoder(cfg.text_encoder, max_tokens=cfg.max_tokens, device="cpu")
    tokens, _ = text.encode([c.report for c in cases])
    del text.model
    text_desc = text.describe()

    latent_channels = int(index["vae"]["latent_channels"])
    dcfg = denoiser_config(**{**cfg.denoiser, "latent_channels": latent_channels, "text_dim": int(text_desc["dim"]),
                              "n_findings": len(index["vocabulary"]["findings"])})
    sched_cfg = scheduler_config(cfg.prediction_type)
    noise_sched = training_scheduler(sched_cfg)
    model = ConditionalDenoiser(dcfg)
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None and ckpt.state.get("denoiser") != dcfg:
        raise ConfigError(f"{ckpt.path}: checkpoint was trained with another denoiser config; "
                          "use a new output folder or --no-resume")
    if cfg.init_from and ckpt is None:
        _warm_start(model, cfg.init_from, dcfg)
    elif ckpt is not None:
        model.load_state_dict(ckpt.state["model"])
    ema = EMA(model, cfg.ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    model, optimizer, lr_sched = accelerator.prepare(model, optimizer, lr_sched)

    step, resumed = 0, None
    if ckpt is not None:
        optimizer.load_state_dict(ckpt.state["optimizer"])
        lr_sched.load_state_dict(ckpt.state["scheduler"])
        if accelerator.scaler is not None and ckpt.state.get("scaler"):
            accelerator.scaler.load_state_dict(ckpt.state["scaler"])
        ema.shadow = {k: v.float() for k, v in ckpt.state["ema"].items()}
        step = resumed = int(ckpt.step)

    mean = np.asarray(index["latent_mean"], np.float32)
    std = np.asarray(index["latent_std"], np.float32)
    data = WindowSampler(cases, tokens, cfg.crop, mean, std, dcfg["n_organs"], dcfg["n_lesions"],
                         cfg.seed * 1000 + accelerator.process_index + step, balance=cfg.balance_classes,
                         weight_power=cfg.class_weight_power, weight_max=cfg.class_weight_max)
    drop_rng = np.random.default_rng(cfg.seed + 7 + step)
    log_path = out / "loss.jsonl"
    if ckpt is not None:
        set_rng_state(ckpt.state["rng"], {"windows": data.rng, "drop": drop_rng})
        # back to the log as it was at the checkpoint: steps after it are redone, so logged once
        if not restore_file(ckpt, log_path.name, log_path):
            log_path.write_text("", encoding="utf-8")
        if notify and accelerator.is_main_process:
            notify(describe(ckpt))
    elif log_path.exists() and accelerator.is_main_process:
        log_path.write_text("", encoding="utf-8")  # a fresh run starts a fresh log
    tracker = Tracker(cfg.steps, "steps", progress, cancel)
    tracker.done = min(step, cfg.steps)
    tracker.report()
    log = open(log_path, "a", encoding="utf-8")
    started = time.perf_counter()
    losses: List[float] = []
    last = float("nan")

    def save_model() -> None:
        unwrapped = accelerator.unwrap_model(model)
        ema_model = ConditionalDenoiser(dcfg)
        ema_model.load_state_dict(ema.shadow)
        pipe = GenerationPipeline(ema_model, _pipeline_config(index, cfg, dcfg, sched_cfg, text_desc, step, last))
        pipe.save_pretrained(out / "model")
        del unwrapped

    try:
        while step < cfg.steps:
            model.train()
            with accelerator.accumulate(model):
                b = data.batch(cfg.batch_size)
                x0 = torch.from_numpy(b["x"]).to(accelerator.device)
                cond = torch.from_numpy(b["cond"]).to(accelerator.device)
                tok = torch.from_numpy(b["tokens"]).to(accelerator.device)
                find = torch.from_numpy(b["findings"]).to(accelerator.device)
                valid = torch.from_numpy(b["valid"]).to(accelerator.device)
                # classifier-free guidance: drop conditions per sample
                keep_m = torch.from_numpy((drop_rng.random(cfg.batch_size) >= cfg.p_drop_mask).astype(np.float32)).to(x0.device)
                keep_t = torch.from_numpy((drop_rng.random(cfg.batch_size) >= cfg.p_drop_text).astype(np.float32)).to(x0.device)
                cond = cond * keep_m[:, None, None, None, None]
                tok = tok * keep_t[:, None, None]
                find = find * keep_t[:, None]
                noise = torch.randn_like(x0)
                ts = torch.randint(0, noise_sched.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
                xt = noise_sched.add_noise(x0, noise, ts)
                target = noise if sched_cfg["prediction_type"] == "epsilon" else noise_sched.get_velocity(x0, noise, ts)
                pred = model(xt, ts, cond, tok, find if dcfg["use_findings"] else None)
                err = (pred.float() - target.float()) ** 2 * valid
                loss = err.sum() / (valid.sum() * x0.shape[1]).clamp(min=1)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_sched.step()
                optimizer.zero_grad()
            losses.append(float(loss.detach()))
            if not accelerator.sync_gradients:
                continue
            step += 1
            ema.update(accelerator.unwrap_model(model), step)
            last = float(np.mean(losses))
            losses = []
            if accelerator.is_main_process and (step % cfg.log_every == 0 or step == cfg.steps):
                log.write(json.dumps({"step": step, "loss": last, "lr": lr_sched.get_last_lr()[0],
                                      "seconds": round(time.perf_counter() - started, 2)}) + "\n")
                log.flush()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                log.flush()
                _checkpoint(accelerator, model, optimizer, lr_sched, ema, data, drop_rng, out, step, dcfg,
                            cfg.keep_checkpoints)
                if accelerator.is_main_process:
                    with preserved_rng():  # building the EMA copy must not move the training RNG
                        save_model()
            if accelerator.is_main_process and cfg.preview_every and (step % cfg.preview_every == 0 or step == cfg.steps):
                with preserved_rng():
                    _preview(out, step, dcfg, ema, index, cases[0], tokens[0], sched_cfg, cfg)
            tracker.advance()
    finally:
        log.close()
    accelerator.wait_for_everyone()
    return TrainResult(out / "model", step, last, time.perf_counter() - started, resumed)


def _warm_start(model, spec: str, dcfg: Dict[str, Any]) -> None:
    """Start from the (EMA) weights of a saved pipeline with the same denoiser config."""
    from safetensors.torch import load_file

    from .pipeline import CONFIG_NAME, WEIGHTS_NAME, resolve_model_dir

    folder = resolve_model_dir(spec)
    from ..read_guard import read_json_object

    theirs = read_json_object(folder / CONFIG_NAME, "pipeline config").get("denoiser")
    if theirs != dcfg:
        raise ConfigError(f"--init-from {spec}: its denoiser config differs from this run's "
                          "(same --channels/--attention/... and text encoder needed)")
    model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)


def _checkpoint(accelerator, model, optimizer, lr_sched, ema: EMA, data: "WindowSampler",
                drop_rng: np.random.Generator, out: Path, step: int, dcfg: Dict[str, Any], keep: int) -> None:
    """Atomic, pickle-free resume point (see ``engine/checkpointing.py``); main process only."""
    from ..checkpointing import rng_state, save_checkpoint

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    log_path = out / "loss.jsonl"
    save_checkpoint(out, step, {
        "step": step, "denoiser": dcfg, "model": accelerator.unwrap_model(model).state_dict(),
        "ema": ema.shadow, "optimizer": optimizer.state_dict(), "scheduler": lr_sched.state_dict(),
        "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
        "rng": rng_state({"windows": data.rng, "drop": drop_rng}),
    }, files={log_path.name: log_path.read_bytes() if log_path.exists() else b""}, keep=keep)


def _preview(out: Path, step: int, dcfg, ema: EMA, index, case: CachedCase, tokens: np.ndarray,
             sched_cfg, cfg: TrainConfig) -> None:
    """Real vs generated middle slice of the first case's central window (PNG)."""
    import torch
    from PIL import Image

    from ..vae import load_vae
    from .denoiser import ConditionalDenoiser
    from .sampling import sample_latents

    model = ConditionalDenoiser(dcfg)
    model.load_state_dict(ema.shadow)
    t = case.latents.shape[1]
    depth = min(cfg.crop[0], t)
    s0 = (t - depth) // 2
    cond = condition_tensor(case.organs, case.disease, case.latents.shape[1:], dcfg["n_organs"], dcfg["n_lesions"])
    cond = np.ascontiguousarray(cond[:, s0:s0 + depth])
    z = sample_latents(model, sched_cfg, cond, tokens[None], case.findings if dcfg["use_findings"] else None,
                       latent_channels=dcfg["latent_channels"], seed=0, steps=cfg.preview_steps,
                       window=depth, overlap=0)
    mean = np.asarray(index["latent_mean"], np.float32)[:, None, None]
    std = np.asarray(index["latent_std"], np.float32)[:, None, None]
    mid = depth // 2
    gen_lat = z[:, mid] * std + mean
    real_lat = case.latents[:, s0 + mid]
    vae = load_vae(index["vae"]["spec"], device="cpu")
    with torch.inference_mode():
        pair = vae.decode(torch.from_numpy(np.stack([real_lat, gen_lat]).astype(np.float32))).float().mean(1).numpy()
    h, w = case.meta["shape_zyx"][1:]
    img = np.concatenate([pair[0, :h, :w], pair[1, :h, :w]], axis=1)
    (out / "previews").mkdir(exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(out / "previews" / f"step_{step:07d}.png")
