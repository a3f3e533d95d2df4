"""Peak resident memory of a CPU reconstruction against depth (issue 13 part 3).

Each point is a fresh process running the real command,
``ctfoundation reconstruct IN.nii OUT.nii.gz --device cpu`` (read, slab-by-slab
D(E(x)), metrics, write), on the 512x512 DICOM sample tiled to the depth and
stored as an int16 NIfTI, as CT files are. The child reports its own peak
RSS (``resource.getrusage``). ``bicubic_f16`` has negligible compute, so the
points show the memory design; one TAEF2 point shows a real model's extra.

Target: under 4 GB at 400 slices, linear in depth (one float32 copy of input
and output plus a bounded working set: 2 x 1 MiB = 2 MiB per 512x512 slice).

Modes (``--mode``): ``file`` is the CLI as shipped, which reconstructs into a
scratch memmap beside the output and writes the NIfTI from it slice by slice
(``engine.file_output``), so only the input should grow with depth (1 MiB
per slice). ``ram`` replays the former CLI flow in the child (whole output
in RAM, then ``write_volume``) for comparison; ``both`` runs each.

    python bench/memory.py                     # file mode: bicubic_f16 at 100, 200, 400; TAEF2 at 100
    python bench/memory.py --depths 100 200 --no-taef2 --mode both
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SLICE_MB = 512 * 512 * 4 / 2**20  # one float32 512x512 slice


def child(args) -> None:
    """Run the CLI in this process and print its peak RSS as JSON."""
    from napari_ctfoundation.cli import main as cli

    started = time.perf_counter()
    if args.mode == "ram":
        code = in_ram(args)
    else:
        code = cli(["reconstruct", args.input, args.output, "--vae", args.vae, "--device", "cpu", "--overwrite"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"code": code, "peak_mb": peak_mb, "seconds": time.perf_counter() - started}))


def in_ram(args) -> int:
    """The CLI's flow before file-backed output: the whole reconstruction in RAM, then written."""
    from napari_ctfoundation.engine.io import read_volume, write_volume
    from napari_ctfoundation.engine.reconstruct import reconstruct_volume

    result = reconstruct_volume(read_volume(args.input).to_display(), args.vae, device="cpu")
    write_volume(result.volume.to_source_orientation(), args.output, protect=(args.input,))
    return 0


def write_input(depth: int, path: Path) -> None:
    from napari_ctfoundation.engine.io import read_volume, write_volume
    from napari_ctfoundation.engine.volume import Volume

    sample = read_volume(ROOT / "sample_data" / "ct_dicom_series" / "dicom")
    reps = -(-depth // sample.shape[0])
    array = np.concatenate([np.round(sample.array).astype(np.int16)] * reps)[:depth]
    write_volume(Volume(array, sample.spacing, sample.origin, sample.direction), path)


def measure(depth: int, vae: str, folder: Path, mode: str = "file") -> dict:
    source = folder / f"ct_{depth}.nii"
    if not source.exists():
        write_input(depth, source)
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--input", str(source), "--output", str(folder / f"out_{depth}.nii.gz"),
         "--vae", vae, "--mode", mode], capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"depth {depth} {vae} {mode} failed:\n{done.stderr[-2000:]}")
    return {"depth": depth, "vae": vae, "mode": mode, **json.loads(lines[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--no-taef2", action="store_true", help="skip the TAEF2 point at 100 slices")
    parser.add_argument("--mode", choices=("file", "ram", "both"), default="file",
                        help="file: the CLI (scratch memmap, streamed write; default); ram: the former "
                             "whole-output-in-RAM flow; both: each")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--vae", default="bicubic_f16", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="ctf-memory-") as tmp:
        folder = Path(tmp)
        modes = ("file", "ram") if args.mode == "both" else (args.mode,)
        rows = [measure(depth, "bicubic_f16", folder, mode) for mode in modes for depth in args.depths]
        if not args.no_taef2:
            rows += [measure(min(args.depths), "taef2", folder, mode) for mode in modes]
    print(f"{'VAE':<12} {'slices':>6} {'peak RSS MB':>12} {'2 copies MB':>12} {'seconds':>8} {'mode':>5}")
    for row in rows:
        print(f"{row['vae']:<12} {row['depth']:>6} {row['peak_mb']:>12.0f} "
              f"{2 * row['depth'] * SLICE_MB:>12.0f} {row['seconds']:>8.1f} {row['mode']:>5}")
    for mode in modes:
        report_slope([r for r in rows if r["mode"] == mode], mode)


def report_slope(rows: list, mode: str) -> None:
    bicubic = sorted((r for r in rows if r["vae"] == "bicubic_f16"), key=lambda r: r["depth"])
    if len(bicubic) >= 2:
        print(f"{mode} mode:")
        depths = np.array([r["depth"] for r in bicubic], float)
        peaks = np.array([r["peak_mb"] for r in bicubic])
        slope, intercept = np.polyfit(depths, peaks, 1)
        worst = max(abs(peaks - (slope * depths + intercept)))
        print(f"slope {slope:.2f} MB/slice (input + output float32: {2 * SLICE_MB:.0f} MB/slice), "
              f"intercept {intercept:.0f} MB, largest deviation from the line {worst:.0f} MB")
        print(f"extrapolated peak at 1500 slices (whole-body CT): {slope * 1500 + intercept:.0f} MB")


if __name__ == "__main__":
    main()
