"""``ctfoundation data index ROOT --out MANIFEST.csv``: one manifest for every dataset command."""

from __future__ import annotations

from ._common import add_command_group, progress_bar


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "data", "dataset indexing (public CT layouts -> manifest CSV)")
    idx = sub.add_parser(
        "index", help="recognise a dataset's layout and write a manifest (one row per case)",
        description="Layouts: case-folders, msd, nnunet, totalsegmentator, luna16, dicom-tree. The manifest "
                    "has columns case,image,organ_mask,disease_mask,report,layout (paths relative to its "
                    "folder, empty = none). Derived label maps (merged TotalSegmentator masks, MSD/nnU-Net "
                    "labels remapped to our ids) go to masks/ beside the manifest; nothing is written into ROOT.")
    idx.add_argument("roots", nargs="+", metavar="ROOT", help="dataset folder(s); several go into one manifest")
    idx.add_argument("--out", required=True, help="manifest CSV to write (outside ROOT)")
    idx.add_argument("--layout", default=None, help="force a layout instead of recognising it")
    idx.add_argument("--reports", default=None,
                     help="CSV with an id column and a report text column (CT-RATE style) to fill 'report'")
    idx.add_argument("--regions", default=None, help="CSV case,region to add a 'region' column")
    idx.add_argument("--strict", action="store_true", help="a broken case (unreadable, mask off the image grid) "
                                                           "is an error instead of a skipped row")
    idx.add_argument("--tumour-class", "--tumor-class", dest="tumour_class", default=None, metavar="NAME",
                     help="lesion class for binary tumour/tumor masks of case folders (e.g. nodules_masses): "
                          "every nonzero voxel becomes that lesion id, written to masks/<case>_lesions.nii.gz "
                          "beside the manifest (without it their ids are taken as lesion ids)")
    idx.set_defaults(func=cmd_index)


def cmd_index(args) -> int:
    from ..engine.dataset import format_summary, index_dataset

    callback, close = progress_bar("checking")
    try:
        result = index_dataset(args.roots, args.out, layout=args.layout, reports=args.reports,
                               regions=args.regions, strict=args.strict, tumour_class=args.tumour_class,
                               progress=callback)
    finally:
        close()
    print(format_summary(result))
    return 0 if result.cases else 2
