"""``ctfoundation sparse``: simulate, reconstruct, evaluate, train, finetune (DeepSparse)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from ..engine.errors import ConfigError
from ._common import add_command_group, check_output_path, parse_floats


def _int_list(text: str, option: str) -> List[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated whole numbers") from None
    if not values:
        raise ConfigError(f"{option} {text!r}: empty list")
    return values


def _note_if_shipped(checkpoint) -> None:
    if not checkpoint:
        from ..engine.sparse.dice.checkpoint import SHIPPED_NOTE

        print(f"note: {SHIPPED_NOTE}", file=sys.stderr)


def _noise(args):
    from ..engine.sparse.simulate import NoiseModel

    return NoiseModel(enabled=not args.no_noise, photons=args.photons, electronic_sigma=args.electronic_sigma)


def _add_noise_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--photons", type=float, default=1e5, help="incident photons per pixel (Poisson noise), default 1e5")
    p.add_argument("--electronic-sigma", type=float, default=10.0, help="Gaussian electronic noise (counts), default 10")
    p.add_argument("--no-noise", action="store_true", help="exact DRRs, no noise")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "sparse", "sparse-view cone-beam CT (DeepSparse): simulate, FDK/SART/DiCE, train")

    p = sub.add_parser("simulate", help="DRRs of a CT at N uniform views (+ geometry files)")
    p.add_argument("ct", help="CT volume (NIfTI, NRRD, MHA or DICOM folder)")
    p.add_argument("out_dir", help="output projection folder")
    p.add_argument("--views", type=int, required=True, help="number of views (uniform over the candidates)")
    p.add_argument("--preset", default="deepsparse", help="geometry preset name or JSON file (default deepsparse)")
    p.add_argument("--save-volume", action="store_true", help="also write the normalised ground-truth grid volume")
    _add_noise_options(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("reconstruct", help="reconstruct a projection folder")
    p.add_argument("proj_dir", help="folder written by `sparse simulate`")
    p.add_argument("out", help="output volume (.nii.gz), on the grid, in the CT's world coordinates")
    p.add_argument("--method", default="fdk", help="fdk, sart or dice (default fdk)")
    p.add_argument("--checkpoint", help="DiCE checkpoint folder (default: the shipped one)")
    p.add_argument("--iterations", type=int, default=20, help="SART iterations (default 20)")
    p.add_argument("--device", default="auto", help="DiCE device: auto, cpu, cuda")
    p.add_argument("--normalised", action="store_true", help="write [0, 1] values instead of HU")
    p.add_argument("--grid", help="DiCE: output voxels per side over the same cube (default: the checkpoint's grid)")
    p.add_argument("--query", help="DiCE: fast (coarse to fine, default) or dense (every voxel)")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("evaluate", help="simulate from a CT, reconstruct, print PSNR/SSIM per method and view count")
    p.add_argument("ct")
    p.add_argument("--views", default="6,8,10", help="comma-separated view counts (default 6,8,10)")
    p.add_argument("--methods", default="fdk,sart,dice", help="comma-separated methods (default fdk,sart,dice)")
    p.add_argument("--preset", help="geometry (default: the DiCE checkpoint's when dice is evaluated, else deepsparse)")
    p.add_argument("--checkpoint", help="DiCE checkpoint folder (default: the shipped one)")
    p.add_argument("--iterations", type=int, default=20, help="SART iterations (default 20)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="CSV table (columns method, views, psnr, ssim, seconds)")
    _add_noise_options(p)
    p.set_defaults(func=cmd_evaluate)

    for name, helptext in (("train", "HyViP pretraining of DiCE (or any stage with --stage)"),
                           ("finetune", "finetune step 1 (dataset adaptation) or 2 (view adjustment)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("data", nargs="+", help="CT files, folders of CTs, DICOM folders, .txt manifests or "
                                                     "dataset manifests (.csv from 'ctfoundation data index')")
        p.add_argument("--out", required=True, help="checkpoint folder (config.json, model.safetensors, loss_log.csv, state/)")
        if name == "train":
            p.add_argument("--stage", default="pretrain", choices=("pretrain", "step1", "step2"))
            p.add_argument("--config", default="paper", help="paper, small, tiny or a DiCE config JSON (default paper)")
            p.add_argument("--preset", default="deepsparse", help="geometry preset or JSON (default deepsparse)")
            p.add_argument("--min-views", type=int, default=6, help="HyViP: fewest 2D views (default 6)")
            p.add_argument("--max-views", type=int, default=24, help="HyViP: most 2D views (default 24)")
            p.add_argument("--init", help="start from this checkpoint")
            p.add_argument("--epochs", type=int, default=1000)
            p.add_argument("--batch-size", type=int, default=16)
        else:
            p.add_argument("--step", type=int, choices=(1, 2), required=True)
            p.add_argument("--init", required=True, help="checkpoint to finetune")
            p.add_argument("--epochs", type=int, default=200)
            p.add_argument("--batch-size", type=int, default=2)
        p.add_argument("--views", default="6", help="target view counts for finetuning, comma-separated (default 6)")
        p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
        p.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"),
                       help="constant, or cosine decay to 0 at the run's last step (--max-steps, else "
                            "--epochs); a resumed run continues the same curve")
        p.add_argument("--points", type=int, default=10000, help="points sampled per volume (default 10000)")
        p.add_argument("--body-points", type=float, default=0.0,
                       help="fraction of the points drawn in or near the body (default 0: uniform)")
        p.add_argument("--body-margin", type=int, default=2,
                       help="'near the body' = within this many grid voxels of it (default 2)")
        p.add_argument("--feature-weight", type=float, default=1.0, help="step 2 feature loss weight")
        p.add_argument("--density-scale", default="1,1",
                       help="LO,HI: each training volume and its projections times a factor drawn from [LO, HI] "
                            "(default 1,1: off; e.g. 0.9,1.1)")
        p.add_argument("--augment", type=int, default=0, help="random augmented copies per CT (flip, rotation, shift, zoom, short z-slab)")
        p.add_argument("--cache", help="simulation cache folder (default OUT/../sparse_cache)")
        p.add_argument("--max-steps", type=int)
        p.add_argument("--max-minutes", type=float, help="stop (and save) after this much wall time")
        p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
        p.add_argument("--device", default="auto")
        _add_noise_options(p)
        p.set_defaults(func=cmd_train, train_command=name)


def cmd_simulate(args) -> int:
    from ..engine.io import read_volume, write_volume
    from ..engine.sparse.geometry import get_preset
    from ..engine.sparse.pipeline import simulate_ct
    from ._common import progress_bar

    check_output_path(args.out_dir, kind="folder", inputs=(args.ct,))
    geometry = get_preset(args.preset)
    geometry.select_views(args.views)
    volume = read_volume(args.ct)
    cb, close = progress_bar("simulate")
    try:
        grid, ps = simulate_ct(volume, geometry, args.views, noise=_noise(args), seed=args.seed,
                               source=str(args.ct), progress=cb)
    finally:
        close()
    folder = ps.save(args.out_dir)
    if args.save_volume:
        write_volume(grid, Path(folder) / "reference_normalised.nii.gz", protect=(args.ct,))
    print(f"{ps.n_views} views ({', '.join(f'{a:.1f}' for a in ps.angles)} deg) -> {folder}")
    return 0


def _method_options(args) -> dict:
    return {"sart": {"iterations": args.iterations},
            "dice": {"checkpoint": args.checkpoint, "device": args.device, **_dice_query_options(args)}}


def _dice_query_options(args) -> dict:
    """``--grid`` / ``--query`` (reconstruct only) as DiCE options; one-line errors for bad values."""
    grid, query = getattr(args, "grid", None), getattr(args, "query", None)
    if (grid is not None or query is not None) and args.method != "dice":
        raise ConfigError(f"--grid and --query apply to --method dice, not {args.method!r}")
    options = {}
    if grid is not None:
        try:
            options["grid"] = int(grid)
        except ValueError:
            raise ConfigError(f"--grid {grid!r}: expected a whole number of voxels per side") from None
    if query is not None:
        options["query"] = query
    if options:
        from ..engine.sparse.dice.predict import check_query_options

        check_query_options(options.get("grid"), options.get("query", "fast"))
    return options


def cmd_reconstruct(args) -> int:
    from ..engine.io import write_volume
    from ..engine.sparse.methods import METHODS
    from ..engine.sparse.preprocess import unit_to_hu
    from ..engine.sparse.simulate import ProjectionSet
    from ._common import progress_bar

    METHODS.get(args.method)
    _dice_query_options(args)  # a bad --grid / --query fails before any work
    check_output_path(args.out, kind="volume", inputs=(Path(args.proj_dir) / "projections.mha",))
    ps = ProjectionSet.load(args.proj_dir)
    cb, close = progress_bar(args.method)
    try:
        out = METHODS.create(args.method, ps, progress=cb, **_method_options(args).get(args.method, {}))
    finally:
        close()
    if not args.normalised:
        out = out.with_array(unit_to_hu(out.array, ps.geometry.window), unit="HU")
    path = write_volume(out, args.out, protect=(Path(args.proj_dir) / "projections.mha",))
    print(f"{args.method}: {ps.n_views} views, {out.array.shape[0]}^3 grid -> {path}")
    if args.method == "dice":
        _note_if_shipped(args.checkpoint)
    return 0


def cmd_evaluate(args) -> int:
    from ..engine.io import read_volume
    from ..engine.sparse.geometry import get_preset
    from ..engine.sparse.pipeline import default_geometry_for, evaluate_ct
    from ._common import progress_bar

    views = _int_list(args.views, "--views")
    if args.out:
        check_output_path(args.out, kind="file", inputs=(args.ct,))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    geometry = get_preset(args.preset) if args.preset else default_geometry_for(methods, args.checkpoint)
    for v in views:
        geometry.select_views(v)
    volume = read_volume(args.ct)
    cb, close = progress_bar("evaluate")
    try:
        rows = evaluate_ct(volume, geometry, views, methods, noise=_noise(args), seed=args.seed,
                           method_options=_method_options(args), source=str(args.ct), progress=cb)
    finally:
        close()
    print(f"geometry {geometry.name}: grid {geometry.grid_size}^3 at {geometry.grid_spacing} mm, "
          f"detector {geometry.detector_pixels[0]}x{geometry.detector_pixels[1]}")
    print(f"{'method':<8}{'views':>6}{'PSNR dB':>10}{'SSIM %':>9}{'seconds':>9}")
    for r in rows:
        print(f"{r['method']:<8}{r['views']:>6}{r['psnr']:>10.2f}{100 * r['ssim']:>9.2f}{r['seconds']:>9.2f}")
    if "dice" in methods:
        _note_if_shipped(args.checkpoint)
    if args.out:
        from ..engine.atomic import atomic_write_csv

        out = Path(args.out)
        atomic_write_csv(out, ["method", "views", "psnr", "ssim", "seconds"],
                         [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows])
        print(f"table -> {out}", file=sys.stderr)
    return 0


def _dice_config(spec: str, geometry):
    import json

    from ..engine.sparse.dice.config import DiCEConfig

    if spec in ("paper", "small", "tiny"):
        return getattr(DiCEConfig, spec)(geometry)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--config {spec!r}: use paper, small, tiny or a DiCE config JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"--config {path}: invalid JSON ({exc})") from None
    data.setdefault("geometry", geometry.to_dict())
    return DiCEConfig.from_dict(data.get("config", data))


def cmd_train(args) -> int:
    from ..engine.sparse.dice.checkpoint import read_checkpoint_meta
    from ..engine.sparse.dice.config import DiCEConfig
    from ..engine.sparse.geometry import get_preset
    from ..engine.sparse.train import TrainSettings, build_cache, train_dice
    from ._common import progress_bar

    out = Path(args.out)
    check_output_path(out, kind="folder", inputs=tuple(args.data))
    if args.train_command == "finetune":
        stage = f"step{args.step}"
        config = None
        geometry = DiCEConfig.from_dict(read_checkpoint_meta(args.init)["config"]).geo
        min_views, max_views = 6, 24
    else:
        stage = args.stage
        init_meta = read_checkpoint_meta(args.init) if args.init else None
        geometry = DiCEConfig.from_dict(init_meta["config"]).geo if init_meta else get_preset(args.preset)
        config = None if init_meta else _dice_config(args.config, geometry)
        min_views, max_views = args.min_views, args.max_views
    settings = TrainSettings(stage=stage, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             points=args.points, body_points=args.body_points, body_margin=args.body_margin,
                             views=tuple(_int_list(args.views, "--views")),
                             density_scale=tuple(parse_floats(args.density_scale, "--density-scale", 2)),
                             min_views=min_views, max_views=max_views, feature_weight=args.feature_weight,
                             max_steps=args.max_steps, max_minutes=args.max_minutes, seed=args.seed,
                             lr_schedule=args.lr_schedule, device=args.device)
    for v in settings.views:
        geometry.select_views(v)
    cache = Path(args.cache) if args.cache else out.parent / "sparse_cache"
    check_output_path(cache, kind="folder", inputs=tuple(args.data))
    cb, close = progress_bar("simulate (cached)")
    try:
        files = build_cache(args.data, cache, geometry, augment=args.augment, noise=_noise(args),
                            seed=args.seed, progress=cb)
    finally:
        close()
    cb, close = progress_bar(stage)
    try:
        train_dice(files, out, settings, config=config, init_checkpoint=args.init, resume=args.resume, progress=cb,
                   notify=lambda line: print(line, file=sys.stderr))
    finally:
        close()
    print(f"{stage}: {len(files)} cached volumes -> {out}")
    return 0
