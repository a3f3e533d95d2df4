"""A tiny training run of each trainer, to be killed and resumed by tests/test_reliability_checkpoints.py.

    python tests/_reliability_worker.py prepare KIND ROOT       # synthetic data for KIND under ROOT
    python tests/_reliability_worker.py train KIND ROOT OUT     # train (resume=True) into OUT

KIND is ``sparse`` (train_dice), ``gen`` (generation train) or ``seg``
(train_segmenter). ``train`` prints ``step N`` after every step (flushed),
the trainer's resume line, and ``done`` at the end, so the parent can kill
it at a chosen point. Data is synthetic and tiny so a step takes well under
a second; the training code and its checkpointing are the real ones.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

STEPS = {"sparse": 8, "gen": 8, "seg": 8}  # total optimiser steps of one full run


def _say(line: str) -> None:
    print(line, flush=True)


def _progress(done, total, unit) -> None:
    _say(f"step {done}")


# ------------------------------------------------------------------ sparse
def _sparse_geometry():
    from napari_ctfoundation.engine.sparse.geometry import PRESETS

    return replace(PRESETS["deepsparse"].scaled(8, name="test-32"), n_candidates=24)


def prepare_sparse(root: Path) -> None:
    geo = _sparse_geometry()
    rng = np.random.default_rng(0)
    n, (u, v) = geo.grid_size, geo.detector_pixels
    for i in range(2):
        key = {"geometry": geo.to_dict(), "sample": i}
        np.savez(root / f"sample{i}.npz", volume=rng.random((n, n, n)).astype(np.float16),
                 projections=rng.random((geo.n_available, v, u)).astype(np.float16),
                 meta=json.dumps({"key": key}))


def train_sparse(root: Path, out: Path) -> None:
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.train import TrainSettings, train_dice

    settings = TrainSettings(stage="pretrain", epochs=STEPS["sparse"] // 2, batch_size=1, lr=1e-3, points=128,
                             min_views=2, max_views=4, device="cpu")
    train_dice(sorted(root.glob("sample*.npz")), out, settings, config=DiCEConfig.tiny(_sparse_geometry()),
               resume=True, progress=_progress, notify=_say)


# --------------------------------------------------------------- generation
class _HashText:
    """A fixed, deterministic stand-in text encoder (the trainer's own code is what is under test)."""

    dim, max_tokens = 8, 4

    def __init__(self, *a, **k) -> None:
        self.model = None

    def encode(self, texts):
        rng = np.random.default_rng(0)
        base = rng.standard_normal((self.max_tokens, self.dim)).astype(np.float32)
        tokens = np.stack([base * (1 + len(t) % 3) for t in texts])
        return tokens, np.ones(tokens.shape[:2], np.float32)

    def describe(self):
        return {"spec": "test-hash", "name": "test-hash", "dim": self.dim, "max_tokens": self.max_tokens}


def prepare_gen(root: Path) -> None:
    from napari_ctfoundation.engine.atomic import atomic_write_json
    from napari_ctfoundation.engine.generation.cache import CACHE_VERSION, INDEX, _save_cond
    from napari_ctfoundation.engine.generation.conditioning import LatentMask, parse_findings
    from napari_ctfoundation.engine.generation.vocab import vocabulary
    from napari_ctfoundation.engine.latents import LatentVolume, save_latents
    from napari_ctfoundation.engine.window import HUWindow

    rng = np.random.default_rng(0)
    cases = []
    for i, report in enumerate(["Liver normal.", "Small lung nodule."]):
        name = f"case_{i:04d}"
        lat = rng.standard_normal((1, 4, 6, 4, 4)).astype(np.float32)
        save_latents(LatentVolume(latents=lat, window_starts=[0], window_slices=6, vae={"spec": "taef2"},
                                  hu_window=HUWindow(), geometry={}, padded_hw=(32, 32), shape_zyx=(6, 32, 32)),
                     root / f"{name}.latents.safetensors")
        organs = LatentMask([5, 1], rng.random((2, 6, 4, 4)).astype(np.float32))
        _save_cond(root / f"{name}.cond.safetensors", organs, None, {"name": name})
        cases.append({"name": name, "report": report, "findings": parse_findings(report).tolist(),
                      "shape_zyx": [6, 32, 32]})
    atomic_write_json(root / INDEX, {"format_version": CACHE_VERSION, "vae": {"spec": "taef2", "latent_channels": 4},
                                     "hu_window": [-1000, 1000], "vocabulary": vocabulary(),
                                     "latent_mean": [0.0] * 4, "latent_std": [1.0] * 4, "cases": cases})


def train_gen(root: Path, out: Path) -> None:
    from napari_ctfoundation.engine.generation import text
    from napari_ctfoundation.engine.generation.train import TrainConfig, train

    text.load_text_encoder = _HashText
    cfg = TrainConfig(steps=STEPS["gen"], batch_size=2, crop=(4, 4, 4), checkpoint_every=2, log_every=1,
                      preview_every=0, device="cpu", warmup_steps=2, text_encoder="test-hash", max_tokens=4,
                      denoiser={"mask_channels": 4, "context_dim": 8,
                                "backbone_kwargs": {"channels": [8, 8], "attention_levels": [False, True],
                                                    "num_res_blocks": 1, "num_head_channels": 8,
                                                    "norm_num_groups": 4}})
    train(root, out, cfg, resume=True, progress=_progress, notify=_say)


# ------------------------------------------------------------- segmentation
def prepare_seg(root: Path) -> None:
    """Two 12x24x24 cases with two organs (brighter / darker blocks in noise)."""
    rng = np.random.default_rng(0)
    for i in range(2):
        image = rng.normal(0, 100, (12, 24, 24)).astype(np.float32)
        labels = np.zeros(image.shape, np.uint8)
        labels[3:9, 6:16, 5 + i:15 + i] = 1
        labels[4:8, 14:20, 12:20] = 2
        image[labels == 1] += 120
        image[labels == 2] -= 80
        np.savez(root / f"case{i}.npz", image=image, labels=labels)


def train_seg(root: Path, out: Path) -> None:
    from napari_ctfoundation.engine.segmentation.data import SegCase
    from napari_ctfoundation.engine.segmentation.model import SegConfig
    from napari_ctfoundation.engine.segmentation.train import train_segmenter

    cases = []
    for f in sorted(root.glob("case*.npz")):
        with np.load(f) as d:
            cases.append(SegCase(f.stem, d["image"], d["labels"], (3.0, 3.0, 3.0)))
    config = SegConfig(classes={1: "liver", 2: "spleen"}, init_filters=4, patch_zyx=(8, 16, 16),
                       epochs=STEPS["seg"] // 2, steps_per_epoch=2, batch_size=1)
    train_segmenter(cases, config, out, resume=True, progress=_progress, notify=_say)


def main(argv) -> int:
    import torch

    torch.set_num_threads(1)  # bit-identical runs need the same reduction order
    action, kind, root = argv[0], argv[1], Path(argv[2])
    if action == "prepare":
        root.mkdir(parents=True, exist_ok=True)
        globals()[f"prepare_{kind}"](root)
    else:
        globals()[f"train_{kind}"](root, Path(argv[3]))
    _say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
