"""Segmentation training with reconstruction augmentation, and its metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from napari_ctfoundation.cli import main as cli
from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.segmentation import (
    SegConfig, case_metrics, compare_tables, load_case, load_dataset, parse_classes, read_evaluation,
    train_segmenter,
)

from _workflows_util import write_nnunet_crops

CLASSES = "liver,spleen,stomach"


def test_parse_classes():
    assert parse_classes("liver,1") == {5: "liver", 1: "spleen"}
    with pytest.raises(ConfigError, match="unknown organ 'livre'"):
        parse_classes("livre")


def test_metrics_on_known_shapes():
    """A box shifted by one slice (2 mm): Dice, NSD and HD95 follow by hand."""
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:15, 5:15, 5:15] = 1
    pred = np.zeros_like(ref)
    pred[6:16, 5:15, 5:15] = 1
    ref[2, 2, 2] = 2  # class 2 present in the reference only
    spacing = (2.0, 1.0, 1.0)  # z, y, x mm
    rows = case_metrics(pred, ref, spacing, ["box", "dot", "absent"], tolerance_mm=2.0, case="c")
    box, dot, absent = rows
    assert box["dice"] == pytest.approx(0.9)  # 900 shared of 1000 + 1000 voxels
    assert box["hd95_mm"] == pytest.approx(2.0)  # the shift is one 2 mm slice
    assert box["nsd"] == pytest.approx(1.0)  # every surface point within 2 mm
    tight = case_metrics(pred, ref, spacing, ["box", "dot", "absent"], tolerance_mm=1.0)[0]
    assert 0.5 < tight["nsd"] < 1.0  # the caps are 2 mm off: outside a 1 mm tolerance
    assert box["tolerance_mm"] == 2.0
    assert dot["dice"] == 0 and dot["nsd"] == 0 and math.isinf(dot["hd95_mm"])
    assert all(math.isnan(absent[k]) for k in ("dice", "nsd", "hd95_mm"))


def test_largest_component_keeps_one_island_per_class():
    from napari_ctfoundation.engine.segmentation.evaluate import keep_largest_component

    pred = np.zeros((10, 10, 10), np.uint8)
    pred[1:4, 1:4, 1:4] = 1  # 27 voxels
    pred[8, 8, 8] = 1  # stray island
    pred[6:8, 1:3, 1:3] = 2
    out = keep_largest_component(pred, 2)
    assert (out == 1).sum() == 27 and out[8, 8, 8] == 0 and (out == 2).sum() == 8


def test_dicom_labels_align_after_reorientation(dicom_dir, dicom_organs):
    """The DICOM series is LPS, its labels LAS: the case loader lines them up."""
    from napari_ctfoundation.engine.io import read_labels

    case = load_case(dicom_dir, dicom_organs, parse_classes("liver"), spacing_xyz=None)
    raw = read_labels(dicom_organs).array
    assert (case.labels == 1).sum() == (raw == 5).sum()
    assert case.native_labels.orientation_code() == "LPS"
    # liver is on the patient's right: the image's left half in LPS display
    zs, ys, xs = np.nonzero(case.labels == 1)
    assert xs.mean() < case.labels.shape[2] / 2


@pytest.fixture(scope="module")
def seg_dataset(tmp_path_factory, nifti_ct, nifti_organs):
    """3 real crops + their reconstructions (nearest_f16, fast) via batch reconstruct."""
    root = write_nnunet_crops(nifti_ct, nifti_organs, tmp_path_factory.mktemp("seg") / "ds", size=(8, 48, 48))
    recon = root.parent / "recon"
    assert cli(["batch", "reconstruct", str(root), str(recon), "--vae", "nearest_f16", "--device", "cpu"]) == 0
    return root, recon


def _config(p: float, epochs: int = 1) -> SegConfig:
    return SegConfig(classes=parse_classes(CLASSES), patch_zyx=(8, 32, 32), init_filters=4,
                     epochs=epochs, steps_per_epoch=2, batch_size=2, p_recon=p)


def test_train_sampling_probability_and_resume(seg_dataset, tmp_path):
    root, recon = seg_dataset
    cfg = _config(1.0)
    cases = load_dataset(root, cfg.classes, spacing_xyz=cfg.spacing_xyz, recon_dir=recon)
    assert all(c.recon is not None and c.recon.shape == c.image.shape for c in cases)
    r1 = train_segmenter(cases, cfg, tmp_path / "m1")
    assert r1.recon_fraction == 1.0 and len(r1.losses) == 1 and np.isfinite(r1.losses).all()
    r2 = train_segmenter(cases, _config(1.0, epochs=2), tmp_path / "m1")  # train longer: resumes
    assert r2.resumed_from_epoch == 1 and len(r2.losses) == 2 and r2.losses[0] == r1.losses[0]
    r0 = train_segmenter(cases, _config(0.0), tmp_path / "m0")
    assert r0.recon_fraction == 0.0
    with pytest.raises(ConfigError, match="other settings"):
        train_segmenter(cases, _config(0.5), tmp_path / "m0")
    bare = load_dataset(root, cfg.classes, spacing_xyz=cfg.spacing_xyz)
    with pytest.raises(ConfigError, match="needs reconstructions"):
        train_segmenter(bare, _config(0.5), tmp_path / "m2")


def test_cli_train_evaluate_compare(seg_dataset, tmp_path, capsys):
    root, recon = seg_dataset
    tiny = ["--classes", CLASSES, "--epochs", "1", "--steps", "2", "--patch", "8,32,32", "--filters", "4"]
    for arm, p in (("base", "0"), ("aug", "0.5")):
        assert cli(["seg", "train", str(root), str(tmp_path / arm), "--cases", "case0,case1", "--p", p,
                    "--recon-dir", str(recon), *tiny]) == 0
        assert cli(["seg", "evaluate", str(tmp_path / arm), str(root), str(tmp_path / f"ev_{arm}"),
                    "--cases", "case2", "--tolerance", "3", "--save-predictions",
                    *(["--largest-component"] if arm == "aug" else [])]) == 0
    rows = read_evaluation(tmp_path / "ev_base")
    assert [r["class"] for r in rows] == ["spleen", "liver", "stomach"]
    assert all(r["case"] == "case2" and r["tolerance_mm"] == 3.0 for r in rows)
    assert all(0.0 <= r["dice"] <= 1.0 for r in rows if not math.isnan(r["dice"]))
    summary = json.loads((tmp_path / "ev_base" / "summary.json").read_text())
    assert json.loads((tmp_path / "ev_aug" / "summary.json").read_text())["largest_component"] is True
    assert summary["tolerance_mm"] == 3.0 and set(summary["classes"]) == {"spleen", "liver", "stomach"}
    from napari_ctfoundation.engine.io import read_labels

    pred = read_labels(tmp_path / "ev_base" / "case2_pred.nii.gz")
    ref = read_labels(root / "labelsTr" / "case2.nii.gz")
    assert pred.same_grid(ref)
    capsys.readouterr()
    assert cli(["seg", "compare", str(tmp_path / "ev_base"), str(tmp_path / "ev_aug"),
                "--out", str(tmp_path / "cmp.md")]) == 0
    out = capsys.readouterr().out
    assert "NSD@3mm baseline" in out and "| mean |" in out
    assert (tmp_path / "cmp.md").read_text().startswith("| class |")


def test_compare_refuses_different_tolerances():
    row = {"case": "a", "class": "liver", "dice": 0.5, "nsd": 0.5, "hd95_mm": 3.0, "ref_voxels": 1,
           "pred_voxels": 1}
    with pytest.raises(ConfigError, match="tolerances"):
        compare_tables([{**row, "tolerance_mm": 2.0}], [{**row, "tolerance_mm": 3.0}])
    result = compare_tables([{**row, "tolerance_mm": 2.0}], [{**row, "dice": 0.7, "tolerance_mm": 2.0}])
    assert result["rows"][0]["dice_delta"] == pytest.approx(0.2)
