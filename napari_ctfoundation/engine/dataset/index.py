"""``index_dataset``: recognise a dataset's layout and list its cases.

Layouts are tried in priority order (those with a marker file first); the
first whose ``detect`` accepts the root scans it, unless one is named.
Every case is then checked (readable image, masks on its grid): broken
cases are skipped with the reason, or stop the run with ``strict``.
Derived label maps go under the manifest's folder, which may not lie
inside the dataset root: indexing never writes into the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import ConfigError
from ..progress import CancelCheck, ProgressCallback, Tracker
from .base import LAYOUTS, IndexContext, Layout, LayoutScan, Skipped
from .checks import check_case
from .labelmap import lesion_class_id
from .manifest import DatasetCase, write_manifest
from .reports import read_regions_table, read_reports_table
from .layouts._files import stem


@dataclass
class IndexResult:
    """What :func:`index_dataset` returns.

    ``cases``: the usable :class:`DatasetCase` rows (absolute paths, layout,
    report); ``skipped``: cases left out, each with its reason (``broken``
    for unreadable images or masks off the image grid); ``notes``: what the
    layouts reported; ``manifest``: the CSV written, if any.
    ``per_layout()`` counts cases per layout.
    """

    cases: List[DatasetCase] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    manifest: Optional[Path] = None

    @property
    def broken(self) -> List[Skipped]:
        return [s for s in self.skipped if s.broken]

    def per_layout(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for c in self.cases:
            counts[c.layout] = counts.get(c.layout, 0) + 1
        return counts


def layouts_by_priority() -> List[Layout]:
    return sorted((LAYOUTS.create(n) for n in LAYOUTS.names()), key=lambda l: (l.priority, l.name))


def detect_layout(root: Path) -> Layout:
    """The first layout (by priority) that recognises ``root``."""
    for layout in layouts_by_priority():
        if layout.detect(root):
            return layout
    raise ConfigError(f"{root}: no known dataset layout recognised (known: {', '.join(LAYOUTS.names())})")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def index_dataset(
    roots: Sequence,
    out: Optional[Path] = None,
    *,
    layout: Optional[str] = None,
    reports: Optional[Path] = None,
    regions: Optional[Path] = None,
    strict: bool = False,
    out_dir: Optional[Path] = None,
    write_masks: bool = True,
    tumour_class: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> IndexResult:
    """Index one or more dataset roots; write the manifest to ``out`` when given.

    ``out_dir`` (default: ``out``'s folder) is where derived masks go;
    ``write_masks=False`` writes none (their cells stay empty). With
    ``strict``, any broken case raises :class:`ConfigError` listing them all.
    ``tumour_class`` (a lesion class name of ``labels.lesion_names()``, e.g.
    ``nodules_masses``): binary ``tumour``/``tumor`` masks of case folders
    are remapped (every nonzero voxel -> that id) to
    ``masks/<case>_lesions.nii.gz``; an unknown name is a :class:`ConfigError`.
    """
    roots = [Path(r).expanduser() for r in roots]
    target_dir = Path(out_dir) if out_dir else (Path(out).parent if out else None)
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"{root}: no such dataset folder")
        for p in (Path(out) if out else None, target_dir):
            if p is not None and _inside(p, root):
                raise ConfigError(f"{p} lies inside the dataset {root}; indexing never writes into a dataset, "
                                  "choose an output outside it")
    lesion_id = lesion_class_id(tumour_class) if tumour_class else None  # checked before any work
    report_table = read_reports_table(reports) if reports else {}
    region_table = read_regions_table(regions) if regions else {}
    if write_masks and target_dir is None:
        raise ConfigError("index_dataset: give out or out_dir for the derived masks, or write_masks=False")
    context = IndexContext(target_dir.absolute() if target_dir else Path.cwd(), write_masks, lesion_id)
    result = IndexResult()
    scans: List[LayoutScan] = []
    for root in roots:
        chosen = LAYOUTS.create(layout) if layout else detect_layout(root)
        scan = chosen.scan(root, context)
        scans.append(scan)
        result.notes += [f"{root.name}: {n}" for n in scan.notes]
        result.skipped += scan.skipped
    found = [c for s in scans for c in s.cases]
    tracker = Tracker(len(found), "cases", progress, cancel)
    seen: Dict[str, Path] = {}
    for case in found:
        if case.case in seen:
            raise ConfigError(f"case id {case.case!r} appears twice ({seen[case.case]} and {case.image}); "
                              "index the datasets to separate manifests")
        seen[case.case] = case.image
        why = check_case(case)
        if why:
            result.skipped.append(Skipped(case.case, case.layout, why, broken=True))
        else:
            text = report_table.get(case.case) or report_table.get(stem(case.image))
            if text:
                case.report = text
            case.region = region_table.get(case.case, case.region)
            result.cases.append(case)
        tracker.advance()
    if strict and result.broken:
        raise ConfigError("broken case(s): " + "; ".join(f"{s.case}: {s.reason}" for s in result.broken))
    if out is not None:
        result.manifest = write_manifest(result.cases, out)
    return result


def format_summary(result: IndexResult) -> str:
    """Cases per layout, then each skipped case with its reason, then notes.

    ``result`` is an :class:`IndexResult`; returns the text the CLI prints
    (never raises for a result of :func:`index_dataset`).
    """
    lines = [f"{len(result.cases)} case(s)" + (f" -> {result.manifest}" if result.manifest else "")]
    for name, n in sorted(result.per_layout().items()):
        lines.append(f"  {name}: {n}")
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)}:")
        for s in result.skipped:
            lines.append(f"  {s.case} ({s.layout}{', broken' if s.broken else ''}): {s.reason}")
    for note in result.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
