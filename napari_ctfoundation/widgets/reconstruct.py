""""Foundation VAE reconstruction" widget: x~ = D(E(x)) of an image layer.

Layout and layer wiring only; the work is ``engine.reconstruct.reconstruct_volume``
run by :class:`~._common.JobRunner` (worker thread, progress in the widget
and napari's activity dock, Run turns into Cancel). Results are added as
``<name> [recon]`` and ``<name> [difference]`` on the input's grid, with the
settings, metrics and timing in their ``metadata``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QLineEdit, QWidget

from ..engine.errors import ConfigError, CTFoundationError
from ..engine.window import PRESETS, HUWindow
from ._common import LayerCombo, add_result_image, layer_volume
from ._forms import (
    browse_button,
    combo,
    device_combo,
    float_spin,
    form_page,
    hbox,
    job_runner,
    text_label,
    window_preset_combo,
)

CUSTOM = "custom"


def backend_names() -> list:
    """Registered backends, the embedded default first."""
    from ..engine.vae import VAE_BACKENDS
    from ..engine.vae.base import DEFAULT_VAE

    names = VAE_BACKENDS.names()
    return sorted(names, key=lambda n: (n != DEFAULT_VAE, n))


def metrics_text(metrics: Dict[str, Any], seconds: Optional[float] = None) -> str:
    if not metrics:
        return ""
    lo, hi = metrics.get("window_hu", [None, None])
    lines = [f"PSNR {metrics['psnr_db']:.2f} dB   SSIM {metrics['ssim']:.4f}   "
             f"MAE {metrics['mae_hu']:.1f} HU"]
    extra = []
    if "ms_ssim" in metrics:
        extra.append(f"MS-SSIM {metrics['ms_ssim']:.4f}")
    if lo is not None:
        extra.append(f"window [{lo:g}, {hi:g}] HU")
    if seconds is not None:
        extra.append(f"{seconds:.1f} s")
    if extra:
        lines.append("   ".join(extra))
    return "\n".join(lines)


class ReconstructionWidget(QWidget):
    """Reconstruct an image layer through a frozen foundation VAE."""

    #: (live result, z0, z1): emitted in the engine thread, handled on the UI thread
    slab_ready = Signal(object, int, int)

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self._live: Optional[_LiveResult] = None
        self.slab_ready.connect(self._fill_slab)
        from napari.layers import Image

        from ..engine.vae import VAE_BACKENDS

        self.layer_combo = LayerCombo(napari_viewer, (Image,))

        # --- backend: a registered name, or a hub id / local diffusers folder
        names, descriptions = backend_names(), VAE_BACKENDS.describe()
        self.backend_combo = combo(names)
        for index, name in enumerate(names):
            self.backend_combo.setItemData(index, descriptions.get(name, ""), Qt.ItemDataRole.ToolTipRole)
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("hub id or folder (overrides the backend)")
        self.model_edit.setToolTip(
            "A diffusers VAE: a hub id such as black-forest-labs/FLUX.2-dev (subfolder vae) "
            "or a local folder with config.json and weights")
        self.folder_button = browse_button(self, "Diffusers VAE folder", self.model_edit.setText,
                                           tooltip="choose a local diffusers VAE folder")
        self.subfolder_edit = QLineEdit()
        self.subfolder_edit.setPlaceholderText("subfolder, e.g. vae (optional)")

        # --- HU window
        self.preset_combo = window_preset_combo(CUSTOM)
        self.lo_spin = _hu_spin(-1000.0)
        self.hi_spin = _hu_spin(1000.0)
        self.preset_combo.activated.connect(self._preset_chosen)
        self.lo_spin.valueChanged.connect(self._window_edited)
        self.hi_spin.valueChanged.connect(self._window_edited)

        self.device_combo = device_combo()
        self.runner = job_runner("Run", self.run)
        self.run_button, self.progress_bar, self.status = self.runner.button, self.runner.bar, self.runner.label
        self.metrics_label = text_label(selectable=True)

        form_page(self, [
            ("input", self.layer_combo),
            ("backend", self.backend_combo),
            ("model", hbox(self.model_edit, self.folder_button)),
            ("", self.subfolder_edit),
            ("window", self.preset_combo),
            ("", hbox("LO", (self.lo_spin, 1), "HI", (self.hi_spin, 1), "HU")),
            ("device", self.device_combo),
            self.run_button,
            self.progress_bar,
            self.status,
            self.metrics_label,
        ])

    # ------------------------------------------------------------ settings
    def _preset_chosen(self, *_: object) -> None:
        name = self.preset_combo.currentData()
        if name in PRESETS:
            window = HUWindow.from_preset(name)
            for spin, value in ((self.lo_spin, window.lo), (self.hi_spin, window.hi)):
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)

    def _window_edited(self, *_: object) -> None:
        # Typing LO/HI by hand makes the window "custom" unless it equals a preset.
        window = (self.lo_spin.value(), self.hi_spin.value())
        for index in range(self.preset_combo.count()):
            name = self.preset_combo.itemData(index)
            if name in PRESETS and HUWindow.from_preset(name).contrast_limits == window:
                self.preset_combo.setCurrentIndex(index)
                return
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(CUSTOM))

    def set_window(self, lo: float, hi: float) -> None:
        self.lo_spin.setValue(lo)
        self.hi_spin.setValue(hi)

    def settings(self) -> Dict[str, Any]:
        """The widget's choices, validated (errors name the field)."""
        lo, hi = self.lo_spin.value(), self.hi_spin.value()
        if not lo < hi:
            raise ConfigError(f"window: LO ({lo:g}) must be below HI ({hi:g})")
        model = self.model_edit.text().strip()
        return {
            "vae": model or self.backend_combo.currentText(),
            "subfolder": self.subfolder_edit.text().strip() or None,
            "window": HUWindow(lo, hi),
            "window_preset": self.preset_combo.currentData(),
            "device": self.device_combo.currentText(),
        }

    # ----------------------------------------------------------------- run
    def run(self) -> None:
        """Start the reconstruction of the chosen layer (UI thread part).

        It starts at the slice the viewer shows; ``[recon]`` and
        ``[difference]`` appear after that first slab and fill in as slabs
        arrive (slices not done yet are NaN, and the layers stay hidden while
        the viewed slice is one of them); the metrics
        follow once the volume is complete.
        """
        layer = self.layer_combo.layer()
        try:
            if layer is None:
                raise ConfigError("input: no image layer; open a CT first")
            settings = self.settings()
            volume = layer_volume(layer)
        except CTFoundationError as exc:
            self.runner.refuse(str(exc))
            return
        self.metrics_label.setText("")
        live = _LiveResult(self, layer, volume, settings)
        self._live = live
        start = viewed_slice(self.viewer, layer)

        def job(progress, cancel):
            from ..engine.reconstruct import reconstruct_volume
            from ..engine.vae import resolve_device

            # Cancel takes effect between forward passes. On CPU batching gains
            # nothing (the bench's one-slice loop runs as fast), and a batch of
            # 8 slices of 512^2 is about a minute on one thread: one slice per
            # pass keeps Cancel responsive and brings the viewed slice first
            # after one slice's time. GPUs keep the engine's batch.
            device = resolve_device(settings["device"])
            batch = {"batch_size": 1} if device == "cpu" else {}
            return reconstruct_volume(
                volume, settings["vae"], settings["window"], device=device,
                subfolder=settings["subfolder"], start_slice=start, out=live.recon,
                on_slab=lambda z0, z1, hu: self.slab_ready.emit(live, z0, z1),
                progress=progress, cancel=cancel, **batch)

        self.runner.start(job, f"VAE reconstruction of {layer.name}",
                          on_result=lambda result: self._show(live, result),
                          on_cancelled=live.discard, on_error=lambda _message: live.discard())

    def _fill_slab(self, live: "_LiveResult", z0: int, z1: int) -> None:
        """Slices z0..z1-1 are final (UI thread, queued from the engine thread)."""
        if live is self._live:
            live.fill(z0, z1)

    def _show(self, live: "_LiveResult", result) -> None:
        """The volume is complete: final metadata, contrast and metrics (UI thread)."""
        settings = live.settings
        window: HUWindow = settings["window"]
        meta = {
            "kind": "vae_reconstruction",
            "settings": {**result.settings, "window_preset": settings["window_preset"],
                         "requested_device": settings["device"]},
            "metrics": dict(result.metrics),
            "seconds": float(result.seconds),
        }
        live.finish(result, meta)
        self.metrics_label.setText(metrics_text(result.metrics, result.seconds))
        self.status.setText(
            f"added {live.layer.name} [recon] and [difference] (window [{window.lo:g}, {window.hi:g}] HU)")


def viewed_slice(viewer, layer) -> int:
    """Index along ``layer``'s first axis of the slice the viewer shows."""
    position = viewer.dims.point
    data = np.asarray(layer.world_to_data(position[-layer.ndim:]), float)
    return int(np.clip(np.round(data[0]), 0, layer.data.shape[0] - 1))


class _LiveResult:
    """The ``[recon]`` and ``[difference]`` layers of one run, filled slab by slab.

    Both arrays start as NaN (not computed; never a value that looks like air
    or like "no difference"), and while the viewed slice is not done the
    layers are hidden (see :meth:`_show_viewed_slice_if_done`). The engine writes
    the reconstruction straight into :attr:`recon` (its ``out``), so the
    widget holds no second copy of it.
    """

    def __init__(self, widget: "ReconstructionWidget", layer, volume, settings: Dict[str, Any]) -> None:
        self.widget, self.layer, self.volume, self.settings = widget, layer, volume, settings
        self.recon = np.full(volume.shape, np.nan, np.float32)
        self.diff = np.full(volume.shape, np.nan, np.float32)
        self.done = np.zeros(volume.shape[0], bool)
        self.recon_layer = self.diff_layer = None
        self.span = 1.0

    def _show_viewed_slice_if_done(self, *_: Any) -> None:
        """Hide the layers while the viewed slice is not done yet.

        Renderers without float textures (Mesa, some laptops) draw NaN at the
        lowest contrast limit, i.e. black like air; an invisible layer cannot
        be mistaken for a result.
        """
        z = viewed_slice(self.widget.viewer, self.layer)
        for result in (self.recon_layer, self.diff_layer):
            if result is not None:
                result.opacity = 1.0 if self.done[z] else 0.0

    def _follow_dims(self, on: bool) -> None:
        event = self.widget.viewer.dims.events.current_step
        if on:
            event.connect(self._show_viewed_slice_if_done)
        else:
            event.disconnect(self._show_viewed_slice_if_done)

    def _meta(self) -> Dict[str, Any]:
        return {"kind": "vae_reconstruction", "status": "in progress",
                "settings": {"window_preset": self.settings["window_preset"]}}

    def fill(self, z0: int, z1: int) -> None:
        from ..engine.reconstruct import difference_hu

        self.diff[z0:z1] = difference_hu(self.volume.array[z0:z1], self.recon[z0:z1], self.settings["window"])
        self.done[z0:z1] = True
        # Symmetric limits around 0 so black means "no change"; widened as slabs arrive.
        self.span = max(self.span, float(np.percentile(np.abs(self.diff[z0:z1]), 99.5)))
        viewer = self.widget.viewer
        if self.recon_layer is None or self.recon_layer not in viewer.layers:
            self._add_layers(self._meta())
            self._follow_dims(True)
        else:
            self.diff_layer.contrast_limits = (-self.span, self.span)
            self.recon_layer.refresh()
            self.diff_layer.refresh()
        self._show_viewed_slice_if_done()

    def _add_layers(self, meta: Dict[str, Any]) -> None:
        viewer, name = self.widget.viewer, self.layer.name
        # The hidden difference first, so the reconstruction lands on top of it, selected.
        self.diff_layer = add_result_image(
            viewer, self.diff, self.layer, f"{name} [difference]", select=False, result_kind="vae_difference",
            metadata={**meta, "kind": "vae_difference", "units": "HU (recon - input clipped to window)"},
            colormap=difference_colormap(), contrast_limits=(-self.span, self.span), visible=False)
        self.recon_layer = add_result_image(
            viewer, self.recon, self.layer, f"{name} [recon]", result_kind="vae_reconstruction",
            metadata=meta, colormap="gray", contrast_limits=tuple(self.layer.contrast_limits))

    def finish(self, result, meta: Dict[str, Any]) -> None:
        viewer = self.widget.viewer
        meta = {**meta, "status": "complete"}
        self._stop_following()
        if self.recon_layer is None or self.recon_layer not in viewer.layers \
                or self.diff_layer not in viewer.layers:
            self._add_layers(meta)
            return
        self.recon_layer.metadata = {**self.recon_layer.metadata, **meta}
        self.diff_layer.metadata = {**self.diff_layer.metadata, **meta, "kind": "vae_difference"}
        self.diff_layer.contrast_limits = (-self.span, self.span)
        self.recon_layer.refresh()
        self.diff_layer.refresh()

    def _stop_following(self) -> None:
        if self.recon_layer is not None:
            self._follow_dims(False)
            for result in (self.recon_layer, self.diff_layer):
                result.opacity = 1.0

    def discard(self) -> None:
        """Cancelled or failed: a half-filled volume is not a result; remove it."""
        viewer = self.widget.viewer
        self._stop_following()
        for layer in (self.recon_layer, self.diff_layer):
            if layer is not None and layer in viewer.layers:
                viewer.layers.remove(layer)
        if self.widget._live is self:
            self.widget._live = None


def difference_colormap():
    """Blue (recon darker) - black (no change) - red (recon brighter).

    Black at zero so unchanged air and tissue vanish and errors stand out.
    """
    from napari.utils.colormaps import Colormap

    return Colormap([[0.25, 0.55, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.35, 0.2, 1.0]],
                    name="ctfoundation_difference", display_name="difference (blue-black-red)")


def _hu_spin(value: float):
    # No arrow buttons: leaves room for "-1000" in a narrow dock.
    spin = float_spin(value, -4000.0, 10000.0, step=50.0, decimals=0, buttons=False, tooltip="HU")
    spin.setMinimumWidth(70)
    return spin
