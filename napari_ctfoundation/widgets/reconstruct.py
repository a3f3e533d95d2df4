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
from qtpy.QtCore import Qt
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

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
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
        """Start the reconstruction of the chosen layer (UI thread part)."""
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

        def job(progress, cancel):
            from ..engine.reconstruct import reconstruct_volume
            from ..engine.vae import resolve_device

            # Cancel takes effect between forward passes. On CPU batching gains
            # nothing (the bench's one-slice loop runs as fast), and a batch of
            # 8 slices of 512^2 is about a minute on one thread: one slice per
            # pass keeps Cancel responsive. GPUs keep the engine's batch.
            device = resolve_device(settings["device"])
            batch = {"batch_size": 1} if device == "cpu" else {}
            return reconstruct_volume(
                volume, settings["vae"], settings["window"], device=device,
                subfolder=settings["subfolder"], progress=progress, cancel=cancel, **batch)

        self.runner.start(job, f"VAE reconstruction of {layer.name}",
                          on_result=lambda result: self._show(layer, settings, result))

    def _show(self, layer, settings: Dict[str, Any], result) -> None:
        """Add the result layers (UI thread)."""
        window: HUWindow = settings["window"]
        meta = {
            "kind": "vae_reconstruction",
            "settings": {**result.settings, "window_preset": settings["window_preset"],
                         "requested_device": settings["device"]},
            "metrics": dict(result.metrics),
            "seconds": float(result.seconds),
        }
        limits = tuple(layer.contrast_limits)
        recon = add_result_image(
            self.viewer, result.volume.array, layer, f"{layer.name} [recon]",
            metadata=meta, colormap="gray", contrast_limits=limits)
        diff = np.asarray(result.difference.array)
        # Symmetric limits around 0 so grey/white means "no change".
        span = float(np.percentile(np.abs(diff), 99.5)) if diff.size else 1.0
        span = max(span, 1.0)
        add_result_image(
            self.viewer, diff, layer, f"{layer.name} [difference]",
            metadata={**meta, "kind": "vae_difference", "units": "HU (recon - input clipped to window)"},
            colormap=difference_colormap(), contrast_limits=(-span, span), visible=False)
        self.viewer.layers.selection.active = recon
        self.metrics_label.setText(metrics_text(result.metrics, result.seconds))
        self.status.setText(
            f"added {layer.name} [recon] and [difference] (window [{window.lo:g}, {window.hi:g}] HU)")


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
