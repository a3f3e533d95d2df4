"""``ctfoundation gen cache|train|sample|evaluate``: conditional CT generation (issue 4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

from ..engine.atomic import atomic_write_json
from ..engine.errors import ConfigError
from ._common import check_output_path, parse_floats, parse_window, progress_bar


def _ints(text: Optional[str], option: str, n: Optional[int] = None) -> Optional[List[int]]:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated whole numbers") from None
    if n is not None and len(values) != n:
        raise ConfigError(f"{option} {text!r}: expected {n} numbers")
    return values


def register(subparsers) -> None:
    gen = subparsers.add_parser("gen", help="conditional CT generation in the frozen VAE latent space")
    sub = gen.add_subparsers(dest="gen_command", metavar="ACTION")
    sub.required = True

    c = sub.add_parser("cache", help="validate a manifest and encode every CT once into a latent cache")
    c.add_argument("manifest", help="CSV or JSONL with image, organ_mask, disease_mask (masks optional: an "
                                        "empty organ_mask trains the null organ condition), report "
                                        "(e.g. from 'ctfoundation data index ... --reports')")
    c.add_argument("cache_dir", help="output folder of the latent cache")
    c.add_argument("--vae", default="taef2", help="VAE backend name, diffusers folder or hub id (default taef2)")
    c.add_argument("--window", default=None, metavar="LO,HI", help="HU window (default -1000,1000)")
    c.add_argument("--device", default="auto")
    c.add_argument("--batch-size", type=int, default=8, help="slices per VAE forward pass")
    c.add_argument("--overwrite", action="store_true", help="re-encode every case")
    c.add_argument("--augment", type=int, default=0, metavar="K",
                   help="add K augmented copies of every case (left/right flip with label swap, shift, zoom, rotation)")
    c.add_argument("--seed", type=int, default=0, help="seed of the augmentation parameters (default 0)")
    c.add_argument("--spacing", default=None, metavar="X,Y,Z",
                   help="resample every CT and its masks to X,Y,Z mm first (0 keeps that axis native; "
                        "CT anti-aliased, masks nearest); default: native spacing")
    c.set_defaults(func=cmd_cache)

    t = sub.add_parser("train", help="train (or resume) the conditional denoiser on a latent cache")
    t.add_argument("cache_dir")
    t.add_argument("out_dir", help="training folder: model/, checkpoints/, loss.jsonl, previews/")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=2)
    t.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimiser step")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup-steps", type=int, default=50)
    t.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"),
                   help="after warm-up: constant, or cosine decay to 0 at --steps")
    t.add_argument("--crop", default="8,16,16", metavar="T,H,W", help="training window in latent cells (default 8,16,16)")
    t.add_argument("--prediction", default="eps", choices=("eps", "v"), help="eps or v prediction")
    t.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"))
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--text-encoder", default="minilm", help="minilm (embedded) or hf:<hub id or folder>")
    t.add_argument("--max-tokens", type=int, default=64)
    t.add_argument("--backbone", default="monai3d", help="denoiser backbone (registry name)")
    t.add_argument("--channels", default=None, metavar="C1,C2,..", help="UNet channels per level (default 32,64,64)")
    t.add_argument("--attention", default=None, metavar="0,0,1", help="attention per level (default 0,0,1)")
    t.add_argument("--res-blocks", type=int, default=None, help="residual blocks per level (default 1)")
    t.add_argument("--norm-groups", type=int, default=None, help="GroupNorm groups (default 16)")
    t.add_argument("--head-channels", type=int, default=None, help="channels per attention head (default 16)")
    t.add_argument("--mask-channels", type=int, default=None, help="channels of the learned mask embedding (default 16)")
    t.add_argument("--context-dim", type=int, default=None, help="cross-attention width (default 128)")
    t.add_argument("--no-findings", action="store_true", help="do not condition on the 18 CT-RATE finding flags")
    t.add_argument("--p-drop-mask", type=float, default=0.1, help="mask-condition dropout (CFG)")
    t.add_argument("--p-drop-text", type=float, default=0.1, help="text-condition dropout (CFG)")
    t.add_argument("--balance-classes", type=float, default=0.0, metavar="P",
                   help="probability that a window is centred on a cell of a class drawn uniformly (default 0)")
    t.add_argument("--class-weight-power", type=float, default=0.0, metavar="G",
                   help="loss weight of class k = clip((mean class mass / mass_k)^G, 1, --class-weight-max); 0 = off")
    t.add_argument("--class-weight-max", type=float, default=5.0)
    t.add_argument("--init-from", default=None, metavar="MODEL",
                   help="warm start from a model folder or 'demo' (same denoiser settings) when no checkpoint exists")
    t.add_argument("--ema-decay", type=float, default=0.999)
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--preview-every", type=int, default=250, help="0 = no previews")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--no-resume", action="store_true", help="ignore checkpoints in OUT_DIR")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate a CT from an organ mask (+ disease mask, report)")
    s.add_argument("model", help="'demo' (shipped checkpoint) or a model folder (OUT_DIR/model)")
    s.add_argument("output", help="output volume (.nii.gz, .nrrd, .mha); a .json sidecar is written beside it")
    s.add_argument("--organs", required=True, metavar="MASK", help="organ label map (TotalSegmentator v2 ids)")
    s.add_argument("--disease", default=None, metavar="MASK", help="lesion label map (ids 1..11)")
    group = s.add_mutually_exclusive_group()
    group.add_argument("--report", default="", help="report text")
    group.add_argument("--report-file", default=None, help="text file holding the report")
    s.add_argument("--findings", default=None, metavar="JSON", help='override parsed findings, e.g. \'{"emphysema": 1}\'')
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--sampler", default="ddim", help="ddim, dpmpp or ddpm")
    s.add_argument("--guidance", type=float, default=1.5, help="classifier-free guidance scale (masks, and text unless --guidance-text)")
    s.add_argument("--guidance-text", type=float, default=None, help="separate guidance scale for the report")
    s.add_argument("--window", type=int, default=None, help="latent frames per denoising window (default: training depth)")
    s.add_argument("--overlap", type=int, default=None, help="overlap of depth windows (default: from the model)")
    s.add_argument("--device", default="auto")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="HU statistics, mask adherence, Frechet distance, determinism, guidance effect")
    e.add_argument("model", help="'demo' or a model folder")
    e.add_argument("manifest", help="manifest of real CTs with reports and organ masks (rows without one "
                                    "skip the organ-HU figures and the mask edit)")
    e.add_argument("--guidance", default="1,1.5,2", help="comma-separated guidance scales (default 1,1.5,2)")
    e.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--sampler", default="ddim")
    e.add_argument("--max-cases", type=int, default=None)
    e.add_argument("--edit-shifts", default="4,-8,12", metavar="S1,S2,..",
                   help="sideways shifts (voxels) of the organ map for the mask-edit test (default 4,-8,12)")
    e.add_argument("--spacing", default=None, metavar="X,Y,Z",
                   help="compare on CTs and organ masks resampled to X,Y,Z mm (0 keeps an axis native), e.g. the "
                        "spacing the model's cache was built with; default: native")
    e.add_argument("--slices", default=None, metavar="A:B",
                   help="compare on slices A..B-1 only (display orientation, after --spacing, A at the feet "
                        "end): a slab keeps a large CT's evaluation affordable on a CPU")
    e.add_argument("--device", default="auto")
    e.add_argument("--out", default=None, help="write the full JSON report here")
    e.set_defaults(func=cmd_evaluate)


def cmd_cache(args) -> int:
    from ..engine.generation.cache import build_cache
    from ..engine.window import HUWindow
    from .core import check_vae_spec

    lo_hi = parse_window(args.window)
    check_output_path(args.cache_dir, kind="folder", inputs=(args.manifest,))
    check_vae_spec(args.vae)
    bar, close = progress_bar("encoding")
    try:
        out = build_cache(args.manifest, args.cache_dir, args.vae, HUWindow(*lo_hi) if lo_hi else HUWindow(),
                          device=args.device, batch_size=args.batch_size, overwrite=args.overwrite,
                          augment=args.augment, seed=args.seed,
                          spacing_xyz=parse_floats(args.spacing, "--spacing", 3) if args.spacing else None,
                          progress=bar)
    finally:
        close()
    index = json.loads((out / "cache.json").read_text(encoding="utf-8"))
    print(f"{len(index['cases'])} case(s) cached in {out} (VAE {index['vae']['spec']})")
    return 0


def cmd_train(args) -> int:
    from ..engine.generation.train import TrainConfig, train

    bk = {}
    if args.channels:
        bk["channels"] = _ints(args.channels, "--channels")
    if args.attention:
        bk["attention_levels"] = [bool(v) for v in _ints(args.attention, "--attention")]
    if args.res_blocks is not None:
        bk["num_res_blocks"] = args.res_blocks
    if args.norm_groups is not None:
        bk["norm_num_groups"] = args.norm_groups
    if args.head_channels is not None:
        bk["num_head_channels"] = args.head_channels
    denoiser = {"backbone": args.backbone, "backbone_kwargs": bk}
    if args.mask_channels is not None:
        denoiser["mask_channels"] = args.mask_channels
    if args.context_dim is not None:
        denoiser["context_dim"] = args.context_dim
    if args.no_findings:
        denoiser["use_findings"] = False
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
        warmup_steps=args.warmup_steps, lr_schedule=args.lr_schedule, crop=tuple(_ints(args.crop, "--crop", 3)),
        prediction_type=args.prediction, mixed_precision=args.mixed_precision, device=args.device,
        seed=args.seed, text_encoder=args.text_encoder, max_tokens=args.max_tokens, denoiser=denoiser,
        p_drop_mask=args.p_drop_mask, p_drop_text=args.p_drop_text, ema_decay=args.ema_decay,
        log_every=args.log_every, checkpoint_every=args.checkpoint_every, preview_every=args.preview_every,
        threads=args.threads, balance_classes=args.balance_classes, class_weight_power=args.class_weight_power,
        class_weight_max=args.class_weight_max, init_from=args.init_from)
    check_output_path(args.out_dir, kind="folder", inputs=(args.cache_dir,))
    bar, close = progress_bar("training")
    try:
        result = train(args.cache_dir, args.out_dir, cfg, resume=not args.no_resume, progress=bar,
                       notify=lambda line: print(line, file=sys.stderr))
    finally:
        close()
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
    print(f"trained to step {result.steps} (last loss {result.last_loss:.4f}, {result.seconds:.0f} s{resumed}); "
          f"model in {result.model_dir}")
    return 0


def cmd_sample(args) -> int:
    from ..engine.generation.pipeline import GenerationPipeline
    from ..engine.io import read_labels, write_volume
    from .core import check_output, sidecar_path

    out = Path(args.output)
    inputs = [args.organs] + ([args.disease] if args.disease else [])
    check_output(out, inputs, args.overwrite)
    report = args.report
    if args.report_file:
        p = Path(args.report_file)
        if not p.is_file():
            raise ConfigError(f"--report-file {p}: no such file")
        try:
            report = p.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as exc:
            raise ConfigError(f"--report-file {p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    findings = None
    if args.findings:
        try:
            findings = json.loads(args.findings)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--findings: not JSON ({exc.msg})") from None
        if not isinstance(findings, dict):
            raise ConfigError("--findings: expected a JSON object {finding: 1/0/-1}")
    organs = read_labels(args.organs)
    disease = read_labels(args.disease) if args.disease else None
    pipe = GenerationPipeline.from_pretrained(args.model, device=args.device)
    bar, close = progress_bar("sampling")
    try:
        result = pipe.generate(organs, report, disease, findings=findings, seed=args.seed, steps=args.steps,
                               sampler=args.sampler, guidance=args.guidance, guidance_text=args.guidance_text,
                               window=args.window, overlap=args.overlap, progress=bar)
    finally:
        close()
    volume = result.volume.to_source_orientation()
    write_volume(volume, out, protect=tuple(inputs))
    sidecar = dict(result.settings, organ_mask=str(args.organs), disease_mask=args.disease,
                   output=str(out), geometry=volume.geometry_dict(), seconds=round(result.seconds, 2),
                   timings={k: round(v, 2) for k, v in result.timings.items()})
    sidecar["findings"] = findings_by_name(result.settings["findings"])
    atomic_write_json(sidecar_path(out), sidecar, indent=1)
    print(f"wrote {out} ({volume.shape[2]}x{volume.shape[1]}x{volume.shape[0]}, seed {args.seed}, "
          f"{args.steps} {args.sampler} steps, {result.seconds:.1f} s) and {sidecar_path(out).name}")
    at = result.settings.get("generated_at_spacing")
    if at:  # the model's training spacing; the written CT is on the organ mask's grid all the same
        print(f"  generated at the model's training spacing {'x'.join(f'{v:g}' for v in at)} mm; "
              "written on the organ mask's grid")
    _note_if_demo(args.model)
    return 0


def _slice_range(text: str, option: str) -> slice:
    """``"A:B"`` -> slice(A, B) with 0 <= A < B; the error names the option."""
    from ..engine.errors import ConfigError

    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected A:B, two slice numbers") from None
    if not 0 <= a < b:
        raise ConfigError(f"{option} {text!r}: need 0 <= A < B")
    return slice(a, b)


def cmd_evaluate(args) -> int:
    from ..engine.generation.evaluate import evaluate_pipeline
    from ..engine.generation.manifest import read_manifest
    from ..engine.generation.pipeline import GenerationPipeline
    from ..engine.io import read_labels, read_volume

    if args.out:
        check_output_path(args.out, kind="file", inputs=(args.manifest,))
    from ..engine.resample import resample_to_spacing

    spacing = parse_floats(args.spacing, "--spacing", 3) if args.spacing else None
    rows = read_manifest(args.manifest)[: args.max_cases]
    z = _slice_range(args.slices, "--slices") if args.slices else slice(None)
    cases = [(resample_to_spacing(read_volume(r.image).to_display(), spacing, labels=False).cropped(z=z),
              resample_to_spacing(read_labels(r.organ_mask).to_display(), spacing, labels=True).cropped(z=z)
              if r.organ_mask else None, r.report) for r in rows]
    pipe = GenerationPipeline.from_pretrained(args.model, device=args.device)
    bar, close = progress_bar("evaluating")
    try:
        report = evaluate_pipeline(pipe, cases, guidance_scales=parse_floats(args.guidance, "--guidance"),
                                   seeds=_ints(args.seeds, "--seeds"), steps=args.steps, sampler=args.sampler,
                                   edit_shifts=_ints(args.edit_shifts, "--edit-shifts"), progress=bar)
    finally:
        close()
    for g, row in report["by_guidance"].items():
        print(f"guidance {g}: adherence {row['adherence']:.3f}, mean |organ HU error| "
              f"{row['mean_abs_organ_error_hu']:.1f} HU, Frechet(VAE features) {row['frechet_vae']:.3f}")
    for i, case in enumerate(report["cases"]):
        if case.get("no_organ_mask"):
            print(f"case {i}: same-seed max |diff| {case['determinism_max_abs_diff_hu']:.3g} HU; no organ mask: "
                  "organ-HU figures, adherence and mask-edit follow ratio skipped")
            continue
        print(f"case {i}: same-seed max |diff| {case['determinism_max_abs_diff_hu']:.3g} HU; "
              f"unedited generation vs real CT: shift {case['unedited_shift_vs_real_ct']:+.2f} voxels")
        for edit in case.get("mask_edits", []):
            print(f"  organ map shifted {edit['shift_voxels_x']:+d} voxels (x): anatomy moved "
                  f"{edit['estimated_vs_original_generation']:+.2f} vs the unedited generation, "
                  f"{edit['estimated_vs_real_ct']:+.2f} vs the real CT; adherence to edited mask "
                  f"{edit['adherence_to_edited_mask']:.3f} vs original {edit['adherence_to_original_mask']:.3f}")
        if "follow_ratio_vs_original_generation" in case:
            print(f"  follow ratio (estimated / requested shift, 1 = follows, 0 = ignores): "
                  f"{case['follow_ratio_vs_original_generation']:.2f} vs unedited generation, "
                  f"{case['follow_ratio_vs_real_ct']:.2f} vs real CT")
        for g, organs in case["organs_over_seeds"].items():
            print(f"  guidance {g}, generated mean HU over {len(report['settings']['seeds'])} seed(s):")
            for name in ("liver", "spleen", "kidney_left", "kidney_right", "aorta", "vertebrae_L1", "vertebrae_T12",
                         "lung_lower_lobe_right", "lung_lower_lobe_left"):
                if name in organs:
                    o = organs[name]
                    print(f"    {name:24s} real {o['real_mean']:7.1f} HU [p10 {o['real_p10']:6.0f}, p90 {o['real_p90']:6.0f}]"
                          f"  generated {o['generated_mean']:7.1f} HU "
                          f"({'inside' if o['mean_in_real_p10_p90'] else 'OUTSIDE'})")
    if args.out:
        atomic_write_json(args.out, report, indent=1, default=float)
        print(f"report written to {args.out}")
    _note_if_demo(args.model)
    return 0


def findings_by_name(flags) -> dict:
    """The 18 CT-RATE flags as ``{finding: +1 stated / -1 negated / 0 not mentioned}``."""
    from ..engine.generation.vocab import CTRATE_ABNORMALITIES

    if isinstance(flags, dict):
        return dict(flags)
    values = [float(v) for v in flags]
    return {name: int(v) if v.is_integer() else v for name, v in zip(CTRATE_ABNORMALITIES, values)}


def _note_if_demo(model: str) -> None:
    if str(model) == "demo":
        from ..engine.generation.pipeline import DEMO_NOTE

        print(f"note: {DEMO_NOTE}", file=sys.stderr)
