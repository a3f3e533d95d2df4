"""Downstream efficiency: a MONAI classifier trained on latents vs full volumes.

MedVAE's claim (REFERENCE section 2): training a classifier on latents
instead of full-resolution images gives up to 70x throughput. This measures
the same thing here: one forward + backward + optimiser step of MONAI's 3D
ResNet-10 at the same batch size, on

* the full CT, one channel, HU window [-1000, 1000] -> [0, 1], and
* its latents from a VAE backend (default the embedded taef2: 32 channels,
  8x smaller in-plane, one latent frame per slice),

both built from a real sample (default: the 512 x 512 x 20 DICOM series).
Throughput is samples/s over timed steps after warm-up; peak memory is
``torch.cuda.max_memory_allocated`` on a GPU, and on the CPU the rise of the
process's peak RSS over its post-import baseline (data + model + steps) (each input kind runs in its own child
process so one does not hide the other).

    OMP_NUM_THREADS=1 python bench/latent_training.py [--batch 2] [--steps 3] [--vae taef2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CT = REPO / "sample_data" / "ct_dicom_series" / "dicom"


def make_inputs(ct: str, vae_name: str, out: Path) -> dict:
    import numpy as np

    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.latents import encode_volume
    from napari_ctfoundation.engine.vae import load_vae
    from napari_ctfoundation.engine.window import HUWindow

    volume = read_volume(ct).to_display()
    window = HUWindow()
    full = window.to_unit(volume.array)[None].astype(np.float32)  # (1, Z, Y, X)
    lv = encode_volume(volume, load_vae(vae_name, device="cpu"), window)
    lat = lv.latents[0].astype(np.float32)  # (C, Z, h, w)
    np.save(out / "full.npy", full)
    np.save(out / "latent.npy", lat)
    return {"full_shape": list(full.shape), "latent_shape": list(lat.shape)}


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (VmHWM) so import-time peaks do not hide ours; -> RSS bytes now."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # then VmHWM includes the import peak: the figure is an upper bound of the import peak
    return _status_kib("VmRSS") * 1024


def child(kind: str, folder: str, batch: int, steps: int, device: str) -> None:
    import numpy as np
    import torch
    from monai.networks.nets import resnet10

    rss_base = _reset_peak_rss()  # after imports, before data and model
    x1 = np.load(Path(folder) / f"{kind}.npy")
    x = torch.from_numpy(np.repeat(x1[None], batch, axis=0)).to(device)
    y = torch.arange(batch, device=device) % 2
    model = resnet10(spatial_dims=3, n_input_channels=x.shape[1], num_classes=2).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up (allocations, kernels)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    else:
        # rise of the peak RSS over the post-import baseline: data + model + steps
        peak = _status_kib("VmHWM") * 1024 - rss_base
    print(json.dumps({"kind": kind, "input_shape": list(x.shape), "samples_per_s": batch * steps / seconds,
                      "seconds_per_step": seconds / steps, "peak_bytes": peak,
                      "params": sum(p.numel() for p in model.parameters())}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ct", default=str(DEFAULT_CT))
    ap.add_argument("--vae", default="taef2")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.batch, args.steps, args.device)
        return
    with tempfile.TemporaryDirectory() as tmp:
        shapes = make_inputs(args.ct, args.vae, Path(tmp))
        results = {}
        for kind in ("full", "latent"):
            out = subprocess.run([sys.executable, __file__, "--child", kind, tmp, "--batch", str(args.batch),
                                  "--steps", str(args.steps), "--device", args.device],
                                 capture_output=True, text=True, env=os.environ.copy())
            if out.returncode != 0:
                sys.exit(f"{kind} run failed:\n{out.stderr[-2000:]}")
            results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{kind}: {results[kind]}", file=sys.stderr, flush=True)
    f, l = results["full"], results["latent"]
    print(f"CT {args.ct}; VAE {args.vae}; MONAI resnet10 (3D), batch {args.batch}, {args.steps} timed steps, "
          f"device {args.device}, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print("| input | shape (B, C, Z, Y, X) | values/sample | samples/s | s/step | peak memory |")
    print("|---|---|---|---|---|---|")
    for r in (f, l):
        n = 1
        for s in r["input_shape"][1:]:
            n *= s
        mem = r["peak_bytes"]
        print(f"| {r['kind']} | {'x'.join(map(str, r['input_shape']))} | {n:,} | {r['samples_per_s']:.3f} | "
              f"{r['seconds_per_step']:.2f} | {mem / 2**20:.0f} MiB |")
    mem_note = "GPU max allocated" if args.device.startswith("cuda") else "peak RSS rise over the post-import baseline"
    print(f"throughput ratio latent/full: {l['samples_per_s'] / f['samples_per_s']:.1f}x; "
          f"peak memory ratio full/latent ({mem_note}): {f['peak_bytes'] / max(l['peak_bytes'], 1):.1f}x")


if __name__ == "__main__":
    main()
