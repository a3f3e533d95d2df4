"""Helpers every widget shares: run engine work off the UI thread, add result layers.

Running engine work
-------------------
Engine functions are synchronous and take ``progress(done, total, unit)`` and
``cancel() -> bool`` callbacks (see ``engine.progress``). :class:`JobRunner`
runs such a call in a napari generator ``thread_worker`` so the UI never
freezes:

* the worker (a :class:`JobWorker`, i.e. a napari ``GeneratorWorker``) runs
  the generator :func:`run_job`. A generator cannot yield from inside the
  engine's ``progress`` callback, so :func:`run_job` starts the engine call
  in an inner daemon thread whose ``progress`` puts :class:`Report` s on a
  ``queue.Queue``; the generator waits on that queue and *yields* each report
  (bursts are coalesced to the newest one: a progress bar only shows the last);
* the worker's ``yielded`` signal (delivered on the UI thread) drives a napari
  ``cancelable_progress`` bar in the activity dock and the widget's own
  ``QProgressBar`` + label, and re-emits :attr:`JobRunner.progressed`;
* the widget's Run button turns into Cancel while the job runs. Cancel (the
  button, the activity dock's cancel, or napari asking the worker to quit on
  window close) sets the flag the engine's ``cancel()`` reads *and* calls
  ``worker.quit()``. The engine raises ``OperationCancelled`` at its next
  progress report; the worker closes the generator, whose ``finally`` waits
  for the engine thread, so no engine work outlives its worker. The button
  stays disabled ("cancelling...") until then, reads Run again afterwards,
  and a new job can start; nothing is ever delivered after a cancel;
* the final :class:`Outcome` (done / cancelled / error) is the generator's
  return value, delivered through the worker's ``returned`` signal (napari
  sends no ``returned`` after ``quit()``; the runner then reports
  "cancelled"). The UI is reset on the worker's ``finished`` signal;
* errors never reach napari as a traceback: a ``CTFoundationError`` shows its
  own one-line message as a notification, anything else shows its type and
  message (the traceback goes to the log for developers).

Typical use inside a widget::

    self.runner = JobRunner(self.run_button, self.progress_bar, self.status,
                            on_run=self._start)

    def _start(self):
        volume = layer_volume(layer)            # validate on the UI thread
        def job(progress, cancel):              # runs in the engine thread
            return reconstruct_volume(volume, progress=progress, cancel=cancel)
        self.runner.start(job, "VAE reconstruction", on_result=self._show)

Result layers
-------------
:func:`add_result_image` / :func:`add_result_labels` add (or replace) a layer
on the grid of a source layer: same ``scale``, ``translate``, axis names and
units, the source's geometry in ``metadata`` (so the writer can restore the
file's orientation), plus whatever settings/metrics the caller passes. The
layer goes on top of the stack, selected, so a result is never hidden under
an opaque CT, and ``metadata[RESULT_KEY]`` marks it as ours:
:class:`LayerCombo` pickers default to the newest layer the *user* loaded.

Stress
------
Different widgets' jobs run side by side (each gets a pool thread, see
:func:`_make_pool_room`); one widget runs one job at a time. Closing the
window or deleting the widget cancels a running job (Close event filter and
``destroyed``), and nothing touches deleted widgets afterwards.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generator, Optional

import numpy as np
from napari.qt.threading import GeneratorWorker
from napari.utils import cancelable_progress
from qtpy.QtCore import QEvent, QObject, QThread, QThreadPool, QTimer, Signal
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


@dataclass(frozen=True)
class Report:
    """One progress report of the engine, as the worker yields it."""

    done: int
    total: int
    unit: str


def notify_error(message: str) -> None:
    """A napari error notification (never a traceback dialog)."""
    from napari.utils.notifications import show_error

    show_error(message)


def notify_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def _call_job(job: Job, progress, cancel) -> Outcome:
    """Run ``job`` and turn every way it can end into an :class:`Outcome`.

    Catching here means nothing is re-raised in the UI thread (napari would
    show a traceback otherwise).
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


def run_job(job: Job, cancel_event: threading.Event) -> Generator[Report, None, Outcome]:
    """The worker's generator: run ``job`` and yield its progress reports.

    The engine call runs in an inner daemon thread (its ``progress``
    callback cannot yield on our behalf); reports reach this generator, in
    the worker thread, through a queue. Returns the job's :class:`Outcome`.
    If the generator is closed early (the worker was asked to quit), the
    ``finally`` sets the engine's cancel flag and waits for the engine
    thread to stop.
    """
    reports: "queue.Queue[Any]" = queue.Queue()

    def progress(done: int, total: int, unit: str) -> None:  # engine thread
        reports.put(Report(int(done), int(total), str(unit)))

    def engine() -> None:
        outcome = Outcome("error", message="the job stopped without a result")
        try:
            outcome = _call_job(job, progress, cancel_event.is_set)
        finally:  # always wakes the generator, even on SystemExit & co.
            reports.put(outcome)

    thread = threading.Thread(target=engine, name="ctfoundation-engine", daemon=True)
    thread.start()
    outcome: Optional[Outcome] = None
    try:
        while outcome is None:
            item = reports.get()
            latest = None
            while isinstance(item, Report):  # drain a burst, keep the newest
                latest = item
                try:
                    item = reports.get_nowait()
                except queue.Empty:
                    item = None
            if isinstance(item, Outcome):
                outcome = item
            if latest is not None:
                yield latest
        return outcome
    finally:
        if outcome is None:  # closed before the engine ended: stop it, then wait
            cancel_event.set()
            thread.join()


class JobWorker(GeneratorWorker):
    """napari ``GeneratorWorker`` for :func:`run_job` that stops the engine too.

    ``quit()`` (our Cancel, or napari's own, e.g. on window close) also sets
    the engine's cancel flag, so the engine stops at its next progress report
    rather than only when the generator next yields; once the worker loop has
    stopped, the generator is closed here, in the worker thread, so its
    ``finally`` waits for the engine thread before ``finished`` is emitted.
    """

    def __init__(self, func, job: Job, cancel_event: threading.Event, **kwargs: Any) -> None:
        super().__init__(func, job, cancel_event, **kwargs)
        self.cancel_event = cancel_event

    def quit(self) -> None:
        self.cancel_event.set()
        super().quit()

    def work(self):
        try:
            return super().work()
        finally:
            self._gen.close()


def _shorten(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters at a word boundary, with an ellipsis."""
    if len(text) <= n:
        return text
    head = text[: n - 1]
    return (head.rsplit(" ", 1)[0] if " " in head else head).rstrip() + "\u2026"


def _call_quietly(callback: Optional[Callable[[], Any]]) -> None:
    """Run a clean-up callback after its widget may be gone: a deleted Qt object must not raise in napari."""
    if callback is None:
        return
    try:
        callback()
    except Exception:  # noqa: BLE001
        log.warning("clean-up after a closed widget failed:\n%s", traceback.format_exc())


def _alive(*widgets: Optional[QObject]) -> bool:
    """False once Qt has deleted any of ``widgets`` (their window closed) while Python still holds them."""
    try:
        for widget in widgets:
            if widget is not None:
                widget.objectName()
    except RuntimeError:
        return False
    return True


class _ActivityProgress(cancelable_progress):
    """Activity-dock bar whose Cancel button calls ``cancel_callback`` at once.

    napari's ``cancelable_progress`` only runs the callback while iterating;
    our bar is updated by hand, so the callback runs from ``cancel()``.
    """

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


def _make_pool_room() -> None:
    """Give every job its own pool thread, so widgets run side by side and never queue.

    napari starts workers on Qt's global thread pool, sized to the CPU count
    (2 on a small laptop or CI machine). Our worker threads mostly wait for
    their engine thread, so without this a third job (or napari's own
    workers) would wait, unannounced, for a job in another widget to end.
    """
    live_jobs = sum(isinstance(w, JobWorker) for w in list(GeneratorWorker._worker_set))
    pool = QThreadPool.globalInstance()
    need = live_jobs + 1 + max(QThread.idealThreadCount(), 2)
    if pool.maxThreadCount() < need:
        pool.setMaxThreadCount(need)


class JobRunner(QObject):
    """Runs one engine job at a time for a widget (see module docstring).

    ``button`` is the widget's Run button: idle, a click calls ``on_run``
    (which normally calls :meth:`start`); running, it reads ``Cancel`` and a
    click cancels. ``bar`` and ``label`` show progress and the final state.
    """

    #: (done, total, unit) of each report the worker yields, on the UI thread
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
        self._pbar: Optional[cancelable_progress] = None
        self._returned: Optional[Outcome] = None
        self._last_report: Optional[Report] = None
        self._description = ""
        self._window: Optional[QObject] = None  # watched for Close while a job runs
        self._stop_on_destroyed: Optional[Callable[..., None]] = None
        #: the running :class:`JobWorker` (a napari ``GeneratorWorker``), or None
        self.worker: Optional[JobWorker] = None
        #: the last job's outcome (tests and callers read it)
        self.last_outcome: Optional[Outcome] = None
        button.setText(run_text)
        button.clicked.connect(self._clicked)
        if bar is not None:
            bar.setVisible(False)

    # ----------------------------------------------------------- state
    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def activity_progress(self) -> Optional[cancelable_progress]:
        """The running job's bar in napari's activity dock (its Cancel = ours)."""
        return self._pbar

    def _clicked(self) -> None:
        if self.running:
            self.cancel()
        elif self._on_run is not None:
            self._on_run()

    def cancel(self) -> None:
        """Stop the running job: engine cancel flag + ``worker.quit()``."""
        if self.running and not self._cancel_event.is_set():
            self._cancel_event.set()
            self.worker.quit()
            self.button.setEnabled(False)  # until the job has really stopped
            self._set_label(f"{self._description}: cancelling...")

    def refuse(self, message: str) -> None:
        """Say why a job cannot start (label + notification); nothing runs."""
        self._set_label(message)
        notify_error(message)

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
        """Run ``job(progress, cancel)`` in a generator worker.

        ``on_result(value)`` is called on the UI thread when the job
        finishes; nothing is called with a result after a cancel or an error.
        """
        if self.running:
            notify_error(f"{description}: a job is already running in this widget")
            return
        from napari.qt.threading import create_worker

        # A fresh flag per job: a cancelled job still winding down can never
        # be confused with the next one.
        self._cancel_event = threading.Event()
        self._returned = None
        self._last_report: Optional[Report] = None
        self.last_outcome = None
        self._description = description
        self._callbacks = (on_result, on_cancelled, on_error)
        # The activity-dock bar; its own cancel button works like ours.
        # Short text ("VAE reconstruction of…", "8/40 slices ~04:10") so the
        # dock's 520-pixel row keeps its Cancel button in view.
        self._pbar = _ActivityProgress(total=0, desc=_shorten(description, 22), cancel_callback=self.cancel,
                                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {unit} ~{remaining}")
        if self.bar is not None:
            self.bar.setRange(0, 0)  # busy until the first report
            self.bar.setVisible(True)
        self._set_label(f"{description}: starting...")
        self.button.setText("Cancel")
        self.button.setEnabled(True)

        self.worker = worker = create_worker(
            run_job, job, self._cancel_event, _worker_class=JobWorker, _ignore_errors=True)
        worker.yielded.connect(self._show_progress)
        worker.returned.connect(self._returned_outcome)
        # Backstop: an error escaping run_job (should not happen) still ends cleanly.
        worker.errored.connect(
            lambda exc: self._returned_outcome(Outcome("error", message=f"{type(exc).__name__}: {exc}")))
        worker.finished.connect(self._finished)
        self._watch_window(worker)
        _make_pool_room()
        worker.start()

    # ------------------------------------------------- window and widget closing
    def _watch_window(self, worker: "JobWorker") -> None:
        """Stop the job when its window closes or the widget is deleted (no orphan engine thread).

        Two ways: a Close event on the top-level window is checked once the
        close has been handled (napari may ask to confirm), and the runner's
        own ``destroyed`` (the widget, or the whole window, deleted) stops
        the worker through a closure that needs nothing of the dead widget.
        """
        window = self.button.window()
        self._window = window
        window.installEventFilter(self)
        cancel_event, pbar, on_cancelled = self._cancel_event, self._pbar, self._callbacks[1]

        def stop(*_: Any) -> None:
            cancel_event.set()
            try:
                worker.quit()
            except RuntimeError:  # the worker has already finished and been deleted
                pass
            if pbar is not None:
                try:
                    pbar.close()
                except Exception:  # noqa: BLE001 - the activity dock may be gone with its window
                    pass
            # The runner is gone, so _finished will not run: the widget's clean-up (e.g. removing
            # a half-filled live layer from a viewer that stays open) runs here.
            _call_quietly(on_cancelled)

        self._stop_on_destroyed = stop
        self.destroyed.connect(stop)

    def _unwatch_window(self) -> None:
        window, stop = self._window, self._stop_on_destroyed
        self._window = self._stop_on_destroyed = None
        try:
            if window is not None:
                window.removeEventFilter(self)
            if stop is not None:
                self.destroyed.disconnect(stop)
        except (RuntimeError, TypeError):  # already deleted / disconnected
            pass

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Close and obj is self._window:
            # After napari's closeEvent (and any "really close?" dialog) has run.
            QTimer.singleShot(0, self._window_closed)
        return False

    def _window_closed(self) -> None:
        window = self._window
        try:
            closed = window is None or not window.isVisible()
        except RuntimeError:  # deleted
            closed = True
        if not (closed and self.running):
            return
        if _alive(self.button, self.label):
            self._set_label(f"{self._description}: window closed, stopping")
            self.cancel()
        elif self._stop_on_destroyed is not None:
            self._stop_on_destroyed()

    def _show_progress(self, report: Report) -> None:
        # Reports the engine made while it was winding down after a cancel
        # are not shown: the widget says "cancelling..." until it has stopped.
        if not self.running or self._cancel_event.is_set():
            return
        self._last_report = report
        done, total, unit = report.done, report.total, report.unit
        # total 0: a phase without a count (loading a model): a busy bar, its name.
        if self.bar is not None:
            self.bar.setRange(0, max(total, 0))
            self.bar.setValue(done)
        self._set_label(f"{self._description}: {done}/{total} {unit}" if total else
                        f"{self._description}: {unit}...")
        self.progressed.emit(done, total, unit)
        # Last: napari's bar processes Qt events while it repaints, which may
        # run _finished re-entrantly and close it.
        pbar = self._pbar
        if pbar is not None:
            pbar.unit = unit
            if pbar.total != total:
                pbar.total = total
            if done != pbar.n:
                pbar.update(done - pbar.n)

    def _returned_outcome(self, outcome: Outcome) -> None:
        self._returned = outcome

    def _finished(self) -> None:
        """The worker thread is done (engine thread included): reset, deliver."""
        worker = self.worker
        if worker is None:
            return
        self.worker = None
        self._unwatch_window()
        outcome = self._returned
        if self._cancel_event.is_set() or worker.abort_requested:
            # Whatever the engine got to, nothing is delivered after a cancel.
            if outcome is not None and outcome.status == "cancelled":
                message = outcome.message  # the engine's own "cancelled after ..."
            elif self._last_report is not None:
                r = self._last_report
                message = f"cancelled after {r.done} of {r.total} {r.unit}"
            else:
                message = "cancelled before it started"
            outcome = Outcome("cancelled", message=message)
        elif outcome is None:
            outcome = Outcome("error", message="the job stopped without a result")
        self.last_outcome = outcome
        if self._pbar is not None:
            try:
                self._pbar.close()
            except Exception:  # noqa: BLE001 - the activity dock may be gone with its window
                pass
            self._pbar = None
        if not _alive(self.button, self.bar, self.label):
            # The window closed (or the widget was deleted) mid-run: the job was cancelled
            # then; only the widget's clean-up of the viewer runs, no widget is updated.
            if outcome.status == "cancelled":
                _call_quietly(self._callbacks[1])
            return
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


#: ``metadata`` key that marks a layer this plugin produced (a result); its value is the widget's kind
RESULT_KEY = "ctfoundation_result"


def is_result_layer(layer) -> bool:
    """True for a layer a widget produced (pickers do not default to those)."""
    return bool((layer.metadata or {}).get(RESULT_KEY))


def source_axes(source_layer) -> Dict[str, Any]:
    """``axis_labels``/``units`` kwargs copied from ``source_layer`` (``z, y, x`` in mm for our reader's layers).

    Layers that share a grid must share units too: napari stops using units
    for any layer when they differ.
    """
    axes: Dict[str, Any] = {}
    for key in ("axis_labels", "units"):
        value = getattr(source_layer, key, None)
        if value is not None and len(value) == 3:
            axes[key] = tuple(str(v) for v in value)
    return axes


def _axes_kwargs(source_layer, kwargs: Dict[str, Any]) -> None:
    for key, value in source_axes(source_layer).items():
        kwargs.setdefault(key, value)


def _replace_or_add(viewer, name: str, add: Callable[[], Any], select: bool):
    """Add layer ``name`` on top of the stack, replacing a same-named one (re-runs do not pile up).

    A result goes on top (new layers are appended there) so it is not hidden
    under an opaque CT; ``select`` makes it the active layer.
    """
    if name in viewer.layers:
        viewer.layers.remove(name)
    layer = add()
    top = len(viewer.layers) - 1
    if viewer.layers.index(layer) != top:
        viewer.layers.move(viewer.layers.index(layer), top)
    if select:
        viewer.layers.selection.active = layer
    return layer


def add_result_image(viewer, data: np.ndarray, source_layer, name: str, *,
                     metadata: Optional[Dict[str, Any]] = None, select: bool = True,
                     result_kind: str = "image", **kwargs: Any):
    """Add (or replace) image layer ``name`` on ``source_layer``'s grid, on top, selected.

    A result on a grid of its own (a resampled volume, a projection stack)
    passes ``scale``/``translate`` (and its ``geometry`` in ``metadata``);
    it still records its source layer. ``metadata[RESULT_KEY]`` is set to
    ``result_kind`` so layer pickers can tell results from the user's layers.
    A hidden side result (a difference map) passes ``select=False``.
    """
    meta = result_metadata(source_layer, **(metadata or {}))
    meta[RESULT_KEY] = result_kind
    kwargs.setdefault("scale", source_layer.scale)
    kwargs.setdefault("translate", source_layer.translate)
    _axes_kwargs(source_layer, kwargs)
    return _replace_or_add(viewer, name, lambda: viewer.add_image(data, name=name, metadata=meta, **kwargs),
                           select)


def add_result_labels(viewer, data: np.ndarray, source_layer, name: str, *,
                      metadata: Optional[Dict[str, Any]] = None, vocabulary: str = "organs",
                      select: bool = True, result_kind: str = "labels", **kwargs: Any):
    """Add (or replace) labels layer ``name`` on ``source_layer``'s grid, on top (see :func:`add_result_image`).

    ``vocabulary`` ("organs" or "lesions") gives the layer the stable
    colours and the name table of :mod:`engine.labels`.
    """
    from ..engine import labels as vocab

    meta = result_metadata(source_layer, **(metadata or {}))
    meta[RESULT_KEY] = result_kind
    kwargs.setdefault("colormap", labels_colormap(vocabulary))
    kwargs.setdefault("features", vocab.features_table(np.asarray(data), vocabulary))
    _axes_kwargs(source_layer, kwargs)
    return _replace_or_add(viewer, name, lambda: viewer.add_labels(
        data, name=name, scale=source_layer.scale, translate=source_layer.translate,
        metadata=meta, **kwargs), select)


def labels_colormap(vocabulary: str = "organs"):
    """napari ``DirectLabelColormap`` with the vocabulary's stable colours."""
    from napari.utils.colormaps import DirectLabelColormap

    from ..engine import labels as vocab

    colors: Dict[Any, Any] = {None: (0.5, 0.5, 0.5, 1.0)}  # ids outside the table
    colors.update({i: tuple(c) for i, c in vocab.color_table(vocabulary).items()})
    return DirectLabelColormap(color_dict=colors)


# ---------------------------------------------------------- layer chooser
class LayerCombo(QComboBox):
    """A combo box listing the viewer's layers of some types, kept up to date.

    Until someone chooses (a user in the list, or a widget by
    ``setCurrentText``) it shows the most recently added layer that the user
    loaded, never a result this plugin produced (see :func:`is_result_layer`);
    with only results there it shows none, and the user picks one. A choice
    is kept when layers are added and dropped only when its layer is removed.
    """

    def __init__(self, viewer, layer_types: tuple, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_types = layer_types
        # Long layer names must not widen the dock (laptop screens).
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(8)
        #: id(layer) -> when it was added; layers already there count in stack order
        self._added: Dict[int, int] = {id(ly): i for i, ly in enumerate(viewer.layers)}
        self._counter = len(self._added)
        self._chosen = False
        events = viewer.layers.events
        events.inserted.connect(self._inserted)
        for event in (events.removed, events.reordered):
            event.connect(self.refresh)
        self.currentTextChanged.connect(self._text_changed)
        self.refresh()

    def _inserted(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            self._added[id(layer)] = self._counter
            self._counter += 1
        self.refresh()

    def _text_changed(self, text: str) -> None:
        # refresh() blocks signals, so this is a choice made by a user or a widget.
        self._chosen = bool(text)

    def default_layer(self):
        """The layer shown until someone chooses: the newest user layer; None when only results are there."""
        user = [ly for ly in self.viewer.layers if isinstance(ly, self.layer_types) and not is_result_layer(ly)]
        return max(user, key=lambda ly: self._added.get(id(ly), -1)) if user else None

    def refresh(self, *_: Any) -> None:
        current = self.currentText()
        self.blockSignals(True)
        self.clear()
        names = [ly.name for ly in self.viewer.layers if isinstance(ly, self.layer_types)]
        self.addItems(names)
        if self._chosen and current in names:
            self.setCurrentText(current)
        else:
            self._chosen = False
            default = self.default_layer()
            # Only results left: nothing is chosen for the user (the list still offers them).
            self.setCurrentIndex(self.findText(default.name) if default is not None else -1)
        self.blockSignals(False)
        if self.currentText() != current:
            # Listeners (e.g. Load CT's geometry text) follow a default that moved.
            self.currentTextChanged.emit(self.currentText())
            self._chosen = False

    def layer(self):
        """The chosen layer, or None."""
        name = self.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None
