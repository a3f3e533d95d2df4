"""Small Qt form builders the widgets share, so each widget file holds only its own layout.

Every widget is a top-aligned :class:`QFormLayout` (:func:`form_page`) of
combos, spin boxes and rows (:func:`hbox`), with a Run button, progress bar
and status label driven by a :class:`~._common.JobRunner` (:func:`job_runner`).
The builders only construct and configure widgets; signals are wired by the
widget that owns them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Union

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.window import PRESETS
from ._common import JobRunner

#: torch devices a widget offers ("auto": CUDA, then MPS, then CPU)
DEVICES = ("auto", "cpu", "cuda", "mps")

Field = Union[QWidget, QLayout]
#: a form row: a full-width widget/layout, or (label text or widget, field)
Row = Union[Field, Tuple[Union[str, QWidget], Field]]


class FormScrollArea(QScrollArea):
    """A vertical-only scroll area that keeps its form's minimum width.

    The minimum width is asked of the form each time (napari's style sheet,
    applied when docking, makes rows wider), so nothing is ever cut off at
    the right; only the height scrolls.
    """

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("ctfoundation_form_scroll")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._form_min_width = -1

    def setWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt's name
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        # The form's minimum width changes when napari's style sheet reaches it (on docking) or
        # rows change: tell the dock, which otherwise keeps the width it first asked for.
        # Children are styled lazily, so the width is known only at the first Show/Resize.
        if obj is self.widget() and event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show,
                                                      QEvent.Type.Resize, QEvent.Type.StyleChange):
            width = obj.minimumSizeHint().width()
            if width != self._form_min_width:
                self._form_min_width = width
                self.updateGeometry()
                outer = self.parentWidget()
                if outer is not None and outer.layout() is not None:
                    outer.layout().invalidate()  # its cached minimum came from the old hint
        return super().eventFilter(obj, event)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        page = self.widget()
        if page is None:
            return hint
        bar = max(self.verticalScrollBar().sizeHint().width(), self.verticalScrollBar().width()
                  if self.verticalScrollBar().isVisible() else 0)
        width = page.minimumSizeHint().width() + bar + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())


def form_page(widget: QWidget, rows: Sequence[Row]) -> QFormLayout:
    """Lay ``rows`` out as ``widget``'s form, kept at the top of the dock, in a scroll area.

    The scroll area (``widget.scroll_area``) lets napari give the dock less
    height than the form needs: without it, four docked widgets made the
    main window 1681 px tall on a 768 px laptop screen.
    """
    page = QWidget()
    form = QFormLayout()
    for row in rows:
        if isinstance(row, tuple):
            form.addRow(*row)
        else:
            form.addRow(row)
    inner = QVBoxLayout(page)
    inner.addLayout(form)
    inner.addStretch(1)  # extra dock height goes below the form, not between rows
    scroll = FormScrollArea()
    scroll.setWidget(page)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    widget.scroll_area = scroll
    return form


def hbox(*items: Union[QWidget, str, Tuple[QWidget, int]]) -> QHBoxLayout:
    """A row of widgets: a ``str`` becomes a label, ``(widget, n)`` gets stretch ``n``."""
    row = QHBoxLayout()
    for item in items:
        widget, stretch = item if isinstance(item, tuple) else (item, 0)
        row.addWidget(QLabel(widget) if isinstance(widget, str) else widget, stretch)
    return row


def text_label(text: str = "", *, selectable: bool = False) -> QLabel:
    """A word-wrapped label (status lines, metrics, geometry)."""
    label = QLabel(text)
    label.setWordWrap(True)
    if selectable:  # so users can copy numbers out of it
        label.setTextInteractionFlags(label.textInteractionFlags()
                                      | Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def shrinkable(box: QComboBox, characters: int = 8) -> QComboBox:
    """Let ``box`` be narrower than its longest item (long layer names would widen the dock)."""
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(characters)
    return box


def combo(items: Iterable[str] = (), *, current: Optional[str] = None,
          tooltip: Optional[str] = None, editable: bool = False) -> QComboBox:
    box = shrinkable(QComboBox())
    box.setEditable(editable)
    box.addItems(list(items))
    if current is not None:
        box.setCurrentText(current)
    if tooltip:
        box.setToolTip(tooltip)
    return box


def device_combo() -> QComboBox:
    return combo(DEVICES, tooltip="auto: CUDA if available, then MPS, else CPU")


def window_preset_combo(*extra: str) -> QComboBox:
    """HU window presets (REFERENCE section 4) shown with W/L; item data = preset name.

    ``extra`` items (e.g. "custom") follow, with their text as data.
    """
    box = shrinkable(QComboBox())
    for name, (width, level) in PRESETS.items():
        box.addItem(f"{name} (W {width:g} / L {level:g})", name)
    for name in extra:
        box.addItem(name, name)
    return box


def int_spin(value: int, lo: int, hi: int, *, tooltip: Optional[str] = None) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    if tooltip:
        spin.setToolTip(tooltip)
    return spin


def float_spin(value: float, lo: float, hi: float, *, step: Optional[float] = None,
               decimals: Optional[int] = None, suffix: str = "", special_text: str = "",
               buttons: bool = True, tooltip: Optional[str] = None) -> QDoubleSpinBox:
    """A double spin box; ``special_text`` is shown instead of the value ``lo``."""
    spin = QDoubleSpinBox()
    if decimals is not None:
        spin.setDecimals(decimals)  # before the range/value, which it rounds
    spin.setRange(lo, hi)
    if step is not None:
        spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setSpecialValueText(special_text)
    if not buttons:
        spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
    if tooltip:
        spin.setToolTip(tooltip)
    spin.setValue(value)
    return spin


def browse_button(parent: QWidget, title: str, on_chosen: Callable[[str], None], *,
                  text: str = "...", tooltip: Optional[str] = None) -> QPushButton:
    """A button that asks for a folder and passes the chosen path to ``on_chosen``."""
    button = QPushButton(text)
    if tooltip:
        button.setToolTip(tooltip)

    def choose() -> None:
        path = QFileDialog.getExistingDirectory(parent, title)
        if path:
            on_chosen(path)

    button.clicked.connect(choose)
    return button


def job_runner(run_text: str, on_run: Callable[[], Any], *,
               share: Optional[JobRunner] = None) -> JobRunner:
    """A Run button (``runner.button``), progress bar and status label with their runner.

    ``share``: use that runner's bar and label (two buttons, one progress line).
    """
    bar = share.bar if share is not None else QProgressBar()
    label = share.label if share is not None else text_label()
    return JobRunner(QPushButton(run_text), bar, label, on_run=on_run, run_text=run_text)
