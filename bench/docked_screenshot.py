"""All four widgets docked on a 1366x768 laptop screen (docs/images/napari_four_widgets_1366x768.png).

Opens the abdominal sample (CT + organs), docks Load CT, Foundation VAE
reconstruction, Conditional generation and Sparse-view CBCT the way
Plugins > CT Foundation does, shows the window maximised and prints the
window's size against the screen's: each widget's form sits in a scroll
area, so the window must not grow past the screen.
Run under a 1366x768 display:

    xvfb-run -a -s "-screen 0 1366x768x24" python bench/docked_screenshot.py [OUT.png]
"""

from __future__ import annotations

import sys
import time

import napari
from qtpy.QtWidgets import QApplication

WIDGETS = ("Load CT", "Foundation VAE reconstruction", "Conditional generation", "Sparse-view CBCT")


def main(out: str = "docs/images/napari_four_widgets_1366x768.png") -> None:
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.open_sample("napari-ctfoundation", "abdomen_3mm")
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("napari-ctfoundation", name)
        app.processEvents()
    window = viewer.window._qt_window
    screen = window.screen().availableGeometry()
    window.showMaximized()
    window.resize(screen.size())  # what maximising does; Xvfb has no window manager to do it
    for _ in range(50):  # let the layout settle (docks resize lazily)
        app.processEvents()
        time.sleep(0.02)
    viewer.reset_view()
    app.processEvents()
    frame = window.frameGeometry()
    print(f"screen {screen.width()}x{screen.height()}  window {frame.width()}x{frame.height()}  "
          f"(minimum {window.minimumSizeHint().width()}x{window.minimumSizeHint().height()})")
    print("axis labels", viewer.dims.axis_labels, "units", [str(u) for u in viewer.dims.units])
    minimum = window.minimumSizeHint()
    fits = (frame.width() <= screen.width() and frame.height() <= screen.height()
            and minimum.width() <= screen.width() and minimum.height() <= screen.height())
    print("fits the screen" if fits else "GROWS PAST THE SCREEN")
    window.grab().save(out)
    print("saved", out)
    viewer.close()
    if not fits:
        raise SystemExit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
