"""DiCE training with ``accelerate``: HyViP pretraining and the two finetune steps.

Simulation is cached on disk once per (CT, augmentation): the normalised grid
volume and the DRRs of *all* candidate angles (noise applied once, seeded),
so every iteration only picks views and points. Stages (REFERENCE section 3):

* ``pretrain`` (HyViP): each iteration draws n in [min_views, max_views];
  2D (pixel-aligned) features from n uniform views, 3D features from
  ``dense_views`` (24) uniform views.
* ``step1`` (dataset adaptation): all weights, n = the target view count for
  both feature kinds.
* ``step2`` (view adjustment): encoder and codebooks frozen; per-scale
  shallow 3D denoise layers map sparse-view quantised features toward the
  dense-view ones (L1 feature loss) plus the task loss.

Loss: MSE on sampled points (+ VQ commitment). Optimiser AdamW. Every epoch
the model (``config.json`` + ``model.safetensors``) and an atomic resume
checkpoint (``checkpoints/step_N``: weights, optimiser, RNG states, log copy;
see ``engine/checkpointing.py``) are saved; ``resume=True`` continues from
the newest intact checkpoint. ``loss_log.csv`` records every step once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigError, VolumeReadError
from ..io import CTFoundationWarning
from ..progress import CancelCheck, ProgressCallback, Tracker
from ..lr_schedule import LR_SCHEDULES, lr_multiplier
from .geometry import ConeBeamGeometry
from .preprocess import BODY_HU
from .simulate import NoiseModel

STAGES = ("pretrain", "step1", "step2")


# ------------------------------------------------------------------ data
def list_cts(sources: Sequence[Union[str, Path]]) -> List[Path]:
    """CT paths from files, DICOM folders, folders of volumes, .txt manifests (one path a line) or
    dataset manifests (``.csv`` from ``ctfoundation data index``: its ``image`` column)."""
    from ..dataset.manifest import read_dataset_manifest
    from ..io import looks_like_volume

    out: List[Path] = []
    for src in sources:
        p = Path(src)
        if p.suffix == ".txt" and p.is_file():
            lines = [l.strip() for l in p.read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]
            out += list_cts([(p.parent / l) if not Path(l).is_absolute() else Path(l) for l in lines])
        elif p.suffix.lower() == ".csv" and p.is_file():
            out += [case.image for case in read_dataset_manifest(p)]
        elif p.is_dir() and not looks_like_volume(p):
            out += sorted(f for f in p.iterdir() if looks_like_volume(f))
        elif p.exists():
            out.append(p)
        else:
            raise VolumeReadError(f"{p}: no such CT file, folder or manifest")
    if not out:
        raise ConfigError(f"no CT volumes found in {[str(s) for s in sources]}")
    return out


def build_cache(
    sources: Sequence[Union[str, Path]],
    cache_dir: Union[str, Path],
    geometry: ConeBeamGeometry,
    *,
    augment: int = 0,
    noise: NoiseModel = NoiseModel(),
    seed: int = 0,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> List[Path]:
    """Simulate every candidate view of every CT (+ ``augment`` random rigid copies), once.

    ``sources`` are CT files, DICOM folders, folders of volumes or ``.txt``
    lists of paths. Each sample is cached as ``cache_dir/<hash>.npz`` (the
    normalised grid volume and the DRRs of all ``geometry`` candidates,
    float16) and reused when the CT, geometry, noise and seed are the same.
    Returns the cache files, the input of :func:`train_dice`; progress in
    volumes. Raises :class:`VolumeReadError` for a missing or unreadable CT
    and :class:`ConfigError` when no CT is found.
    """
    from ..io import read_volume
    from .preprocess import Augment, to_grid
    from .simulate import simulate_projections

    cts = list_cts(sources)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    files: List[Path] = []
    tracker = Tracker(len(cts) * (augment + 1), "volumes", progress, cancel)
    for ct in cts:
        volume = None
        # Draws depend on the CT, not its place in the list, so cross-validation folds
        # (different lists of the same CTs) share one cache.
        ct_id = int(hashlib.sha1(str(ct.resolve()).encode()).hexdigest()[:8], 16)
        for k in range(augment + 1):
            # One generator per sample: cached samples must not shift the draws of later ones.
            rng = np.random.default_rng([seed, ct_id, k])
            aug = None if k == 0 else Augment.random(rng)
            stat = ct.stat()
            key = json.dumps({"ct": str(ct.resolve()), "size": stat.st_size, "mtime": stat.st_mtime,
                              "geometry": geometry.to_dict(), "augment": None if aug is None else asdict(aug),
                              "noise": asdict(noise), "seed": [seed, ct_id, k]}, sort_keys=True)
            path = cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
            intact = path.exists() and _cache_entry_intact(path, key)
            if path.exists() and not intact:
                warnings.warn(f"{path}: damaged simulation cache entry, rebuilding it", CTFoundationWarning,
                              stacklevel=2)
            if not intact:
                if volume is None:
                    volume = read_volume(ct)
                grid = to_grid(volume, geometry, augment=aug, name=str(ct))
                ps = simulate_projections(grid, geometry, np.arange(geometry.n_available), noise=noise,
                                          seed=int(rng.integers(2**31)))
                with atomic_path(path) as tmp:  # visible only once complete
                    np.savez(tmp, volume=grid.array.astype(np.float16),
                             projections=ps.projections.astype(np.float16), meta=json.dumps({"key": json.loads(key)}))
            files.append(path)
            tracker.advance()
    return files


def _cache_entry_intact(path: Path, key: str) -> bool:
    """A cache entry is trusted only if every member passes its zip CRC and it holds this key."""
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.testzip() is not None or {"volume.npy", "projections.npy", "meta.npy"} - set(zf.namelist()):
                return False
        with np.load(path) as data:
            return json.loads(str(data["meta"]))["key"] == json.loads(key)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False


class CachedVolumes:
    """All cached samples in memory (small datasets): volume [N]^3 and all-candidate DRRs."""

    def __init__(self, files: Sequence[Union[str, Path]], geometry: ConeBeamGeometry) -> None:
        import torch

        self.volumes, self.projections = [], []
        for f in files:
            try:
                with np.load(f) as data:
                    meta = json.loads(str(data["meta"]))
                    volume, projections = data["volume"], data["projections"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise VolumeReadError(f"{f}: damaged simulation cache entry ({type(exc).__name__}: {exc}); "
                                      "run the command again to rebuild it") from None
            if ConeBeamGeometry.from_dict(meta["key"]["geometry"]).to_dict() != geometry.to_dict():
                raise ConfigError(f"{f}: cached for geometry {meta['key']['geometry']['name']!r}, "
                                  f"the model uses {geometry.name!r}")
            self.volumes.append(torch.from_numpy(volume.astype(np.float32)))
            self.projections.append(torch.from_numpy(projections.astype(np.float32)))
        if not self.volumes:
            raise ConfigError("the training set is empty")

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, i: int):
        return self.projections[i], self.volumes[i]


# -------------------------------------------------------------- settings
@dataclass
class TrainSettings:
    """Settings of one DiCE training stage (:func:`train_dice`).

    ``stage``: ``pretrain`` (HyViP, views drawn in ``[min_views,
    max_views]``), ``step1`` (all weights, target ``views``) or ``step2``
    (encoder and codebooks frozen, denoise layers added); ``epochs``,
    ``batch_size``, ``lr``, ``points`` sampled per volume and step,
    ``max_steps`` / ``max_minutes`` to stop early, ``seed``, ``device``.
    Raises :class:`ConfigError` for an unknown stage or out-of-range values.
    """

    stage: str = "pretrain"
    epochs: int = 10
    batch_size: int = 2
    lr: float = 1e-4
    weight_decay: float = 1e-2
    points: int = 10_000
    body_points: float = 0.0  # fraction of points drawn in or near the body (the rest uniform over the grid)
    body_margin: int = 2  # "near": within this many voxels of the body, where edges blur into air
    views: Tuple[int, ...] = (6,)  # step1/step2 target view counts (one drawn per batch)
    min_views: int = 6  # HyViP range
    max_views: int = 24
    feature_weight: float = 1.0  # step2 L1 feature loss weight
    # Per-volume density factor a ~ U[lo, hi]: volume and line integrals both times a (exact, since the
    # normalised volume is 0 in air and projections are linear in it). A patient's absolute density then
    # has to be read from the views instead of remembered from the few training CTs.
    density_scale: Tuple[float, float] = (1.0, 1.0)
    random_offset: bool = True  # rotate the uniform view set by a random fraction of its step
    max_steps: Optional[int] = None
    max_minutes: Optional[float] = None
    # "cosine" decays the rate to 0 at the run's last step (epochs x batches, or max_steps), so the
    # final weights do not stop at a random point of a swinging constant-rate run.
    lr_schedule: str = "constant"
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"training stage {self.stage!r}: use one of {', '.join(STAGES)}")
        self.views = tuple(int(v) for v in self.views)
        if self.epochs < 1 or self.batch_size < 1 or self.points < 1:
            raise ConfigError("--epochs, --batch-size and --points must be >= 1")
        if not 0.0 <= self.body_points <= 1.0:
            raise ConfigError(f"--body-points is a fraction in [0, 1], got {self.body_points}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"--lr-schedule {self.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
        if self.body_margin < 0:
            raise ConfigError(f"--body-margin is a number of voxels >= 0, got {self.body_margin}")
        self.density_scale = tuple(float(v) for v in self.density_scale)
        if len(self.density_scale) != 2 or not 0 < self.density_scale[0] <= self.density_scale[1]:
            raise ConfigError(f"--density-scale needs 0 < LO <= HI, got {self.density_scale}")
        if not 1 <= self.min_views <= self.max_views:
            raise ConfigError(f"HyViP view range [{self.min_views}, {self.max_views}] is empty")


def _pick_views(n: int, n_candidates: int, rng: np.random.Generator, random_offset: bool) -> np.ndarray:
    base = np.floor(np.arange(n) * n_candidates / n + 1e-9).astype(int)
    step = n_candidates // n
    offset = int(rng.integers(0, max(step, 1))) if random_offset else 0
    return np.clip(base + offset, 0, n_candidates - 1)


def _batch_views(projections, candidates: np.ndarray, n: int, rng, random_offset: bool):
    """Pick n uniform views per sample: (B, n, v, u) projections and (B, n) angles."""
    import torch

    b, c = projections.shape[:2]
    idx = np.stack([_pick_views(n, c, rng, random_offset) for _ in range(b)])
    idx_t = torch.as_tensor(idx, device=projections.device)
    proj = torch.stack([projections[i, idx_t[i]] for i in range(b)])
    ang = torch.as_tensor(candidates[idx], dtype=torch.float32, device=projections.device)
    return proj, ang


def _scale_density(proj_all, vols, scale_range: Tuple[float, float], rng: np.random.Generator):
    """Multiply each sample's projections and volume by its own factor drawn from ``scale_range``."""
    lo, hi = scale_range
    if lo == hi == 1.0:
        return proj_all, vols
    import torch

    factor = torch.as_tensor(rng.uniform(lo, hi, size=vols.shape[0]), dtype=vols.dtype, device=vols.device)
    return (proj_all * factor.view(-1, *[1] * (proj_all.dim() - 1)),
            vols * factor.view(-1, *[1] * (vols.dim() - 1)))


def _draw_points(vols, settings: TrainSettings, body_level: float, rng: np.random.Generator) -> np.ndarray:
    """(B, points) flat voxel indices: ``body_points`` of them in or near the body, the rest uniform.

    Most of the grid is air that every method gets right; drawing part of the
    points in the body and the air just around it (``body_margin`` voxels)
    spends the loss on the anatomy and on its edges, where a sparse-view
    network's blur halo costs the most.
    """
    import torch.nn.functional as F

    b = vols.shape[0]
    n_total = vols[0].numel()
    n_body = int(round(settings.points * settings.body_points))
    out = rng.integers(0, n_total, (b, settings.points))
    if n_body:
        near = (vols.reshape(b, 1, *vols.shape[-3:]) > body_level).float()
        if settings.body_margin:
            k = 2 * settings.body_margin + 1
            near = F.max_pool3d(near, k, stride=1, padding=settings.body_margin)
        near = near.reshape(b, -1).cpu().numpy() > 0
        for i in range(b):
            inside = np.flatnonzero(near[i])
            if inside.size:
                out[i, :n_body] = inside[rng.integers(0, inside.size, n_body)]
    return out


# --------------------------------------------------------------- training
def train_dice(
    cache_files: Sequence[Union[str, Path]],
    out_dir: Union[str, Path],
    settings: TrainSettings,
    *,
    config=None,
    init_checkpoint: Union[str, Path, None] = None,
    resume: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
    notify: Optional[Callable[[str], None]] = None,
) -> Path:
    """Train one stage; writes ``out_dir/{config.json, model.safetensors, loss_log.csv, checkpoints/}``.

    ``cache_files`` come from :func:`build_dice_cache` for the model's
    geometry. ``pretrain`` starts from ``config`` (a :class:`DiCEConfig`);
    ``step1``/``step2`` finetune ``init_checkpoint``; ``resume=True``
    continues ``out_dir`` from its last checkpoint. Returns ``out_dir``, a
    checkpoint folder for :func:`load_dice` and for
    ``reconstruct_sparse_views(..., "dice", checkpoint=out_dir)``. Progress
    in steps. ``notify`` gets one line when a run resumes (which checkpoint,
    which step). Raises :class:`ConfigError` for a finetune stage without a
    checkpoint, a pretrain without a config, or a cache built for another
    geometry; :class:`OperationCancelled` on ``cancel``.
    """
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from ..checkpointing import describe, latest_checkpoint, restore_file, rng_state, save_checkpoint, set_rng_state
    from ..vae import resolve_device
    from .dice.checkpoint import load_dice, save_dice
    from .dice.config import DiCEConfig
    from .dice.model import DiCE, grid_points

    out_dir = Path(out_dir)
    device = resolve_device(settings.device)
    set_seed(settings.seed)

    # Model: resume > init checkpoint > fresh config.
    ckpt = latest_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        model = DiCE(DiCEConfig.from_dict(ckpt.state["config"]))
        model.load_state_dict(ckpt.state["model"])
        done = {"epoch": int(ckpt.state["epoch"]), "step": int(ckpt.step)}
    else:
        if resume and (out_dir / "state").is_dir():
            import warnings

            from ..io import CTFoundationWarning

            warnings.warn(f"{out_dir / 'state'}: old pickled training state is not loaded (unsafe); "
                          "starting this stage over", CTFoundationWarning, stacklevel=2)
        resume, done = False, {"epoch": 0, "step": 0}
        if init_checkpoint is not None:
            model = load_dice(init_checkpoint, "cpu")
        elif settings.stage != "pretrain":
            raise ConfigError(f"--stage {settings.stage} finetunes a trained model: give --init CHECKPOINT")
        elif config is None:
            raise ConfigError("a DiCE config is needed to start pretraining")
        else:
            model = DiCE(config)
    model.train()
    if settings.stage == "step2":
        model.add_denoise()
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        for q in model.quant:
            q.frozen = True
    geometry = model.config.geo
    data = CachedVolumes(cache_files, geometry)
    candidates = geometry.candidate_angles
    pts_all = grid_points(geometry)
    lo, hi = geometry.window
    body_level = (BODY_HU - lo) / (hi - lo)  # normalised value of the body threshold

    accelerator = Accelerator(cpu=device == "cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    loader_rng = torch.Generator().manual_seed(settings.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=settings.batch_size, shuffle=True, drop_last=False,
                                         generator=loader_rng)
    model, optimiser, loader = accelerator.prepare(model, optimiser, loader)
    raw = accelerator.unwrap_model(model)
    if settings.stage == "step2":
        for q in raw.quant:
            q.frozen = True

    steps_per_epoch = len(loader)
    total = settings.epochs * steps_per_epoch
    if settings.max_steps:
        total = min(total, int(settings.max_steps))
    lr_at = lr_multiplier(settings.lr_schedule, total)
    tracker = Tracker(total, "steps", progress, cancel)
    tracker.done = min(done["step"], total)
    rng = np.random.default_rng([settings.seed, done["step"]])
    log_path = out_dir / "loss_log.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The log restarts from the checkpoint's own copy: no rows of the lost steps stay, none go missing.
    new_log = ckpt is None or not restore_file(ckpt, log_path.name, log_path)
    if ckpt is not None:
        optimiser.load_state_dict(ckpt.state["optimizer"])
        set_rng_state(ckpt.state["rng"], {"train": rng}, {"loader": loader_rng})
        if notify:
            notify(describe(ckpt))
    log = open(log_path, "w" if new_log else "a", newline="", encoding="utf-8")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["stage", "epoch", "step", "views", "loss", "mse", "vq", "feature", "seconds"])
        log.flush()
    start = time.time()
    step, epoch = done["step"], done["epoch"]
    stop = step >= total

    def save(epoch_: int, step_: int) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            log.flush()
            save_checkpoint(out_dir, step_, {
                "stage": settings.stage, "epoch": epoch_, "step": step_, "settings": asdict(settings),
                "config": unwrapped.config.to_dict(), "model": unwrapped.state_dict(),
                "optimizer": optimiser.state_dict(), "rng": rng_state({"train": rng}, {"loader": loader_rng}),
            }, files={log_path.name: log_path.read_bytes()}, keep=2)
            save_dice(unwrapped, out_dir,
                      {"stage": settings.stage, "epoch": epoch_, "step": step_, "settings": asdict(settings)})

    try:
        while not stop and epoch < settings.epochs:
            for proj_all, vols in loader:
                b = vols.shape[0]
                proj_all, vols = _scale_density(proj_all, vols, settings.density_scale, rng)
                if settings.stage == "pretrain":
                    n = int(rng.integers(settings.min_views, settings.max_views + 1))
                else:
                    n = int(rng.choice(settings.views))
                proj2d, ang2d = _batch_views(proj_all, candidates, n, rng, settings.random_offset)
                # Points: random voxel centres, the target is the voxel value.
                idx = torch.as_tensor(_draw_points(vols, settings, body_level, rng), device=vols.device)
                points = pts_all.to(vols.device)[idx]
                target = torch.stack([vols[i].reshape(-1)[idx[i]] for i in range(b)])
                feat_loss = torch.zeros((), device=vols.device)
                if settings.stage == "pretrain":
                    proj3d, ang3d = _batch_views(proj_all, candidates, raw.config.dense_views, rng, False)
                    pred, vq_loss = model(proj2d, ang2d, points, proj3d, ang3d)
                elif settings.stage == "step1":
                    pred, vq_loss = model(proj2d, ang2d, points)
                else:
                    feats, mats, qs, vq_loss = raw.features(proj2d, ang2d, denoise=True)
                    with torch.no_grad():
                        proj3d, ang3d = _batch_views(proj_all, candidates, raw.config.dense_views, rng, False)
                        _, _, dense, _ = raw.features(proj3d, ang3d, denoise=False)
                    feat_loss = sum(F.l1_loss(q, d) for q, d in zip(qs, dense)) * settings.feature_weight
                    pred = raw.query(points, raw.volume_from_quantised(qs), feats, mats)
                mse = F.mse_loss(pred, target)
                loss = mse + vq_loss + feat_loss
                optimiser.zero_grad()
                accelerator.backward(loss)
                for group in optimiser.param_groups:
                    group["lr"] = settings.lr * lr_at(step)
                optimiser.step()
                step += 1
                writer.writerow([settings.stage, epoch, step, n, f"{loss.item():.6g}", f"{mse.item():.6g}",
                                 f"{float(vq_loss.detach()):.6g}", f"{float(feat_loss.detach()):.6g}", f"{time.time() - start:.1f}"])
                log.flush()
                tracker.advance()
                if step >= total or (settings.max_minutes and time.time() - start > 60 * settings.max_minutes):
                    stop = True
                    break
            epoch += 1 if not stop or step % steps_per_epoch == 0 else 0
            save(epoch, step)
    finally:
        log.close()
    if not (out_dir / "config.json").is_file():
        save(epoch, step)
    return out_dir
