"""One GPU table (issue 13): TAEF2 fp32 vs bf16, DiCE dense vs fast, generation, DiCE training.

    python bench/gpu.py                       # on a GPU machine, < 8 minutes on one GPU
    python bench/gpu.py --smoke --device cpu  # tiny sizes, any machine (CI runs this)

Rows:

* TAEF2 on the 512x512 DICOM sample tiled to 300 slices, fp32 and bf16:
  seconds, peak memory, PSNR against the CT ([-1000, 1000] HU) and the
  bf16 - fp32 difference. bf16 is GPU-only in the engine: on a CPU it is
  reported as skipped.
* DiCE, paper configuration (random weights: speed only), 256^3 from 6
  views of the abdominal sample: seconds for the dense and the fast query
  (features included), PSNR of fast against dense.
* Generation with the shipped ``demo`` at its size (the abdominal organ
  mask, 122 x 101 x 30), 20 DDIM steps, guidance 1.5.
* ``sparse train`` (HyViP pretraining, paper configuration, 256^3 cache of
  the abdominal sample): steps per second at batch 2, timed between the
  first and the last step (setup excluded).

``--smoke`` shrinks everything (TAEF2 on 128x128x4, DiCE tiny at 32^3,
1 generation step on a 64x64x8 corner of the mask without decoding, 3
training steps of the tiny configuration) so CI can
check the script end to end. Peak memory is the GPU's
``max_memory_allocated`` per row on CUDA; on a CPU it is the process's
peak resident memory so far (it never goes down between rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DICOM = ROOT / "sample_data" / "ct_dicom_series" / "dicom"
ABDOMEN = ROOT / "sample_data" / "ct_abdomen_3mm" / "ct.nii.gz"
ORGANS = ROOT / "sample_data" / "ct_abdomen_3mm" / "organs.nii.gz"

Row = Tuple[str, str, float, float, str]  # item, size, seconds, peak memory MB, note


class Meter:
    """Seconds and peak memory of one row (CUDA: allocator peak; CPU: process peak RSS)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def run(self, fn: Callable):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = fn()
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if self.cuda:
            peak = torch.cuda.max_memory_allocated() / 2 ** 20
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
        return result, seconds, peak


def taef2_rows(meter: Meter, device: str, smoke: bool) -> List[Row]:
    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.reconstruct import reconstruct_volume
    from napari_ctfoundation.engine.volume import Volume

    ct = read_volume(DICOM)
    if smoke:
        array = ct.array[:4, 192:320, 192:320]
    else:
        array = np.concatenate([ct.array] * (300 // ct.shape[0] + 1), 0)[:300]
    vol = Volume(array=np.ascontiguousarray(array), spacing=ct.spacing, origin=ct.origin, direction=ct.direction)
    size = "x".join(str(s) for s in reversed(vol.shape))
    rows, outs = [], {}
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and not device.startswith("cuda"):
            rows.append(("TAEF2 bf16", size, float("nan"), float("nan"), "skipped: bf16 is GPU-only"))
            continue
        res, sec, peak = meter.run(lambda: reconstruct_volume(vol, "taef2", device=device, precision=precision,
                                                              compute_metrics=False))
        outs[precision] = res.volume.array
        note = f"PSNR {_psnr_hu(vol.array, res.volume.array):.2f} dB vs CT"
        if precision == "bf16":
            delta = _psnr_hu(vol.array, outs["bf16"]) - _psnr_hu(vol.array, outs["fp32"])
            note += f" ({delta:+.2f} dB vs fp32's); bf16 vs fp32 output {_psnr_hu(outs['fp32'], outs['bf16']):.1f} dB"
        rows.append((f"TAEF2 {precision}", size, sec, peak, note))
    return rows


def _psnr_hu(reference: np.ndarray, test: np.ndarray, lo: float = -1000.0, hi: float = 1000.0) -> float:
    """PSNR in the [lo, hi] HU window (the README's figures use [-1000, 1000])."""
    a = (np.clip(reference, lo, hi) - lo) / (hi - lo)
    b = (np.clip(test, lo, hi) - lo) / (hi - lo)
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2, dtype=np.float64)), 1e-20)))


def dice_rows(meter: Meter, device: str, smoke: bool) -> List[Row]:
    import torch

    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.dice.model import DiCE, parameter_count
    from napari_ctfoundation.engine.sparse.dice.predict import predict_grid
    from napari_ctfoundation.engine.sparse.geometry import PRESETS
    from napari_ctfoundation.engine.sparse.pipeline import simulate_ct

    if smoke:
        geo = replace(PRESETS["deepsparse"].scaled(8, name="smoke-32"), n_candidates=24)
        config = DiCEConfig.tiny(geo)
    else:
        geo = PRESETS["deepsparse"]
        config = DiCEConfig.paper(geo)
    torch.manual_seed(0)
    model = DiCE(config).to(device).eval()
    _, ps = simulate_ct(read_volume(ABDOMEN), geo, 6, seed=0)
    name = f"DiCE {'tiny' if smoke else 'paper'} ({parameter_count(model) / 1e6:.2f} M, random)"
    size = f"{geo.grid_size}^3, 6 views"
    rows, outs = [], {}
    for query in ("dense", "fast"):
        stats = {}
        out, sec, peak = meter.run(lambda: predict_grid(model, ps.projections, ps.angles, query=query,
                                                        device=device, stats=stats))
        outs[query] = out
        note = f"queried {100 * stats['queried_fraction']:.1f} % of voxels"
        if query == "fast":
            mse = float(np.mean((outs["dense"] - out) ** 2))
            note += f"; PSNR vs dense {10 * np.log10(1 / max(mse, 1e-20)):.1f} dB; dense/fast {rows[0][2] / sec:.1f}x"
        rows.append((f"{name} {query}", size, sec, peak, note))
    return rows


def generation_rows(meter: Meter, device: str, smoke: bool) -> List[Row]:
    from napari_ctfoundation.engine.generation.pipeline import GenerationPipeline
    from napari_ctfoundation.engine.io import read_labels

    from napari_ctfoundation.engine.volume import Volume

    steps = 1 if smoke else 20
    pipe = GenerationPipeline.from_pretrained("demo", device=device)
    organs = read_labels(ORGANS)
    if smoke:  # a corner of the mask, no TAEF2 decode (the TAEF2 row covers it)
        organs = Volume(array=np.ascontiguousarray(organs.array[:8, :64, :64]), spacing=organs.spacing,
                        origin=organs.origin, direction=organs.direction, metadata=dict(organs.metadata))
    report = "Non-contrast CT of the upper abdomen. Liver normal. No pleural effusion."
    pipe.generate(organs, report, steps=1, decode=False)  # warm-up: loads the text encoder
    result, sec, peak = meter.run(lambda: pipe.generate(organs, report, steps=steps, guidance=1.5, seed=0,
                                                        decode=not smoke))
    size = "x".join(str(s) for s in reversed(organs.shape))
    t = result.timings
    return [(f"generation demo, {steps} DDIM steps", size, sec, peak,
             f"sampling {t['sample_s']:.1f} s, decode {t['decode_s']:.1f} s")]


def train_rows(meter: Meter, device: str, smoke: bool) -> List[Row]:
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.geometry import PRESETS
    from napari_ctfoundation.engine.sparse.train import TrainSettings, build_cache, train_dice

    if smoke:
        geo = replace(PRESETS["deepsparse"].scaled(8, name="smoke-32"), n_candidates=24)
        config, steps, name = DiCEConfig.tiny(geo), 3, "tiny"
    else:
        geo = PRESETS["deepsparse"]
        config, steps, name = DiCEConfig.paper(geo), 30, "paper"
    stamps = []

    def progress(done: int, total: int, unit: str) -> None:
        if unit == "steps":
            stamps.append((done, time.perf_counter()))

    with tempfile.TemporaryDirectory() as tmp:
        files = build_cache([ABDOMEN], Path(tmp) / "cache", geo)
        settings = TrainSettings(stage="pretrain", batch_size=2, max_steps=steps, seed=0, device=device,
                                 min_views=6, max_views=min(24, geo.n_available))
        _, sec, peak = meter.run(lambda: train_dice(files, Path(tmp) / "out", settings, config=config,
                                                    progress=progress))
    moved = [(d, t) for d, t in stamps if d > 0]
    (d0, t0), (d1, t1) = moved[0], moved[-1]
    rate = (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")
    return [(f"sparse train ({name}), batch 2", f"{geo.grid_size}^3 cache", sec, peak,
             f"{rate:.2f} steps/s between steps {d0} and {d1} ({steps} steps, setup included in seconds)")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cuda, cpu (default auto)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, not the speed")
    parser.add_argument("--only", default="taef2,dice,generation,train", help="comma-separated subset of the rows")
    args = parser.parse_args(argv)
    parts = {"taef2": taef2_rows, "dice": dice_rows, "generation": generation_rows, "train": train_rows}
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(parts))
    if unknown:
        print(f"error: --only {','.join(unknown)}: use {','.join(parts)}", file=sys.stderr)
        return 2

    import torch

    from napari_ctfoundation.engine.vae import resolve_device

    device = resolve_device(args.device)
    if not device.startswith("cuda") and not args.smoke:
        print("warning: no GPU; full sizes on a CPU take far longer than 8 minutes (use --smoke)", file=sys.stderr)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device} (GPU: {gpu}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {load:.1f}{', SMOKE sizes' if args.smoke else ''}")
    meter = Meter(device)
    rows: List[Row] = []
    start = time.perf_counter()
    for name in wanted:
        rows += parts[name](meter, device, args.smoke)
    mem = "peak GPU MB" if device.startswith("cuda") else "peak RSS MB"
    header = ("item", "size", "seconds", mem, "note")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in (0, 1)]
    print(f"| {header[0]:<{widths[0]}} | {header[1]:<{widths[1]}} | {header[2]:>8} | {header[3]:>11} | {header[4]}")
    print(f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|{'-' * 10}|{'-' * 13}|------")
    for item, size, sec, peak, note in rows:
        print(f"| {item:<{widths[0]}} | {size:<{widths[1]}} | {sec:>8.2f} | {peak:>11.0f} | {note}")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
