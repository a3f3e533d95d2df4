""""Sparse-view CBCT" widget: simulate N projections of a CT layer, reconstruct with FDK/SART/DiCE.

Layout and layer wiring only; the work is ``engine.sparse`` run by
:class:`~._common.JobRunner` (worker thread, progress, Run -> Cancel).
Simulate adds the projections as an image stack (one plane per view, angles
in ``metadata``). Reconstruct adds ``<ct> [sparse <method> <n>v]`` on the
reconstruction grid, placed in the CT's world coordinates (so it overlays
the CT), shown in HU, with PSNR/SSIM against the normalised CT in the label
and in ``metadata``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
from qtpy.QtWidgets import QCheckBox, QLineEdit, QWidget

from ..engine.errors import ConfigError
from ._common import LayerCombo, add_result_image, layer_volume
from ._forms import combo, float_spin, form_page, hbox, int_spin, job_runner, text_label

VIEW_CHOICES = ("6", "8", "10", "custom")
METHOD_NAMES = ("fdk", "sart", "dice")


def _shipped_geometry_name() -> str:
    try:
        from ..engine.sparse.dice.checkpoint import SHIPPED, read_checkpoint_meta

        return read_checkpoint_meta(SHIPPED)["config"]["geometry"]["name"]
    except Exception:  # noqa: BLE001 - no shipped checkpoint: fall back to the paper preset
        return "deepsparse"


def projection_placement(layer, ps):
    """(scale, translate) that keep a projection stack inside the CT layer's world box.

    A stack is not on the CT's grid (one plane per view, detector pixels),
    but napari has one world for all layers: placed at the origin it would
    stretch the sliders far beyond the CT (e.g. -804..6 mm for a CT at
    z = -804 mm). So view k sits at the CT's slice k and the detector, in
    millimetres, is centred on the CT in-plane.
    """
    pitch_u, pitch_v = ps.geometry.detector_pitch
    n_v, n_u = ps.projections.shape[1:]
    ct_scale, ct_origin = np.asarray(layer.scale, float)[-3:], np.asarray(layer.translate, float)[-3:]
    centre = ct_origin + ct_scale * (np.asarray(layer.data.shape[-3:]) - 1) / 2
    scale = (ct_scale[0], pitch_v, pitch_u)
    translate = (ct_origin[0], centre[1] - pitch_v * (n_v - 1) / 2, centre[2] - pitch_u * (n_u - 1) / 2)
    return scale, translate


class SparseViewWidget(QWidget):
    """Sparse-view cone-beam CT: what 6 views give with FDK, SART and DiCE."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        from napari.layers import Image

        from ..engine.sparse.geometry import PRESETS

        self.geometries: Dict[str, Any] = dict(PRESETS)
        self.layer_combo = LayerCombo(napari_viewer, (Image,))
        default = _shipped_geometry_name()
        self.preset_combo = combo(
            self.geometries, current=default if default in self.geometries else None,
            tooltip="geometry; the shipped DiCE checkpoint needs the one it was trained for")
        self.views_combo = combo(VIEW_CHOICES)
        self.views_spin = int_spin(12, 1, 10000)
        self.views_spin.setEnabled(False)
        self.views_combo.currentTextChanged.connect(lambda t: self.views_spin.setEnabled(t == "custom"))
        self.noise_check = QCheckBox("noise")
        self.noise_check.setChecked(True)
        self.photons_spin = float_spin(1e5, 100, 1e9, decimals=0, suffix=" photons")
        self.noise_check.toggled.connect(self.photons_spin.setEnabled)
        self.method_combo = combo(METHOD_NAMES)
        self.iterations_spin = int_spin(20, 1, 500)
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("DiCE checkpoint folder (empty: shipped)")
        from ..engine.sparse.dice.checkpoint import SHIPPED_NOTE

        self.shipped_note = text_label(f"Note: {SHIPPED_NOTE}")
        self.method_combo.currentTextChanged.connect(self._show_shipped_note)
        self.checkpoint_edit.textChanged.connect(self._show_shipped_note)

        # Two buttons, one progress bar and status line.
        self.sim_runner = job_runner("Simulate", self.simulate)
        self.runner = job_runner("Reconstruct", self.reconstruct, share=self.sim_runner)
        self.simulate_button, self.reconstruct_button = self.sim_runner.button, self.runner.button
        self.progress_bar, self.status = self.runner.bar, self.runner.label
        self.metrics_label = text_label(selectable=True)
        self._simulation = None  # (key, grid volume, ProjectionSet)

        form_page(self, [
            ("CT", self.layer_combo),
            ("geometry", self.preset_combo),
            ("views", hbox(self.views_combo, self.views_spin)),
            ("", hbox(self.noise_check, (self.photons_spin, 1))),
            self.simulate_button,
            ("method", self.method_combo),
            ("SART iterations", self.iterations_spin),
            ("checkpoint", self.checkpoint_edit),
            self.shipped_note,
            self.reconstruct_button,
            self.progress_bar,
            self.status,
            self.metrics_label,
        ])

        self._show_shipped_note()

    # ------------------------------------------------------------ settings
    def _show_shipped_note(self, *_) -> None:
        """The caution about the shipped DiCE shows only while it is the one DiCE would use."""
        self.shipped_note.setVisible(self.method_combo.currentText() == "dice"
                                     and not self.checkpoint_edit.text().strip())

    def add_geometry(self, geometry) -> None:
        """Offer another geometry (e.g. loaded from JSON) and select it."""
        self.geometries[geometry.name] = geometry
        if self.preset_combo.findText(geometry.name) < 0:
            self.preset_combo.addItem(geometry.name)
        self.preset_combo.setCurrentText(geometry.name)

    def n_views(self) -> int:
        text = self.views_combo.currentText()
        return int(self.views_spin.value() if text == "custom" else text)

    def _settings(self):
        from ..engine.sparse.simulate import NoiseModel

        layer = self.layer_combo.layer()
        if layer is None:
            raise ConfigError("choose a CT image layer first")
        geometry = self.geometries[self.preset_combo.currentText()]
        n = self.n_views()
        geometry.select_views(n)
        noise = NoiseModel(enabled=self.noise_check.isChecked(), photons=float(self.photons_spin.value()))
        key = (layer.name, id(layer.data), geometry.name, n, noise)
        return layer, geometry, n, noise, key

    def _job_simulate(self, layer, geometry, n, noise):
        volume = layer_volume(layer)
        source = layer.name

        def job(progress, cancel):
            from ..engine.sparse.pipeline import simulate_ct

            return simulate_ct(volume, geometry, n, noise=noise, seed=0, source=source,
                               progress=progress, cancel=cancel)

        return job

    # ------------------------------------------------------------ simulate
    def _ready(self, runner, other):
        """The settings when ``runner`` may start now, else None (and why, in the widget)."""
        if other.running:  # the two runners share one progress line
            runner.refuse(f"{other.run_text} is running: cancel it or wait")
            return None
        try:
            return self._settings()
        except ConfigError as exc:
            runner.refuse(str(exc))
            return None

    def simulate(self) -> None:
        ready = self._ready(self.sim_runner, self.runner)
        if ready is None:
            return
        layer, geometry, n, noise, key = ready
        self.sim_runner.start(self._job_simulate(layer, geometry, n, noise), "simulate projections",
                              on_result=lambda res: self._show_projections(layer, key, res))

    def _show_projections(self, layer, key, result) -> None:
        grid, ps = result
        self._simulation = (key, grid, ps)
        scale, translate = projection_placement(layer, ps)
        meta = {"angles_deg": [float(a) for a in ps.angles],
                "view_indices": [int(i) for i in ps.view_indices], "sparse": ps.meta(),
                "placement": "view k at the CT's slice k; detector millimetres, centred on the CT"}
        add_result_image(self.viewer, ps.projections, layer, f"{layer.name} [projections {ps.n_views}v]",
                         metadata=meta, scale=scale, translate=translate, colormap="gray", visible=False)
        self.status.setText(f"{ps.n_views} views at {', '.join(f'{a:.0f}' for a in ps.angles)} deg")

    # --------------------------------------------------------- reconstruct
    def reconstruct(self) -> None:
        ready = self._ready(self.runner, self.sim_runner)
        if ready is None:
            return
        layer, geometry, n, noise, key = ready
        method = self.method_combo.currentText()
        options: Dict[str, Any] = {}
        if method == "sart":
            options["iterations"] = int(self.iterations_spin.value())
        if method == "dice" and self.checkpoint_edit.text().strip():
            options["checkpoint"] = self.checkpoint_edit.text().strip()
        cached = self._simulation if self._simulation is not None and self._simulation[0] == key else None
        simulate = None if cached else self._job_simulate(layer, geometry, n, noise)

        def job(progress, cancel):
            import time

            from ..engine.sparse.methods import METHODS
            from ..engine.sparse.metrics import sparse_metrics

            grid, ps = cached[1:] if cached else simulate(progress, cancel)
            start = time.perf_counter()
            out = METHODS.create(method, ps, progress=progress, cancel=cancel, **options)
            seconds = time.perf_counter() - start
            return grid, ps, out, sparse_metrics(grid.array, out.array), seconds

        self.runner.start(job, f"{method.upper()} reconstruction",
                          on_result=lambda res: self._show_result(layer, key, method, options, res))

    def _show_result(self, layer, key, method, options, result) -> None:
        from ..engine.sparse.preprocess import unit_to_hu

        grid, ps, out, metrics, seconds = result
        self._simulation = (key, grid, ps)
        meta = dict(method=method, views=ps.n_views, psnr=metrics["psnr"], ssim=metrics["ssim"],
                    seconds=seconds, options={k: str(v) for k, v in options.items()},
                    geometry=out.geometry_dict(), sparse_geometry=ps.geometry.to_dict(),
                    unit="HU (window of the geometry)")
        # on the reconstruction grid, placed in the CT's world coordinates
        add_result_image(self.viewer, unit_to_hu(out.array, ps.geometry.window), layer,
                         f"{layer.name} [sparse {method} {ps.n_views}v]", metadata=meta,
                         scale=out.napari_scale(), translate=out.napari_translate(),
                         contrast_limits=tuple(layer.contrast_limits), colormap="gray")
        self.metrics_label.setText(
            f"{method.upper()}, {ps.n_views} views: PSNR {metrics['psnr']:.2f} dB   SSIM {metrics['ssim']:.4f}"
            f"\n(vs the CT on the {ps.geometry.grid_size}^3 grid in [0, 1], {seconds:.1f} s)")
