"""Per-seed organ intensities of generated CT, beside the real CT and its VAE reconstruction D(E(x)).

    python bench/generation_organ_probe.py                        # demo, seeds 0-5, guidance 1.5
    python bench/generation_organ_probe.py --model DIR --seeds 0,1,2 --guidance 2
    python bench/generation_organ_probe.py --steps 50 --sampler dpmpp

Conditions on the abdominal sample's organ map and report, and prints the mean
HU inside each chosen organ mask (and inside the mask eroded by one voxel, which
discounts a misplaced edge) for the real CT, for D(E(x)) through the pipeline's
frozen VAE (what a perfect latent generator could reach) and for each seed.
Diagnostic figures only; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse

import numpy as np

ROOT_CASE = "sample_data/ct_abdomen_3mm"
REPORT = "napari_ctfoundation/data/generation_demo/training/reports/ct_abdomen_3mm.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    ap.add_argument("--guidance", type=float, default=1.5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--guidance-text", type=float, default=None, help="text guidance (default: --guidance)")
    ap.add_argument("--organs", default="kidney_left,kidney_right,liver,spleen")
    args = ap.parse_args()

    from scipy import ndimage

    from napari_ctfoundation.engine.generation.pipeline import GenerationPipeline
    from napari_ctfoundation.engine.io import read_volume
    from napari_ctfoundation.engine.labels import organ_names
    from napari_ctfoundation.engine.reconstruct import reconstruct_volume

    ct, organs = read_volume(f"{ROOT_CASE}/ct.nii.gz"), read_volume(f"{ROOT_CASE}/organs.nii.gz")
    with open(REPORT) as fh:
        report = fh.read()
    pipe = GenerationPipeline.from_pretrained(args.model, device="cpu")
    window = pipe.hu_window
    labels = organs.to_display().array
    real = np.clip(ct.to_display().array, window.lo, window.hi)
    ids = {name: label for label, name in organ_names().items()}
    chosen = [n for n in args.organs.split(",") if n in ids and (labels == ids[n]).any()]

    def line(name: str, hu: np.ndarray) -> None:
        parts = []
        for organ in chosen:
            mask = labels == ids[organ]
            core = ndimage.binary_erosion(mask)
            parts.append(f"{organ} {hu[mask].mean():7.1f} (eroded {hu[core].mean() if core.any() else np.nan:7.1f})")
        print(f"{name:<10}", " | ".join(parts), flush=True)

    line("real", real)
    recon = reconstruct_volume(ct, pipe.vae, window, device="cpu", compute_metrics=False).volume
    line("D(E(x))", np.clip(recon.to_display().array, window.lo, window.hi))
    for seed in (int(s) for s in args.seeds.split(",")):
        gen = pipe.generate(organs, report, seed=seed, steps=args.steps, guidance=args.guidance,
                           guidance_text=args.guidance_text, sampler=args.sampler).volume.array
        line(f"seed {seed}", np.clip(gen, window.lo, window.hi))


if __name__ == "__main__":
    main()
