""""Conditional generation" widget: paint organs and lesions, type a report, generate CT.

Layout and layer wiring only; the work is ``GenerationPipeline.generate``
(engine.generation) run by :class:`~._common.JobRunner` (worker thread,
progress, Generate turns into Cancel). The result is added on top of the
layer stack, selected, as ``generated CT (seed N)`` on the organ layer's
grid, with the prompt, model, seed and settings in its ``metadata``.

Masks are ordinary napari Labels layers coloured with the stable
vocabularies of ``engine.labels``; the class picker sets the label a brush
paints by *name*, never by raw number.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
from qtpy.QtWidgets import QCheckBox, QLabel, QPlainTextEdit, QPushButton, QWidget

from ..engine import labels as vocab
from ..engine.errors import ConfigError, CTFoundationError
from ._common import LayerCombo, add_result_image, labels_colormap, layer_volume, result_metadata, source_axes
from ._forms import browse_button, combo, device_combo, float_spin, form_page, hbox, int_spin, job_runner, text_label

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
        self.vocab_combo = combo(["organs", "lesions"])
        self.class_combo = combo()
        self.vocab_combo.currentTextChanged.connect(self._fill_classes)
        self.class_combo.activated.connect(self.pick_class)
        self._fill_classes("organs")

        # --- report
        self.report_edit = QPlainTextEdit(DEFAULT_REPORT)
        self.report_edit.setMaximumHeight(110)
        self.findings_label = text_label()
        self.report_edit.textChanged.connect(self._show_findings)
        self._show_findings()

        # --- model and sampling
        self.model_combo = combo(["demo"], editable=True)
        from ..engine.generation.pipeline import DEMO_NOTE

        self.demo_note = text_label(f"Note: {DEMO_NOTE}")
        self.model_combo.currentTextChanged.connect(
            lambda text: self.demo_note.setVisible(text.strip() in ("", "demo")))
        self.model_button = browse_button(self, "Generation model folder", self.model_combo.setCurrentText,
                                          tooltip="choose a trained model folder (OUT_DIR/model)")
        self.seed_spin = int_spin(0, 0, 2 ** 31 - 1)
        self.steps_spin = int_spin(20, 1, 1000)
        self.guidance_spin = float_spin(1.5, 0.0, 20.0, step=0.25)
        self.text_guidance_spin = float_spin(SAME_AS_MASKS, SAME_AS_MASKS, 20.0, step=0.25,
                                             special_text="same as masks")
        self.sampler_combo = combo(SAMPLERS.names(), current="ddim")
        self.device_combo = device_combo()
        self.view_combo = combo(VIEWS)
        self.view_combo.currentTextChanged.connect(self.set_view)

        self.runner = job_runner("Generate", self.run)
        self.run_button, self.progress_bar, self.status = self.runner.button, self.runner.bar, self.runner.label

        form_page(self, [
            ("organs", self.organ_combo),
            (self.disease_check, self.disease_combo),
            ("CT grid", self.reference_combo),
            hbox(self.blank_button, self.lesion_button),
            ("paint", hbox(self.vocab_combo, (self.class_combo, 1))),
            QLabel("report"),
            self.report_edit,
            self.findings_label,
            ("model", hbox((self.model_combo, 1), self.model_button)),
            self.demo_note,
            ("seed", self.seed_spin),
            ("steps", self.steps_spin),
            ("guidance", self.guidance_spin),
            ("text guidance", self.text_guidance_spin),
            ("sampler", self.sampler_combo),
            ("device", self.device_combo),
            ("view", self.view_combo),
            self.run_button,
            self.progress_bar,
            self.status,
        ])

    # -------------------------------------------------------------- masks
    def new_organ_layer(self):
        """An empty organ layer shaped like the chosen CT image layer."""
        layer = self._new_mask_layer(self.reference_combo.layer(), "organs",
                                     "choose a CT image layer to take the grid from")
        if layer is not None:
            self.organ_combo.setCurrentText(layer.name)
            self.pick_class()
        return layer

    def new_lesion_layer(self):
        """An empty lesion layer on the organ layer's grid, selected as the disease mask."""
        layer = self._new_mask_layer(self.organ_combo.layer(), "lesions",
                                     "choose or create an organ layer first")
        if layer is not None:
            self.disease_check.setChecked(True)
            self.disease_combo.setCurrentText(layer.name)
            self.pick_class()
        return layer

    def _new_mask_layer(self, grid_layer, vocabulary: str, missing: str):
        """An empty ``vocabulary`` Labels layer on ``grid_layer``'s grid; picker switched to it."""
        if grid_layer is None:
            self.runner.refuse(missing)
            return None
        data = np.zeros(np.asarray(grid_layer.data).shape, np.uint8)
        layer = self.viewer.add_labels(
            data, name=f"{grid_layer.name} [{vocabulary}]", scale=grid_layer.scale,
            translate=grid_layer.translate, metadata=result_metadata(grid_layer, vocabulary=vocabulary),
            colormap=labels_colormap(vocabulary), features=vocab.features_table(None, vocabulary),
            **source_axes(grid_layer))
        self.vocab_combo.setCurrentText(vocabulary)
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

    def _masks(self):
        """The organ layer and the (organ, lesion or None) volumes; errors name the layer."""
        organs_layer = self.organ_combo.layer()
        if organs_layer is None:
            raise ConfigError("choose an organ label layer (or create a blank one from a CT)")
        # Copies: the job must not see brush strokes painted while it runs.
        organs = layer_volume(organs_layer, dtype=None)
        organs.array = np.array(organs.array, copy=True)
        disease = None
        if self.disease_check.isChecked():
            disease_layer = self.disease_combo.layer()
            if disease_layer is None or disease_layer is organs_layer:
                raise ConfigError("choose a lesion label layer different from the organ layer, or untick it")
            disease = layer_volume(disease_layer, dtype=None)
            disease.array = np.array(disease.array, copy=True)
            if disease.shape != organs.shape:
                raise ConfigError(f"lesion layer shape {disease.shape} differs from organ layer {organs.shape}")
        if not np.asarray(organs.array).any():
            raise ConfigError(f"layer {organs_layer.name!r} is empty: paint some organs first")
        return organs_layer, organs, disease

    def run(self) -> None:
        try:
            organs_layer, organs, disease = self._masks()
        except CTFoundationError as exc:
            self.runner.refuse(str(exc))
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
        seed = result.settings["seed"]
        # On top and selected (under the masks it would not show); the details live in metadata.
        layer = add_result_image(
            self.viewer, result.volume.array, organs_layer, generated_name(seed), result_kind="generated_ct",
            metadata={"generation": result.settings, "seconds": round(result.seconds, 2),
                      "prompt": result.settings["report"], "seed": seed},
            colormap="gray", contrast_limits=window)
        at = result.settings.get("generated_at_spacing")  # a model trained at one spacing samples there
        where = f" (generated at {'x'.join(f'{v:g}' for v in at)} mm, the model's training spacing)" if at else ""
        self.status.setText(f"Generation: added {layer.name!r} in {result.seconds:.1f} s{where}")


def generated_name(seed: int) -> str:
    """The result layer's name: short, says what it is; a re-run with the same seed replaces it."""
    return f"generated CT (seed {seed})"

