"""``luna16``: LUNA16, ``ROOT/subset*/<seriesuid>.mhd`` (+ ``.raw``); one row per scan, no masks."""

from __future__ import annotations

import re
from pathlib import Path

from ..base import LAYOUTS, IndexContext, Layout, LayoutScan
from ..manifest import DatasetCase
from ._files import stem, subfolders

_SUBSET = re.compile(r"^subset\d+$")


def _subsets(root: Path):
    return [f for f in subfolders(root) if _SUBSET.match(f.name)]


@LAYOUTS.register("luna16", "LUNA16: subset*/<seriesuid>.mhd")
class Luna16(Layout):
    name = "luna16"
    priority = 40

    def detect(self, root: Path) -> bool:
        return any(any(f.suffix.lower() == ".mhd" for f in s.iterdir()) for s in _subsets(root))

    def scan(self, root: Path, context: IndexContext) -> LayoutScan:
        out = LayoutScan()
        for subset in _subsets(root):
            for mhd in sorted(subset.glob("*.mhd")):
                out.cases.append(DatasetCase(case=stem(mhd), image=mhd, layout=self.name))
        return out
