"""Denoiser, samplers, guidance, seamless depth windows, pipeline save/load and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ctfoundation.engine.errors import ConfigError, OperationCancelled
from napari_ctfoundation.engine.generation.conditioning import condition_tensor, mask_to_latent
from napari_ctfoundation.engine.generation.denoiser import ConditionalDenoiser, denoiser_config
from napari_ctfoundation.engine.generation.sampling import (
    blend_weights, depth_windows, guided_prediction, sample_latents)
from napari_ctfoundation.engine.generation.schedule import SAMPLERS, scheduler_config
from napari_ctfoundation.engine.volume import Volume

from _generation_helpers import TINY_DENOISER, tiny_pipeline_config

TEXT_DIM = 12


def tiny_model(seed: int = 0, **extra) -> ConditionalDenoiser:
    torch.manual_seed(seed)
    model = ConditionalDenoiser(denoiser_config(**TINY_DENOISER, latent_channels=4, text_dim=TEXT_DIM, **extra))
    # randomise the zero-initialised output layers so conditions visibly matter
    with torch.no_grad():
        for p in model.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.05)
    return model.eval()


def inputs(t=5, h=6, w=7):
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 5, 2, 51], size=(t, h * 8, w * 8))
    cond = condition_tensor(mask_to_latent(labels, 8), None, (t, h, w))
    tokens = rng.normal(size=(1, 4, TEXT_DIM)).astype(np.float32)
    return cond, tokens, rng.choice([-1.0, 0.0, 1.0], size=18).astype(np.float32)


def test_denoiser_any_window_shape_and_conditions_matter():
    model = tiny_model()
    cond, tokens, flags = inputs()
    x = torch.randn(1, 4, 5, 6, 7)
    t = torch.tensor([500])
    c, tok, f = torch.from_numpy(cond)[None], torch.from_numpy(tokens), torch.from_numpy(flags)[None]
    with torch.no_grad():
        full = model(x, t, c, tok, f)
        no_mask = model(x, t, torch.zeros_like(c), tok, f)
        no_text = model(x, t, c, torch.zeros_like(tok), torch.zeros_like(f))
    assert full.shape == x.shape  # 5x6x7 padded to multiples of 2 inside, cropped back
    assert (full - no_mask).abs().mean() > 1e-4
    assert (full - no_text).abs().mean() > 1e-6


def test_bad_backbone_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown denoiser option"):
        denoiser_config(nonsense=1)
    with pytest.raises(ConfigError, match="unknown denoiser backbone"):
        ConditionalDenoiser(denoiser_config(backbone="nope"))
    with pytest.raises(ConfigError, match="invalid settings"):
        ConditionalDenoiser(denoiser_config(backbone_kwargs={"channels": [10, 20], "norm_num_groups": 8}))


def test_guidance_formula():
    model = tiny_model()
    cond, tokens, flags = inputs()
    x = torch.randn(1, 4, 5, 6, 7)
    t = torch.tensor([300])
    c, tok, f = torch.from_numpy(cond)[None], torch.from_numpy(tokens), torch.from_numpy(flags)[None]
    with torch.no_grad():
        p_full = model(x, t, c, tok, f)
        p_mask = model(x, t, c, torch.zeros_like(tok), torch.zeros_like(f))
        p_none = model(x, t, torch.zeros_like(c), torch.zeros_like(tok), torch.zeros_like(f))
        one = guided_prediction(model, x, t, c, tok, f, 1.0, 1.0)
        same = guided_prediction(model, x, t, c, tok, f, 3.0, 3.0)
        split = guided_prediction(model, x, t, c, tok, f, 2.0, 4.0)
    assert torch.allclose(one, p_full, atol=1e-5)
    assert torch.allclose(same, p_none + 3 * (p_full - p_none), atol=1e-4)
    assert torch.allclose(split, p_none + 2 * (p_mask - p_none) + 4 * (p_full - p_mask), atol=1e-4)


def test_depth_windows_cover_and_blend():
    assert depth_windows(5, 8, 4) == [0]
    starts = depth_windows(30, 8, 4)
    assert starts[0] == 0 and starts[-1] == 22 and all(b - a <= 4 for a, b in zip(starts, starts[1:]))
    w = blend_weights(12, 4, first=False, last=False)
    assert w.min() > 0 and w[0] < w[3] < w[4] == 1 and np.allclose(w[:4], w[-4:][::-1])
    assert blend_weights(8, 4, first=True, last=True).min() == 1


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp", "ddpm"])
def test_samplers_deterministic_for_a_seed(sampler):
    model = tiny_model()
    cond, tokens, flags = inputs(t=12)
    cfg = scheduler_config("v")
    kw = dict(latent_channels=4, steps=3, sampler=sampler, guidance_mask=2.0, guidance_text=1.5, window=4, overlap=2)
    a = sample_latents(model, cfg, cond, tokens, flags, seed=7, **kw)
    b = sample_latents(model, cfg, cond, tokens, flags, seed=7, **kw)
    c = sample_latents(model, cfg, cond, tokens, flags, seed=8, **kw)
    assert a.shape == (4, 12, 6, 7) and np.isfinite(a).all()
    assert np.array_equal(a, b)  # deeper than the window: blended windows, still deterministic
    assert not np.allclose(a, c)


def test_sampler_registry_and_errors():
    assert {"ddim", "dpmpp", "ddpm"} <= set(SAMPLERS.names())
    with pytest.raises(ConfigError, match="prediction type"):
        scheduler_config("x0")
    cond, tokens, flags = inputs()
    with pytest.raises(ConfigError, match="unknown sampler"):
        sample_latents(tiny_model(), scheduler_config(), cond, tokens, flags, latent_channels=4, sampler="euler")
    with pytest.raises(OperationCancelled):
        sample_latents(tiny_model(), scheduler_config(), cond, tokens, flags, latent_channels=4, steps=3,
                       cancel=lambda: True)


def test_blended_windows_have_no_seam():
    """Windows blend predictions every step, so neighbouring frames at a window
    border differ no more than frames inside a window."""
    model = tiny_model()
    cond, tokens, flags = inputs(t=16)
    cond[:] = condition_tensor(mask_to_latent(np.full((16, 48, 56), 5), 8), None, (16, 6, 7))  # uniform liver
    z = sample_latents(model, scheduler_config(), cond, tokens, flags, latent_channels=4, seed=0, steps=4,
                       window=8, overlap=4)
    jumps = np.abs(np.diff(z, axis=1)).mean(axis=(0, 2, 3))  # 15 frame-to-frame differences
    assert jumps[7] < 2 * np.median(jumps)  # frame 7 -> 8 is where window 0 ends


def test_pipeline_save_load_and_generate(tmp_path):
    from napari_ctfoundation.engine.generation.pipeline import GenerationPipeline

    model = tiny_model(use_findings=True)
    config = tiny_pipeline_config(model, TEXT_DIM)
    GenerationPipeline(model, config).save_pretrained(tmp_path / "m")
    pipe = GenerationPipeline.from_pretrained(tmp_path / "m", device="cpu")
    labels = np.zeros((6, 40, 50), np.uint8)
    labels[:, 10:30, 10:40] = 5
    organs = Volume(labels, spacing=(2.0, 2.0, 3.0), origin=(1.0, 2.0, 3.0))
    a = pipe.generate(organs, "", seed=1, steps=2, decode=False)  # empty report = null text, no encoder load
    b = GenerationPipeline.from_pretrained(tmp_path / "m", device="cpu").generate(organs, "", seed=1, steps=2, decode=False)
    assert a.latents.shape == (4, 6, 5, 7) and np.array_equal(a.latents, b.latents)
    assert a.settings["seed"] == 1 and a.settings["guidance_mask"] == 1.0
    with pytest.raises(ConfigError, match="not a generation model folder"):
        GenerationPipeline.from_pretrained(tmp_path)
    with pytest.raises(Exception, match="unknown organ label"):
        pipe.generate(organs.with_array(np.full_like(labels, 250)), "", steps=1, decode=False)


# ------------------------------------------------- mask-edit displacement metric
def _blob(centre_x: float, shape=(6, 24, 40)) -> np.ndarray:
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    return (np.exp(-((x - centre_x) ** 2 / 18.0 + (y - 12) ** 2 / 10.0 + (z - 3) ** 2 / 8.0)) * 400 - 100).astype(np.float32)


def test_estimate_shift_finds_a_moved_blob_and_zero_when_unmoved():
    from napari_ctfoundation.engine.generation.evaluate import estimate_shift, follow_ratio, shift_array

    ref = _blob(15.0)
    for d in (5, -3, 7):
        est = estimate_shift(ref, shift_array(ref, d, axis=2, fill=-100), axis=2, max_shift=10)
        assert est["integer_shift"] == d and abs(est["shift"] - d) < 0.2 and est["ncc"] > 0.99
    # sub-voxel displacement: a blob centred 2.5 voxels further
    est = estimate_shift(ref, _blob(17.5), axis=2, max_shift=10)
    assert abs(est["shift"] - 2.5) < 0.3
    # an edit that is ignored (same volume) reads 0, also with noise added
    noisy = ref + np.random.default_rng(0).normal(0, 20, ref.shape).astype(np.float32)
    assert estimate_shift(ref, noisy, axis=2, max_shift=10)["integer_shift"] == 0
    # a mask restricts the comparison to its voxels
    mask = np.zeros(ref.shape, bool)
    mask[:, 6:18, 8:22] = True
    assert estimate_shift(ref, shift_array(ref, 4, fill=-100), mask=mask, max_shift=8)["integer_shift"] == 4
    assert follow_ratio([4, -8, 12], [4, -8, 12]) == pytest.approx(1.0)
    assert follow_ratio([4, -8, 12], [0.1, -0.2, 0.0]) == pytest.approx(0.0, abs=0.05)


# ------------------------------------------------------- rare-class windows
def test_window_sampler_balances_rare_classes_and_weights_the_loss():
    from napari_ctfoundation.engine.generation.cache import CachedCase
    from napari_ctfoundation.engine.generation.conditioning import LatentMask
    from napari_ctfoundation.engine.generation.train import WindowSampler

    t, h, w = 16, 16, 16
    common = np.zeros((t, h, w), np.float32)
    common[:, :8] = 1.0  # organ 5 fills half the volume
    rare = np.zeros((t, h, w), np.float32)
    rare[14, 14, 14] = 1.0  # organ 14: one cell in a corner
    case = CachedCase("c", np.random.default_rng(0).normal(size=(4, t, h, w)).astype(np.float32),
                      LatentMask([5, 14], np.stack([common, rare])), None, "r", np.zeros(18, np.float32), {})
    args = ([case], np.zeros((1, 2, 3), np.float32), (4, 4, 4), np.zeros(4, np.float32), np.ones(4, np.float32), 117, 11)

    def rare_hits(sampler, n=200):
        return sum(int(sampler.batch(1)["cond"][0, 14].sum() > 0) for _ in range(n))

    plain = WindowSampler(*args, seed=0)
    balanced = WindowSampler(*args, seed=0, balance=1.0)
    # uniform windows almost never contain the corner cell; balanced ones pick each class half the time
    assert rare_hits(plain) < 20 and rare_hits(balanced) > 70
    weighted = WindowSampler(*args, seed=0, weight_power=0.5, weight_max=5.0)
    assert weighted.class_weights[5] == 1.0 and 1.0 < weighted.class_weights[14] <= 5.0
    cond = weighted.conds[0]
    cw = weighted.cell_weights(cond)
    assert cw.shape == (1, t, h, w) and cw[0, 14, 14, 14] == pytest.approx(weighted.class_weights[14])
    assert cw[0, 0, 0, 0] == 1.0 and cw[0, 0, 15, 0] == 1.0  # common class and background weigh 1
    assert plain.batch(2)["valid"].max() == 1.0  # no weighting: valid is the plain 0/1 mask


def test_class_balancing_options_are_checked():
    from napari_ctfoundation.engine.generation.train import TrainConfig

    with pytest.raises(ConfigError, match="balance_classes must be within"):
        TrainConfig(balance_classes=1.5)
    with pytest.raises(ConfigError, match="class_weight_power must be >= 0"):
        TrainConfig(class_weight_power=-1.0)
    with pytest.raises(ConfigError, match="class_weight_max >= 1"):
        TrainConfig(class_weight_max=0.5)


def test_learning_rate_schedules():
    from napari_ctfoundation.engine.generation.train import TrainConfig, lr_factor

    constant = lr_factor(TrainConfig(steps=100, warmup_steps=10))
    cosine = lr_factor(TrainConfig(steps=100, warmup_steps=10, lr_schedule="cosine"))
    assert constant(0) == pytest.approx(0.1) and cosine(0) == pytest.approx(0.1)  # shared warm-up
    assert constant(10) == constant(99) == 1.0
    assert cosine(10) == pytest.approx(1.0)
    assert cosine(55) == pytest.approx(0.5)  # half-way through the decay
    assert cosine(100) == pytest.approx(0.0, abs=1e-12)
    values = [cosine(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
