"""Progress reporting and cancellation for long engine work.

Long engine functions take ``progress`` (called as ``progress(done, total,
unit)``, units a user understands: "slices", "views", "steps", "cases") and
``cancel`` (a no-argument callable returning True when the user asked to
stop). :class:`Tracker` bundles the two so loops stay short.
"""

from __future__ import annotations

from typing import Callable, Optional

from .errors import OperationCancelled

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]


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
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelCheck] = None,
    ) -> None:
        self.total = int(total)
        self.unit = unit
        self.done = 0
        self._progress = progress
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
