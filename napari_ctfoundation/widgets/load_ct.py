""""Load CT" widget: open a file or DICOM folder, pick a window preset, see the geometry.

Reading goes through the same code as napari's File > Open with this plugin
(``napari_io.volume_layer_data``), in a worker thread so a large DICOM series
does not freeze the viewer. Window presets (REFERENCE section 4) set the
contrast limits of the chosen image layer.
"""

from __future__ import annotations

from typing import Optional

from qtpy.QtWidgets import QFileDialog, QLabel, QLineEdit, QPushButton, QWidget

from ..engine.window import HUWindow
from ._common import LayerCombo
from ._forms import browse_button, combo, form_page, hbox, job_runner, text_label, window_preset_combo


def geometry_text(layer) -> str:
    """Human-readable geometry of a layer (what the reader stored, else scale/translate)."""
    if layer is None:
        return "no layer"
    meta = layer.metadata or {}
    geometry = meta.get("geometry")
    shape = tuple(layer.data.shape)
    lines = [f"shape (z, y, x): {shape}"]
    if geometry:
        sx, sy, sz = geometry["spacing_xyz"]
        ox, oy, oz = geometry["origin_xyz_lps"]
        lines += [
            f"spacing (x, y, z): {sx:.4g} x {sy:.4g} x {sz:.4g} mm",
            f"origin (LPS): ({ox:.1f}, {oy:.1f}, {oz:.1f}) mm",
            f"orientation: shown {geometry.get('orientation', '?')}, "
            f"file {geometry.get('source_orientation', '?')}",
        ]
    else:
        scale = tuple(float(s) for s in layer.scale)
        lines.append(f"scale (z, y, x): {scale}  (no source geometry)")
    if meta.get("source_path"):
        lines.append(f"source: {meta['source_path']}")
    return "\n".join(lines)


class LoadCTWidget(QWidget):
    """Open CT volumes and label maps; window presets; geometry."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        from napari.layers import Image, Labels

        # --- source
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("NIfTI / NRRD / MHA file or DICOM folder")
        self.file_button = QPushButton("File...")
        self.file_button.clicked.connect(self._pick_file)
        self.folder_button = browse_button(self, "Open DICOM series folder", self.path_edit.setText,
                                           text="DICOM folder...")
        self.kind_combo = combo(["auto", "CT image", "labels"], tooltip=(
            "auto: labels when the file name starts with organ/label/seg/mask/lesion "
            "or the file holds few non-negative integers; otherwise a CT image"))
        self.runner = job_runner("Open", self.open)
        self.open_button, self.progress_bar, self.status = self.runner.button, self.runner.bar, self.runner.label

        # --- display
        self.layer_combo = LayerCombo(napari_viewer, (Image, Labels))
        self.layer_combo.currentTextChanged.connect(self._show_geometry)
        napari_viewer.layers.events.inserted.connect(self._show_geometry)
        self.preset_combo = window_preset_combo()
        self.preset_combo.activated.connect(self.apply_preset)
        self.geometry = text_label("no layer", selectable=True)

        form_page(self, [
            ("path", self.path_edit),
            ("", hbox(self.file_button, self.folder_button)),
            ("open as", self.kind_combo),
            ("", self.open_button),
            self.progress_bar,
            self.status,
            QLabel("<b>Display</b>"),
            ("layer", self.layer_combo),
            ("window", self.preset_combo),
            self.geometry,
        ])
        self._show_geometry()

    # ---------------------------------------------------------------- open
    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open CT volume", "",
            "Volumes (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm);;All files (*)")
        if path:
            self.path_edit.setText(path)

    def open(self) -> None:
        """Read the path in a worker thread and add the layer."""
        from ..engine.errors import VolumeReadError
        from ..napari_io import volume_layer_data

        path = self.path_edit.text().strip()
        as_labels = {"auto": None, "CT image": False, "labels": True}[self.kind_combo.currentText()]

        def job(progress, cancel):
            if not path:
                raise VolumeReadError("no path given: choose a file or a DICOM folder")
            return volume_layer_data(path, as_labels=as_labels)

        self.runner.start(job, "Open CT", on_result=self._add_layer)

    def _add_layer(self, layer_data) -> None:
        from napari.layers import Layer

        data, kwargs, layer_type = layer_data
        layer = self.viewer.add_layer(Layer.create(data, kwargs, layer_type))
        self.layer_combo.refresh()
        self.layer_combo.setCurrentText(layer.name)
        self.status.setText(f"opened {layer.name!r} ({layer_type})")

    # ------------------------------------------------------------- display
    def apply_preset(self, *_: object) -> None:
        """Set the chosen image layer's contrast limits to the preset window."""
        from napari.layers import Image

        layer = self.layer_combo.layer()
        name = self.preset_combo.currentData()
        if not isinstance(layer, Image) or name is None:
            return
        window = HUWindow.from_preset(name)
        layer.contrast_limits_range = (
            min(layer.contrast_limits_range[0], window.lo),
            max(layer.contrast_limits_range[1], window.hi),
        )
        layer.contrast_limits = window.contrast_limits
        layer.metadata["window"] = name

    def _show_geometry(self, *_: object) -> None:
        self.geometry.setText(geometry_text(self.layer_combo.layer()))

