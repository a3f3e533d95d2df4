"""Reconstruction straight into a file (issue 13 part 3): same result as in RAM, nothing left behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ctfoundation.cli import main
from napari_ctfoundation.engine import file_output
from napari_ctfoundation.engine.errors import OperationCancelled
from napari_ctfoundation.engine.io import read_volume, write_volume
from napari_ctfoundation.engine.reconstruct import reconstruct_volume
from napari_ctfoundation.engine.volume import Volume
from napari_ctfoundation.engine.window import HUWindow

VAE = "bicubic_f16"  # negligible compute, deterministic
OPTIONS = dict(device="cpu", batch_size=4)
# A source layout that is not the display one (RAS-stored, slightly oblique), so the write re-orders.
TILT = 0.05
DIRECTION = np.array([[-np.cos(TILT), np.sin(TILT), 0], [-np.sin(TILT), -np.cos(TILT), 0], [0, 0, 1]])


@pytest.fixture
def source(tmp_path):
    rng = np.random.default_rng(7)
    array = np.round(rng.normal(0, 400, size=(10, 24, 40))).astype(np.int16)
    path = tmp_path / "in" / "ct.nii.gz"
    write_volume(Volume(array, (0.8, 0.9, 2.5), (12.0, -30.0, 40.0), DIRECTION), path)
    return path


def leftovers(folder):
    return sorted(p.name for p in folder.rglob(".tmp-*"))


def in_ram(source, out, window=HUWindow()):
    """The pre-streaming path: whole output in RAM, then written."""
    display = read_volume(source).to_display()
    result = reconstruct_volume(display, VAE, window, **OPTIONS)
    write_volume(result.volume.to_source_orientation(), out)
    return result


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
def test_file_equals_in_ram_result_and_keeps_geometry(source, tmp_path, suffix, monkeypatch):
    import napari_ctfoundation.engine.reconstruct as rec

    seen = []
    real = rec.reconstruct_volume

    def spy(*args, **kwargs):
        seen.append(type(kwargs.get("out")))
        return real(*args, **kwargs)

    reference = in_ram(source, tmp_path / f"ref{suffix}")
    monkeypatch.setattr(rec, "reconstruct_volume", spy)
    out = tmp_path / "out" / f"recon{suffix}"
    result = file_output.reconstruct_to_file(read_volume(source).to_display(), out, VAE, **OPTIONS)
    assert seen == [np.memmap]  # reconstructed into the disk-backed scratch array
    got, want, original = read_volume(out), read_volume(tmp_path / f"ref{suffix}"), read_volume(source)
    assert got.array.dtype == np.float32 and np.array_equal(got.array, want.array)
    assert got.shape == original.shape
    for vol in (want, original):
        assert np.allclose(got.spacing, vol.spacing, atol=1e-6)
        assert np.allclose(got.origin, vol.origin, atol=1e-4)
        assert np.allclose(got.direction, vol.direction, atol=1e-6)
    assert got.orientation_code() == original.orientation_code() != "LPS"
    assert result.metrics == reference.metrics  # metrics read back from the memmap, slab-wise
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_cli_writes_output_difference_and_sidecar_without_scratch(source, tmp_path, capsys):
    out, diff = tmp_path / "out" / "recon.nii.gz", tmp_path / "out" / "diff.nii.gz"
    reference = in_ram(source, tmp_path / "ref.nii.gz")
    assert main(["reconstruct", str(source), str(out), "--vae", VAE, "--device", "cpu", "--batch-size", "4",
                 "--difference", str(diff)]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert np.array_equal(read_volume(out).array, read_volume(tmp_path / "ref.nii.gz").array)
    expected = reference.difference.to_source_orientation().array
    assert np.array_equal(read_volume(diff).array, expected)
    sidecar = json.loads((tmp_path / "out" / "recon.json").read_text())
    assert sidecar["metrics"]["psnr_db"] == pytest.approx(reference.metrics["psnr_db"])
    assert "write" in sidecar["settings"]["timing_s"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["diff.nii.gz", "recon.json", "recon.nii.gz"]


def test_error_mid_run_leaves_nothing(source, tmp_path):
    out = tmp_path / "out" / "recon.nii.gz"

    def fail(z0, z1, hu):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        file_output.reconstruct_to_file(read_volume(source).to_display(), out, VAE, on_slab=fail, **OPTIONS)
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("stop_at", [2, 4], ids=["during-reconstruction", "during-write"])
def test_cancel_keeps_existing_output_and_leaves_no_scratch(source, tmp_path, stop_at):
    out = tmp_path / "out" / "recon.nii.gz"
    out.parent.mkdir()
    out.write_bytes(b"an earlier result")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= stop_at

    # 10 slices in batches of 4: cancel is asked 3 times while reconstructing, then every 8 written slices
    with pytest.raises(OperationCancelled):
        file_output.reconstruct_to_file(read_volume(source).to_display(), out, VAE, cancel=cancel, **OPTIONS)
    assert len(calls) == stop_at
    assert out.read_bytes() == b"an earlier result"
    assert leftovers(tmp_path) == [] and sorted(p.name for p in out.parent.iterdir()) == ["recon.nii.gz"]


def test_scratch_array_is_removed_on_error(tmp_path):
    with pytest.raises(ValueError):
        with file_output.scratch_array(tmp_path / "x.nii.gz", (3, 4, 5)) as scratch:
            assert isinstance(scratch, np.memmap) and scratch.filename.startswith(str(tmp_path))
            assert leftovers(tmp_path) != []
            raise ValueError("boom")
    assert leftovers(tmp_path) == []
