"""``ctfoundation info``, ``ctfoundation vae list`` and ``ctfoundation reconstruct``."""

from __future__ import annotations

import time
from pathlib import Path

from ..engine.atomic import atomic_write_json
from ..engine.errors import ConfigError
from ._common import add_command_group, parse_window, progress_bar


def register(subparsers) -> None:
    info = subparsers.add_parser("info", help="show a CT volume's geometry and HU range")
    info.add_argument("path", help="NIfTI/NRRD/MHA file, DICOM file or DICOM series folder")
    info.set_defaults(func=cmd_info)

    vae_sub = add_command_group(subparsers, "vae", "foundation-VAE backends")
    vae_list = vae_sub.add_parser("list", help="list the VAE backends")
    vae_list.set_defaults(func=cmd_vae_list)

    rec = subparsers.add_parser(
        "reconstruct", help="reconstruct a CT through a frozen foundation VAE, D(E(x))",
        description="Reconstruct a CT through a frozen foundation VAE, D(E(x)). The HU window "
                    "(--window or --preset, default -1000,1000) is the range the VAE sees: voxels "
                    "outside it come back at the window's edge (bone at 1839 HU becomes 1000 in the "
                    "default window), so the output is pure D(E(x)). --keep-outside-window fills those "
                    "voxels from the input instead and says so in the sidecar. Metrics are measured "
                    "inside the window.")
    rec.add_argument("input", help="NIfTI/NRRD/MHA file or DICOM series folder")
    rec.add_argument("output", help="output volume (.nii.gz, .nii, .nrrd, .mha); a .json sidecar is written beside it")
    add_vae_options(rec)
    rec.add_argument("--seed", type=int, default=None, help="sample latents with this seed (default: deterministic mean)")
    rec.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")
    rec.add_argument("--difference", default=None, metavar="PATH", help="also write the difference volume (HU)")
    rec.add_argument("--keep-outside-window", action="store_true",
                     help="fill voxels outside the HU window from the input instead of the window's edge "
                          "(default: pure D(E(x)), clipped to the window); recorded in the sidecar")
    rec.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    rec.set_defaults(func=cmd_reconstruct)


def add_vae_options(parser) -> None:
    """--vae/--subfolder/--window/--preset/--device/--precision, shared by VAE commands."""
    parser.add_argument("--vae", default="taef2", help="backend name, local diffusers folder or hub id (default taef2)")
    parser.add_argument("--subfolder", default=None, help="subfolder of the folder/hub repo holding the VAE (e.g. vae)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--window", default=None, metavar="LO,HI",
                       help="HU window the VAE sees (default -1000,1000); values outside it are clipped "
                            "to its edge, e.g. bone at 1839 HU comes back as 1000")
    group.add_argument("--preset", default=None,
                       help="window preset instead of --window: ct, soft_tissue, abdomen, lung, bone, brain, liver")
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda[:N] or mps")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="bf16 on GPU only")


def check_vae_spec(spec: str, subfolder=None) -> None:
    """A VAE hub id or folder that cannot load fails here, in one line, before any volume is read."""
    from ..engine.vae import VAE_BACKENDS

    if spec in VAE_BACKENDS:
        return
    from ..engine.vae.diffusers_loader import locate_pretrained

    locate_pretrained(spec, subfolder)


def window_from_args(args):
    from ..engine.window import HUWindow

    if args.preset:
        return HUWindow.from_preset(args.preset)
    lo_hi = parse_window(args.window)
    return HUWindow(*lo_hi) if lo_hi else HUWindow()


def sidecar_path(output: Path) -> Path:
    name = output.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".json")
    return output.with_name(name + ".json")


def check_output(output: Path, inputs, overwrite: bool) -> None:
    """Before any work: volume type, writable, not an input nor inside a DICOM input, --overwrite rule."""
    from ..engine.io import check_output_path

    check_output_path(output, kind="volume", inputs=tuple(inputs), overwrite=overwrite)


def cmd_info(args) -> int:
    import numpy as np

    from ..engine.io import read_volume

    vol = read_volume(args.path)
    a = vol.array
    rows = [
        ("path", args.path),
        ("format", vol.metadata.get("source_format")),
        ("shape (x, y, z)", " x ".join(str(s) for s in reversed(vol.shape))),
        ("spacing (mm)", " x ".join(f"{s:g}" for s in vol.spacing)),
        ("origin (LPS mm)", ", ".join(f"{o:.2f}" for o in vol.origin)),
        ("orientation", vol.orientation_code() + (" (oblique)" if vol.is_oblique() else "")),
        ("HU min / mean / max", f"{a.min():.0f} / {a.mean():.1f} / {a.max():.0f}"),
        ("HU 1st / 99th percentile", " / ".join(f"{v:.0f}" for v in np.percentile(a, [1, 99]))),
    ]
    for key, value in vol.metadata.get("dicom", {}).items():
        if str(value).strip():  # a tag present but blank says nothing
            rows.append((f"dicom {key}", value))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_vae_list(args) -> int:
    from ..engine.vae import VAE_BACKENDS
    from ..engine.vae.diffusers_loader import DIFFUSERS_CLASSES

    print("registered backends:")
    for name, text in VAE_BACKENDS.describe().items():
        print(f"  {name:<14} {text}")
    print("from a local folder or hub id (--vae PATH_OR_ID [--subfolder vae]), diffusers classes:")
    for name, text in DIFFUSERS_CLASSES.describe().items():
        print(f"  {name:<20} {text}")
    return 0


def cmd_reconstruct(args) -> int:
    from ..engine.file_output import reconstruct_to_file
    from ..engine.io import read_volume

    output = Path(args.output)
    check_output(output, [args.input], args.overwrite)
    if args.difference:
        check_output(Path(args.difference), [args.input, args.output], args.overwrite)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    window = window_from_args(args)
    check_vae_spec(args.vae, args.subfolder)
    volume = read_volume(args.input).to_display()  # the file-layout copy is not kept through the run
    callback, close = progress_bar("reconstruct")  # the unit names the phase: encode + decode, metrics, write
    try:
        # Into a scratch memmap beside the output, then written from it (NIfTI slice by slice):
        # the output never exists as a whole in RAM (issue 13 part 3).
        result = reconstruct_to_file(
            volume, output, args.vae, window, difference=args.difference,
            protect=(args.input,), device=args.device, precision=args.precision,
            subfolder=args.subfolder, batch_size=args.batch_size, seed=args.seed, progress=callback,
            keep_outside_window=args.keep_outside_window,
        )
    finally:
        close()
    sidecar = {
        "input": str(args.input),
        "output": str(output),
        "difference": args.difference,
        "command": "reconstruct",
        "settings": {**result.settings, "window_preset": args.preset or ("custom" if args.window else "default")},
        "metrics": result.metrics,
        "seconds": round(result.seconds, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(sidecar_path(output), sidecar, default=float)
    m = result.metrics
    print(f"wrote {output} ({result.seconds:.1f} s, {volume.shape[0]} slices, VAE {result.settings['vae']['backend']})")
    print(f"HU window [{window.lo:g}, {window.hi:g}]: PSNR {m['psnr_db']:.2f} dB  SSIM {m['ssim']:.4f}  "
          f"MS-SSIM {m['ms_ssim']:.4f}  MAE {m['mae_hu']:.1f} HU")
    return 0
