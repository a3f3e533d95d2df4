"""Progress reporting and cancellation for long engine work.

Long engine functions take ``progress`` (called as ``progress(done, total,
unit)``, units a user understands: "slices", "views", "steps", "cases") and
``cancel`` (a no-argument callable returning True when the user asked to
stop). :class:`Tracker` bundles the two so loops stay short.

``progress="auto"`` is accepted wherever ``progress`` is: it draws a
``tqdm.auto`` bar (a widget in Jupyter, text in a terminal), see
:class:`TqdmProgress` and :func:`resolve_progress`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

from .errors import ConfigError, OperationCancelled

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]
#: what engine functions accept as ``progress=``: None, "auto" or a callback
ProgressArg = Union[None, str, ProgressCallback]


class TqdmProgress:
    """A ``progress(done, total, unit)`` callback that draws ``tqdm.auto`` bars.

    In Jupyter the bar is a widget (when ``ipywidgets`` is installed; plain
    text otherwise), in a terminal it is text on stderr. One bar per stretch
    of work: a bar closes when ``done`` reaches ``total``, and a new one
    starts when the unit or the total changes or the count goes back. A
    phase reported with ``total`` 0 (no count, e.g. "loading VAE taef2")
    shows its name and elapsed time until the next phase starts.
    ``desc`` labels the bars; other keyword arguments go to ``tqdm``.
    """

    def __init__(self, desc: str = "", **tqdm_kwargs: Any) -> None:
        self.desc = desc
        self.tqdm_kwargs = tqdm_kwargs
        self._bar = None
        self._unit = ""
        self._total = 0

    def __call__(self, done: int, total: int, unit: str) -> None:
        bar = self._bar
        if bar is None or unit != self._unit or total != self._total or done < bar.n:
            self.close()
            tqdm = _auto_tqdm()
            self._unit, self._total = unit, total
            if total > 0:
                bar = tqdm(total=total, unit=f" {unit}", desc=self.desc or None, dynamic_ncols=True,
                           **self.tqdm_kwargs)
            else:
                bar = tqdm(total=None, desc=f"{self.desc} {unit}".strip(), bar_format="{desc} [{elapsed}]",
                           **self.tqdm_kwargs)
            self._bar = bar
        if total > 0:
            bar.update(done - bar.n)
            if done >= total:
                self.close()

    def close(self) -> None:
        """Close the open bar, if any (safe to call twice)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _auto_tqdm():
    """``tqdm.auto.tqdm``; in Jupyter without ipywidgets it falls back to text bars, without a warning."""
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.auto import tqdm
    return tqdm


def resolve_progress(progress: ProgressArg) -> Optional[ProgressCallback]:
    """The callback behind an engine function's ``progress=`` argument.

    ``None`` -> no reporting; ``"auto"`` -> a new :class:`TqdmProgress`; a
    callable ``progress(done, total, unit)`` is returned as is. Anything else
    raises :class:`ConfigError`.
    """
    if progress is None or callable(progress):
        return progress
    if isinstance(progress, str) and progress == "auto":
        return TqdmProgress()
    raise ConfigError(f"progress={progress!r}: use None, 'auto' or a callable progress(done, total, unit)")


class Tracker:
    """Counts work done, reports it and raises :class:`OperationCancelled`.

    ``check()`` is called between units of work; cancellation therefore
    takes effect at the next unit boundary and never leaves half-written
    output behind (writers write to a temporary file first).
    """

    def __init__(
        self,
        total: int,
        unit: str,
        progress: ProgressArg = None,
        cancel: Optional[CancelCheck] = None,
    ) -> None:
        self.total = int(total)
        self.unit = unit
        self.done = 0
        self._progress = resolve_progress(progress)
        self._cancel = cancel
        self.report()

    def check(self) -> None:
        if self._cancel is not None and self._cancel():
            raise OperationCancelled(
                f"cancelled after {self.done} of {self.total} {self.unit}"
            )

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + int(n))
        self.report()
        self.check()

    def report(self) -> None:
        if self._progress is not None:
            self._progress(self.done, self.total, self.unit)
