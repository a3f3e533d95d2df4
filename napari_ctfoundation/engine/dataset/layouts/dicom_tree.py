"""``dicom-tree``: any folder tree of DICOM series; one row per CT series.

Series are found per folder (GDCM series UIDs). A folder's row reads its
largest series (that is what every reader here does with a folder), so a
second CT series in the same folder is listed as skipped: give each series
its own folder. Non-CT series (MR, SEG, RTSTRUCT, ...) and single-slice
series are listed as skipped with their modality.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..base import LAYOUTS, IndexContext, Layout, LayoutScan, Skipped
from ..manifest import DatasetCase
from ._files import holds_dicom


def _modality(filename: str) -> str:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(filename)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return "unreadable"
    return reader.GetMetaData("0008|0060").strip().upper() if reader.HasMetaDataKey("0008|0060") else "unknown"


def dicom_folders(root: Path):
    """Every folder below ``root`` (itself included) that directly holds DICOM files."""
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if holds_dicom(Path(dirpath)):
            yield Path(dirpath)


@LAYOUTS.register("dicom-tree", "any folder tree of DICOM series: one row per CT series")
class DicomTree(Layout):
    name = "dicom-tree"
    priority = 90  # the fallback: case folders holding one series each are case-folders

    def detect(self, root: Path) -> bool:
        return next(dicom_folders(root), None) is not None

    def scan(self, root: Path, context: IndexContext) -> LayoutScan:
        import SimpleITK as sitk

        out = LayoutScan()
        reader = sitk.ImageSeriesReader()
        for folder in dicom_folders(root):
            rel = folder.relative_to(root)
            case = "_".join(rel.parts) if rel.parts else root.name
            series = [(sid, reader.GetGDCMSeriesFileNames(str(folder), sid))
                      for sid in reader.GetGDCMSeriesIDs(str(folder))]
            series.sort(key=lambda item: len(item[1]), reverse=True)
            if not series:
                out.skipped.append(Skipped(case, self.name, "DICOM files but no readable series", broken=True))
                continue
            for n, (sid, files) in enumerate(series):
                modality = _modality(files[0])
                label = case if n == 0 else f"{case} (series {sid})"
                if modality != "CT":
                    out.skipped.append(Skipped(label, self.name, f"modality {modality}, not CT"))
                elif n > 0:
                    out.skipped.append(Skipped(label, self.name, "another series is larger in the same folder; "
                                                                 "a folder reads its largest series"))
                elif len(files) < 2:
                    out.skipped.append(Skipped(label, self.name, "single-slice CT series"))
                else:
                    out.cases.append(DatasetCase(case=case, image=folder, layout=self.name))
        return out
