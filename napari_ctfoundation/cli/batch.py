"""``ctfoundation batch reconstruct|nnunet-export``: dataset-level tools.

``batch reconstruct`` runs data-parallel without code changes:
``accelerate launch --num_processes N -m napari_ctfoundation.cli batch reconstruct IN OUT``
(each process takes every N-th case; the main process writes the CSV).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..engine.errors import ConfigError
from ._common import add_command_group, check_output_path, progress_bar
from .core import add_vae_options, check_vae_spec, window_from_args


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "batch", "dataset tools: batch reconstruction, nnU-Net export")

    rec = sub.add_parser(
        "reconstruct",
        help="reconstruct every CT of a folder, nnU-Net dataset or manifest (resumable)",
        description="Mirrors IN (file names, folders, geometry) into OUT_DIR and writes "
                    "OUT_DIR/metrics.csv (case, psnr_db, ssim, mae_hu, seconds). Finished cases are "
                    "skipped when run again. Multi-GPU: prefix with 'accelerate launch --num_processes N -m "
                    "napari_ctfoundation.cli'.")
    rec.add_argument("input", help="folder of volumes, nnU-Net raw dataset (imagesTr/...) or manifest (.csv/.txt; "
                                          "'ctfoundation data index' writes one)")
    rec.add_argument("out_dir", help="output folder (created; mirrors the input layout)")
    add_vae_options(rec)
    rec.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")
    rec.add_argument("--seed", type=int, default=None, help="sample latents with this seed (default: deterministic)")
    rec.add_argument("--dtype", default="float32", choices=("float32", "int16"),
                     help="output voxel type; int16 rounds to whole HU (default float32)")
    rec.add_argument("--pattern", default=None, help="only files whose relative path matches this glob (plain folders)")
    rec.add_argument("--csv", default="metrics.csv", help="name of the CSV in OUT_DIR (default metrics.csv)")
    rec.add_argument("--overwrite", action="store_true", help="redo finished cases")
    rec.add_argument("--stop-on-error", action="store_true", help="stop at the first failing case")
    rec.set_defaults(func=cmd_reconstruct)

    exp = sub.add_parser("nnunet-export", help="write an nnU-Net v2 raw dataset (imagesTr, labelsTr, dataset.json)")
    exp.add_argument("input", help="nnU-Net raw dataset or manifest with 'image' and 'label' (or 'organ_mask') columns")
    exp.add_argument("out_root", help="folder that receives DatasetXXX_NAME (e.g. $nnUNet_raw)")
    exp.add_argument("--dataset-id", type=int, required=True, help="nnU-Net dataset id, 1-999")
    exp.add_argument("--name", required=True, help="dataset name (letters, digits, _ and -)")
    exp.add_argument("--mode", default="originals", choices=("originals", "reconstructions", "both"),
                     help="which images to include; 'both' adds each reconstruction as an augmentation copy")
    exp.add_argument("--recon-dir", default=None, help="OUT_DIR of 'batch reconstruct' on the same input")
    exp.add_argument("--classes", default=None,
                     help="organs to keep, by name or id (e.g. liver,spleen,stomach); renumbered 1..K")
    exp.add_argument("--folds", type=int, default=5, help="folds of splits_final.json in mode 'both' (default 5)")
    exp.set_defaults(func=cmd_nnunet_export)


def _is_main_process() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("RANK", "0") == "0"


def cmd_reconstruct(args) -> int:
    from ..engine.batch import discover_cases, run_batch
    from ..engine.batch.reconstruct import make_reconstruct_case
    from ..engine.batch.runner import STATE_DIR, atomic_write_text

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    window = window_from_args(args)
    out = Path(args.out_dir)
    if out.resolve() == Path(args.input).resolve():
        raise ConfigError(f"{out}: OUT_DIR must differ from the input")
    check_output_path(out, kind="folder", inputs=(args.input,))
    check_vae_spec(args.vae, args.subfolder)
    cases = discover_cases(args.input, pattern=args.pattern)
    settings = {"input": str(Path(args.input).resolve()), "vae": args.vae, "subfolder": args.subfolder,
                "hu_window": window.as_list(), "seed": args.seed, "precision": args.precision,
                "dtype": args.dtype}
    settings_path = out / STATE_DIR / "settings.json"
    if settings_path.is_file() and not args.overwrite:
        old = json.loads(settings_path.read_text(encoding="utf-8"))
        if old != settings:
            changed = ", ".join(k for k in settings if old.get(k) != settings[k])
            raise ConfigError(f"{out}: holds a run with other settings ({changed}); "
                              "pass --overwrite to redo it or choose another OUT_DIR")
    if _is_main_process():
        atomic_write_text(settings_path, json.dumps(settings, indent=2))
    process = make_reconstruct_case(args.vae, window, device=args.device, precision=args.precision,
                                    batch_size=args.batch_size, seed=args.seed, output_dtype=args.dtype,
                                    subfolder=args.subfolder)
    show = _is_main_process()
    case_cb, close_cases = progress_bar("cases") if show else (None, lambda: None)
    slice_cb, close_slices = progress_bar("slices") if show else (None, lambda: None)
    try:
        summary = run_batch(cases, out, process, csv_name=args.csv, overwrite=args.overwrite,
                            progress=case_cb, item_progress=slice_cb, stop_on_error=args.stop_on_error)
    finally:
        close_slices()
        close_cases()
    who = f"process {summary.process_index}/{summary.num_processes}: " if summary.num_processes > 1 else ""
    print(f"{who}{len(summary.done)} reconstructed, {len(summary.skipped)} already done, "
          f"{len(summary.failed)} failed in {summary.seconds:.1f} s")
    for name, why in summary.failed.items():
        print(f"failed: {name}: {why}", file=sys.stderr)
    if summary.csv_path is not None:
        print(f"wrote {summary.csv_path}")
    return 1 if summary.failed else 0


def cmd_nnunet_export(args) -> int:
    from ..engine.batch import discover_cases, export_nnunet
    from ..engine.segmentation.data import organ_table, parse_classes

    check_output_path(args.out_root, kind="folder", inputs=(args.input,))
    cases = discover_cases(args.input)
    classes = parse_classes(args.classes) if args.classes else None
    callback, close = progress_bar("export")
    try:
        folder = export_nnunet(cases, args.out_root, dataset_id=args.dataset_id, name=args.name,
                               mode=args.mode, recon_dir=args.recon_dir, classes=classes,
                               label_names=organ_table(), n_folds=args.folds, progress=callback)
    finally:
        close()
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    print(f"wrote {folder} ({meta['numTraining']} training cases, mode {args.mode}, "
          f"{len(meta['labels']) - 1} labels)")
    if args.mode == "both":
        print(f"  {folder / 'splits_final.json'} keeps each reconstruction in its original's fold; "
              "copy it to nnUNet_preprocessed/" + folder.name + "/")
    return 0
