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
    proj = viewer.layers["projections (6 views)"]
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
        layer = viewer.layers[f"{method.upper()} (6 views)"]
        # the 32^3 grid, cut to the CT's extent (90 mm of z = 8 grid slices, not 32)
        assert layer.metadata["grid_shape_zyx"] == [32, 32, 32]
        assert layer.data.shape == tuple(hi - lo for lo, hi in layer.metadata["crop_zyx"])
        assert layer.data.shape[0] < 10 and layer.metadata["geometry"]["shape_zyx"] == list(layer.data.shape)
        assert np.allclose(layer.scale, (12.8, 12.8, 12.8))
        assert 10 < layer.metadata["psnr"] < 60 and 0 < layer.metadata["ssim"] <= 1
        assert "PSNR" in widget.metrics_label.text()
        # the cut grid overlays the CT: its box lies within the CT's box, give or take one grid voxel
        ct = viewer.layers["ct"]
        lo = np.asarray(layer.translate)
        hi = lo + np.asarray(layer.scale) * (np.array(layer.data.shape) - 1)
        ct_lo = np.asarray(ct.translate)
        ct_hi = ct_lo + np.asarray(ct.scale) * (np.array(ct.data.shape) - 1)
        assert np.all(lo >= ct_lo - 12.8) and np.all(hi <= ct_hi + 12.8)
        assert viewer.layers.selection.active is layer and viewer.layers[-1] is layer
    assert viewer.layers["SART (6 views)"].metadata["psnr"] > viewer.layers["FDK (6 views)"].metadata["psnr"]


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
    assert not widget.shipped_note.isHidden() and "6 patients" in widget.shipped_note.text()
    widget.checkpoint_edit.setText("/data/my_dice")
    assert widget.shipped_note.isHidden()  # a user's own checkpoint: no caution
    widget.checkpoint_edit.setText("")
    widget.reconstruct_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    layer = viewer.layers["DiCE (6 views)"]
    assert layer.metadata["grid_shape_zyx"] == [64, 64, 64] and layer.metadata["psnr"] > 15
