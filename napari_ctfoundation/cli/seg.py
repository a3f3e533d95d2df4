"""``ctfoundation seg train|evaluate|compare``: organ segmentation with reconstruction augmentation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Tuple

from ..engine.atomic import atomic_write_json, atomic_write_text
from ..engine.errors import ConfigError
from ._common import add_command_group, check_output_path, progress_bar


def _triple(text: str, option: str, kind=float) -> Tuple:
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected three numbers a,b,c") from None
    if len(values) != 3 or min(values) <= 0:
        raise ConfigError(f"{option} {text!r}: expected three positive numbers")
    return values


def _hu_window(text: str) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--hu {text!r}: expected two numbers LO,HI in HU") from None
    return lo, hi


def _names(text: Optional[str]) -> Optional[List[str]]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "seg", "3D organ segmentation with VAE-reconstruction augmentation")

    tr = sub.add_parser("train", help="train a MONAI SegResNet/UNet; each sample is the reconstruction with probability p",
                        description="DATASET is an nnU-Net raw folder or a manifest (image,label[,name], or one from 'ctfoundation data index'). "
                                    "--p 0 is the baseline; --p > 0 needs --recon-dir (OUT_DIR of 'batch reconstruct').")
    tr.add_argument("dataset")
    tr.add_argument("model_dir", help="output folder (config.json, model.safetensors; resumes if present)")
    tr.add_argument("--classes", default="liver,spleen,stomach", help="organs by name or id (default liver,spleen,stomach)")
    tr.add_argument("--cases", default=None, help="train on these case names only (comma-separated)")
    tr.add_argument("--recon-dir", default=None, help="reconstructions of the dataset (mirrored paths)")
    tr.add_argument("--p", type=float, default=0.0, help="probability a sample is the reconstruction (default 0)")
    tr.add_argument("--arch", default="segresnet", choices=("segresnet", "unet"))
    tr.add_argument("--filters", type=int, default=8, help="initial filters (default 8)")
    tr.add_argument("--spacing", default="3,3,3", help="training spacing x,y,z in mm (default 3,3,3)")
    tr.add_argument("--patch", default="16,64,64", help="patch z,y,x in voxels, multiples of 4 (default 16,64,64)")
    tr.add_argument("--hu", default="-175,250", help="input HU window LO,HI (default -175,250)")
    tr.add_argument("--epochs", type=int, default=20)
    tr.add_argument("--steps", type=int, default=10, help="steps per epoch (default 10)")
    tr.add_argument("--batch-size", type=int, default=2)
    tr.add_argument("--lr", type=float, default=3e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")
    tr.add_argument("--no-resume", action="store_true", help="start over even if MODEL_DIR holds a checkpoint")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="Dice, NSD at a tolerance in mm and HD95 per case and class")
    ev.add_argument("model_dir")
    ev.add_argument("dataset")
    ev.add_argument("out_dir", help="receives per_case.csv and summary.json")
    ev.add_argument("--cases", default=None, help="evaluate these case names only")
    ev.add_argument("--tolerance", type=float, default=3.0, help="NSD tolerance in mm (default 3, one 3 mm voxel)")
    ev.add_argument("--largest-component", action="store_true",
                    help="keep only the largest island of each class before measuring (off by default)")
    ev.add_argument("--save-predictions", action="store_true", help="also write NAME_pred.nii.gz label maps")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_evaluate)

    cp = sub.add_parser("compare", help="table: baseline vs reconstruction-augmented evaluation")
    cp.add_argument("baseline", help="evaluation folder or per_case.csv of the baseline (p=0)")
    cp.add_argument("augmented", help="evaluation folder or per_case.csv of the augmented model")
    cp.add_argument("--out", default=None, help="also write the table (markdown) and a JSON next to it")
    cp.set_defaults(func=cmd_compare)


def _device(name: str) -> str:
    from ..engine.vae import resolve_device

    return resolve_device(name)


def cmd_train(args) -> int:
    from ..engine.segmentation import SegConfig, load_dataset, parse_classes, train_segmenter

    classes = parse_classes(args.classes)
    lo, hi = _hu_window(args.hu)
    config = SegConfig(classes=classes, arch=args.arch, init_filters=args.filters,
                       spacing_xyz=_triple(args.spacing, "--spacing"),
                       patch_zyx=_triple(args.patch, "--patch", int), hu_window=(lo, hi), p_recon=args.p,
                       epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed)
    if args.p > 0 and not args.recon_dir:
        raise ConfigError(f"--p {args.p} needs --recon-dir (reconstructions of the dataset)")
    check_output_path(args.model_dir, kind="folder", inputs=(args.dataset,))
    cases = load_dataset(args.dataset, classes, spacing_xyz=config.spacing_xyz,
                         recon_dir=args.recon_dir if args.p > 0 else None, names=_names(args.cases))
    callback, close = progress_bar("train")
    try:
        result = train_segmenter(cases, config, args.model_dir, device=_device(args.device),
                                 resume=not args.no_resume, progress=callback,
                                 notify=lambda line: print(line, file=sys.stderr))
    finally:
        close()
    print(f"trained {config.arch} on {len(cases)} case(s), p={config.p_recon} "
          f"({result.recon_fraction:.0%} of samples were reconstructions), {config.epochs} epochs in "
          f"{result.seconds:.0f} s; last loss {result.losses[-1]:.3f}")
    print(f"wrote {args.model_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from ..engine.segmentation import evaluate_cases, load_dataset, load_model, write_evaluation
    from ..engine.segmentation.evaluate import summarise

    if args.tolerance <= 0:
        raise ConfigError(f"--tolerance {args.tolerance}: must be a positive distance in mm")
    check_output_path(args.out_dir, kind="folder", inputs=(args.dataset, args.model_dir))
    device = _device(args.device)
    model, config, raw = load_model(args.model_dir, device)
    cases = load_dataset(args.dataset, config.classes, spacing_xyz=config.spacing_xyz, names=_names(args.cases))
    out = Path(args.out_dir)
    callback, close = progress_bar("evaluate")
    try:
        rows = evaluate_cases(model, cases, config, tolerance_mm=args.tolerance, device=device,
                              predictions_dir=out if args.save_predictions else None,
                              largest_component=args.largest_component, progress=callback)
    finally:
        close()
    write_evaluation(rows, out, args.tolerance, extra={"model": str(args.model_dir),
                                                       "p_recon": config.p_recon,
                                                       "largest_component": args.largest_component,
                                                       "train_cases": raw.get("train_cases")})
    print(f"| class | n | Dice | NSD@{args.tolerance:g}mm | HD95 mm | missed |\n|---|---|---|---|---|---|")
    for name, s in summarise(rows).items():
        print(f"| {name} | {s['n_cases']} | {s['dice']:.3f} | {s['nsd']:.3f} | {s['hd95_mm']:.1f} | {s['missed']} |")
    print(f"wrote {out / 'per_case.csv'} and {out / 'summary.json'}")
    return 0


def cmd_compare(args) -> int:
    from ..engine.segmentation import compare_tables, format_table, read_evaluation

    if args.out:
        inputs = (args.baseline, args.augmented)
        check_output_path(args.out, kind="file", inputs=inputs)
        check_output_path(Path(args.out).with_suffix(".json"), kind="file", inputs=inputs)
    result = compare_tables(read_evaluation(args.baseline), read_evaluation(args.augmented))
    table = format_table(result)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, table + "\n")
        atomic_write_json(out.with_suffix(".json"), result)
        print(f"wrote {out}")
    return 0
