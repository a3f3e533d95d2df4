"""Batch reconstruction and nnU-Net export on crops of the real sample CT."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from napari_ctfoundation.cli import main as cli
from napari_ctfoundation.engine.batch import discover_cases, export_nnunet, run_batch
from napari_ctfoundation.engine.batch.reconstruct import make_reconstruct_case
from napari_ctfoundation.engine.batch.runner import STATE_DIR
from napari_ctfoundation.engine.errors import ConfigError, OperationCancelled, VolumeReadError
from napari_ctfoundation.engine.io import read_labels, read_volume
from napari_ctfoundation.engine.metrics import volume_metrics

from _workflows_util import write_nnunet_crops


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, nifti_ct, nifti_organs) -> Path:
    root = write_nnunet_crops(nifti_ct, nifti_organs, tmp_path_factory.mktemp("ds") / "Dataset001_crops")
    # a second channel file must be ignored (CT is single channel)
    shutil.copy(root / "imagesTr" / "case0_0000.nii.gz", root / "imagesTr" / "case0_0001.nii.gz")
    return root


@pytest.fixture(scope="module")
def taef2_out(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recon")
    assert cli(["batch", "reconstruct", str(dataset), str(out), "--vae", "taef2", "--device", "cpu"]) == 0
    return out


def test_discover_nnunet_layout(dataset):
    cases = discover_cases(dataset)
    assert [c.name for c in cases] == ["case0", "case1", "case2"]
    assert cases[0].rel == Path("imagesTr/case0_0000.nii.gz")
    assert cases[1].label == dataset / "labelsTr" / "case1.nii.gz"


def test_discover_manifest_folder_and_errors(tmp_path, nifti_ct, sample_data_dir):
    bad = tmp_path / "bad.csv"
    bad.write_text("path\nx.nii.gz\n")
    with pytest.raises(ConfigError, match="'image' column"):
        discover_cases(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("image\nnot_there.nii.gz\n")
    with pytest.raises(VolumeReadError, match="line 2"):
        discover_cases(missing)
    txt = tmp_path / "list.txt"
    txt.write_text(f"{nifti_ct}\n")
    assert discover_cases(txt)[0].image == nifti_ct
    # a plain folder: volume files and DICOM series folders (mirrored as NIfTI)
    cases = {c.name: c for c in discover_cases(sample_data_dir / "ct_dicom_series")}
    assert set(cases) == {"dicom", "organs"}
    assert cases["dicom"].rel == Path("dicom.nii.gz")
    with pytest.raises(ConfigError, match="no such"):
        discover_cases(tmp_path / "nope")


def test_batch_reconstruct_mirrors_and_measures(dataset, taef2_out):
    rows = _rows(taef2_out / "metrics.csv")
    assert [r["case"] for r in rows] == ["case0", "case1", "case2"]
    assert {"case", "psnr_db", "ssim", "mae_hu", "seconds"} <= set(rows[0])
    for r in rows:
        src = read_volume(dataset / "imagesTr" / f"{r['case']}_0000.nii.gz")
        out = read_volume(taef2_out / "imagesTr" / f"{r['case']}_0000.nii.gz")
        assert out.same_grid(src) and out.orientation_code() == src.orientation_code()
        # the CSV holds the metrics of the file actually written
        m = volume_metrics(src.array, out.array)
        assert float(r["psnr_db"]) == pytest.approx(m["psnr_db"], abs=1e-3)
        assert float(r["mae_hu"]) == pytest.approx(m["mae_hu"], rel=1e-3)
        assert float(r["psnr_db"]) > 20  # a real reconstruction, not noise
    assert not (taef2_out / "imagesTr" / "case0_0001.nii.gz").exists()


def test_rerun_skips_and_other_settings_refused(dataset, taef2_out, capsys):
    assert cli(["batch", "reconstruct", str(dataset), str(taef2_out), "--vae", "taef2", "--device", "cpu"]) == 0
    assert "0 reconstructed, 3 already done" in capsys.readouterr().out
    code = cli(["batch", "reconstruct", str(dataset), str(taef2_out), "--vae", "nearest_f16", "--device", "cpu"])
    assert code == 2
    assert "other settings (vae)" in capsys.readouterr().err


def test_cancelled_or_killed_run_loses_nothing(dataset, tmp_path):
    cases = discover_cases(dataset)
    out = tmp_path / "out"
    process = make_reconstruct_case("nearest_f16", device="cpu")
    done = {"n": 0}

    def count_progress(d, t, unit):
        done["n"] = d

    with pytest.raises(OperationCancelled):
        run_batch(cases, out, process, distributed=False, progress=count_progress,
                  cancel=lambda: done["n"] >= 1)
    assert len(list((out / STATE_DIR / "records").glob("*.json"))) == 1
    # a killed write leaves only a temp file; a lost output invalidates its record
    (out / "imagesTr" / ".tmp-half.nii.gz").write_bytes(b"partial")
    summary = run_batch(cases, out, process, distributed=False)
    assert summary.skipped == ["case0"] and summary.done == ["case1", "case2"]
    (out / "imagesTr" / "case1_0000.nii.gz").unlink()
    summary = run_batch(cases, out, process, distributed=False)
    assert summary.done == ["case1"] and summary.skipped == ["case0", "case2"]
    assert [r["case"] for r in _rows(out / "metrics.csv")] == ["case0", "case1", "case2"]


def test_failed_case_is_reported_and_retried(dataset, tmp_path):
    cases = discover_cases(dataset)
    broken = tmp_path / "broken_0000.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    from napari_ctfoundation.engine.batch.dataset import Case

    cases = cases[:1] + [Case("broken", broken, Path("imagesTr/broken_0000.nii.gz"))]
    summary = run_batch(cases, tmp_path / "o", make_reconstruct_case("nearest_f16", device="cpu"),
                        distributed=False)
    assert summary.done == ["case0"] and "broken" in summary.failed
    assert "corrupt" in summary.failed["broken"]
    assert [r["case"] for r in _rows(tmp_path / "o" / "metrics.csv")] == ["case0"]


def test_int16_output(dataset, tmp_path):
    out = tmp_path / "i16"
    assert cli(["batch", "reconstruct", str(dataset), str(out), "--vae", "nearest_f16", "--device", "cpu",
                "--dtype", "int16"]) == 0
    import SimpleITK as sitk

    img = sitk.ReadImage(str(out / "imagesTr" / "case2_0000.nii.gz"))
    assert img.GetPixelIDTypeAsString() == "16-bit signed integer"


def test_nnunet_export_both(dataset, taef2_out, tmp_path, capsys):
    code = cli(["batch", "nnunet-export", str(dataset), str(tmp_path), "--dataset-id", "7", "--name", "Crops",
                "--mode", "both", "--recon-dir", str(taef2_out), "--classes", "liver,spleen,stomach",
                "--folds", "3"])
    assert code == 0
    folder = tmp_path / "Dataset007_Crops"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "spleen": 1, "liver": 2, "stomach": 3}
    assert meta["numTraining"] == 6 and meta["file_ending"] == ".nii.gz"
    assert meta["channel_names"] == {"0": "CT"}
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    assert images == sorted([f"case{i}{s}_0000.nii.gz" for i in range(3) for s in ("", "_recon")])
    # originals are copied byte for byte; labels renumbered, on the image grid
    assert (folder / "imagesTr" / "case1_0000.nii.gz").read_bytes() == \
        (dataset / "imagesTr" / "case1_0000.nii.gz").read_bytes()
    src = read_labels(dataset / "labelsTr" / "case1.nii.gz").array
    lab = read_labels(folder / "labelsTr" / "case1_recon.nii.gz").array
    assert set(np.unique(lab)) <= {0, 1, 2, 3}
    assert (lab == 2).sum() == (src == 5).sum() and (lab == 1).sum() == (src == 1).sum()
    splits = json.loads((folder / "splits_final.json").read_text())
    assert len(splits) == 3
    for split in splits:  # every reconstruction sits in its original's fold
        for ident in split["val"]:
            base = ident.replace("_recon", "")
            assert base in split["val"] and base + "_recon" in split["val"]


def test_nnunet_export_needs_labels_and_recon(dataset, tmp_path, nifti_ct):
    with pytest.raises(ConfigError, match="recon-dir"):
        export_nnunet(discover_cases(dataset), tmp_path, dataset_id=1, name="x", mode="both")
    with pytest.raises(ConfigError, match="without a label"):
        export_nnunet(discover_cases(nifti_ct), tmp_path, dataset_id=1, name="x")
    with pytest.raises(ConfigError, match="not consecutive"):
        export_nnunet(discover_cases(dataset), tmp_path, dataset_id=2, name="y")


@pytest.mark.slow
def test_data_parallel_two_processes(dataset, tmp_path):
    """torchrun (what accelerate launch uses) with 2 CPU processes shares the cases."""
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed")
    out = tmp_path / "dp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "napari_ctfoundation.cli",
                           "batch", "reconstruct", str(dataset), str(out), "--vae", "nearest_f16"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "process 0/2: 2 reconstructed" in proc.stdout  # cases 0 and 2; process 1 took case 1
    assert [r["case"] for r in _rows(out / "metrics.csv")] == ["case0", "case1", "case2"]
    assert len(list((out / "imagesTr").glob("*.nii.gz"))) == 3
