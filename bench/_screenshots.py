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
    """Resize napari's window, grab it (viewer + docked widgets) into ``out`` and close the viewer."""
    viewer.window._qt_window.resize(*size)
    QApplication.instance().processEvents()
    viewer.window._qt_window.grab().save(out)
    print("saved", out)
    viewer.close()
