"""Generation speed: seconds per sampling step and per volume.

1. The shipped ``demo`` checkpoint on the real abdominal organ mask
   (122 x 101 x 30 voxels -> latent 32 x 30 x 13 x 16), DDIM, guidance 1.5
   (two model passes per window per step), including text encoding and
   TAEF2 decoding.
2. A paper-size latent 16 x 17 x 64 x 64 (LeanVAE latent of a 65 x 512 x 512
   chunk, REFERENCE section 1) through the demo denoiser architecture with
   16 latent channels (random weights: speed only), one window, guided.

Usage: python bench/generation.py [--steps 20] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--paper-steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_ctfoundation.engine.generation.conditioning import condition_tensor, mask_to_latent
    from napari_ctfoundation.engine.generation.denoiser import ConditionalDenoiser, count_parameters
    from napari_ctfoundation.engine.generation.pipeline import GenerationPipeline
    from napari_ctfoundation.engine.generation.sampling import sample_latents
    from napari_ctfoundation.engine.io import read_labels

    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    pipe = GenerationPipeline.from_pretrained("demo", device=args.device)
    organs = read_labels("sample_data/ct_abdomen_3mm/organs.nii.gz")
    report = "Non-contrast CT of the upper abdomen. Liver normal. No pleural effusion."
    pipe.generate(organs, report, steps=1, decode=False)  # warm-up: loads text encoder
    result = pipe.generate(organs, report, steps=args.steps, guidance=1.5, seed=0)
    t = result.timings
    print(f"demo ({count_parameters(pipe.denoiser) / 1e6:.1f} M params), abdomen 122x101x30, "
          f"latent {tuple(result.latents.shape)}, window {pipe.config['window']}:")
    print(f"  {t['sample_s'] / args.steps:.3f} s per sampling step (guided), {t['sample_s']:.1f} s sampling, "
          f"{t['decode_s']:.1f} s TAEF2 decode, {result.seconds:.1f} s per volume ({args.steps} DDIM steps)")

    config = dict(pipe.config["denoiser"], latent_channels=16)
    model = ConditionalDenoiser(config).to(args.device)
    grid = (17, 64, 64)
    labels = np.zeros((17, 512, 512), np.uint8)
    labels[:, 100:400, 100:400] = 5
    cond = condition_tensor(mask_to_latent(labels, 8), None, grid)
    tokens = np.random.default_rng(0).normal(size=(1, 64, config["text_dim"])).astype(np.float32)
    start = time.perf_counter()
    sample_latents(model, pipe.config["scheduler"], cond, tokens, np.zeros(18, np.float32), latent_channels=16,
                   steps=args.paper_steps, guidance_mask=1.5, guidance_text=1.5, window=17, overlap=0,
                   device=args.device)
    per_step = (time.perf_counter() - start) / args.paper_steps
    print(f"paper-size latent 16x17x64x64 (demo architecture, 16 channels), guided: {per_step:.2f} s per step, "
          f"about {per_step * 20:.0f} s for 20 DDIM steps (before decoding)")


if __name__ == "__main__":
    main()
