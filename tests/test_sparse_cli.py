"""``ctfoundation sparse``: simulate -> reconstruct -> evaluate, train/finetune, bad input."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from napari_ctfoundation.cli import main
from napari_ctfoundation.engine.io import read_volume
from napari_ctfoundation.engine.sparse.dice.checkpoint import SHIPPED
from napari_ctfoundation.engine.sparse.geometry import PRESETS

GEO = PRESETS["deepsparse"].scaled(8, name="test-32")


@pytest.fixture()
def preset(tmp_path):
    return str(GEO.save(tmp_path / "geometry.json"))


def test_simulate_reconstruct_evaluate(nifti_ct, preset, tmp_path, capsys):
    ct = tmp_path / "ct.nii.gz"
    shutil.copy(nifti_ct, ct)
    proj = tmp_path / "proj"
    assert main(["sparse", "simulate", str(ct), str(proj), "--views", "6", "--preset", preset,
                 "--photons", "5e4", "--seed", "1", "--save-volume"]) == 0
    meta = json.loads((proj / "sparse.json").read_text())
    assert meta["view_indices"] == [0, 33, 66, 100, 133, 166] and meta["noise"]["photons"] == 5e4
    assert (proj / "projections.mha").is_file() and (proj / "geometry_rtk.xml").is_file()
    out = tmp_path / "fdk.nii.gz"
    assert main(["sparse", "reconstruct", str(proj), str(out), "--method", "fdk"]) == 0
    recon, ref = read_volume(out), read_volume(proj / "reference_normalised.nii.gz")
    assert recon.same_grid(ref) and recon.shape == (32, 32, 32)
    assert -1000.5 <= recon.array.min() and recon.array.max() <= 1000.5  # HU in the window
    # the grid lies on the CT in world coordinates
    ct_vol = read_volume(ct)
    centre = np.array(recon.origin) + 15.5 * 12.8
    corners = [ct_vol.affine_lps() @ np.array([*c, 1.0]) for c in ([0, 0, 0], np.array(ct_vol.shape[::-1]) - 1)]
    assert np.all(centre >= np.minimum(*corners)[:3] - 1) and np.all(centre <= np.maximum(*corners)[:3] + 1)
    capsys.readouterr()
    table = tmp_path / "table.csv"
    assert main(["sparse", "evaluate", str(ct), "--views", "6,10", "--methods", "fdk,sart",
                 "--preset", preset, "--iterations", "3", "--out", str(table)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "PSNR" in printed and "sart" in printed
    assert "note:" not in captured.err  # the shipped-DiCE caution only when DiCE is used
    with open(table) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["method", "views", "psnr", "ssim", "seconds"]
    assert [(r["method"], r["views"]) for r in rows] == [("fdk", "6"), ("sart", "6"), ("fdk", "10"), ("sart", "10")]
    assert all(0 < float(r["ssim"]) <= 1 and float(r["psnr"]) > 10 for r in rows)


def test_evaluating_the_shipped_dice_says_what_it_is(nifti_ct, capsys):
    assert main(["sparse", "evaluate", str(nifti_ct), "--views", "6", "--methods", "dice"]) == 0
    captured = capsys.readouterr()
    assert "dice" in captured.out
    assert "note: shipped DiCE" in captured.err and "6 patients" in captured.err


def test_bad_input_exits_2_with_a_message(nifti_ct, preset, tmp_path, capsys):
    assert main(["sparse", "simulate", str(nifti_ct), str(tmp_path / "p"), "--views", "0", "--preset", preset]) == 2
    assert "at least 1 view" in capsys.readouterr().err
    assert main(["sparse", "simulate", str(nifti_ct), str(tmp_path / "p"), "--views", "500", "--preset", preset]) == 2
    assert "only 200 candidate" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**GEO.to_dict(), "detector_offset": [5000, 0]}))
    assert main(["sparse", "simulate", str(nifti_ct), str(tmp_path / "p"), "--views", "6", "--preset", str(bad)]) == 2
    assert "misses the reconstruction grid" in capsys.readouterr().err
    # the shipped DiCE checkpoint was trained for deepsparse-64, not this geometry
    assert main(["sparse", "simulate", str(nifti_ct), str(tmp_path / "p"), "--views", "6", "--preset", preset]) == 0
    assert main(["sparse", "reconstruct", str(tmp_path / "p"), str(tmp_path / "d.nii.gz"), "--method", "dice"]) == 2
    assert "trained for geometry 'deepsparse-64'" in capsys.readouterr().err
    assert main(["sparse", "reconstruct", str(tmp_path), str(tmp_path / "d.nii.gz")]) == 2
    assert "not a projection folder" in capsys.readouterr().err
    for density in ("1.2", "1.2,0.9"):  # refused before any simulation or training
        args = ["sparse", "finetune", str(nifti_ct), "--step", "1", "--init", str(SHIPPED),
                "--out", str(tmp_path / "ft"), "--density-scale", density]
        assert main(args) == 2
        assert "--density-scale" in capsys.readouterr().err
    assert not (tmp_path / "ft").exists()


def test_train_and_finetune_commands(nifti_ct, tmp_path, capsys):
    geo = replace(GEO, n_candidates=24)
    preset = str(geo.save(tmp_path / "g24.json"))
    cfg = tmp_path / "tiny.json"
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig

    cfg.write_text(json.dumps(DiCEConfig.tiny(geo).to_dict()))
    common = ["--cache", str(tmp_path / "cache"), "--points", "256", "--batch-size", "1", "--max-steps", "1"]
    assert main(["sparse", "train", str(nifti_ct), "--out", str(tmp_path / "pre"), "--config", str(cfg),
                 "--preset", preset, "--min-views", "2", "--max-views", "6", *common]) == 0
    assert main(["sparse", "finetune", str(nifti_ct), "--step", "1", "--init", str(tmp_path / "pre"),
                 "--out", str(tmp_path / "s1"), "--views", "6", *common]) == 0
    assert (tmp_path / "s1" / "model.safetensors").is_file()
    assert main(["sparse", "finetune", str(nifti_ct), "--step", "2", "--init", str(tmp_path / "pre"),
                 "--out", str(tmp_path / "s2"), "--views", "30", *common]) == 2
    assert "only 24 candidate" in capsys.readouterr().err
