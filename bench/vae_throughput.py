"""Foundation-VAE reconstruction throughput: batched engine vs a naive loop.

Runs each mode in a fresh subprocess so peak memory (max RSS on CPU, peak
allocated on CUDA) belongs to that mode alone. Default input: the 512x512x20
DICOM sample; ``--depth N`` tiles it to N slices (e.g. 300 on a GPU).

    python bench/vae_throughput.py [--device auto] [--depth 20] [--batch-size 8] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DICOM = ROOT / "sample_data/ct_dicom_series/dicom"


def load(depth: int):
    import numpy as np

    from napari_ctfoundation.engine.io import read_volume

    volume = read_volume(DICOM).to_display()
    if depth != volume.shape[0]:
        reps = -(-depth // volume.shape[0])
        stacked = np.concatenate([volume.array] * reps)[:depth]
        volume = type(volume)(stacked, volume.spacing, volume.origin, volume.direction)
    return volume


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mode(mode: str, device: str, depth: int, batch_size: int, precision: str) -> dict:
    import torch

    from napari_ctfoundation.engine.reconstruct import reconstruct_volume
    from napari_ctfoundation.engine.vae import load_vae
    from napari_ctfoundation.engine.window import HUWindow

    volume = load(depth)
    vae = load_vae("taef2", device=device, precision=precision)
    window = HUWindow()
    # warm-up on two slices (first-call allocations, kernel selection)
    reconstruct_volume(volume.cropped(z=slice(0, 2)), vae, window, compute_metrics=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if mode == "engine":
        reconstruct_volume(volume, vae, window, batch_size=batch_size, compute_metrics=False)
    else:  # naive: one slice at a time, encode then decode, autograd on, as a first script would
        unit = torch.from_numpy(window.to_unit(volume.array))
        for z in range(volume.shape[0]):
            x = unit[z][None, None].repeat(1, 3, 1, 1)
            y = vae.decode(vae.encode(x)).mean(dim=1).float().cpu().numpy()
            window.from_unit(y)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"mode": mode, "device": device, "slices": volume.shape[0], "shape_zyx": list(volume.shape),
            "seconds": seconds, "slices_per_s": volume.shape[0] / seconds,
            "peak_memory_mb": peak_memory_mb(device), "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--_mode", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from napari_ctfoundation.engine.vae import resolve_device

    device = resolve_device(args.device)
    if args._mode:
        print(json.dumps(run_mode(args._mode, device, args.depth, args.batch_size, args.precision)))
        return
    results = {}
    for mode in ("engine", "naive"):
        cmd = [sys.executable, __file__, "--_mode", mode, "--device", device, "--depth", str(args.depth),
               "--batch-size", str(args.batch_size), "--precision", args.precision]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    e, n = results["engine"], results["naive"]
    print(f"TAEF2 reconstruction of {e['shape_zyx'][0]} x {e['shape_zyx'][1]} x {e['shape_zyx'][2]} "
          f"(z, y, x) on {device} ({args.precision}, {e['torch_threads']} threads)")
    print(f"  engine (batch {args.batch_size}, inference mode): {e['slices_per_s']:.2f} slices/s, "
          f"{e['seconds']:.1f} s, peak memory {e['peak_memory_mb']:.0f} MB")
    print(f"  naive one-slice loop:              {n['slices_per_s']:.2f} slices/s, "
          f"{n['seconds']:.1f} s, peak memory {n['peak_memory_mb']:.0f} MB")
    print(f"  speed ratio engine / naive: {e['slices_per_s'] / n['slices_per_s']:.2f}x; "
          f"memory ratio: {e['peak_memory_mb'] / n['peak_memory_mb']:.2f}x")


if __name__ == "__main__":
    main()
