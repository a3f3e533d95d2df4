"""GUI: the "Sparse-view CBCT" widget simulates, reconstructs (FDK, SART, DiCE) and cancels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytestmark = pytest.mark.gui
WAIT_MS = 180_000


def _add_ct(viewer, nifti_ct):
    from napari_ctfoundation.engine.io import read_volume

    vol = read_volume(nifti_ct).to_display()
    return viewer.add_image(vol.array, name="ct", scale=vol.napari_scale(), translate=vol.napari_translate(),
                            contrast_limits=(-1000, 1000), metadata={"geometry": vol.geometry_dict()})


def _widget(make_napari_viewer, nifti_ct):
    from napari_ctfoundation.engine.sparse.geometry import PRESETS
    from napari_ctfoundation.widgets.sparse import SparseViewWidget

    viewer = make_napari_viewer()
    _add_ct(viewer, nifti_ct)
    widget = SparseViewWidget(viewer)
    assert widget.preset_combo.currentText() == "deepsparse-64"  # the shipped checkpoint's geometry
    widget.add_geometry(PRESETS["deepsparse"].scaled(8, name="test-32"))
    return viewer, widget


def test_simulate_then_reconstruct_fdk_and_sart(make_napari_viewer, qtbot, nifti_ct):
    viewer, widget = _widget(make_napari_viewer, nifti_ct)
    widget.views_combo.setCurrentText("6")
    widget.simulate_button.click()
    qtbot.waitUntil(lambda: not widget.sim_runner.running, timeout=WAIT_MS)
    assert widget.sim_runner.last_outcome.status == "done", widget.sim_runner.last_outcome.message
    proj = viewer.layers["ct [projections 6v]"]
    assert proj.data.shape == (6, 32, 32)
    assert len(proj.metadata["angles_deg"]) == 6 and proj.metadata["angles_deg"][1] == pytest.approx(29.7)
    # the stack stays inside the CT's world box (first view on the CT's first slice, centred in-plane),
    # so napari's sliders keep the CT's range
    ct = viewer.layers["ct"]
    assert proj.translate[0] == pytest.approx(ct.translate[0]) and proj.scale[0] == pytest.approx(ct.scale[0])
    ct_centre = np.asarray(ct.translate) + np.asarray(ct.scale) * (np.array(ct.data.shape) - 1) / 2
    proj_centre = np.asarray(proj.translate) + np.asarray(proj.scale) * (np.array(proj.data.shape) - 1) / 2
    assert np.allclose(proj_centre[1:], ct_centre[1:])
    for method in ("fdk", "sart"):
        widget.method_combo.setCurrentText(method)
        widget.iterations_spin.setValue(3)
        widget.reconstruct_button.click()
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
        assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
        layer = viewer.layers[f"ct [sparse {method} 6v]"]
        assert layer.data.shape == (32, 32, 32)
        assert np.allclose(layer.scale, (12.8, 12.8, 12.8))
        assert 10 < layer.metadata["psnr"] < 60 and 0 < layer.metadata["ssim"] <= 1
        assert "PSNR" in widget.metrics_label.text()
        # the grid overlays the CT: its centre lies inside the CT's extent in world coordinates
        ct = viewer.layers["ct"]
        centre = np.asarray(layer.translate) + 15.5 * 12.8
        lo = np.asarray(ct.translate)
        hi = lo + np.asarray(ct.scale) * (np.array(ct.data.shape) - 1)
        assert np.all(centre >= lo - 1) and np.all(centre <= hi + 1)
    assert viewer.layers["ct [sparse sart 6v]"].metadata["psnr"] > viewer.layers["ct [sparse fdk 6v]"].metadata["psnr"]


def test_dice_on_wrong_geometry_reports_error_and_cancel_adds_nothing(make_napari_viewer, qtbot, nifti_ct):
    viewer, widget = _widget(make_napari_viewer, nifti_ct)
    widget.method_combo.setCurrentText("dice")
    widget.reconstruct_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "error"
    assert "trained for geometry 'deepsparse-64'" in widget.runner.last_outcome.message
    # cancel a long SART run (many views, many iterations)
    n_layers = len(viewer.layers)
    widget.method_combo.setCurrentText("sart")
    widget.iterations_spin.setValue(200)
    seen = []
    widget.runner.progressed.connect(lambda d, t, u: seen.append((d, u)))
    widget.reconstruct_button.click()
    qtbot.waitUntil(lambda: any(u == "iterations" and d > 0 for d, u in seen), timeout=WAIT_MS)
    widget.simulate()  # refused: the two jobs share one progress line
    assert not widget.sim_runner.running and widget.simulate_button.text() == "Simulate"
    widget.reconstruct_button.click()  # Cancel
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "cancelled"
    assert len(viewer.layers) == n_layers


def test_dice_with_shipped_checkpoint(make_napari_viewer, qtbot, nifti_ct):
    viewer, widget = _widget(make_napari_viewer, nifti_ct)
    widget.preset_combo.setCurrentText("deepsparse-64")
    assert widget.shipped_note.isHidden()  # the caution is about DiCE only
    widget.method_combo.setCurrentText("dice")
    assert not widget.shipped_note.isHidden() and "one patient" in widget.shipped_note.text()
    widget.checkpoint_edit.setText("/data/my_dice")
    assert widget.shipped_note.isHidden()  # a user's own checkpoint: no caution
    widget.checkpoint_edit.setText("")
    widget.reconstruct_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    layer = viewer.layers["ct [sparse dice 6v]"]
    assert layer.data.shape == (64, 64, 64) and layer.metadata["psnr"] > 15
