"""``ctfoundation latents export|decode|info``: latents as compact data."""

from __future__ import annotations

import sys
from pathlib import Path

from ..engine.errors import ConfigError
from ._common import add_command_group, check_output_path, progress_bar
from .core import add_vae_options, check_output, check_vae_spec, window_from_args


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "latents", "export CT volumes to VAE latents, decode them back")

    exp = sub.add_parser("export", help="encode a volume or a whole dataset to .safetensors latents",
                         description="Writes one .safetensors per case (latents + VAE, HU window and "
                                     "source geometry) mirroring IN, and OUT_DIR/storage.csv with the "
                                     "bytes on disk against the source. Resumable like 'batch reconstruct'.")
    exp.add_argument("input", help="a volume, a DICOM series folder, a folder of volumes, an nnU-Net dataset or a manifest")
    exp.add_argument("out_dir", help="output folder")
    add_vae_options(exp)
    exp.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")
    exp.add_argument("--storage", default="float32", choices=("float32", "float16"),
                     help="number type in the file (float16 halves it; default float32)")
    exp.add_argument("--overwrite", action="store_true", help="redo finished cases")
    exp.set_defaults(func=cmd_export)

    dec = sub.add_parser("decode", help="decode a latent file to a CT volume with its source geometry")
    dec.add_argument("latent", help=".safetensors written by 'latents export'")
    dec.add_argument("output", help="output volume (.nii.gz, .nii, .nrrd, .mha)")
    dec.add_argument("--vae", default=None, help="override the VAE recorded in the file")
    dec.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    dec.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    dec.set_defaults(func=cmd_decode)

    info = sub.add_parser("info", help="show what a latent file holds")
    info.add_argument("latent")
    info.set_defaults(func=cmd_info)


def _cases(source: str):
    from ..engine.batch import discover_cases
    from ..engine.batch.dataset import Case
    from ..engine.io import _is_dicom

    p = Path(source)
    if p.is_dir() and any(_is_dicom(f) for f in sorted(p.iterdir())[:50] if f.is_file()):
        return [Case(p.name, p, Path(p.name + ".nii.gz"))]  # one DICOM series
    return discover_cases(source)


def cmd_export(args) -> int:
    from ..engine.batch import run_batch
    from ..engine.batch.latents import STORAGE_COLUMNS, latent_rel, make_export_case

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_output_path(args.out_dir, kind="folder", inputs=(args.input,))
    check_vae_spec(args.vae, args.subfolder)
    cases = _cases(args.input)
    process = make_export_case(args.vae, window_from_args(args), device=args.device,
                               precision=args.precision, subfolder=args.subfolder,
                               batch_size=args.batch_size, storage_dtype=args.storage)
    case_cb, close_cases = progress_bar("cases")
    slice_cb, close_slices = progress_bar("slices")
    try:
        summary = run_batch(cases, args.out_dir, process, csv_name="storage.csv", columns=STORAGE_COLUMNS,
                            overwrite=args.overwrite, progress=case_cb, item_progress=slice_cb,
                            output_rel=latent_rel)
    finally:
        close_slices()
        close_cases()
    for name, why in summary.failed.items():
        print(f"failed: {name}: {why}", file=sys.stderr)
    if summary.csv_path is not None:
        print(format_storage(summary.csv_path))
        print(f"wrote {summary.csv_path}")
    return 1 if summary.failed else 0


def format_storage(csv_path) -> str:
    from ..engine.batch.runner import read_csv

    _, rows = read_csv(csv_path)
    lines = ["| case | source on disk | latent file | factor | raw int16 | factor vs raw | latent shape |",
             "|---|---|---|---|---|---|---|"]
    tot = {"s": 0, "l": 0, "r": 0}
    for r in rows:
        s, l, raw = int(r["source_bytes"]), int(r["latent_bytes"]), int(r["raw_int16_bytes"])
        tot["s"] += s
        tot["l"] += l
        tot["r"] += raw
        lines.append(f"| {r['case']} | {_mb(s)} | {_mb(l)} | {s / l:.2f}x | {_mb(raw)} | {raw / l:.2f}x | "
                     f"{r['latent_shape']} |")
    if rows:
        lines.append(f"| total | {_mb(tot['s'])} | {_mb(tot['l'])} | {tot['s'] / tot['l']:.2f}x | "
                     f"{_mb(tot['r'])} | {tot['r'] / tot['l']:.2f}x | |")
    return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def cmd_decode(args) -> int:
    from ..engine.io import write_volume
    from ..engine.latents import decode_latents, load_latents
    from ..engine.vae import load_vae

    output = Path(args.output)
    check_output(output, [args.latent], args.overwrite)
    lv = load_latents(args.latent)
    spec = args.vae or lv.vae.get("spec") or lv.vae.get("backend")
    vae = load_vae(spec, device=args.device, subfolder=lv.vae.get("subfolder"))
    if lv.latents.dtype != "float32":
        lv.latents = lv.latents.astype("float32")
    callback, close = progress_bar("decode")
    try:
        volume = decode_latents(lv, vae, progress=callback)
    finally:
        close()
    write_volume(volume.to_source_orientation(), output, protect=(args.latent,))
    z, y, x = volume.shape
    print(f"wrote {output} ({x} x {y} x {z} voxels, VAE {spec}, HU window "
          f"[{lv.hu_window.lo:g}, {lv.hu_window.hi:g}])")
    return 0


def cmd_info(args) -> int:
    from ..engine.latents import load_latents

    lv = load_latents(args.latent)
    g = lv.geometry
    rows = [("latent shape", " x ".join(map(str, lv.latents.shape)) + f" ({lv.latents.dtype})"),
            ("VAE", f"{lv.vae.get('spec', lv.vae.get('backend'))} ({lv.vae.get('kind')}, "
                    f"{lv.vae.get('latent_channels')} ch, {lv.vae.get('spatial_factor')}x)"),
            ("HU window", f"[{lv.hu_window.lo:g}, {lv.hu_window.hi:g}]"),
            ("source shape (z, y, x)", " x ".join(map(str, lv.shape_zyx))),
            ("spacing (x, y, z) mm", " x ".join(f"{s:g}" for s in g.get("spacing_xyz", []))),
            ("source orientation", g.get("source_orientation", "?")),
            ("file size", f"{Path(args.latent).stat().st_size / 1e6:.2f} MB")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
