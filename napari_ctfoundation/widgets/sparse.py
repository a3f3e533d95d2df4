""""Sparse-view CBCT" widget: simulate N projections of a CT layer, reconstruct with FDK/SART/DiCE.

Layout and layer wiring only; the work is ``engine.sparse`` run by
:class:`~._common.JobRunner` (worker thread, progress, Run -> Cancel).
Simulate adds the projections as an image stack ``projections (N views)``
(one plane per view, angles in ``metadata``). Reconstruct adds ``FDK (N views)``
(or SART, DiCE) on the reconstruction grid cut to the CT's extent, placed in
the CT's world coordinates (so it overlays the CT), shown in HU, with
PSNR/SSIM against the normalised CT in the label and in ``metadata``. Every
result goes on top of the layer stack, selected.
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
METHOD_LABELS = {"fdk": "FDK", "sart": "SART", "dice": "DiCE"}


def result_name(method: str, n_views: int) -> str:
    """A reconstruction layer's name: short, says what it is (the source CT is in metadata)."""
    return f"{METHOD_LABELS.get(method, method.upper())} ({n_views} views)"


def display_limits(method: str, hu: np.ndarray, reference_hu: np.ndarray, ct_limits: tuple) -> tuple:
    """Contrast limits for a sparse reconstruction ``hu`` (HU, on the grid of ``reference_hu``).

    SART and DiCE are shown in the CT's window, to compare at a glance. FDK
    from a few views spreads the body over streaks from about -1000 to
    +600 HU (5th-95th percentile -750..280 on the DICOM sample at 6 views):
    in a soft-tissue window it reads as noise, so it gets its own range,
    the 2nd-99.5th percentile of its values inside the body.
    """
    if method != "fdk":
        return tuple(float(v) for v in ct_limits)
    from ..engine.sparse.preprocess import BODY_HU

    body = hu[reference_hu > BODY_HU]
    values = body if body.size >= 100 else hu.ravel()
    lo, hi = (float(v) for v in np.percentile(values, [2.0, 99.5]))
    return (lo, hi) if hi > lo else tuple(float(v) for v in ct_limits)


def crop_to_layer(volume, layer):
    """``volume`` (display-oriented, on its own grid) cut to the world box of ``layer``.

    The reconstruction grid is a cube (e.g. 64 x 6.4 mm = 410 mm) centred on
    the body; a 40 mm CT would otherwise leave napari's z slider with about
    200 steps, nearly all of them empty air. Keeps every grid voxel that
    overlaps the layer's voxels. Returns ``(cropped volume, crop)`` with
    ``crop`` the kept index ranges ``[[z0, z1], [y0, y1], [x0, x1]]``.
    """
    scale, translate = np.asarray(layer.scale, float)[-3:], np.asarray(layer.translate, float)[-3:]
    shape = np.asarray(layer.data.shape[-3:])
    lo = translate - scale / 2  # outer faces of the layer's first and last voxels
    hi = translate + scale * (shape - 0.5)
    g_scale, g_origin = np.asarray(volume.napari_scale(), float), np.asarray(volume.napari_translate(), float)
    crop = []
    for axis, n in enumerate(volume.shape):
        centres = g_origin[axis] + g_scale[axis] * np.arange(n)
        inside = np.flatnonzero((centres + g_scale[axis] / 2 > lo[axis]) & (centres - g_scale[axis] / 2 < hi[axis]))
        crop.append([int(inside[0]), int(inside[-1]) + 1] if inside.size else [0, n])
    (z0, z1), (y0, y1), (x0, x1) = crop
    return volume.cropped(slice(z0, z1), slice(y0, y1), slice(x0, x1)), crop


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
        # Hidden (it would cover the CT) but on top and selected, so the user sees it arrive.
        add_result_image(self.viewer, ps.projections, layer, f"projections ({ps.n_views} views)",
                         result_kind="sparse_projections", metadata=meta, scale=scale, translate=translate,
                         colormap="gray", visible=False)
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
        shown, crop = crop_to_layer(out.with_array(unit_to_hu(out.array, ps.geometry.window)), layer)
        meta = dict(method=method, views=ps.n_views, psnr=metrics["psnr"], ssim=metrics["ssim"],
                    seconds=seconds, options={k: str(v) for k, v in options.items()},
                    geometry=shown.geometry_dict(), sparse_geometry=ps.geometry.to_dict(),
                    grid_shape_zyx=list(out.shape), crop_zyx=crop,
                    crop_note="the grid cut to the CT's extent; PSNR/SSIM are over the whole grid",
                    unit="HU (window of the geometry)")
        (z0, z1), (y0, y1), (x0, x1) = crop
        limits = display_limits(method, shown.array, unit_to_hu(grid.array[z0:z1, y0:y1, x0:x1], ps.geometry.window),
                                tuple(layer.contrast_limits))
        meta["contrast_limits"] = ("the CT's window" if limits == tuple(layer.contrast_limits)
                                   else "the result's 2nd-99.5th percentile in the body")
        # On the reconstruction grid, placed in the CT's world coordinates.
        add_result_image(self.viewer, shown.array, layer, result_name(method, ps.n_views), metadata=meta,
                         result_kind="sparse_reconstruction", scale=shown.napari_scale(),
                         translate=shown.napari_translate(), contrast_limits=limits, colormap="gray")
        self.metrics_label.setText(
            f"{method.upper()}, {ps.n_views} views: PSNR {metrics['psnr']:.2f} dB   SSIM {metrics['ssim']:.4f}"
            f"\n(vs the CT on the {ps.geometry.grid_size}^3 grid in [0, 1], {seconds:.1f} s)")
