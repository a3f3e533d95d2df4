""""Conditional generation" widget: paint organs and lesions, type a report, generate CT.

Layout and layer wiring only; the work is ``GenerationPipeline.generate``
(engine.generation) run by :class:`~._common.JobRunner` (worker thread,
progress, Generate turns into Cancel). The result is added as
``<organ layer> [generated]`` on the organ layer's grid with the prompt,
seed and settings in its ``metadata``.

Masks are ordinary napari Labels layers coloured with the stable
vocabularies of ``engine.labels``; the class picker sets the label a brush
paints by *name*, never by raw number.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine import labels as vocab
from ._common import JobRunner, LayerCombo, add_result_image, labels_colormap, layer_volume, result_metadata

DEVICES = ("auto", "cpu", "cuda", "mps")
VIEWS = {"axial": (0, 1, 2), "coronal": (1, 0, 2), "sagittal": (2, 0, 1)}
SAME_AS_MASKS = -1.0  # text guidance spin box value meaning "same as the mask guidance"
DEFAULT_REPORT = ("Non-contrast CT of the upper abdomen. The liver is of normal size with homogeneous "
                  "attenuation. Both kidneys unremarkable. No pleural effusion.")


class ConditionalGenerationWidget(QWidget):
    """Generate a CT from organ/lesion label layers and a report."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        from napari.layers import Image, Labels

        from ..engine.generation.schedule import SAMPLERS

        self._pipelines: Dict[tuple, Any] = {}

        # --- masks
        self.organ_combo = LayerCombo(napari_viewer, (Labels,))
        self.disease_check = QCheckBox("disease mask")
        self.disease_combo = LayerCombo(napari_viewer, (Labels,))
        self.disease_combo.setEnabled(False)
        self.disease_check.toggled.connect(self.disease_combo.setEnabled)
        self.reference_combo = LayerCombo(napari_viewer, (Image,))
        self.blank_button = QPushButton("New blank organ layer")
        self.blank_button.setToolTip("an empty organ Labels layer on the grid of the chosen CT")
        self.blank_button.clicked.connect(self.new_organ_layer)
        self.lesion_button = QPushButton("New lesion layer")
        self.lesion_button.setToolTip("an empty lesion Labels layer on the grid of the organ layer")
        self.lesion_button.clicked.connect(self.new_lesion_layer)

        # --- class picker: paint by name
        self.vocab_combo = QComboBox()
        self.vocab_combo.addItems(["organs", "lesions"])
        self.class_combo = QComboBox()
        self.class_combo.setEditable(False)
        self.vocab_combo.currentTextChanged.connect(self._fill_classes)
        self.class_combo.activated.connect(self.pick_class)
        self._fill_classes("organs")

        # --- report
        self.report_edit = QPlainTextEdit(DEFAULT_REPORT)
        self.report_edit.setMaximumHeight(110)
        self.findings_label = QLabel("")
        self.findings_label.setWordWrap(True)
        self.report_edit.textChanged.connect(self._show_findings)
        self._show_findings()

        # --- model and sampling
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.addItem("demo")
        self.model_button = QPushButton("...")
        self.model_button.setToolTip("choose a trained model folder (OUT_DIR/model)")
        self.model_button.clicked.connect(self._pick_model)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2 ** 31 - 1)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setValue(20)
        self.guidance_spin = QDoubleSpinBox()
        self.guidance_spin.setRange(0.0, 20.0)
        self.guidance_spin.setSingleStep(0.25)
        self.guidance_spin.setValue(1.5)
        self.text_guidance_spin = QDoubleSpinBox()
        self.text_guidance_spin.setRange(SAME_AS_MASKS, 20.0)
        self.text_guidance_spin.setSingleStep(0.25)
        self.text_guidance_spin.setSpecialValueText("same as masks")
        self.text_guidance_spin.setValue(SAME_AS_MASKS)
        self.sampler_combo = QComboBox()
        self.sampler_combo.addItems(SAMPLERS.names())
        self.sampler_combo.setCurrentText("ddim")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.view_combo = QComboBox()
        self.view_combo.addItems(list(VIEWS))
        self.view_combo.currentTextChanged.connect(self.set_view)

        self.run_button = QPushButton("Generate")
        self.progress_bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.runner = JobRunner(self.run_button, self.progress_bar, self.status, on_run=self.run,
                                run_text="Generate")

        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.model_button)
        blank_row = QHBoxLayout()
        blank_row.addWidget(self.blank_button)
        blank_row.addWidget(self.lesion_button)
        class_row = QHBoxLayout()
        class_row.addWidget(self.vocab_combo)
        class_row.addWidget(self.class_combo, 1)
        form = QFormLayout()
        form.addRow("organs", self.organ_combo)
        form.addRow(self.disease_check, self.disease_combo)
        form.addRow("CT grid", self.reference_combo)
        form.addRow(blank_row)
        form.addRow("paint", class_row)
        form.addRow(QLabel("report"))
        form.addRow(self.report_edit)
        form.addRow(self.findings_label)
        form.addRow("model", model_row)
        form.addRow("seed", self.seed_spin)
        form.addRow("steps", self.steps_spin)
        form.addRow("guidance", self.guidance_spin)
        form.addRow("text guidance", self.text_guidance_spin)
        form.addRow("sampler", self.sampler_combo)
        form.addRow("device", self.device_combo)
        form.addRow("view", self.view_combo)
        form.addRow(self.run_button)
        form.addRow(self.progress_bar)
        form.addRow(self.status)
        outer = QVBoxLayout(self)
        outer.addLayout(form)
        outer.addStretch(1)

    # -------------------------------------------------------------- masks
    def new_organ_layer(self):
        """An empty organ layer shaped like the chosen CT image layer."""
        ref = self.reference_combo.layer()
        if ref is None:
            raise_or_notify("choose a CT image layer to take the grid from")
            return None
        data = np.zeros(np.asarray(ref.data).shape, np.uint8)
        layer = self.viewer.add_labels(
            data, name=f"{ref.name} [organs]", scale=ref.scale, translate=ref.translate,
            metadata=result_metadata(ref, vocabulary="organs"), colormap=labels_colormap("organs"),
            features=vocab.features_table(None, "organs"))
        self.organ_combo.setCurrentText(layer.name)
        self.vocab_combo.setCurrentText("organs")
        self.pick_class()
        return layer

    def new_lesion_layer(self):
        """An empty lesion layer on the organ layer's grid, selected as the disease mask."""
        organs = self.organ_combo.layer()
        if organs is None:
            raise_or_notify("choose or create an organ layer first")
            return None
        data = np.zeros(np.asarray(organs.data).shape, np.uint8)
        layer = self.viewer.add_labels(
            data, name=f"{organs.name} [lesions]", scale=organs.scale, translate=organs.translate,
            metadata=result_metadata(organs, vocabulary="lesions"), colormap=labels_colormap("lesions"),
            features=vocab.features_table(None, "lesions"))
        self.disease_check.setChecked(True)
        self.disease_combo.setCurrentText(layer.name)
        self.vocab_combo.setCurrentText("lesions")
        self.pick_class()
        return layer

    def _fill_classes(self, vocabulary: str) -> None:
        self.class_combo.clear()
        for label_id, name in vocab.names(vocabulary).items():
            self.class_combo.addItem(f"{name.replace('_', ' ')}  ({label_id})", label_id)
        if vocabulary == "organs":
            self.class_combo.setCurrentIndex(self.class_combo.findData(5))  # liver

    def pick_class(self, *_: object) -> None:
        """Make the organ (or lesion) layer paint the chosen class."""
        combo = self.organ_combo if self.vocab_combo.currentText() == "organs" else self.disease_combo
        layer = combo.layer()
        label_id = self.class_combo.currentData()
        if layer is None or label_id is None:
            return
        layer.selected_label = int(label_id)
        self.viewer.layers.selection.active = layer

    def _show_findings(self) -> None:
        from ..engine.generation.conditioning import parse_findings
        from ..engine.generation.vocab import CTRATE_ABNORMALITIES

        flags = parse_findings(self.report_edit.toPlainText())
        found = [("" if v > 0 else "no ") + n for n, v in zip(CTRATE_ABNORMALITIES, flags) if v != 0]
        self.findings_label.setText("findings read: " + (", ".join(found) if found else "none"))

    def set_view(self, name: str) -> None:
        if self.viewer.dims.ndim >= 3:
            lead = tuple(range(self.viewer.dims.ndim - 3))
            self.viewer.dims.order = lead + tuple(len(lead) + a for a in VIEWS[name])

    def _pick_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Generation model folder")
        if path:
            self.model_combo.setCurrentText(path)

    # ----------------------------------------------------------------- run
    def settings(self) -> Dict[str, Any]:
        text_g = self.text_guidance_spin.value()
        return {
            "model": self.model_combo.currentText().strip() or "demo",
            "report": self.report_edit.toPlainText().strip(),
            "seed": int(self.seed_spin.value()),
            "steps": int(self.steps_spin.value()),
            "guidance": float(self.guidance_spin.value()),
            "guidance_text": None if text_g <= SAME_AS_MASKS else float(text_g),
            "sampler": self.sampler_combo.currentText(),
            "device": self.device_combo.currentText(),
        }

    def run(self) -> None:
        organs_layer = self.organ_combo.layer()
        if organs_layer is None:
            raise_or_notify("choose an organ label layer (or create a blank one from a CT)")
            return
        organs = layer_volume(organs_layer, dtype=None)
        disease = None
        if self.disease_check.isChecked():
            disease_layer = self.disease_combo.layer()
            if disease_layer is None or disease_layer is organs_layer:
                raise_or_notify("choose a lesion label layer different from the organ layer, or untick it")
                return
            disease = layer_volume(disease_layer, dtype=None)
            if disease.shape != organs.shape:
                raise_or_notify(f"lesion layer shape {disease.shape} differs from organ layer {organs.shape}")
                return
        if not np.asarray(organs.array).any():
            raise_or_notify(f"layer {organs_layer.name!r} is empty: paint some organs first")
            return
        settings = self.settings()
        key = (settings["model"], settings["device"])

        def job(progress, cancel):
            from ..engine.generation.pipeline import GenerationPipeline

            pipe = self._pipelines.get(key)
            if pipe is None:
                pipe = self._pipelines[key] = GenerationPipeline.from_pretrained(settings["model"],
                                                                                  device=settings["device"])
            return pipe.generate(organs, settings["report"], disease, seed=settings["seed"],
                                 steps=settings["steps"], sampler=settings["sampler"],
                                 guidance=settings["guidance"], guidance_text=settings["guidance_text"],
                                 progress=progress, cancel=cancel)

        self.runner.start(job, "Generation", on_result=lambda result: self._show(organs_layer, result))

    def _show(self, organs_layer, result) -> None:
        window = (-160.0, 240.0)  # soft tissue (W 400 / L 40)
        layer = add_result_image(
            self.viewer, result.volume.array, organs_layer, f"{organs_layer.name} [generated]",
            metadata={"generation": result.settings, "seconds": round(result.seconds, 2),
                      "prompt": result.settings["report"], "seed": result.settings["seed"]},
            colormap="gray", contrast_limits=window)
        self.viewer.layers.move(self.viewer.layers.index(layer), 0)  # below the masks
        self.status.setText(f"Generation: done in {result.seconds:.1f} s (seed {result.settings['seed']})")


def raise_or_notify(message: str) -> None:
    from ._common import notify_error

    notify_error(message)
