"""Patch-based training with reconstruction augmentation.

Each training sample is drawn from a random case; with probability
``p_recon`` its *image* is the frozen-VAE reconstruction of that case
instead of the original CT (same grid, same labels): the Foundation-VAE
paper's "boundary-stable view" augmentation (REFERENCE section 1).
``p_recon = 0`` is the baseline. Patches are centred on a foreground voxel
of a random present class with probability ``fg_fraction`` (class-balanced,
as nnU-Net oversamples foreground), else anywhere.

Checkpoint each epoch (weights + optimiser + scheduler + RNG state, atomic
and pickle-free: ``engine/checkpointing.py``); calling again with the same
output folder resumes after the last intact epoch checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError
from ..progress import CancelCheck, ProgressCallback, Tracker
from .data import SegCase
from .model import SegConfig, build_model, save_model

OLD_STATE_FILE = "train_state.pt"  # pickled state of earlier versions: never loaded
LOG_FILE = "train_log.json"


@dataclass
class TrainResult:
    folder: Path
    losses: List[float] = field(default_factory=list)  # mean loss per epoch
    seconds: float = 0.0
    recon_fraction: float = 0.0  # share of samples that were reconstructions
    resumed_from_epoch: int = 0


def extract_patch(array: np.ndarray, center: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """``size`` patch around ``center``, padded with ``fill`` where it leaves the array."""
    out = np.full(tuple(size), fill, dtype=array.dtype)
    src, dst = [], []
    for c, s, n in zip(center, size, array.shape):
        start = int(c) - s // 2
        a, b = max(0, start), min(n, start + s)
        src.append(slice(a, b))
        dst.append(slice(a - start, b - start))
    out[tuple(dst)] = array[tuple(src)]
    return out


class PatchSampler:
    """Draws (image patch, label patch, used_recon) triples; seeded."""

    def __init__(self, cases: Sequence[SegCase], config: SegConfig, rng: np.random.Generator) -> None:
        self.cases = list(cases)
        self.config = config
        self.rng = rng
        # foreground voxel lists per case and class, computed once
        self.fg = [{k: np.argwhere(c.labels == k) for k in range(1, config.n_classes + 1)} for c in self.cases]
        self.fg = [{k: v for k, v in d.items() if len(v)} for d in self.fg]

    def sample(self):
        cfg, rng = self.config, self.rng
        i = int(rng.integers(len(self.cases)))
        case = self.cases[i]
        use_recon = bool(cfg.p_recon > 0 and rng.random() < cfg.p_recon)
        image = case.recon if use_recon else case.image
        if self.fg[i] and rng.random() < cfg.fg_fraction:
            cls = list(self.fg[i])[int(rng.integers(len(self.fg[i])))]
            voxels = self.fg[i][cls]
            center = voxels[int(rng.integers(len(voxels)))]
        else:
            center = [int(rng.integers(n)) for n in case.image.shape]
        img = extract_patch(cfg.normalise(image), center, cfg.patch_zyx, 0.0)
        lab = extract_patch(case.labels, center, cfg.patch_zyx, 0)
        return img, lab, use_recon


def train_segmenter(
    cases: Sequence[SegCase],
    config: SegConfig,
    out_dir: Union[str, os.PathLike],
    *,
    device: str = "cpu",
    resume: bool = True,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
    notify: Optional[Callable[[str], None]] = None,
) -> TrainResult:
    """Train on ``cases`` (training grid), save to ``out_dir``; progress in steps.

    ``cases`` come from :func:`load_seg_dataset` / :func:`load_seg_case`;
    ``config`` is a :class:`SegConfig` (with ``p_recon > 0`` the cases need
    reconstructions). A MONAI SegResNet/UNet is trained on random patches
    and saved as ``out_dir/config.json`` + ``model.safetensors`` (load it
    with :func:`load_segmenter`); ``resume=True`` continues from the last
    checkpoint. ``notify`` gets one line when the run resumes (which
    checkpoint, which epoch). Raises :class:`ConfigError` for no cases,
    missing reconstructions, or an ``out_dir`` holding a run with other
    settings; :class:`OperationCancelled` on ``cancel``.
    """
    import torch
    from monai.losses import DiceCELoss

    from ..atomic import atomic_write_json
    from ..checkpointing import describe, latest_checkpoint, rng_state, save_checkpoint, set_rng_state

    if not cases:
        raise ConfigError("no training cases")
    if config.p_recon > 0:
        missing = [c.name for c in cases if c.recon is None]
        if missing:
            raise ConfigError(f"--p {config.p_recon} needs reconstructions, missing for: "
                              f"{', '.join(missing[:5])} (pass --recon-dir)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-5)
    total_steps = config.epochs * config.steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 - min(s, total_steps - 1) / total_steps) ** 0.9)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    rng = np.random.default_rng(config.seed)
    result = TrainResult(out)
    start_epoch, n_recon, n_samples = 0, 0, 0
    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None and (out / OLD_STATE_FILE).is_file():
        raise ConfigError(f"{out / OLD_STATE_FILE}: pickled training state of an earlier version is not loaded "
                          "(unsafe); use --no-resume to start over")
    if ckpt is not None:
        state = ckpt.state
        # more epochs may be asked for (train longer); anything else must match
        same = {k: v for k, v in state.get("config", {}).items() if k != "epochs"}
        if same != {k: v for k, v in config.to_json().items() if k != "epochs"}:
            raise ConfigError(f"{out}: holds a training run with other settings; use a new folder "
                              "or --no-resume to start over")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], {"patches": rng})
        start_epoch, result.losses = int(state["epoch"]), list(state["losses"])
        n_recon, n_samples = int(state.get("n_recon", 0)), int(state.get("n_samples", 0))
        result.resumed_from_epoch = start_epoch
        if notify:
            notify(describe(ckpt) + f", epoch {start_epoch}")
    sampler = PatchSampler(cases, config, rng)
    tracker = Tracker(total_steps, "steps", progress, cancel)
    tracker.done = min(total_steps, start_epoch * config.steps_per_epoch)
    tracker.report()
    t0 = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        model.train()
        epoch_losses = []
        for _ in range(config.steps_per_epoch):
            batch = [sampler.sample() for _ in range(config.batch_size)]
            x = torch.from_numpy(np.stack([b[0] for b in batch])[:, None]).to(device)
            y = torch.from_numpy(np.stack([b[1] for b in batch])[:, None].astype(np.int64)).to(device)
            n_recon += sum(b[2] for b in batch)
            n_samples += len(batch)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            epoch_losses.append(float(loss.detach()))
            tracker.advance()
        result.losses.append(float(np.mean(epoch_losses)))
        # checkpoint: weights (usable model) first, then the resume state
        save_model(model, config, out, extra={"trained_epochs": epoch + 1,
                                              "train_cases": [c.name for c in cases]})
        save_checkpoint(out, (epoch + 1) * config.steps_per_epoch, {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": rng_state({"patches": rng}), "epoch": epoch + 1, "losses": result.losses,
            "config": config.to_json(), "n_recon": n_recon, "n_samples": n_samples}, keep=2)
    result.seconds = time.perf_counter() - t0
    result.recon_fraction = n_recon / max(1, n_samples)
    log = {"losses": result.losses, "seconds_this_run": round(result.seconds, 2),
           "recon_fraction": round(result.recon_fraction, 4), "p_recon": config.p_recon,
           "train_cases": [c.name for c in cases]}
    atomic_write_json(out / LOG_FILE, log)
    return result
