"""Issue 14 items 6 and 7 (reconstruction): every phase shows itself, fast metrics, the window explained.

* Progress: loading the model and the metrics are phases of their own, in
  the engine, the CLI's bar and the widget's bar (a busy bar for a phase
  without a count).
* Metrics: batched separable torch filters give MONAI's SSIM / MS-SSIM values.
* ``--keep-outside-window``: voxels outside the window come from the input,
  the sidecar says so and names the preset; the default stays pure D(E(x)).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from napari_ctfoundation.engine import metrics as M
from napari_ctfoundation.engine.io import read_volume, write_volume
from napari_ctfoundation.engine.reconstruct import reconstruct_volume
from napari_ctfoundation.engine.volume import Volume
from napari_ctfoundation.engine.window import HUWindow


def _ct_with_bone(depth=6, height=32, width=40) -> Volume:
    rng = np.random.default_rng(1)
    array = rng.normal(40, 200, (depth, height, width)).astype(np.float32)
    array[:, :5] = -1024  # air below the window
    array[:, -6:, :10] = 1839  # bone above it
    return Volume(array, spacing=(0.9, 0.9, 2.5))


# ------------------------------------------------------------------ metrics
@pytest.mark.parametrize("shape", [(12, 40, 40), (5, 33, 47), (1, 64, 64), (23, 96, 80)])
def test_metrics_equal_monai(shape):
    from monai.metrics import MultiScaleSSIMMetric, SSIMMetric

    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, shape).astype(np.float32)
    test = np.clip(ref + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
    win = [M._odd_kernel(side) for side in shape]
    ssim = SSIMMetric(spatial_dims=3, data_range=1.0, win_size=win)(
        torch.from_numpy(test)[None, None], torch.from_numpy(ref)[None, None])
    kernel, weights = M._ms_ssim_setup(*shape[1:])
    ms_ssim = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=kernel, weights=tuple(weights))(
        torch.from_numpy(test)[:, None], torch.from_numpy(ref)[:, None])
    window = HUWindow(-1000, 1000)
    seen = []
    ours = M.volume_metrics(ref * 2000 - 1000, test * 2000 - 1000, window,
                            progress=lambda d, t, u: seen.append((d, t, u)))
    assert ours["ssim"] == pytest.approx(float(ssim.mean()), abs=2e-6)
    assert ours["ms_ssim"] == pytest.approx(float(ms_ssim.mean()), abs=2e-6)
    assert seen[0] == (0, shape[0], "slices (metrics)") and seen[-1] == (shape[0], shape[0], "slices (metrics)")


# ----------------------------------------------------------------- progress
def test_every_phase_reports_itself_in_order():
    seen = []
    volume = _ct_with_bone()
    result = reconstruct_volume(volume, "bicubic_f16", device="cpu", batch_size=2,
                                progress=lambda d, t, u: seen.append((d, t, u)))
    units = [u for _, _, u in seen]
    assert seen[0] == (0, 0, "loading VAE bicubic_f16")  # no count: a busy bar
    passes = [i for i, u in enumerate(units) if u == "slice passes (encode + decode)"]
    metrics = [i for i, u in enumerate(units) if u == "slices (metrics)"]
    assert passes and metrics and passes[-1] < metrics[0]
    assert seen[passes[-1]] == (12, 12, units[passes[-1]]) and seen[-1] == (6, 6, "slices (metrics)")
    dones = [d for d, _, u in seen if u == "slices (metrics)"]
    assert dones == sorted(dones)
    timing = result.settings["timing_s"]
    assert timing["reconstruction"] > 0 and timing["metrics"] >= 0


@pytest.mark.gui
def test_widget_bar_is_busy_and_named_for_a_phase_without_a_count(qtbot):
    from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton

    from napari_ctfoundation.widgets._common import JobRunner

    button, bar, label = QPushButton(), QProgressBar(), QLabel()
    runner = JobRunner(button, bar, label)
    release = threading.Event()

    def job(progress, cancel):
        progress(0, 0, "loading VAE taef2")
        assert release.wait(30)
        progress(3, 6, "slice passes (encode + decode)")
        return 1

    runner.start(job, "VAE reconstruction", on_result=lambda value: None)
    qtbot.waitUntil(lambda: "loading VAE taef2..." in label.text(), timeout=30_000)
    assert bar.maximum() == 0  # Qt's busy indicator, not a bar stuck at 0 %
    release.set()
    qtbot.waitUntil(lambda: not runner.running, timeout=30_000)
    assert runner.last_outcome.status == "done"


# ------------------------------------------------------------ outside window
def test_keep_outside_window_fills_from_the_input_and_default_stays_pure():
    volume = _ct_with_bone()
    window = HUWindow(-1000, 1000)
    pure = reconstruct_volume(volume, "bicubic_f16", window, device="cpu")
    kept = reconstruct_volume(volume, "bicubic_f16", window, device="cpu", keep_outside_window=True)
    outside = (volume.array < window.lo) | (volume.array > window.hi)
    assert outside.any()
    assert pure.volume.array.max() <= window.hi and pure.volume.array.min() >= window.lo
    assert np.array_equal(kept.volume.array[outside], volume.array[outside])
    assert np.array_equal(kept.volume.array[~outside], pure.volume.array[~outside])
    assert kept.volume.array.max() == pytest.approx(1839)
    assert not pure.settings["keep_outside_window"] and kept.settings["keep_outside_window"]
    assert "pure D(E(x))" in pure.settings["outside_window"]
    assert "filled from the input" in kept.settings["outside_window"]
    assert "metrics_note" in kept.settings and "metrics_note" not in pure.settings
    assert np.all(kept.difference.array[outside] == 0)
    assert np.allclose(pure.difference.array, pure.volume.array - np.clip(volume.array, -1000, 1000))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "napari_ctfoundation.cli", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_keep_outside_window_sidecar_and_help(tmp_path):
    src = tmp_path / "ct.nii.gz"
    write_volume(_ct_with_bone(), src)
    kept, pure = tmp_path / "kept.nii.gz", tmp_path / "pure.nii.gz"
    done = _cli("reconstruct", str(src), str(kept), "--vae", "bicubic_f16", "--device", "cpu",
                "--preset", "bone", "--keep-outside-window")
    assert done.returncode == 0, done.stderr
    assert "loading VAE bicubic_f16" in done.stderr and "slices (metrics)" in done.stderr
    sidecar = json.loads((tmp_path / "kept.json").read_text())["settings"]
    assert sidecar["window_preset"] == "bone" and sidecar["keep_outside_window"] is True
    assert "filled from the input" in sidecar["outside_window"]
    bone = HUWindow.from_preset("bone")
    assert read_volume(kept).array.min() < bone.lo  # air kept from the input, not the window's edge

    done = _cli("reconstruct", str(src), str(pure), "--vae", "bicubic_f16", "--device", "cpu",
                "--window", "-160,240")
    assert done.returncode == 0, done.stderr
    sidecar = json.loads((tmp_path / "pure.json").read_text())["settings"]
    assert sidecar["window_preset"] == "custom" and sidecar["keep_outside_window"] is False
    array = read_volume(pure).array
    assert array.min() >= -160 - 1e-3 and array.max() <= 240 + 1e-3

    text = _cli("reconstruct", "--help").stdout
    assert "--keep-outside-window" in text and "window's edge" in " ".join(text.split())
