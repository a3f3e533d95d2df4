"""``totalsegmentator``: the TotalSegmentator dataset, ``ROOT/sXXXX/ct.nii.gz`` + ``segmentations/<organ>.nii.gz``.

The binary per-organ masks are merged into one organ map with the
TotalSegmentator v2 ids, written to ``masks/<case>_organs.nii.gz`` beside
the manifest. **Overlap rule: the smaller structure wins** (a voxel claimed
by several masks gets the id of the mask with the fewest voxels), so thin
or small structures (vessels, glands) are not swallowed by the large organ
around them; the result does not depend on file order. Mask names that are
not v2 class names (e.g. v1's ``heart_atrium_left``) are reported per name,
not guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from ...errors import CTFoundationError
from ..base import LAYOUTS, IndexContext, Layout, LayoutScan, Skipped
from ..labelmap import normalise
from ..manifest import DatasetCase
from ._files import stem, subfolders, volume_files


def _is_case(folder: Path) -> bool:
    return (folder / "ct.nii.gz").is_file() and (folder / "segmentations").is_dir()


def merge_organ_masks(masks: List[Path], ids: Dict[str, int], out: Path, protect=()) -> Path:
    """Merge binary masks (file stem = organ name in ``ids``) into one id map; the smaller structure wins."""
    from ...io import read_labels, write_volume

    merged = owner_size = grid = None
    for path in masks:
        mask = read_labels(path)
        if grid is None:
            grid = mask
            merged = np.zeros(mask.shape, np.uint8)
            owner_size = np.full(mask.shape, np.iinfo(np.int64).max, np.int64)
        elif not mask.same_grid(grid):
            raise CTFoundationError(f"{path.name} is not on the grid of {masks[0].name}")
        inside = mask.array > 0
        size = int(inside.sum())
        claim = inside & (size < owner_size)
        merged[claim] = ids[normalise(stem(path))]
        owner_size[claim] = size
    return write_volume(grid.with_array(merged), out, protect=protect)


@LAYOUTS.register("totalsegmentator", "TotalSegmentator dataset: sXXXX/ct.nii.gz + segmentations/<organ>.nii.gz, "
                                      "merged into one v2 organ map (smaller structure wins)")
class TotalSegmentator(Layout):
    name = "totalsegmentator"
    priority = 30

    def detect(self, root: Path) -> bool:
        return any(_is_case(f) for f in subfolders(root))

    def scan(self, root: Path, context: IndexContext) -> LayoutScan:
        from .. import labelmap
        from ... import labels

        ids = {labelmap.normalise(n): i for i, n in labels.organ_names().items()}
        out = LayoutScan()
        unmapped: Dict[str, int] = {}
        for folder in subfolders(root):
            if not _is_case(folder):
                if folder.is_dir() and any(folder.iterdir()):
                    out.skipped.append(Skipped(folder.name, self.name, "no ct.nii.gz with segmentations/"))
                continue
            masks = volume_files(folder / "segmentations")
            known = [m for m in masks if normalise(stem(m)) in ids]
            for m in masks:
                if normalise(stem(m)) not in ids:
                    unmapped[stem(m)] = unmapped.get(stem(m), 0) + 1
            organs = None
            if known and context.write_masks:
                target = context.masks_dir / f"{folder.name}_organs.nii.gz"
                try:
                    organs = merge_organ_masks(known, ids, target, protect=tuple(masks))
                except (CTFoundationError, OSError) as exc:  # one unreadable mask breaks this case only
                    out.skipped.append(Skipped(folder.name, self.name, f"masks: {str(exc).splitlines()[0]}",
                                               broken=True))
                    continue
            out.cases.append(DatasetCase(case=folder.name, image=folder / "ct.nii.gz", layout=self.name,
                                         organ_mask=organs))
        if unmapped:
            names = ", ".join(f"{n} ({c} case(s))" for n, c in sorted(unmapped.items()))
            out.notes.append(f"mask names not in the v2 organ table, left out: {names}")
        return out
