"""TAEF2 reconstruction quality on the real sample CTs, next to interpolation.

Prints PSNR / SSIM / MS-SSIM / MAE inside [-1000, 1000] HU for:
* the embedded TAEF2 (32 latent channels at 1/8 x 1/8: 0.5 values per voxel),
* bicubic down/up at the same number of values per voxel (area factor 2),
* the MedVAE interpolation baselines (area factors 16 and 64).

    python bench/vae_quality.py [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from napari_ctfoundation.engine.io import read_volume
from napari_ctfoundation.engine.metrics import volume_metrics
from napari_ctfoundation.engine.reconstruct import reconstruct_volume
from napari_ctfoundation.engine.window import HUWindow

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {
    "abdomen NIfTI 3 mm (122x101x30)": ROOT / "sample_data/ct_abdomen_3mm/ct.nii.gz",
    "DICOM series (512x512x20)": ROOT / "sample_data/ct_dicom_series/dicom",
}


def bicubic_matched(volume, window: HUWindow, values_per_voxel: float) -> np.ndarray:
    """Bicubic down/up keeping ``values_per_voxel`` of the slice's samples."""
    import torch
    import torch.nn.functional as F

    unit = torch.from_numpy(window.to_unit(volume.array))[:, None]
    h, w = unit.shape[-2:]
    scale = math.sqrt(values_per_voxel)
    small = F.interpolate(unit, size=(round(h * scale), round(w * scale)), mode="bicubic",
                          align_corners=False, antialias=True)
    back = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    return window.from_unit(back[:, 0].numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the table as JSON")
    args = parser.parse_args()
    window = HUWindow(-1000, 1000)
    rows = []
    for label, path in SAMPLES.items():
        volume = read_volume(path).to_display()
        taef2 = reconstruct_volume(volume, "taef2", window, device="cpu")
        vpv = taef2.settings["latent_values_per_voxel"]
        rows.append((label, f"TAEF2 (latent {vpv:.2f} values/voxel)", taef2.metrics))
        rows.append((label, f"bicubic, same {vpv:.2f} values/voxel",
                     volume_metrics(volume.array, bicubic_matched(volume, window, vpv), window)))
        for name in ("bicubic_f16", "bicubic_f64"):
            result = reconstruct_volume(volume, name, window, device="cpu")
            rows.append((label, f"{name} ({result.settings['latent_values_per_voxel']:.3f} values/voxel)",
                         result.metrics))
    print(f"{'volume':<34} {'method':<40} {'PSNR dB':>8} {'SSIM':>7} {'MS-SSIM':>8} {'MAE HU':>7}")
    for label, method, m in rows:
        print(f"{label:<34} {method:<40} {m['psnr_db']:8.2f} {m['ssim']:7.4f} {m['ms_ssim']:8.4f} {m['mae_hu']:7.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps([{"volume": v, "method": k, **m} for v, k, m in rows], indent=2))


if __name__ == "__main__":
    main()
