"""Interpolation baselines as VAE backends, the optional MedVAE adapter, and the comparison table."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest

from napari_ctfoundation.cli import main as cli
from napari_ctfoundation.engine.compare import compare_reconstruction, format_compare_table
from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.io import read_volume, write_volume
from napari_ctfoundation.engine.vae import VAE_BACKENDS, load_vae

from _workflows_util import crop

INTERP = [f"{m}_f{f}" for m in ("nearest", "bilinear", "bicubic") for f in (16, 64)]


@pytest.fixture(scope="module")
def small_ct(nifti_ct, tmp_path_factory):
    vol = crop(read_volume(nifti_ct), (10, 16), (20, 84), (20, 100))  # 6 x 64 x 80, real CT
    path = tmp_path_factory.mktemp("cmp") / "small.nii.gz"
    write_volume(vol, path)
    return path


def test_interpolation_backends_registered_with_shapes():
    import torch

    assert set(INTERP) <= set(VAE_BACKENDS.names())
    x = torch.rand(2, 3, 64, 48)
    for name, side in (("bicubic_f16", 4), ("nearest_f64", 8)):
        vae = load_vae(name, device="cpu")
        z = vae.encode(x)
        assert tuple(z.shape) == (2, 1, 64 // side, 48 // side) and vae.latent_channels == 1
        assert vae.spatial_factor == side and vae.describe()["area_factor"] == side * side
        y = vae.decode(z)
        assert tuple(y.shape) == (2, 3, 64, 48) and float(y.min()) >= 0 and float(y.max()) <= 1


def test_nearest_is_exact_on_block_images_and_bicubic_beats_nearest_on_ct(nifti_ct):
    import torch

    blocks = torch.rand(1, 1, 8, 6).repeat_interleave(4, 2).repeat_interleave(4, 3).repeat(1, 3, 1, 1)
    vae = load_vae("nearest_f16", device="cpu")
    assert torch.allclose(vae.decode(vae.encode(blocks)), blocks)
    from napari_ctfoundation.engine.window import HUWindow

    ct = read_volume(nifti_ct).to_display().array[15, :96, :120]
    unit = torch.from_numpy(HUWindow().to_unit(ct))[None, None].repeat(1, 3, 1, 1)

    def err(name):
        b = load_vae(name, device="cpu")
        return float(((b.decode(b.encode(unit)) - unit) ** 2).mean())

    assert err("bicubic_f16") < err("nearest_f16")
    assert err("bicubic_f16") < err("bicubic_f64")


@pytest.mark.skipif(importlib.util.find_spec("medvae") is not None, reason="medvae is installed here")
def test_medvae_absent_gives_clear_message():
    with pytest.raises(ConfigError, match=r"optional package 'medvae'.*pip install"):
        load_vae("medvae_4_3_2d", device="cpu")


def test_compare_table_rows_and_skips(small_ct):
    vol = read_volume(small_ct)
    result = compare_reconstruction(vol, ["bicubic_f64", "nearest_f16", "taef2", "medvae_4_1_2d"], device="cpu")
    names = [r.method for r in result.rows]
    assert names == ["nearest_f16", "bicubic_f64", "taef2"]  # by f, interpolation first
    taef2 = result.rows[2]
    assert (taef2.f, taef2.channels, taef2.values_per_voxel) == (64, 32, 0.5)
    for r in result.rows:
        assert 0 < r.ssim <= 1 and 0 < r.ms_ssim <= 1 and np.isfinite(r.psnr_db)
    if importlib.util.find_spec("medvae") is None:
        assert "medvae_4_1_2d" in result.skipped
    table = format_compare_table(result, "crop")
    assert "| method | f | C | C/f | crop: PSNR dB / MS-SSIM | SSIM (3D)" in table
    assert f"{taef2.psnr_db:.2f}/{taef2.ms_ssim:.3f}" in table


def test_cli_compare_reconstruct(small_ct, tmp_path, capsys):
    out_csv = tmp_path / "rows.csv"
    assert cli(["compare", "reconstruct", str(small_ct), "--backends", "nearest_f16,bilinear_f16",
                "--device", "cpu", "--csv", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "nearest_f16" in text and "bilinear_f16" in text
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["bilinear_f16", "nearest_f16"]
    assert cli(["compare", "reconstruct", str(small_ct), "--backends", "no_such_vae", "--device", "cpu"]) == 2
