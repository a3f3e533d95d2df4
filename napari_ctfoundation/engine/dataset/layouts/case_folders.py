"""``case-folders``: ``ROOT/<case>/`` holding one CT (a volume file or a DICOM series).

Recognised names inside a case folder: ``ct.*`` (or the only volume that is
not a mask) or DICOM files (directly or in the only subfolder);
``organs.nii.gz`` (TotalSegmentator v2 ids); ``lesions.nii.gz`` or
``tumour.nii.gz`` / ``tumor.nii.gz`` (disease mask); ``report.txt``.
A tumour mask names no lesion class: with ``tumour_class`` (``--tumour-class``)
it is remapped to that lesion id under ``masks/`` beside the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from ..base import LAYOUTS, IndexContext, Layout, LayoutScan, Skipped
from ..manifest import DatasetCase
from ._files import first_existing, holds_dicom, stem, subfolders, volume_files

ORGAN_NAMES = ("organs.nii.gz", "organs.nii", "organs.nrrd", "organs.mha")
DISEASE_NAMES = tuple(f"{n}{s}" for n in ("lesions", "tumour", "tumor") for s in (".nii.gz", ".nii", ".nrrd", ".mha"))
MASK_STEMS = {"organs", "lesions", "tumour", "tumor", "label", "labels", "seg", "segmentation", "mask"}


def find_ct(folder: Path) -> Tuple[Optional[Path], str]:
    """The CT of a case folder and, when there is none or several, why."""
    volumes = [p for p in volume_files(folder) if stem(p).lower() not in MASK_STEMS]
    named = [p for p in volumes if stem(p).lower() in ("ct", "image", "img")]
    if len(named) == 1:
        return named[0], ""
    if len(volumes) == 1:
        return volumes[0], ""
    if len(volumes) > 1:
        return None, f"{len(volumes)} candidate CT volumes ({', '.join(p.name for p in volumes[:4])}); name one ct.nii.gz"
    if holds_dicom(folder):
        return folder, ""
    dicom_dirs = [d for d in subfolders(folder) if holds_dicom(d)]
    if len(dicom_dirs) == 1:
        return dicom_dirs[0], ""
    if len(dicom_dirs) > 1:
        return None, f"{len(dicom_dirs)} DICOM folders; one CT per case folder"
    return None, "no CT volume or DICOM series"


@LAYOUTS.register("case-folders", "ROOT/<case>/ with ct.nii.gz (or a DICOM series), organs/lesions/tumour masks, report.txt")
class CaseFolders(Layout):
    name = "case-folders"
    priority = 80

    def detect(self, root: Path) -> bool:
        from .dicom_tree import dicom_folders

        found = [ct for ct, _ in (find_ct(f) for f in subfolders(root)) if ct is not None]
        # DICOM series that no case folder reads (deeper, or several per case) make it a DICOM tree
        return bool(found) and set(dicom_folders(root)) <= {ct for ct in found if ct.is_dir()}

    def scan(self, root: Path, context: IndexContext) -> LayoutScan:
        out = LayoutScan()
        for folder in subfolders(root):
            ct, why = find_ct(folder)
            if ct is None:
                out.skipped.append(Skipped(folder.name, self.name, why))
                continue
            report = folder / "report.txt"
            out.cases.append(DatasetCase(
                case=folder.name, image=ct, layout=self.name,
                organ_mask=first_existing(folder, ORGAN_NAMES),
                disease_mask=first_existing(folder, DISEASE_NAMES),
                report=report.read_text(encoding="utf-8").strip() if report.is_file() else ""))
        tumour = [c for c in out.cases if c.disease_mask and c.disease_mask.name.startswith("tumo")]
        if not tumour:
            return out
        names = ", ".join(c.case for c in tumour)
        if context.tumour_class is None:
            # ids are taken as they are: a binary tumour mask is not a lesion class by itself
            out.notes.append(
                f"disease masks named tumour/tumor ({names}) are used with their ids as lesion ids; "
                "a binary tumour mask (1) reads as lesion 1 = atelectasis_consolidation, so remap it (e.g. lung "
                "tumours to nodules_masses = 10, --tumour-class nodules_masses) before generation training")
            return out
        _remap_tumours(out, tumour, context, self.name)
        return out


def _remap_tumours(out: LayoutScan, tumour: List[DatasetCase], context: IndexContext, layout: str) -> None:
    """Binary tumour masks -> ``masks/<case>_lesions.nii.gz`` holding ``context.tumour_class``."""
    from ... import labels
    from ...errors import CTFoundationError
    from ..labelmap import binary_to_lesion

    lesion = int(context.tumour_class)  # type: ignore[arg-type]
    name = labels.lesion_names().get(lesion, f"label {lesion}")
    multi: List[str] = []
    done: List[str] = []
    for case in tumour:
        if not context.write_masks:  # images only: no derived mask, the cell stays empty
            case.disease_mask = None
            continue
        try:
            case.disease_mask, values = binary_to_lesion(case.disease_mask, lesion, context.masks_dir, case.case)
        except (CTFoundationError, OSError) as exc:  # an unreadable mask breaks this case only
            out.cases.remove(case)
            out.skipped.append(Skipped(case.case, layout, f"tumour mask: {str(exc).splitlines()[0]}", broken=True))
            continue
        done.append(case.case)
        if len(values) > 1:
            multi.append(f"{case.case} {values}")
    if done:
        out.notes.append(f"tumour/tumor masks ({', '.join(done)}): every nonzero voxel -> lesion {lesion} = "
                         f"{name}, written to masks/<case>_lesions.nii.gz")
    if multi:
        out.notes.append("tumour masks with several nonzero values, all mapped to the one class: " + "; ".join(multi))
