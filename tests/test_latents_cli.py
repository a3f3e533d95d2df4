"""``ctfoundation latents export|decode|info`` on real sample data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from napari_ctfoundation.cli import main as cli
from napari_ctfoundation.engine.io import read_volume, write_volume
from napari_ctfoundation.engine.latents import load_latents

from _workflows_util import crop


@pytest.fixture(scope="module")
def small_ct(nifti_ct, tmp_path_factory):
    path = tmp_path_factory.mktemp("lat") / "small.nii.gz"
    write_volume(crop(read_volume(nifti_ct), (10, 18), (20, 84), (20, 100)), path)
    return path


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_decode_roundtrip_equals_reconstruction(small_ct, tmp_path, capsys):
    from napari_ctfoundation.engine.reconstruct import reconstruct_volume

    out = tmp_path / "lat"
    assert cli(["latents", "export", str(small_ct), str(out), "--vae", "taef2", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    latent = out / "small.safetensors"
    lv = load_latents(latent)
    assert lv.latents.shape == (1, 32, 8, 8, 10)  # 8 slices, 64 x 80 / 8
    row = _rows(out / "storage.csv")[0]
    assert int(row["latent_bytes"]) == latent.stat().st_size
    assert int(row["source_bytes"]) == small_ct.stat().st_size
    assert float(row["compression_factor"]) == pytest.approx(small_ct.stat().st_size / latent.stat().st_size,
                                                             rel=1e-4)
    assert int(row["raw_int16_bytes"]) == 8 * 64 * 80 * 2
    assert "| total |" in text
    decoded = tmp_path / "dec.nii.gz"
    assert cli(["latents", "decode", str(latent), str(decoded), "--device", "cpu"]) == 0
    src, dec = read_volume(small_ct), read_volume(decoded)
    assert dec.same_grid(src)
    recon = reconstruct_volume(src.to_display(), "taef2", device="cpu").volume.to_source_orientation()
    np.testing.assert_allclose(dec.array, recon.array, atol=1e-3)
    assert cli(["latents", "info", str(latent)]) == 0
    assert "32 ch" in capsys.readouterr().out


def test_float16_storage_halves_file(small_ct, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(["latents", "export", str(small_ct), str(a), "--vae", "bicubic_f16", "--device", "cpu"]) == 0
    assert cli(["latents", "export", str(small_ct), str(b), "--vae", "bicubic_f16", "--device", "cpu",
                "--storage", "float16"]) == 0
    sa, sb = (p / "small.safetensors" for p in (a, b))
    payload_a = 8 * 16 * 20 * 4  # 1 channel, 4x smaller in-plane, float32
    # the payload halves; the JSON header differs by a few bytes (dtype names, padding)
    assert abs((sa.stat().st_size - sb.stat().st_size) - payload_a // 2) < 64
    assert load_latents(sb).latents.dtype == np.float16
    assert cli(["latents", "decode", str(sb), str(tmp_path / "h.nii.gz"), "--device", "cpu"]) == 0
    assert cli(["latents", "decode", str(sa), str(tmp_path / "f.nii.gz"), "--device", "cpu"]) == 0
    h, f = read_volume(tmp_path / "h.nii.gz").array, read_volume(tmp_path / "f.nii.gz").array
    assert np.abs(h - f).max() < 2.0  # float16 latents: within ~1 HU


def test_export_dicom_series_keeps_geometry(dicom_dir, tmp_path):
    out = tmp_path / "d"
    assert cli(["latents", "export", str(dicom_dir), str(out), "--vae", "nearest_f64", "--device", "cpu"]) == 0
    latent = out / "dicom.safetensors"
    assert cli(["latents", "decode", str(latent), str(tmp_path / "d.nii.gz"), "--device", "cpu"]) == 0
    assert read_volume(tmp_path / "d.nii.gz").same_grid(read_volume(dicom_dir))
    row = _rows(out / "storage.csv")[0]
    assert int(row["source_bytes"]) == sum(p.stat().st_size for p in Path(dicom_dir).iterdir())


def test_decode_rejects_other_files(small_ct, tmp_path, capsys):
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"not safetensors")
    assert cli(["latents", "decode", str(bogus), str(tmp_path / "o.nii.gz")]) == 2
    assert "not a napari-ctfoundation latent file" in capsys.readouterr().err
