"""Screenshot of the "Sparse-view CBCT" widget on the held-out DICOM sample (docs/images).

Loads the real 512x512 DICOM series, simulates 6 views with the shipped
DiCE checkpoint's geometry, reconstructs with FDK, SART and DiCE through the
widget's buttons, and saves viewer + widget with the four volumes side by
side (napari grid mode) at the CT's middle axial slice.
Run under a display (xvfb-run -a python bench/sparse_screenshot.py [OUT.png]).
"""

from __future__ import annotations

import sys

import napari

from napari_ctfoundation.engine.io import read_volume
from napari_ctfoundation.engine.window import HUWindow
from napari_ctfoundation.widgets.sparse import SparseViewWidget

from _screenshots import save_window, wait_for  # noqa: E402 - bench/ sibling


def main(out: str = "docs/images/sparse_widget.png") -> None:
    viewer = napari.Viewer(show=True)
    ct = read_volume("sample_data/ct_dicom_series/dicom").to_display()
    viewer.add_image(ct.array, name="ct", scale=ct.napari_scale(), translate=ct.napari_translate(),
                     contrast_limits=HUWindow.from_preset("soft_tissue").contrast_limits, colormap="gray", metadata={"geometry": ct.geometry_dict()},
                     axis_labels=("z", "y", "x"), units="mm")  # as the reader adds it
    widget = SparseViewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Sparse-view CBCT")
    widget.layer_combo.setCurrentText("ct")
    widget.views_combo.setCurrentText("6")
    widget.simulate_button.click()
    wait_for(widget.sim_runner)
    lines = []
    for method in ("fdk", "sart", "dice"):
        widget.runner.last_outcome = None
        widget.method_combo.setCurrentText(method)
        widget.reconstruct_button.click()
        wait_for(widget.runner)
        lines.append(widget.metrics_label.text().splitlines()[0])
    print("\n".join(lines))
    widget.metrics_label.setText("\n".join(lines))
    grid = getattr(getattr(viewer, "canvas", None), "grid", None) or viewer.grid  # napari >= 0.9: canvas.grid
    grid.enabled, grid.shape = True, (1, 4)
    viewer.dims.set_point(0, ct.napari_translate()[0] + ct.shape[0] // 2 * ct.napari_scale()[0])
    save_window(viewer, out, (1700, 800))


if __name__ == "__main__":
    main(*sys.argv[1:])
