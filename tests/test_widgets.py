"""GUI tests: the Load CT and reconstruction widgets in a real napari viewer.

Run under Xvfb (pytest-xvfb starts it). Reconstruction runs the real TAEF2
engine through the worker on a small crop of the DICOM sample so the test
stays fast on a 2-core CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_ctfoundation.engine.window import HUWindow

pytestmark = pytest.mark.gui
WAIT_MS = 120_000  # generous: a shared 2-core machine can be slow


def _add_crop(viewer, dicom_dir, z=(6, 10), y=(200, 304), x=(120, 248), name="crop"):
    """A small crop of the DICOM sample as an image layer on its true grid."""
    from napari_ctfoundation.napari_io import volume_layer_data

    data, kwargs, _ = volume_layer_data(dicom_dir)
    scale = np.asarray(kwargs["scale"])
    translate = np.asarray(kwargs["translate"]) + scale * (z[0], y[0], x[0])
    crop = np.ascontiguousarray(data[z[0]:z[1], y[0]:y[1], x[0]:x[1]])
    return viewer.add_image(crop, name=name, scale=scale, translate=translate,
                            contrast_limits=(-160, 240),
                            metadata={"source_path": str(dicom_dir)})


def _wait_idle(qtbot, runner):
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)


# ---------------------------------------------------------------- Load CT
def test_load_ct_opens_dicom_folder_sets_window_and_shows_geometry(make_napari_viewer, qtbot, dicom_dir):
    from qtpy.QtCore import Qt

    from napari_ctfoundation.widgets.load_ct import LoadCTWidget

    viewer = make_napari_viewer()
    widget = LoadCTWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.path_edit.setText(str(dicom_dir))
    qtbot.mouseClick(widget.open_button, Qt.MouseButton.LeftButton)
    assert widget.open_button.text() == "Cancel"  # read runs in a worker
    _wait_idle(qtbot, widget.runner)
    assert widget.runner.last_outcome.status == "done"
    layer = viewer.layers["dicom"]
    assert layer.data.shape == (20, 512, 512)
    np.testing.assert_allclose(layer.scale, (2.0, 0.9765625, 0.9765625), atol=1e-5)
    assert "LPS" in widget.geometry.text() and "(20, 512, 512)" in widget.geometry.text()

    widget.preset_combo.setCurrentIndex(widget.preset_combo.findData("lung"))
    widget.apply_preset()
    assert tuple(layer.contrast_limits) == HUWindow.from_preset("lung").contrast_limits == (-1350, 150)
    assert widget.open_button.text() == "Open"


def test_load_ct_bad_path_notifies_and_adds_nothing(make_napari_viewer, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    from napari_ctfoundation.widgets.load_ct import LoadCTWidget

    viewer = make_napari_viewer()
    widget = LoadCTWidget(viewer)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    widget.path_edit.setText(str(broken))
    before = len(notification_manager.records)
    widget.open()
    _wait_idle(qtbot, widget.runner)
    assert widget.runner.last_outcome.status == "error"
    assert "broken.nii.gz" in widget.runner.last_outcome.message
    assert any("broken.nii.gz" in str(n.message) for n in notification_manager.records[before:])
    assert len(viewer.layers) == 0
    assert widget.open_button.text() == "Open"


def test_sample_data_opens_ct_with_aligned_organs(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-ctfoundation", "dicom_series")
    ct, organs = viewer.layers
    assert ct.data.shape == organs.data.shape == (20, 512, 512)
    np.testing.assert_allclose(ct.scale, organs.scale)
    np.testing.assert_allclose(ct.translate, organs.translate, atol=1e-3)
    assert organs.features.set_index("index").loc[5, "name"] == "liver"
    # status bar text names the organ under the cursor
    inside = np.argwhere(organs.data == 5)
    world = tuple(organs.data_to_world(inside[len(inside) // 2]))
    viewer.dims.set_point(0, world[0])
    status = organs.get_status(world, world=True, dims_displayed=[1, 2])
    assert status["value"] == "5; name: liver"


# --------------------------------------------------------- reconstruction
def test_reconstruction_runs_to_completion(make_napari_viewer, qtbot, dicom_dir):
    from qtpy.QtCore import Qt

    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget

    viewer = make_napari_viewer()
    crop = _add_crop(viewer, dicom_dir)
    widget = ReconstructionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.backend_combo.currentText() == "taef2"
    widget.device_combo.setCurrentText("cpu")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.run_button.text() == "Cancel"
    _wait_idle(qtbot, widget.runner)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    assert widget.run_button.text() == "Run"

    recon, diff = viewer.layers["crop [recon]"], viewer.layers["crop [difference]"]
    for layer in (recon, diff):
        assert layer.data.shape == crop.data.shape and layer.data.dtype == np.float32
        np.testing.assert_allclose(layer.scale, crop.scale)
        np.testing.assert_allclose(layer.translate, crop.translate)
        assert layer.metadata["source_layer"] == "crop"
        assert layer.metadata["settings"]["vae"]["backend"] == "taef2"
        assert layer.metadata["settings"]["hu_window"] == [-1000.0, 1000.0]
    metrics = recon.metadata["metrics"]
    assert metrics["psnr_db"] > 25 and 0.5 < metrics["ssim"] <= 1 and metrics["mae_hu"] < 60
    # the difference layer is recon - input (clipped to the window)
    expected = recon.data - np.clip(crop.data, -1000, 1000)
    np.testing.assert_allclose(diff.data, expected, atol=1e-3)
    text = widget.metrics_label.text()
    assert f"PSNR {metrics['psnr_db']:.2f} dB" in text and "SSIM" in text and "MAE" in text
    # reconstruction follows the input: soft tissue stays soft tissue
    assert abs(float(np.median(recon.data - crop.data))) < 30


def test_reconstruction_cancel_leaves_no_layers_then_runs_again(make_napari_viewer, qtbot, dicom_dir):
    from napari.qt.threading import GeneratorWorker
    from qtpy.QtCore import Qt

    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget

    viewer = make_napari_viewer()
    _add_crop(viewer, dicom_dir, z=(0, 20), name="long")
    widget = ReconstructionWidget(viewer)
    widget.device_combo.setCurrentText("cpu")
    seen, yielded = [], []
    widget.runner.progressed.connect(lambda done, total, unit: seen.append((done, total, unit)))
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    worker = widget.runner.worker
    assert isinstance(worker, GeneratorWorker)  # a napari generator thread_worker
    worker.yielded.connect(yielded.append)
    # cancel once the first batch of slices is through
    qtbot.waitUntil(lambda: any(done > 0 for done, _, _ in seen), timeout=WAIT_MS)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert worker.abort_requested  # Cancel quits the worker (and sets the engine's flag)
    _wait_idle(qtbot, widget.runner)
    assert widget.runner.last_outcome.status == "cancelled"
    # the progress reports arrived through the worker's `yielded` signal
    assert any(r.done > 0 and r.unit.startswith("slice passes") for r in yielded)
    # ... and are what the widget showed (it ignores those made while winding down)
    shown = [(r.done, r.total, r.unit) for r in yielded]
    first = seen.index(shown[0])
    assert seen[first:] == shown[:len(seen) - first]
    assert seen[-1][0] < seen[-1][1]  # it stopped before the end
    assert [layer.name for layer in viewer.layers] == ["long"]
    assert widget.run_button.text() == "Run" and widget.run_button.isEnabled()
    assert "cancelled" in widget.status.text()

    # a second job runs to the end after the cancel
    _add_crop(viewer, dicom_dir, z=(8, 10), name="short")
    widget.layer_combo.setCurrentText("short")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.runner.worker is not worker
    _wait_idle(qtbot, widget.runner)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    assert "short [recon]" in viewer.layers and "long [recon]" not in viewer.layers


def test_runner_delivers_nothing_after_cancel_even_if_the_job_finishes(qtbot):
    """A job that ignores cancel() and returns anyway: the result is dropped."""
    import threading

    from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton

    from napari_ctfoundation.engine.progress import Tracker
    from napari_ctfoundation.widgets._common import JobRunner, JobWorker, Report

    button, bar, label = QPushButton(), QProgressBar(), QLabel()
    qtbot.addWidget(button)
    runner = JobRunner(button, bar, label)
    gate, results, reports = threading.Event(), [], []

    def job(progress, cancel):
        tracker = Tracker(3, "steps", progress)  # no cancel check: stops only when it ends
        tracker.advance()
        gate.wait(60)
        tracker.advance(2)
        return "value"

    runner.start(job, "gated", on_result=results.append)
    assert isinstance(runner.worker, JobWorker) and button.text() == "Cancel"
    runner.worker.yielded.connect(reports.append)
    qtbot.waitUntil(lambda: bar.maximum() == 3 and bar.value() == 1, timeout=WAIT_MS)
    button.click()  # Cancel: the engine is blocked, so the worker waits for it
    assert not button.isEnabled() and "cancelling" in label.text()
    gate.set()
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    assert results == [] and runner.last_outcome.status == "cancelled"
    assert runner.last_outcome.message == "cancelled after 1 of 3 steps"
    assert button.text() == "Run" and button.isEnabled() and "cancelled" in label.text()
    assert all(isinstance(r, Report) for r in reports)

    # the activity dock's Cancel (what its button calls) stops the job the same way
    gate.clear()
    runner.start(job, "gated again", on_result=results.append)
    worker = runner.worker
    qtbot.waitUntil(lambda: bar.value() == 1, timeout=WAIT_MS)
    runner.activity_progress.cancel()
    assert worker.abort_requested and worker.cancel_event.is_set() and not button.isEnabled()
    gate.set()
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    assert results == [] and runner.last_outcome.status == "cancelled"

    runner.start(lambda progress, cancel: Tracker(2, "steps", progress).advance(2) or 42, "again",
                 on_result=results.append)
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    assert results == [42] and runner.last_outcome.status == "done" and label.text() == "again: done"


def test_reconstruction_bad_settings_report_errors(make_napari_viewer, qtbot, dicom_dir, tmp_path):
    from napari.utils.notifications import notification_manager

    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget

    viewer = make_napari_viewer()
    _add_crop(viewer, dicom_dir, z=(0, 2))
    widget = ReconstructionWidget(viewer)
    before = len(notification_manager.records)
    widget.set_window(500, 100)  # LO above HI: refused before any work starts
    widget.run()
    assert not widget.runner.running and "LO (500) must be below HI (100)" in widget.status.text()
    assert widget.preset_combo.currentData() == "custom"

    widget.set_window(-1000, 1000)
    assert widget.preset_combo.currentData() == "ct"
    not_a_folder = tmp_path / "model.safetensors"
    not_a_folder.write_bytes(b"x")
    widget.model_edit.setText(str(not_a_folder))  # a file, not a diffusers folder
    widget.run()
    _wait_idle(qtbot, widget.runner)
    assert widget.runner.last_outcome.status == "error"
    assert "model.safetensors" in widget.runner.last_outcome.message
    assert len(notification_manager.records) - before >= 2
    assert [layer.name for layer in viewer.layers] == ["crop"]


def test_layer_volume_keeps_reader_geometry(nifti_ct):
    """A reader layer comes back with its exact affine; a moved one follows the layer."""
    from napari.layers import Layer

    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.napari_io import volume_layer_data
    from napari_ctfoundation.widgets._common import layer_volume

    layer = Layer.create(*volume_layer_data(nifti_ct))
    display = read_volume(nifti_ct).to_display()
    vol = layer_volume(layer)
    assert vol.same_grid(display) and vol.metadata["source_orientation"] == "RAS"
    np.testing.assert_array_equal(vol.to_source_orientation().array, read_volume(nifti_ct).array)
    layer.translate = np.add(layer.translate, (3.0, 0, 0))
    moved = layer_volume(layer)
    np.testing.assert_allclose(np.subtract(moved.origin, display.origin), (0, 0, 3.0), atol=1e-4)
    assert moved.metadata["source_orientation"] == "RAS"
