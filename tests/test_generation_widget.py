"""The "Conditional generation" widget under Xvfb: blank layers, class picker, generate, cancel."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def widget_and_layers(make_napari_viewer, nifti_organs):
    from napari_ctfoundation.engine.io import read_labels
    from napari_ctfoundation.widgets.generation import ConditionalGenerationWidget

    from _generation_helpers import crop

    viewer = make_napari_viewer()
    organs = crop(read_labels(nifti_organs).to_display(), (10, 14), (30, 70), (34, 90))
    layer = viewer.add_labels(organs.array, name="organs", scale=organs.napari_scale(),
                              translate=organs.napari_translate(), metadata={"geometry": organs.geometry_dict()})
    viewer.add_image(np.zeros(organs.shape, np.float32), name="ct", scale=organs.napari_scale(),
                     translate=organs.napari_translate())
    widget = ConditionalGenerationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, layer


def test_blank_layers_and_class_picker(widget_and_layers):
    viewer, widget, _ = widget_and_layers
    widget.reference_combo.setCurrentText("ct")
    blank = widget.new_organ_layer()
    assert blank.data.shape == viewer.layers["ct"].data.shape and not blank.data.any()
    assert np.allclose(blank.scale, viewer.layers["ct"].scale)
    assert widget.organ_combo.currentText() == blank.name
    widget.class_combo.setCurrentIndex(widget.class_combo.findData(2))  # kidney_right
    widget.pick_class()
    assert blank.selected_label == 2 and "kidney right" in widget.class_combo.currentText()
    lesions = widget.new_lesion_layer()
    assert widget.disease_check.isChecked() and widget.disease_combo.currentText() == lesions.name
    assert widget.class_combo.count() == 11 and lesions.selected_label == widget.class_combo.currentData()
    widget.report_edit.setPlainText("Mild emphysema. No pleural effusion.")
    assert "emphysema" in widget.findings_label.text() and "no pleural effusion" in widget.findings_label.text()
    widget.set_view("coronal")
    assert tuple(viewer.dims.order) == (1, 0, 2)
    # The caution about the toy demo shows only while the demo is the chosen model.
    assert not widget.demo_note.isHidden() and "two patients" in widget.demo_note.text()
    widget.model_combo.setCurrentText("/data/my_model")
    assert widget.demo_note.isHidden()
    widget.model_combo.setCurrentText("demo")
    assert not widget.demo_note.isHidden()


def test_generate_with_demo_then_cancel(widget_and_layers, qtbot):
    viewer, widget, layer = widget_and_layers
    widget.organ_combo.setCurrentText("organs")
    widget.steps_spin.setValue(2)
    widget.seed_spin.setValue(5)
    widget.device_combo.setCurrentText("cpu")
    widget.run_button.click()
    assert widget.run_button.text() == "Cancel"
    qtbot.waitUntil(lambda: widget.runner.last_outcome is not None, timeout=240_000)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message
    result = viewer.layers["generated CT (seed 5)"]
    assert result.data.shape == layer.data.shape and np.isfinite(result.data).all()
    assert np.allclose(result.scale, layer.scale) and np.allclose(result.translate, layer.translate)
    assert result.metadata["seed"] == 5 and result.metadata["generation"]["steps"] == 2
    assert result.metadata["prompt"] == widget.report_edit.toPlainText().strip()
    assert widget.run_button.text() == "Generate"
    # a long run cancelled right away delivers nothing new
    widget.steps_spin.setValue(200)
    widget.run_button.click()
    widget.run_button.click()  # Cancel
    qtbot.waitUntil(lambda: widget.runner.last_outcome is not None, timeout=240_000)
    assert widget.runner.last_outcome.status == "cancelled"
    assert sum(ly.name.startswith("generated CT") for ly in viewer.layers) == 1


def test_empty_organ_layer_is_refused(widget_and_layers):
    viewer, widget, layer = widget_and_layers
    layer.data = np.zeros_like(layer.data)
    widget.organ_combo.setCurrentText("organs")
    widget.run()
    assert widget.runner.worker is None and not any(ly.name.startswith("generated CT") for ly in viewer.layers)
