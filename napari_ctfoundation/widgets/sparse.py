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
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.errors import ConfigError
from ._common import JobRunner, LayerCombo, layer_volume, result_metadata

VIEW_CHOICES = ("6", "8", "10", "custom")
METHOD_NAMES = ("fdk", "sart", "dice")


def _shipped_geometry_name() -> str:
    try:
        from ..engine.sparse.dice.checkpoint import SHIPPED, read_checkpoint_meta

        return read_checkpoint_meta(SHIPPED)["config"]["geometry"]["name"]
    except Exception:  # noqa: BLE001 - no shipped checkpoint: fall back to the paper preset
        return "deepsparse"


class SparseViewWidget(QWidget):
    """Sparse-view cone-beam CT: what 6 views give with FDK, SART and DiCE."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        from napari.layers import Image

        from ..engine.sparse.geometry import PRESETS

        self.geometries: Dict[str, Any] = dict(PRESETS)
        self.layer_combo = LayerCombo(napari_viewer, (Image,))
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(self.geometries))
        default = _shipped_geometry_name()
        if default in self.geometries:
            self.preset_combo.setCurrentText(default)
        self.preset_combo.setToolTip("geometry; the shipped DiCE checkpoint needs the one it was trained for")
        self.views_combo = QComboBox()
        self.views_combo.addItems(VIEW_CHOICES)
        self.views_spin = QSpinBox()
        self.views_spin.setRange(1, 10000)
        self.views_spin.setValue(12)
        self.views_spin.setEnabled(False)
        self.views_combo.currentTextChanged.connect(lambda t: self.views_spin.setEnabled(t == "custom"))
        self.noise_check = QCheckBox("noise")
        self.noise_check.setChecked(True)
        self.photons_spin = QDoubleSpinBox()
        self.photons_spin.setDecimals(0)
        self.photons_spin.setRange(100, 1e9)
        self.photons_spin.setValue(1e5)
        self.photons_spin.setSuffix(" photons")
        self.noise_check.toggled.connect(self.photons_spin.setEnabled)
        self.method_combo = QComboBox()
        self.method_combo.addItems(METHOD_NAMES)
        self.iterations_spin = QSpinBox()
        self.iterations_spin.setRange(1, 500)
        self.iterations_spin.setValue(20)
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("DiCE checkpoint folder (empty: shipped)")

        self.simulate_button = QPushButton("Simulate")
        self.reconstruct_button = QPushButton("Reconstruct")
        self.progress_bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.metrics_label = QLabel("")
        self.metrics_label.setWordWrap(True)
        self.sim_runner = JobRunner(self.simulate_button, self.progress_bar, self.status,
                                    on_run=self.simulate, run_text="Simulate")
        self.runner = JobRunner(self.reconstruct_button, self.progress_bar, self.status,
                                on_run=self.reconstruct, run_text="Reconstruct")
        self._simulation = None  # (key, grid volume, ProjectionSet)

        views_row = QHBoxLayout()
        views_row.addWidget(self.views_combo)
        views_row.addWidget(self.views_spin)
        noise_row = QHBoxLayout()
        noise_row.addWidget(self.noise_check)
        noise_row.addWidget(self.photons_spin, 1)
        form = QFormLayout()
        form.addRow("CT", self.layer_combo)
        form.addRow("geometry", self.preset_combo)
        form.addRow("views", views_row)
        form.addRow("", noise_row)
        form.addRow(self.simulate_button)
        form.addRow("method", self.method_combo)
        form.addRow("SART iterations", self.iterations_spin)
        form.addRow("checkpoint", self.checkpoint_edit)
        form.addRow(self.reconstruct_button)
        form.addRow(self.progress_bar)
        form.addRow(self.status)
        form.addRow(self.metrics_label)
        outer = QVBoxLayout(self)
        outer.addLayout(form)
        outer.addStretch(1)

    # ------------------------------------------------------------ settings
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
    def simulate(self) -> None:
        try:
            layer, geometry, n, noise, key = self._settings()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return
        self.sim_runner.start(self._job_simulate(layer, geometry, n, noise), "simulate projections",
                              on_result=lambda res: self._show_projections(layer, key, res))

    def _show_projections(self, layer, key, result) -> None:
        grid, ps = result
        self._simulation = (key, grid, ps)
        name = f"{layer.name} [projections {ps.n_views}v]"
        meta = result_metadata(layer, angles_deg=[float(a) for a in ps.angles],
                               view_indices=[int(i) for i in ps.view_indices],
                               sparse=ps.meta())
        pitch_u, pitch_v = ps.geometry.detector_pitch
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_image(ps.projections, name=name, scale=(1.0, pitch_v, pitch_u), metadata=meta,
                              colormap="gray", visible=False)
        self.status.setText(f"{ps.n_views} views at {', '.join(f'{a:.0f}' for a in ps.angles)} deg")

    # --------------------------------------------------------- reconstruct
    def reconstruct(self) -> None:
        try:
            layer, geometry, n, noise, key = self._settings()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return
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
        name = f"{layer.name} [sparse {method} {ps.n_views}v]"
        meta = result_metadata(layer, method=method, views=ps.n_views, psnr=metrics["psnr"],
                               ssim=metrics["ssim"], seconds=seconds, options={k: str(v) for k, v in options.items()},
                               geometry=out.geometry_dict(), sparse_geometry=ps.geometry.to_dict(),
                               unit="HU (window of the geometry)")
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_image(unit_to_hu(out.array, ps.geometry.window), name=name, scale=out.napari_scale(),
                              translate=out.napari_translate(), metadata=meta,
                              contrast_limits=tuple(layer.contrast_limits), colormap="gray")
        self.metrics_label.setText(
            f"{method.upper()}, {ps.n_views} views: PSNR {metrics['psnr']:.2f} dB   SSIM {metrics['ssim']:.4f}"
            f"\n(vs the CT on the {ps.geometry.grid_size}^3 grid in [0, 1], {seconds:.1f} s)")
