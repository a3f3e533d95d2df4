"""``ctfoundation compare reconstruct CT``: the MedVAE comparison table."""

from __future__ import annotations

from pathlib import Path

from ._common import add_command_group, check_output_path, parse_window, progress_bar


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "compare", "compare reconstruction backends (MedVAE table layout)")
    rec = sub.add_parser(
        "reconstruct", help="PSNR / MS-SSIM / SSIM of every available backend on one CT",
        description="Runs every registered backend (interpolation baselines nearest/bilinear/bicubic at "
                    "f=16 and 64, the embedded taef2, optional medvae_*) plus any --vae given, on the "
                    "same volume, and prints the MedVAE reconstruction-table layout.")
    rec.add_argument("input", help="CT volume or DICOM series folder; or a dataset: a manifest CSV from "
                                   "'ctfoundation data index' or a dataset folder (then one row per case, per "
                                   "region and the mean)")
    rec.add_argument("--backends", default=None,
                     help="comma-separated backend names (default: all registered)")
    rec.add_argument("--vae", action="append", default=[],
                     help="extra VAE (local diffusers folder or hub id) to add; repeatable")
    group = rec.add_mutually_exclusive_group()
    group.add_argument("--window", default=None, metavar="LO,HI", help="HU window (default -1000,1000)")
    group.add_argument("--preset", default=None, help="window preset (ct, abdomen, lung, ...)")
    rec.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    rec.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    rec.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")
    rec.add_argument("--column", default=None, help="column title (default: the input's name)")
    rec.add_argument("--csv", default=None, help="also write the rows to this CSV (dataset: per case, written as "
                                                 "each case finishes)")
    rec.add_argument("--max-slices", type=int, default=None,
                     help="dataset: at most this many axial slices per case, evenly spaced (recorded in the table)")
    rec.add_argument("--regions", default=None,
                     help="dataset: CSV case,region (default: the manifest's region column, else the case id's prefix)")
    rec.add_argument("--resume", action="store_true",
                     help="dataset: reuse what --csv already holds; only missing cases/backends are run")
    rec.add_argument("--matched-bicubic", action="store_true",
                     help="dataset: add bicubic_matched, bicubic keeping 0.5 values per voxel (taef2's latent size)")
    rec.add_argument("--table", default=None, help="dataset: also write the markdown table to this file")
    rec.set_defaults(func=cmd_reconstruct)


def cmd_reconstruct(args) -> int:
    from ..engine.compare import compare_reconstruction, default_backends, format_compare_table, rows_as_dicts
    from ..engine.errors import ConfigError
    from ..engine.io import read_volume
    from ..engine.window import HUWindow

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.preset:
        window = HUWindow.from_preset(args.preset)
    else:
        lo_hi = parse_window(args.window)
        window = HUWindow(*lo_hi) if lo_hi else HUWindow()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else default_backends()
    known = default_backends()
    unknown = [b for b in backends if b not in known]
    if unknown:  # hub ids and folders go through --vae, so a typo never starts a download
        raise ConfigError(f"--backends: unknown {', '.join(unknown)}; known: {', '.join(known)} "
                          "(a diffusers folder or hub id goes to --vae)")
    from .core import check_vae_spec

    for spec in args.vae:
        check_vae_spec(spec)
    backends += args.vae
    from ._compare_dataset import is_dataset_input, run_dataset

    if is_dataset_input(args.input):
        return run_dataset(args, backends, window)
    if args.csv:
        check_output_path(args.csv, kind="file", inputs=(args.input,))
    volume = read_volume(args.input)
    callback, close = progress_bar("backends")
    try:
        result = compare_reconstruction(volume, backends, window, device=args.device,
                                        precision=args.precision, batch_size=args.batch_size,
                                        progress=callback)
    finally:
        close()
    print(format_compare_table(result, args.column or Path(args.input).name))
    if args.csv:
        from ..engine.atomic import atomic_write_csv

        rows = rows_as_dicts(result)
        atomic_write_csv(args.csv, list(rows[0]) if rows else ["method"], rows)
        print(f"wrote {args.csv}")
    return 0 if result.rows else 2
