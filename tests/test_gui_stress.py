"""Issue 12 part 3: the GUI under stress (pytest-qt, real napari viewer).

Two widgets running at once, the same widget started twice, closing a layer
that a running job reads, closing the viewer mid-run, cancelling during a
save: no crash (pytest-qt fails a test on any exception raised in a Qt
slot), no orphan thread, no half-written file.

A running job is held open by a *gate* around the real engine function: the
gate reports progress and honours cancel every 10 ms until the test opens
it, then the real engine runs (an interpolation VAE backend, fast). Jobs are
therefore exactly as long as each test needs.
"""

from __future__ import annotations

import threading
import types

import numpy as np
import pytest

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


def _engine_threads():
    return [t for t in threading.enumerate() if t.name == "ctfoundation-engine" and t.is_alive()]


def _live_job_workers():
    from napari.qt.threading import GeneratorWorker

    from napari_ctfoundation.widgets._common import JobWorker

    return [w for w in list(GeneratorWorker._worker_set) if isinstance(w, JobWorker)]


@pytest.fixture
def no_orphans(qtbot):
    """After the test: every engine thread and job worker has ended (waits up to 30 s)."""
    yield
    qtbot.waitUntil(lambda: not _engine_threads() and not _live_job_workers(), timeout=30_000)


@pytest.fixture
def gate(monkeypatch):
    """Hold ``reconstruct_volume`` until ``gate.open`` is set; it stops on cancel meanwhile."""
    from napari_ctfoundation.engine import reconstruct as engine
    from napari_ctfoundation.engine.progress import Tracker

    real = engine.reconstruct_volume
    state = types.SimpleNamespace(open=threading.Event(), started=0, reached_engine=0)
    lock = threading.Lock()

    def gated(volume, *args, progress=None, cancel=None, **kwargs):
        with lock:
            state.started += 1
        tracker = Tracker(10 ** 7, "gate ticks", progress, cancel)
        while not state.open.wait(0.01):
            tracker.advance()  # raises OperationCancelled once the job is cancelled
        with lock:
            state.reached_engine += 1
        return real(volume, *args, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(engine, "reconstruct_volume", gated)
    yield state
    state.open.set()  # never leave a gated job behind


def _ct(viewer, nifti_ct, name="ct"):
    """A 3-slice crop of the abdominal sample (z, y, x in mm, as our reader adds it)."""
    from napari_ctfoundation.napari_io import volume_layer_data

    data, kwargs, _ = volume_layer_data(nifti_ct)
    scale = np.asarray(kwargs["scale"])
    kwargs.update(name=name, translate=np.asarray(kwargs["translate"]) + scale * (10, 20, 30))
    kwargs.pop("metadata")
    return viewer.add_image(np.ascontiguousarray(data[10:13, 20:84, 30:94]), **kwargs)


def _recon_widget(viewer, dock=True):
    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget

    widget = ReconstructionWidget(viewer)
    if dock:
        viewer.window.add_dock_widget(widget)
    widget.backend_combo.setCurrentText("bilinear_f16")
    widget.device_combo.setCurrentText("cpu")
    return widget


def _wait_running(qtbot, gate, n):
    qtbot.waitUntil(lambda: gate.started >= n, timeout=WAIT_MS)


# ------------------------------------------------------- parallel widgets
def test_widgets_run_side_by_side_and_never_queue(make_napari_viewer, qtbot, nifti_ct, gate, no_orphans):
    """Two reconstruction widgets held running; a third widget's job still starts and ends at once."""
    from napari_ctfoundation.widgets.load_ct import LoadCTWidget

    viewer = make_napari_viewer()
    _ct(viewer, nifti_ct)
    first, second = _recon_widget(viewer), _recon_widget(viewer)
    first.run()
    second.run()
    _wait_running(qtbot, gate, 2)  # both engines run at the same time
    assert first.runner.running and second.runner.running and len(_engine_threads()) >= 2
    # Qt's pool is sized to the CPU count (2 here): without room made for each job, this would queue
    loader = LoadCTWidget(viewer)
    loader.path_edit.setText(str(nifti_ct))
    loader.open()
    qtbot.waitUntil(lambda: not loader.runner.running, timeout=WAIT_MS)
    assert loader.runner.last_outcome.status == "done" and first.runner.running and second.runner.running
    gate.open.set()
    qtbot.waitUntil(lambda: not first.runner.running and not second.runner.running, timeout=WAIT_MS)
    assert first.runner.last_outcome.status == second.runner.last_outcome.status == "done"
    # both results went to the same-named layer: the second replaced the first, nothing piled up
    assert [ly.name for ly in viewer.layers].count("ct [recon]") == 1


def test_the_same_widget_started_twice(make_napari_viewer, qtbot, nifti_ct, gate, no_orphans):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    _ct(viewer, nifti_ct)
    widget = _recon_widget(viewer)
    widget.run()
    worker = widget.runner.worker
    _wait_running(qtbot, gate, 1)
    before = len(notification_manager.records)
    widget.run()  # a second start (e.g. a script, or a key binding) is refused: one job per widget
    assert widget.runner.worker is worker and gate.started == 1
    assert any("already running" in str(n.message) for n in notification_manager.records[before:])
    # a double click: the second click is Cancel, and nothing is delivered
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "cancelled" and gate.reached_engine == 0
    assert [ly.name for ly in viewer.layers] == ["ct"]
    # and the widget runs again afterwards
    gate.open.set()
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message


# ---------------------------------------------- layers closed under a job
def test_closing_the_layer_a_running_job_reads(make_napari_viewer, qtbot, nifti_ct, gate, no_orphans):
    viewer = make_napari_viewer()
    ct = _ct(viewer, nifti_ct)
    original = np.array(ct.data, copy=True)
    widget = _recon_widget(viewer)
    widget.run()
    _wait_running(qtbot, gate, 1)
    viewer.layers.remove("ct")  # the user closes the input while the job runs
    assert widget.layer_combo.currentText() == "" and widget.runner.running
    gate.open.set()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    # the job had its own reference to the voxels: its result is complete and right
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    recon, diff = viewer.layers["ct [recon]"], viewer.layers["ct [difference]"]
    np.testing.assert_allclose(diff.data, recon.data - np.clip(original, -1000, 1000), atol=1e-3)
    assert recon.metadata["source_layer"] == "ct"


def test_painting_during_generation_does_not_reach_the_running_job(make_napari_viewer):
    """Generation reads a copy of the masks taken when Generate is pressed."""
    from napari_ctfoundation.widgets.generation import ConditionalGenerationWidget

    viewer = make_napari_viewer()
    organs = np.zeros((4, 16, 16), np.uint8)
    organs[1:3, 4:12, 4:12] = 5
    layer = viewer.add_labels(organs.copy(), name="organs")
    widget = ConditionalGenerationWidget(viewer)
    _, volume, _ = widget._masks()
    layer.paint((2, 8, 8), 3, refresh=False)  # a brush stroke after Generate
    layer.data[0] = 1
    assert not np.shares_memory(volume.array, layer.data)
    np.testing.assert_array_equal(volume.array, organs)


# --------------------------------------------------- the viewer closed mid-run
@pytest.mark.parametrize("dock", [True, False], ids=["docked", "floating"])
def test_closing_the_viewer_mid_run(make_napari_viewer, qtbot, nifti_ct, gate, no_orphans, dock):
    """The job stops at its next progress report; nothing is added; no thread outlives it."""
    viewer = make_napari_viewer()
    _ct(viewer, nifti_ct)
    widget = _recon_widget(viewer, dock=dock)
    if not dock:  # a widget shown on its own, closed with its window
        qtbot.addWidget(widget)
        widget.show()
    added = []
    viewer.layers.events.inserted.connect(lambda event: added.append(event.value.name))
    widget.run()
    worker = widget.runner.worker
    _wait_running(qtbot, gate, 1)
    if dock:
        viewer.close()
    else:
        widget.close()
    qtbot.waitUntil(lambda: not _engine_threads() and not _live_job_workers(), timeout=30_000)
    assert worker.abort_requested and worker.cancel_event.is_set()
    assert gate.reached_engine == 0  # the engine never went past the gate: it was cancelled
    qtbot.wait(50)  # any late delivery would happen now
    assert added == []


def test_deleting_the_widget_mid_run_stops_its_job(make_napari_viewer, qtbot, nifti_ct, gate, no_orphans):
    """napari deletes a plugin dock widget when the user removes it: its job must not run on, orphaned."""
    viewer = make_napari_viewer()
    _ct(viewer, nifti_ct)
    widget = _recon_widget(viewer, dock=False)
    widget.run()
    worker = widget.runner.worker
    _wait_running(qtbot, gate, 1)
    widget.deleteLater()
    qtbot.waitUntil(lambda: not _engine_threads() and not _live_job_workers(), timeout=30_000)
    assert worker.cancel_event.is_set() and gate.reached_engine == 0
    qtbot.wait(50)
    assert [ly.name for ly in viewer.layers] == ["ct"]


# ------------------------------------------------------------ saving
def test_an_interrupted_save_leaves_no_half_written_file(make_napari_viewer, tmp_path, monkeypatch, nifti_ct):
    """napari's File > Save runs our writer; stopped mid-write, the old file stays whole and no temp remains."""
    import SimpleITK as sitk

    viewer = make_napari_viewer()
    viewer.open(nifti_ct, plugin="napari-ctfoundation")
    out = tmp_path / "saved.nii.gz"
    viewer.layers.save(str(out), selected=True, plugin="napari-ctfoundation")
    good = out.read_bytes()
    real_write = sitk.WriteImage

    def write_half_then_stop(image, path, *args, **kwargs):
        real_write(image, path, *args, **kwargs)
        with open(path, "r+b") as f:  # as if the process stopped half way through
            f.truncate(len(good) // 2)
        raise KeyboardInterrupt  # Ctrl+C, or anything that aborts the write

    monkeypatch.setattr(sitk, "WriteImage", write_half_then_stop)
    viewer.layers.selection.active.data = viewer.layers.selection.active.data + 1.0
    with pytest.raises(KeyboardInterrupt):
        viewer.layers.save(str(out), selected=True, plugin="napari-ctfoundation")
    assert out.read_bytes() == good  # the previous save is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.nii.gz"]  # no .tmp- file left behind


def test_cancelling_a_job_while_its_input_is_saved(make_napari_viewer, qtbot, tmp_path, nifti_ct, gate,
                                                   no_orphans):
    """A save runs on the UI thread: a Cancel pressed meanwhile takes effect after it, and both end whole."""
    from napari_ctfoundation.engine.io import read_volume

    viewer = make_napari_viewer()
    ct = _ct(viewer, nifti_ct)
    widget = _recon_widget(viewer)
    widget.run()
    _wait_running(qtbot, gate, 1)
    out = tmp_path / "ct.nii.gz"
    viewer.layers.selection.active = ct
    saved = viewer.layers.save(str(out), selected=True, plugin="napari-ctfoundation")
    widget.run_button.click()  # Cancel
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert saved == [str(out)] and widget.runner.last_outcome.status == "cancelled"
    np.testing.assert_array_equal(read_volume(out).to_display().array, ct.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]
    assert [ly.name for ly in viewer.layers] == ["ct"]
