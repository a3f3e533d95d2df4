"""Latents on disk and the metric definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ctfoundation.engine.errors import ConfigError, GeometryError, VolumeReadError
from napari_ctfoundation.engine.io import read_volume
from napari_ctfoundation.engine.latents import decode_latents, encode_volume, load_latents, save_latents
from napari_ctfoundation.engine.metrics import psnr, volume_metrics
from napari_ctfoundation.engine.reconstruct import reconstruct_volume
from napari_ctfoundation.engine.vae import load_vae
from napari_ctfoundation.engine.window import HUWindow


@pytest.fixture(scope="module")
def crop(nifti_ct):
    return read_volume(nifti_ct).to_display().cropped(z=slice(10, 14), y=slice(20, 60), x=slice(30, 78))


@pytest.fixture(scope="module")
def taef2():
    return load_vae("taef2", device="cpu")


def test_latents_round_trip_through_disk(crop, taef2, tmp_path):
    window = HUWindow(-500, 700)
    latent = encode_volume(crop, taef2, window)
    assert latent.latents.shape == (1, 32, 4, 5, 6)
    path = save_latents(latent, tmp_path / "case.safetensors")
    loaded = load_latents(path)
    assert np.array_equal(loaded.latents, latent.latents)
    assert loaded.hu_window == window and loaded.geometry == crop.geometry_dict()
    decoded = decode_latents(loaded)  # reloads the VAE named in the file
    assert decoded.same_grid(crop)
    direct = reconstruct_volume(crop, taef2, window, compute_metrics=False).volume
    assert np.allclose(decoded.array, direct.array, atol=1e-3)
    assert decoded.array.min() >= -500 and decoded.array.max() <= 700


def test_latent_file_errors(tmp_path, crop, taef2):
    with pytest.raises(VolumeReadError, match="no such latent file"):
        load_latents(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(VolumeReadError, match="not a napari-ctfoundation latent file"):
        load_latents(junk)
    with pytest.raises(ConfigError, match="end in .safetensors"):
        save_latents(encode_volume(crop, taef2), tmp_path / "x.npy")
    latent = encode_volume(crop, taef2)
    latent.vae = {**latent.vae, "latent_channels": 16}
    with pytest.raises(ConfigError, match="16 channels"):
        decode_latents(latent, taef2)


def test_metric_definitions():
    window = HUWindow(-1000, 1000)
    rng = np.random.default_rng(0)
    ref = rng.uniform(-800, 800, (12, 40, 40)).astype(np.float32)
    same = volume_metrics(ref, ref, window)
    assert same["psnr_db"] == float("inf") and same["mae_hu"] == 0
    assert same["ssim"] == pytest.approx(1.0, abs=1e-4) and same["ms_ssim"] == pytest.approx(1.0, abs=1e-4)
    noisy = ref + 20.0  # MSE in unit range: (20/2000)^2 -> 40 dB
    m = volume_metrics(ref, noisy, window)
    assert m["psnr_db"] == pytest.approx(40.0, abs=1e-3)
    assert m["mae_hu"] == pytest.approx(20.0, abs=1e-3)
    worse = volume_metrics(ref, ref + rng.normal(0, 200, ref.shape).astype(np.float32), window)
    assert worse["ssim"] < m["ssim"] and worse["ms_ssim"] < m["ms_ssim"]
    # outside the window both are clipped: a difference there costs nothing
    assert volume_metrics(ref - 3000, ref - 2500, window)["psnr_db"] == float("inf")
    with pytest.raises(GeometryError):
        volume_metrics(ref, ref[:-1], window)
    assert psnr(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)


def test_window_presets():
    lung = HUWindow.from_preset("lung")
    assert lung.contrast_limits == (-1350.0, 150.0)
    with pytest.raises(ConfigError, match="unknown window preset"):
        HUWindow.from_preset("kidney")
    with pytest.raises(ConfigError, match="LO < HI"):
        HUWindow(10, 10)
