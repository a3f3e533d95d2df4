"""The ctfoundation CLI: info, vae list, reconstruct."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from napari_ctfoundation.cli import main
from napari_ctfoundation.engine.io import read_volume


def test_info_and_vae_list(dicom_dir, capsys):
    assert main(["info", str(dicom_dir)]) == 0
    out = capsys.readouterr().out
    assert "512 x 512 x 20" in out and "LPS" in out and "dicom rescale_intercept   -1024" in out
    assert main(["vae", "list"]) == 0
    out = capsys.readouterr().out
    assert "taef2" in out and "AutoencoderKLWan" in out


def test_reconstruct_writes_volume_and_sidecar(nifti_ct, tmp_path, capsys):
    src = tmp_path / "ct.nii.gz"
    shutil.copy(nifti_ct, src)
    out = tmp_path / "out" / "recon.nii.gz"
    diff = tmp_path / "out" / "diff.nii.gz"
    assert main(["reconstruct", str(src), str(out), "--difference", str(diff), "--preset", "ct"]) == 0
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "SSIM" in printed and "MAE" in printed
    # same voxel layout and affine as the input file
    assert np.allclose(nib.load(str(out)).affine, nib.load(str(src)).affine, atol=1e-4)
    recon, original = read_volume(out), read_volume(src)
    assert recon.same_grid(original)
    assert np.corrcoef(recon.array.ravel(), original.array.ravel())[0, 1] > 0.95  # same orientation
    sidecar = json.loads((tmp_path / "out" / "recon.json").read_text())
    assert sidecar["metrics"]["psnr_db"] > 30 and sidecar["settings"]["vae"]["backend"] == "taef2"
    assert "torch" in sidecar["settings"]["versions"] and sidecar["seconds"] > 0
    assert read_volume(diff).same_grid(original)
    # never overwrite: existing output refused, input refused
    assert main(["reconstruct", str(src), str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["reconstruct", str(src), str(src), "--overwrite"]) == 2
    assert "refusing to write over the input" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["reconstruct", "missing.nii.gz", "o.nii.gz"], "no such file or folder"),
        (["reconstruct", "{ct}", "o.nii.gz", "--window", "5"], "expected two numbers"),
        (["reconstruct", "{ct}", "o.nii.gz", "--window", "100,-100"], "LO must be below HI"),
        (["reconstruct", "{ct}", "o.nii.gz", "--preset", "kidney"], "unknown window preset"),
        (["reconstruct", "{ct}", "o.nii.gz", "--vae", "nope/nope"], "not a registered backend"),
        (["reconstruct", "{ct}", "o.png"], "unsupported output type"),
        (["reconstruct", "{ct}", "o.nii.gz", "--device", "tpu"], "unknown device"),
    ],
)
def test_bad_input_one_line_error(args, message, nifti_ct, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{ct}", str(nifti_ct)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "o.nii.gz").exists()


def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "napari_ctfoundation.cli", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "reconstruct" in done.stdout
