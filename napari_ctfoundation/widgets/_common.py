"""Helpers every widget shares: run engine work off the UI thread, add result layers.

Running engine work
-------------------
Engine functions are synchronous and take ``progress(done, total, unit)`` and
``cancel() -> bool`` callbacks (see ``engine.progress``). :class:`JobRunner`
runs such a call in a napari ``thread_worker`` so the UI never freezes:

* progress travels from the worker thread to the UI through a Qt signal
  (queued across threads) and drives both a napari ``progress`` bar in the
  activity dock and the widget's own ``QProgressBar`` + label;
* the widget's Run button turns into Cancel while the job runs. Cancel (or
  the activity dock's cancel button) sets a flag the engine's ``cancel()``
  check reads, so it takes effect at the next progress report: the engine
  raises ``OperationCancelled``, the widget shows "cancelled" and no result
  is delivered;
* errors never reach napari as a traceback: a ``CTFoundationError`` shows its
  own one-line message as a notification, anything else shows its type and
  message (the traceback goes to the log for developers).

Typical use inside a widget::

    self.runner = JobRunner(self.run_button, self.progress_bar, self.status,
                            on_run=self._start)

    def _start(self):
        volume = layer_volume(layer)            # validate on the UI thread
        def job(progress, cancel):              # runs in the worker thread
            return reconstruct_volume(volume, progress=progress, cancel=cancel)
        self.runner.start(job, "VAE reconstruction", on_result=self._show)

Result layers
-------------
:func:`add_result_image` / :func:`add_result_labels` add (or replace) a layer
on the grid of a source layer: same ``scale`` and ``translate``, the source's
geometry in ``metadata`` (so the writer can restore the file's orientation),
plus whatever settings/metrics the caller passes.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QComboBox, QLabel, QProgressBar, QPushButton

from ..engine.errors import CTFoundationError, GeometryError, OperationCancelled
from ..engine.volume import Volume

log = logging.getLogger(__name__)

#: a job receives the engine's two callbacks and returns the result
Job = Callable[[Callable[[int, int, str], None], Callable[[], bool]], Any]


@dataclass
class Outcome:
    """How a job ended: ``status`` is ``"done"``, ``"cancelled"`` or ``"error"``."""

    status: str
    value: Any = None
    message: str = ""


def notify_error(message: str) -> None:
    """A napari error notification (never a traceback dialog)."""
    from napari.utils.notifications import show_error

    show_error(message)


def notify_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def _call_job(job: Job, progress, cancel) -> Outcome:
    """Run ``job`` and turn every way it can end into an :class:`Outcome`.

    Runs in the worker thread; catching here means nothing is re-raised in
    the UI thread (napari would show a traceback otherwise).
    """
    try:
        return Outcome("done", job(progress, cancel))
    except OperationCancelled as exc:
        return Outcome("cancelled", message=str(exc))
    except CTFoundationError as exc:
        return Outcome("error", message=str(exc))
    except MemoryError:
        return Outcome("error", message="out of memory; try a smaller volume or crop")
    except Exception as exc:  # noqa: BLE001 - a widget must not crash napari
        log.error("unexpected error in widget job:\n%s", traceback.format_exc())
        return Outcome("error", message=f"{type(exc).__name__}: {exc}")


class JobRunner(QObject):
    """Runs one engine job at a time for a widget (see module docstring).

    ``button`` is the widget's Run button: idle, a click calls ``on_run``
    (which normally calls :meth:`start`); running, it reads ``Cancel`` and a
    click cancels. ``bar`` and ``label`` show progress and the final state.
    """

    #: (done, total, unit), emitted from the worker thread
    progressed = Signal(int, int, str)

    def __init__(
        self,
        button: QPushButton,
        bar: Optional[QProgressBar] = None,
        label: Optional[QLabel] = None,
        *,
        on_run: Optional[Callable[[], None]] = None,
        run_text: str = "Run",
    ) -> None:
        super().__init__(button)
        self.button = button
        self.bar = bar
        self.label = label
        self.run_text = run_text
        self._on_run = on_run
        self._cancel_event = threading.Event()
        self._pbar = None
        self.worker = None
        #: the last job's outcome (tests and callers read it)
        self.last_outcome: Optional[Outcome] = None
        self.progressed.connect(self._show_progress)
        button.setText(run_text)
        button.clicked.connect(self._clicked)
        if bar is not None:
            bar.setVisible(False)

    # ----------------------------------------------------------- state
    @property
    def running(self) -> bool:
        return self.worker is not None

    def _clicked(self) -> None:
        if self.running:
            self.cancel()
        elif self._on_run is not None:
            self._on_run()

    def cancel(self) -> None:
        """Ask the running job to stop at its next progress report."""
        if self.running:
            self._cancel_event.set()
            self.button.setEnabled(False)  # until the job has really stopped
            self._set_label("cancelling...")

    def _cancel_requested(self) -> bool:
        pbar = self._pbar
        return self._cancel_event.is_set() or bool(getattr(pbar, "is_canceled", False))

    def _set_label(self, text: str) -> None:
        if self.label is not None:
            self.label.setText(text)

    # ------------------------------------------------------------- run
    def start(
        self,
        job: Job,
        description: str,
        *,
        on_result: Callable[[Any], None],
        on_cancelled: Optional[Callable[[], None]] = None,
        on_error: Optional[Callable[[str], None]] = None,
    ) -> None:
        """Run ``job(progress, cancel)`` in a worker thread.

        ``on_result(value)`` is called on the UI thread when the job
        finishes; nothing is called with a result after a cancel or an error.
        """
        if self.running:
            notify_error(f"{description}: a job is already running in this widget")
            return
        from napari.qt.threading import create_worker
        from napari.utils import cancelable_progress

        self._cancel_event.clear()
        self.last_outcome = None
        self._description = description
        self._callbacks = (on_result, on_cancelled, on_error)
        # The activity-dock bar; its own cancel button works like ours.
        self._pbar = cancelable_progress(total=0, desc=description)
        if self.bar is not None:
            self.bar.setRange(0, 0)  # busy until the first report
            self.bar.setVisible(True)
        self._set_label(f"{description}: starting...")
        self.button.setText("Cancel")
        self.button.setEnabled(True)

        def report(done: int, total: int, unit: str) -> None:  # worker thread
            self.progressed.emit(int(done), int(total), str(unit))

        self.worker = create_worker(
            _call_job, job, report, self._cancel_requested, _ignore_errors=True
        )
        self.worker.returned.connect(self._finished)
        # Backstop: an error escaping _call_job (should not happen) still resets.
        self.worker.errored.connect(
            lambda exc: self._finished(Outcome("error", message=f"{type(exc).__name__}: {exc}"))
        )
        self.worker.start()

    def _show_progress(self, done: int, total: int, unit: str) -> None:
        if not self.running:
            return
        pbar = self._pbar
        if pbar is not None:
            if pbar.total != total:
                pbar.total = total
            if done != pbar.n:
                pbar.update(done - pbar.n)
        if self.bar is not None:
            self.bar.setRange(0, max(total, 1))
            self.bar.setValue(done)
        if not self._cancel_event.is_set():
            self._set_label(f"{self._description}: {done}/{total} {unit}")

    def _finished(self, outcome: Outcome) -> None:
        if not self.running:
            return
        self.worker = None
        self.last_outcome = outcome
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self.bar is not None:
            self.bar.setVisible(False)
        self.button.setText(self.run_text)
        self.button.setEnabled(True)
        on_result, on_cancelled, on_error = self._callbacks
        if outcome.status == "done":
            self._set_label(f"{self._description}: done")
            try:
                on_result(outcome.value)
            except CTFoundationError as exc:
                self._fail(str(exc), on_error)
            except Exception as exc:  # noqa: BLE001
                log.error("error showing result:\n%s", traceback.format_exc())
                self._fail(f"{type(exc).__name__}: {exc}", on_error)
        elif outcome.status == "cancelled":
            self._set_label(f"{self._description}: cancelled")
            notify_info(f"{self._description}: {outcome.message}")
            if on_cancelled is not None:
                on_cancelled()
        else:
            self._fail(outcome.message, on_error)

    def _fail(self, message: str, on_error) -> None:
        self._set_label(f"{self._description}: failed")
        if self.last_outcome is not None:
            self.last_outcome = Outcome("error", message=message)
        notify_error(f"{self._description}: {message}")
        if on_error is not None:
            on_error(message)


# ------------------------------------------------------------------ layers
def layer_volume(layer, dtype=np.float32) -> Volume:
    """A napari layer as a display-oriented :class:`Volume`.

    When the layer carries the geometry its reader stored (same shape, not
    moved since) the exact affine comes back, oblique residual included;
    otherwise the layer's scale/translate define it.
    """
    data = np.asarray(layer.data)
    if data.ndim != 3:
        raise GeometryError(
            f"layer {layer.name!r}: needs a 3D volume [z, y, x], got shape {data.shape}"
        )
    meta = dict(layer.metadata or {})
    geometry = meta.get("geometry")
    array = data.astype(dtype, copy=False) if dtype is not None else data
    if geometry and list(geometry.get("shape_zyx", [])) == list(data.shape):
        vol = Volume.from_geometry_dict(array, geometry)
        vol.metadata = {**meta, **vol.metadata}
        if np.allclose(vol.napari_scale(), layer.scale[-3:]) and np.allclose(
            vol.napari_translate(), layer.translate[-3:]
        ):
            return vol
    vol = Volume.from_napari(array, layer.scale, layer.translate, meta)
    if geometry and "source_orientation" in geometry:
        vol.metadata["source_orientation"] = geometry["source_orientation"]
    return vol


def result_metadata(source_layer, **extra: Any) -> Dict[str, Any]:
    """Metadata for a layer computed from ``source_layer``: its geometry + ``extra``."""
    src = dict(source_layer.metadata or {})
    meta: Dict[str, Any] = {
        key: src[key] for key in ("geometry", "source_path", "source_orientation") if key in src
    }
    meta["source_layer"] = source_layer.name
    meta.update(extra)
    return meta


def _replace_or_add(viewer, name: str, add: Callable[[], Any]):
    """Replace a same-named layer at the same position (re-runs do not pile up)."""
    if name in viewer.layers:
        index = viewer.layers.index(name)
        viewer.layers.pop(index)
        layer = add()
        viewer.layers.move(viewer.layers.index(layer), index)
        return layer
    return add()


def add_result_image(viewer, data: np.ndarray, source_layer, name: str, *,
                     metadata: Optional[Dict[str, Any]] = None, **kwargs: Any):
    """Add (or replace) image layer ``name`` on ``source_layer``'s grid."""
    meta = result_metadata(source_layer, **(metadata or {}))
    return _replace_or_add(viewer, name, lambda: viewer.add_image(
        data, name=name, scale=source_layer.scale, translate=source_layer.translate,
        metadata=meta, **kwargs))


def add_result_labels(viewer, data: np.ndarray, source_layer, name: str, *,
                      metadata: Optional[Dict[str, Any]] = None, vocabulary: str = "organs",
                      **kwargs: Any):
    """Add (or replace) labels layer ``name`` on ``source_layer``'s grid.

    ``vocabulary`` ("organs" or "lesions") gives the layer the stable
    colours and the name table of :mod:`engine.labels`.
    """
    from ..engine import labels as vocab

    meta = result_metadata(source_layer, **(metadata or {}))
    kwargs.setdefault("colormap", labels_colormap(vocabulary))
    kwargs.setdefault("features", vocab.features_table(np.asarray(data), vocabulary))
    return _replace_or_add(viewer, name, lambda: viewer.add_labels(
        data, name=name, scale=source_layer.scale, translate=source_layer.translate,
        metadata=meta, **kwargs))


def labels_colormap(vocabulary: str = "organs"):
    """napari ``DirectLabelColormap`` with the vocabulary's stable colours."""
    from napari.utils.colormaps import DirectLabelColormap

    from ..engine import labels as vocab

    colors: Dict[Any, Any] = {None: (0.5, 0.5, 0.5, 1.0)}  # ids outside the table
    colors.update({i: tuple(c) for i, c in vocab.color_table(vocabulary).items()})
    return DirectLabelColormap(color_dict=colors)


# ---------------------------------------------------------- layer chooser
class LayerCombo(QComboBox):
    """A combo box listing the viewer's layers of some types, kept up to date."""

    def __init__(self, viewer, layer_types: tuple, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_types = layer_types
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        current = self.currentText()
        self.blockSignals(True)
        self.clear()
        names = [ly.name for ly in self.viewer.layers if isinstance(ly, self.layer_types)]
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        elif self.viewer.layers.selection.active is not None and \
                self.viewer.layers.selection.active.name in names:
            self.setCurrentText(self.viewer.layers.selection.active.name)
        self.blockSignals(False)

    def layer(self):
        """The chosen layer, or None."""
        name = self.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None
