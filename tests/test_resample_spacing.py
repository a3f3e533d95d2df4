"""Resampling to a training spacing: anti-aliased CT, nearest labels, FOV padding as air; gen cache/evaluate --spacing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.resample import resample_to_spacing, target_spacing
from napari_ctfoundation.engine.volume import Volume

from _generation_helpers import write_tiny_dataset


def _ct() -> Volume:
    hu = np.full((10, 40, 40), -1000.0, np.float32)
    hu[:, 10:30, 10:30] = 50.0
    hu[:, :, :4] = -3024.0  # outside the scanner's field of view
    return Volume(hu, spacing=(0.75, 0.75, 2.5), origin=(-10.0, 5.0, 100.0))


def test_zero_keeps_an_axis_and_bad_values_are_clear():
    ct = _ct()
    assert target_spacing(ct, (3, 3, 0)) == (3.0, 3.0, 2.5)
    assert target_spacing(ct, None) is None
    for bad in ((3, 3), (3, -1, 0), (3, float("nan"), 1)):
        with pytest.raises(ConfigError, match="three values x,y,z in mm"):
            target_spacing(ct, bad)


def test_ct_coarsened_keeps_extent_origin_and_treats_padding_as_air():
    ct = _ct()
    out = resample_to_spacing(ct, (3, 3, 0), labels=False)
    assert out.shape == (10, 10, 10) and out.spacing == (3.0, 3.0, 2.5) and out.origin == ct.origin
    assert out.array.min() >= -1000.0 - 1e-3  # -3024 padding is air before the blur, never below it
    assert abs(float(out.array[5, 5, 5]) - 50.0) < 1.0  # the middle of the block keeps its HU
    # the blur happened: the block edge is softened compared with no anti-alias
    plain = resample_to_spacing(ct, (3, 3, 0), labels=False, anti_alias=False)
    assert not np.allclose(out.array, plain.array)
    assert resample_to_spacing(ct, None, labels=False) is ct


def test_labels_stay_ids_on_the_same_grid_as_the_ct():
    ct = _ct()
    lab = ct.with_array(np.where(ct.array > 0, 5, 0).astype(np.uint8))
    out = resample_to_spacing(lab, (3, 3, 0), labels=True)
    assert out.array.dtype == np.uint8 and set(np.unique(out.array)) == {0, 5}
    assert out.shape == resample_to_spacing(ct, (3, 3, 0), labels=False).shape


@pytest.mark.slow
def test_gen_cache_spacing_encodes_resampled_cases(tmp_path, nifti_ct, nifti_organs):
    from napari_ctfoundation.engine.generation.cache import build_cache, load_cache

    manifest = write_tiny_dataset(tmp_path / "data", nifti_ct, nifti_organs, n_cases=1)
    out = build_cache(manifest, tmp_path / "cache", device="cpu", spacing_xyz=(6, 6, 0))
    entry = json.loads((out / "cache.json").read_text())["cases"][0]
    assert entry["spacing_xyz"] == [6.0, 6.0, 3.0] and entry["resampled_to"] == [6.0, 6.0, 0.0]
    assert entry["shape_zyx"] == [8, 20, 28]  # 40x56 at 3 mm -> 20x28 at 6 mm, 8 slices kept
    case = load_cache(out)[0]
    assert case.organs.fractions.shape[-2:] == case.latents.shape[-2:]
    # native spacing is another cache key: the folder is re-encoded, not silently reused
    stamp = (out / "case_0000.latents.safetensors").stat().st_mtime_ns
    build_cache(manifest, out, device="cpu")
    assert json.loads((out / "cache.json").read_text())["cases"][0]["shape_zyx"] == [8, 40, 56]
    assert (out / "case_0000.latents.safetensors").stat().st_mtime_ns != stamp


def test_cli_rejects_a_bad_spacing_before_encoding(tmp_path, nifti_ct, nifti_organs, capsys):
    from napari_ctfoundation.cli import main

    manifest = write_tiny_dataset(tmp_path / "data", nifti_ct, nifti_organs, n_cases=1)
    code = main(["gen", "cache", str(manifest), str(tmp_path / "cache"), "--spacing", "3,3"])
    assert code == 2 and "--spacing '3,3': expected 3 numbers" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "cache.json").exists()


@pytest.mark.parametrize("bad, message", [("5:2", "need 0 <= A < B"), ("8-56", "expected A:B")])
def test_gen_evaluate_rejects_a_bad_slice_range(tmp_path, nifti_ct, nifti_organs, capsys, bad, message):
    from napari_ctfoundation.cli import main

    manifest = write_tiny_dataset(tmp_path / "data", nifti_ct, nifti_organs, n_cases=1)
    code = main(["gen", "evaluate", "demo", str(manifest), "--slices", bad, "--out", str(tmp_path / "r.json")])
    assert code == 2 and f"--slices {bad!r}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
