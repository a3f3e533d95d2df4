"""What a layout recogniser is, and what it hands back.

A layout is one file in ``layouts/`` with a class registered in
:data:`LAYOUTS`: ``detect(root)`` says whether ``root`` looks like it,
``scan(root, context)`` lists its cases. Cases a layout cannot use are
returned as :class:`Skipped` with the reason, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ..registry import Registry
from .manifest import DatasetCase

LAYOUTS: "Registry[Layout]" = Registry("dataset layout", "napari_ctfoundation.engine.dataset.layouts")


@dataclass
class Skipped:
    """A case (or series, or label name) that is not in the manifest, and why."""

    case: str
    layout: str
    reason: str
    broken: bool = False  # unreadable or inconsistent data (fatal with --strict)


@dataclass
class IndexContext:
    """Where a layout may write derived files (merged/remapped label maps)."""

    out_dir: Path  # the manifest's folder; never inside the dataset root
    write_masks: bool = True  # False: list images only (derived masks left empty)
    # lesion id that binary tumour/tumor masks are remapped to (None: used with their own ids)
    tumour_class: Optional[int] = None

    @property
    def masks_dir(self) -> Path:
        return self.out_dir / "masks"


@dataclass
class LayoutScan:
    cases: List[DatasetCase] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # e.g. unmapped label names


class Layout:
    """Base class of a recogniser; subclasses set ``name`` and ``priority``."""

    name = ""
    #: detection order: the most specific layouts (with a marker file) first
    priority = 100

    def detect(self, root: Path) -> bool:
        raise NotImplementedError

    def scan(self, root: Path, context: IndexContext) -> LayoutScan:
        raise NotImplementedError
