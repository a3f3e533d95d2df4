"""Take the README screenshot: napari with the DICOM sample, its organ
labels and the Foundation VAE reconstruction widget docked after a real run.

    xvfb-run -a python docs/make_screenshots.py [--out docs/images/napari_reconstruction.png]

The reconstruction is the real TAEF2 run on the CPU (about a minute or two
for the 512 x 512 x 20 series on 2 cores); nothing is staged or painted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def wait_for(runner, app, timeout_s: float = 1200.0) -> None:
    """Spin the Qt event loop until the widget's job has finished."""
    start = time.time()
    while runner.running:
        app.processEvents()
        time.sleep(0.05)
        if time.time() - start > timeout_s:
            raise TimeoutError("reconstruction did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "images" / "napari_reconstruction.png")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget

    viewer = napari.Viewer(title="napari-ctfoundation")
    viewer.window.resize(1600, 900)
    viewer.open_sample("napari-ctfoundation", "dicom_series")
    ct, organs = viewer.layers["DICOM CT"], viewer.layers["DICOM CT organs"]
    organs.opacity = 0.35

    widget = ReconstructionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Foundation VAE reconstruction", area="right")
    widget.layer_combo.setCurrentText(ct.name)
    widget.device_combo.setCurrentText(args.device)
    app = QApplication.instance()
    widget.run()
    wait_for(widget.runner, app)
    outcome = widget.runner.last_outcome
    if outcome is None or outcome.status != "done":
        raise SystemExit(f"reconstruction failed: {outcome}")
    print(widget.metrics_label.text())

    # Side by side: input CT with its organs | reconstruction (difference
    # layer listed, hidden; its checkbox shows it). Grid cells take `stride`
    # consecutive layers.
    recon = viewer.layers[f"{ct.name} [recon]"]
    diff = viewer.layers[f"{ct.name} [difference]"]
    # napari fills the grid from the bottom of the list: CT + organs left.
    for name in (ct.name, organs.name, recon.name, diff.name):  # top of the list last
        viewer.layers.move(viewer.layers.index(name), len(viewer.layers))
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    grid.stride = 2
    grid.shape = (1, 2)
    grid.enabled = True
    liver_slices = np.nonzero((organs.data == 5).any(axis=(1, 2)))[0]
    viewer.dims.set_point(0, ct.data_to_world((int(np.median(liver_slices)), 0, 0))[0])
    viewer.reset_view()
    viewer.layers.selection.active = recon
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
