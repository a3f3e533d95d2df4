"""Shared by the screenshot scripts: wait for a widget's job, save the main window as a PNG."""

from __future__ import annotations

from typing import Tuple

from qtpy.QtWidgets import QApplication


def wait_for(runner) -> None:
    """Process Qt events until ``runner`` (a widget's JobRunner) has finished its job."""
    app = QApplication.instance()
    while runner.running or runner.last_outcome is None:
        app.processEvents()
    print(runner.last_outcome.status, runner.last_outcome.message)


def save_window(viewer, out: str, size: Tuple[int, int]) -> None:
    """Resize napari's window, fit the view to it, grab it (viewer + docked widgets) into ``out``, close the viewer."""
    app = QApplication.instance()
    viewer.window._qt_window.resize(*size)
    app.processEvents()
    viewer.reset_view()  # after the resize: fitting before it zooms to the old canvas size
    app.processEvents()
    viewer.window._qt_window.grab().save(out)
    print("saved", out)
    viewer.close()
