"""Issue 14, napari items: what a new user met in the first hour, under pytest-qt.

* results are visible: every result layer lands on top of the stack, selected,
  with a short name (details in metadata);
* layer pickers default to the newest layer the *user* loaded, never to one
  of our results, and keep a choice when layers are added;
* every widget's form scrolls, so four docked widgets fit a 1366x768 screen;
* layers are ``z, y, x`` in mm; a sparse reconstruction is cut to the CT's
  extent (the z slider keeps the CT's steps).

Kept fast: tiny crops, interpolation VAE backends, a 16^3 sparse grid.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui
WAIT_MS = 600_000  # generous: GUI tests share 2 cores with other work


def _user_ct(viewer, nifti_ct, name="ct", z=(10, 13), y=(20, 84), x=(30, 94)):
    """A small crop of the abdominal sample, added as our reader adds it (z, y, x in mm)."""
    from napari_ctfoundation.napari_io import volume_layer_data

    data, kwargs, _ = volume_layer_data(nifti_ct)
    scale = np.asarray(kwargs["scale"])
    kwargs.update(name=name, translate=np.asarray(kwargs["translate"]) + scale * (z[0], y[0], x[0]))
    kwargs.pop("metadata")  # the reader's geometry is that of the whole file
    return viewer.add_image(np.ascontiguousarray(data[z[0]:z[1], y[0]:y[1], x[0]:x[1]]), **kwargs)


def _reconstruct(widget, qtbot, backend="bilinear_f16"):
    widget.backend_combo.setCurrentText(backend)
    widget.device_combo.setCurrentText("cpu")
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message


# ------------------------------------------------------------ axis labels
def test_reader_layers_are_z_y_x_in_mm(make_napari_viewer, nifti_ct, nifti_organs):
    viewer = make_napari_viewer()
    viewer.open(nifti_ct, plugin="napari-ctfoundation")
    viewer.open(nifti_organs, plugin="napari-ctfoundation")
    assert tuple(viewer.dims.axis_labels) == ("z", "y", "x")
    assert [str(u) for u in viewer.dims.units] == ["millimeter"] * 3
    for layer in viewer.layers:
        assert tuple(layer.axis_labels) == ("z", "y", "x")


# ------------------------------------------------ results on top, selected
def test_reconstruction_result_on_top_and_selected(make_napari_viewer, qtbot, nifti_ct, nifti_organs):
    from napari_ctfoundation.widgets._common import RESULT_KEY, is_result_layer
    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget

    viewer = make_napari_viewer()
    ct = _user_ct(viewer, nifti_ct)
    viewer.open(nifti_organs, plugin="napari-ctfoundation")  # an opaque-ish layer above the CT
    widget = ReconstructionWidget(viewer)
    assert widget.layer_combo.currentText() == "ct"
    _reconstruct(widget, qtbot)
    recon, diff = viewer.layers["ct [recon]"], viewer.layers["ct [difference]"]
    names = [ly.name for ly in viewer.layers]
    assert names[-1] == "ct [recon]" and names[-2] == "ct [difference]"  # recon on top, hidden diff under it
    assert viewer.layers.selection.active is recon and recon.visible and not diff.visible
    assert is_result_layer(recon) and recon.metadata[RESULT_KEY] == "vae_reconstruction"
    assert not is_result_layer(ct)
    assert tuple(recon.axis_labels) == ("z", "y", "x") and [str(u) for u in recon.units] == ["millimeter"] * 3
    # a re-run replaces the layers and puts them on top again
    viewer.layers.move(viewer.layers.index(recon), 0)
    _reconstruct(widget, qtbot)
    assert [ly.name for ly in viewer.layers].count("ct [recon]") == 1
    assert viewer.layers[-1].name == "ct [recon]" and viewer.layers.selection.active is viewer.layers[-1]


def test_generated_ct_on_top_selected_with_a_short_name(make_napari_viewer, qtbot, nifti_organs):
    from napari_ctfoundation.engine.io import read_labels
    from napari_ctfoundation.widgets.generation import ConditionalGenerationWidget

    from _generation_helpers import crop

    viewer = make_napari_viewer()
    organs = crop(read_labels(nifti_organs).to_display(), (10, 14), (30, 70), (34, 90))
    viewer.add_image(np.zeros(organs.shape, np.float32), name="ct", scale=organs.napari_scale(),
                     translate=organs.napari_translate())
    layer = viewer.add_labels(organs.array, name="organs", scale=organs.napari_scale(),
                              translate=organs.napari_translate(), metadata={"geometry": organs.geometry_dict()})
    widget = ConditionalGenerationWidget(viewer)
    assert widget.organ_combo.currentText() == "organs"
    widget.steps_spin.setValue(1)
    widget.seed_spin.setValue(3)
    widget.device_combo.setCurrentText("cpu")
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    result = viewer.layers[-1]
    assert result.name == "generated CT (seed 3)"  # not "organs [generated]", which reads like labels
    assert viewer.layers.selection.active is result and result.visible
    assert viewer.layers.index(result) > viewer.layers.index(layer)  # above the masks, so it shows
    assert result.metadata["seed"] == 3 and result.metadata["source_layer"] == "organs"
    assert result.metadata["generation"]["steps"] == 1 and result.metadata["prompt"]


def test_sparse_results_on_top_cut_to_the_ct(make_napari_viewer, qtbot, nifti_ct):
    from napari_ctfoundation.engine.sparse.geometry import PRESETS
    from napari_ctfoundation.napari_io import volume_layer_data
    from napari_ctfoundation.widgets.sparse import SparseViewWidget

    viewer = make_napari_viewer()
    data, kwargs, _ = volume_layer_data(nifti_ct)
    ct = viewer.add_image(data, **kwargs)  # 30 slices of 3 mm
    widget = SparseViewWidget(viewer)
    widget.add_geometry(PRESETS["deepsparse"].scaled(16, name="test-16"))  # 16^3 grid of 25.6 mm = 410 mm
    widget.views_combo.setCurrentText("6")
    widget.simulate_button.click()
    qtbot.waitUntil(lambda: not widget.sim_runner.running, timeout=WAIT_MS)
    assert widget.sim_runner.last_outcome.status == "done", widget.sim_runner.last_outcome.message
    proj = viewer.layers[-1]
    assert proj.name == "projections (6 views)" and viewer.layers.selection.active is proj
    widget.method_combo.setCurrentText("fdk")
    widget.reconstruct_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    fdk = viewer.layers[-1]
    assert fdk.name == "FDK (6 views)" and viewer.layers.selection.active is fdk and fdk.visible
    assert fdk.metadata["source_layer"] == ct.name and fdk.metadata["grid_shape_zyx"] == [16, 16, 16]
    # cut to the CT: the z slider keeps about the CT's 30 steps instead of 410 mm / 3 mm = 137
    assert fdk.data.shape[0] < 16 and viewer.dims.nsteps[0] < 2 * ct.data.shape[0]
    assert tuple(fdk.axis_labels) == ("z", "y", "x")
    # FDK's streaks get limits of their own, taken from the body (not the CT's window)
    lo, hi = fdk.contrast_limits
    assert "percentile" in fdk.metadata["contrast_limits"] and hi - lo > 100
    assert lo < float(np.median(fdk.data[fdk.data > -990])) < hi


def test_sparse_display_limits():
    """SART/DiCE keep the CT's window; FDK spans its own body values, whatever the streaks do."""
    from napari_ctfoundation.widgets.sparse import display_limits

    rng = np.random.default_rng(0)
    reference = np.full((8, 32, 32), -1000.0, np.float32)
    reference[:, 8:24, 8:24] = 40.0  # the body
    streaks = reference + rng.normal(0, 300, reference.shape).astype(np.float32)
    streaks[:, :8] = -1000.0
    assert display_limits("sart", streaks, reference, (-160.0, 240.0)) == (-160.0, 240.0)
    lo, hi = display_limits("fdk", streaks, reference, (-160.0, 240.0))
    body = streaks[reference > -500]
    assert lo < -400 and hi > 500  # the streaks' spread, far wider than the soft-tissue window
    assert np.mean((body < lo) | (body > hi)) < 0.03


# ---------------------------------------------------------- picker defaults
def test_pickers_default_to_the_users_newest_layer_and_keep_a_choice(make_napari_viewer):
    from napari_ctfoundation.widgets._common import add_result_image
    from napari_ctfoundation.widgets.generation import ConditionalGenerationWidget
    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget
    from napari_ctfoundation.widgets.sparse import SparseViewWidget

    viewer = make_napari_viewer()
    ct = viewer.add_image(np.zeros((4, 16, 16), np.float32), name="ct")
    # what a reconstruction and a generation leave behind: results on top, selected
    add_result_image(viewer, np.zeros((4, 16, 16), np.float32), ct, "ct [recon]", result_kind="vae_reconstruction")
    add_result_image(viewer, np.zeros((4, 16, 16), np.float32), ct, "generated CT (seed 0)",
                     result_kind="generated_ct")
    assert viewer.layers.selection.active.name == "generated CT (seed 0)"
    generation, sparse, recon = (ConditionalGenerationWidget(viewer), SparseViewWidget(viewer),
                                 ReconstructionWidget(viewer))
    assert generation.reference_combo.currentText() == "ct"  # the CT grid, not [recon]
    assert sparse.layer_combo.currentText() == "ct"  # Simulate uses the user's CT, not generated data
    assert recon.layer_combo.currentText() == "ct"

    # a newly loaded user layer becomes the default of pickers nobody touched...
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="second ct")
    assert sparse.layer_combo.currentText() == "second ct"
    # ... a user's choice is kept when layers are added, results or not
    sparse.layer_combo.setCurrentText("ct")
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="third ct")
    add_result_image(viewer, np.zeros((4, 16, 16), np.float32), ct, "FDK (6 views)", result_kind="sparse")
    assert sparse.layer_combo.currentText() == "ct"
    assert recon.layer_combo.currentText() == "third ct"  # untouched: follows the newest user layer
    # results never become the default while a user layer is there
    viewer.layers.remove("third ct")
    viewer.layers.remove("second ct")
    assert recon.layer_combo.currentText() == "ct"
    # the chosen layer removed, only results left: none is chosen for the user, all are offered
    viewer.layers.remove("ct")
    assert sparse.layer_combo.currentText() == "" and sparse.layer_combo.layer() is None
    assert sparse.layer_combo.count() == 3
    sparse.layer_combo.setCurrentText("generated CT (seed 0)")  # a user may still pick one
    assert sparse.layer_combo.layer().name == "generated CT (seed 0)"
    # a re-ordered stack does not change what "newest" means
    a = viewer.add_image(np.zeros((4, 16, 16), np.float32), name="a")
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="b")
    viewer.layers.move(viewer.layers.index(a), len(viewer.layers) - 1)
    assert recon.layer_combo.currentText() == "b"
    assert sparse.layer_combo.currentText() == "generated CT (seed 0)"  # the user's pick is kept


# --------------------------------------------------------------- scrolling
def test_every_form_scrolls_and_four_docked_widgets_fit_a_laptop(make_napari_viewer, nifti_ct):
    from qtpy.QtWidgets import QApplication, QFormLayout, QPushButton, QScrollArea

    viewer = make_napari_viewer()
    viewer.open(nifti_ct, plugin="napari-ctfoundation")
    widgets = []
    for name in ("Load CT", "Foundation VAE reconstruction", "Conditional generation", "Sparse-view CBCT"):
        _, widget = viewer.window.add_plugin_dock_widget("napari-ctfoundation", name)
        widgets.append(widget)
    QApplication.processEvents()
    for widget in widgets:
        area = widget.scroll_area
        assert isinstance(area, QScrollArea) and area.widgetResizable()
        assert isinstance(area.widget().layout().itemAt(0).layout(), QFormLayout)
        buttons = widget.findChildren(QPushButton)
        assert buttons and all(area.widget().isAncestorOf(b) for b in buttons)  # the whole form scrolls
        assert widget.minimumSizeHint().height() < 200, type(widget).__name__  # the form scrolls
        # the form keeps its width: nothing is cut off at the right
        assert area.minimumSizeHint().width() >= area.widget().minimumSizeHint().width()
    minimum = viewer.window._qt_window.minimumSizeHint()
    assert minimum.width() <= 1366 and minimum.height() <= 768, (minimum.width(), minimum.height())
