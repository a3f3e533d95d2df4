"""Screenshot of the "Conditional generation" widget after a real generation (docs/images).

Loads the real abdominal organ mask, paints an extra block of liver with the
Labels layer's brush API (``layer.paint``, as a user's brush does), generates
with the shipped ``demo`` checkpoint and saves viewer + widget.
Run under a display (xvfb-run -a python bench/generation_screenshot.py).
"""

from __future__ import annotations

import sys

import napari
import numpy as np

from napari_ctfoundation.engine.io import read_labels
from napari_ctfoundation.widgets.generation import ConditionalGenerationWidget

from _screenshots import save_window, wait_for  # noqa: E402 - bench/ sibling


def main(out: str = "docs/images/generation_widget.png") -> None:
    viewer = napari.Viewer(show=True)
    organs = read_labels("sample_data/ct_abdomen_3mm/organs.nii.gz").to_display()
    from napari_ctfoundation.widgets._common import labels_colormap

    layer = viewer.add_labels(organs.array, name="organs", scale=organs.napari_scale(),
                              translate=organs.napari_translate(), colormap=labels_colormap("organs"),
                              axis_labels=("z", "y", "x"), units="mm",  # as the reader adds it
                              metadata={"geometry": organs.geometry_dict()})
    widget = ConditionalGenerationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Conditional generation")
    widget.organ_combo.setCurrentText("organs")
    widget.pick_class()  # liver
    for z in range(10, 20):  # a brush stroke of liver through ten slices
        layer.paint((z, 60, 30), 5, refresh=False)
    layer.refresh()
    widget.device_combo.setCurrentText("cpu")
    widget.run_button.click()
    wait_for(widget.runner)
    generated = viewer.layers.selection.active  # the result: on top of the stack, selected
    print("result layer:", generated.name, "on top:", viewer.layers[-1] is generated)
    viewer.dims.set_point(0, generated.data.shape[0] // 2 * organs.spacing_zyx[0] + organs.napari_translate()[0])
    # The generated CT sits on top; show the painted organ map beside it (napari grid mode).
    grid = getattr(getattr(viewer, "canvas", None), "grid", None) or viewer.grid  # napari >= 0.9: canvas.grid
    grid.enabled, grid.shape = True, (1, 2)
    save_window(viewer, out, (1500, 900))


if __name__ == "__main__":
    main(*sys.argv[1:])
