"""Foundation-VAE backends: embedded TAEF2 and diffusers models via from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.io import read_volume
from napari_ctfoundation.engine.reconstruct import reconstruct_volume
from napari_ctfoundation.engine.vae import VAE_BACKENDS, load_vae
from napari_ctfoundation.engine.vae.base import resolve_device


@pytest.fixture(scope="module")
def taef2():
    return load_vae("taef2", device="cpu")


@pytest.fixture(scope="module")
def ct_crop(nifti_ct):
    """6 slices, 40 x 52 voxels (deliberately not multiples of 8)."""
    return read_volume(nifti_ct).to_display().cropped(z=slice(12, 18), y=slice(30, 70), x=slice(35, 87))


def test_taef2_is_registered_and_loads_strictly(taef2):
    assert "taef2" in VAE_BACKENDS.names()
    # strict load already happened in the fixture; the weights are the real ones
    n_params = sum(p.numel() for p in taef2.model.parameters())
    assert n_params == 2_677_027
    assert not any(p.requires_grad for p in taef2.model.parameters())


def test_taef2_shapes_and_determinism(taef2):
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    z1, z2 = taef2.encode(x), taef2.encode(x)
    assert z1.shape == (2, 32, 4, 6)
    assert torch.equal(z1, z2)
    y = taef2.decode(z1)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def test_taef2_quality_on_real_ct(nifti_ct, taef2):
    """The shipped pretrained weights reach >= 30 dB on the real abdominal CT."""
    volume = read_volume(nifti_ct).to_display()
    result = reconstruct_volume(volume, taef2)
    assert result.volume.shape == volume.shape
    assert result.volume.array.dtype == np.float32
    assert result.metrics["psnr_db"] >= 30.0
    assert result.metrics["ssim"] >= 0.85
    assert result.metrics["mae_hu"] < 60


def test_reconstruction_keeps_geometry_and_pads_to_stride(ct_crop, taef2):
    result = reconstruct_volume(ct_crop, taef2)
    assert result.volume.same_grid(ct_crop)
    assert result.difference.same_grid(ct_crop)
    # float HU output, not int16-truncated
    assert not np.allclose(result.volume.array, np.round(result.volume.array))
    assert result.settings["latent_shape"] == [1, 32, 6, 5, 7]  # 40x52 padded to 40x56
    assert np.allclose(
        result.difference.array, result.volume.array - np.clip(ct_crop.array, -1000, 1000), atol=1e-3
    )


def test_reconstruction_reports_progress_and_cancels(ct_crop, taef2):
    from napari_ctfoundation.engine.errors import OperationCancelled

    seen = []
    reconstruct_volume(ct_crop, taef2, batch_size=2, compute_metrics=False,
                       progress=lambda d, t, u: seen.append((d, t, u)))
    unit = "slice passes (encode + decode)"  # 6 slices, each encoded then decoded
    assert seen[-1] == (12, 12, unit) and all(u == unit for _, _, u in seen)
    with pytest.raises(OperationCancelled, match="cancelled after 2 of 6 slices"):
        reconstruct_volume(ct_crop, taef2, batch_size=2, cancel=lambda: True)


def test_resolve_device():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu") or torch.backends.mps.is_available()
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(ConfigError, match="GPU only"):
            load_vae("taef2", device="cpu", precision="bf16")


# ------------------------------------------------------------ diffusers VAEs
def _tiny_kl(cls):
    return cls(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
    )


@pytest.fixture(scope="module")
def tiny_vae_folders(tmp_path_factory):
    """Tiny randomly initialised diffusers VAEs written with save_pretrained."""
    from diffusers import AutoencoderKL, AutoencoderKLFlux2, AutoencoderKLWan

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("vaes")
    _tiny_kl(AutoencoderKL).save_pretrained(root / "sd_like" / "vae")  # hub repos keep the VAE in vae/
    _tiny_kl(AutoencoderKLFlux2).save_pretrained(root / "flux2")
    AutoencoderKLWan(
        base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[True],
        latents_mean=[0.1] * 4, latents_std=[2.0] * 4,
    ).save_pretrained(root / "wan")
    return root


def test_autoencoder_kl_from_folder_with_subfolder(tiny_vae_folders, ct_crop):
    vae = load_vae(str(tiny_vae_folders / "sd_like"), device="cpu", subfolder="vae")
    assert (vae.name, vae.kind, vae.spatial_factor, vae.latent_channels) == ("AutoencoderKL", "image", 2, 4)
    assert vae.describe()["scaling_factor"] == pytest.approx(0.18215)
    result = reconstruct_volume(ct_crop, vae, compute_metrics=False)
    assert result.volume.same_grid(ct_crop)
    assert result.settings["latent_shape"] == [1, 4, 6, 20, 26]


def test_sampling_only_with_explicit_seed(tiny_vae_folders, ct_crop):
    vae = load_vae(str(tiny_vae_folders / "sd_like" / "vae"), device="cpu")
    mean_a = reconstruct_volume(ct_crop, vae, compute_metrics=False).volume.array
    mean_b = reconstruct_volume(ct_crop, vae, compute_metrics=False).volume.array
    seed_a = reconstruct_volume(ct_crop, vae, seed=3, compute_metrics=False).volume.array
    seed_b = reconstruct_volume(ct_crop, vae, seed=3, compute_metrics=False).volume.array
    seed_c = reconstruct_volume(ct_crop, vae, seed=4, compute_metrics=False).volume.array
    assert np.array_equal(mean_a, mean_b)
    assert np.array_equal(seed_a, seed_b)
    assert not np.array_equal(seed_a, seed_c) and not np.array_equal(seed_a, mean_a)


def test_flux2_from_folder(tiny_vae_folders, ct_crop):
    vae = load_vae(str(tiny_vae_folders / "flux2"), device="cpu")
    assert (vae.name, vae.kind, vae.latent_channels) == ("AutoencoderKLFlux2", "image", 4)
    result = reconstruct_volume(ct_crop, vae, compute_metrics=False)
    assert result.volume.shape == ct_crop.shape


def test_wan_video_vae_windows(tiny_vae_folders, ct_crop):
    vae = load_vae(str(tiny_vae_folders / "wan"), device="cpu")
    assert (vae.kind, vae.temporal_factor, vae.frame_step, vae.window_frames) == ("video", 2, 4, 65)
    deep = type(ct_crop)(np.concatenate([ct_crop.array] * 3), ct_crop.spacing, ct_crop.origin, ct_crop.direction)
    result = reconstruct_volume(deep, vae, window_slices=9, overlap=4, compute_metrics=False)
    assert result.volume.shape == deep.shape
    # 18 slices in windows of 9 overlapping by 4: starts 0, 5, 9
    assert result.settings["latent_shape"][0] == 3 and result.settings["window_slices"] == 9
    with pytest.raises(ConfigError, match="1 \\+ 4k"):
        reconstruct_volume(deep, vae, window_slices=8)
    with pytest.raises(ConfigError, match="overlap"):
        reconstruct_volume(deep, vae, window_slices=9, overlap=9)


def test_unsupported_or_missing_diffusers_models(tmp_path):
    from diffusers import AutoencoderTiny

    AutoencoderTiny(encoder_block_out_channels=(8,), decoder_block_out_channels=(8,),
                    num_encoder_blocks=(1,), num_decoder_blocks=(1,), latent_channels=4).save_pretrained(tmp_path / "tiny")
    with pytest.raises(ConfigError, match="AutoencoderTiny.*not supported"):
        load_vae(str(tmp_path / "tiny"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="the folder has no config.json"):
        load_vae(str(tmp_path / "empty"), device="cpu")
    with pytest.raises(ConfigError, match="not a registered backend"):
        load_vae("no-such-org/no-such-vae", device="cpu")
    (tmp_path / "weights.pth").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a folder"):
        load_vae(str(tmp_path / "weights.pth"), device="cpu")


class DriftingVideoVAE:
    """A video 'VAE' whose output drifts along each window, as real ones do.

    Latents are the frames themselves; decoding adds a bias that grows with
    the frame's position in its window. Disjoint windows therefore show a
    jump at every window border; blended windows must not.
    """

    name, kind, latent_channels, spatial_factor = "drift", "video", 3, 1
    temporal_factor, frame_step, window_frames = 1, 4, 9
    device, dtype = "cpu", torch.float32

    def encode(self, images, generator=None):
        return images.clone()

    def decode(self, latents):
        frames = latents.shape[2]
        drift = torch.linspace(0, 0.2, frames).view(1, 1, frames, 1, 1)
        return (latents + drift).clamp(0, 1)

    def describe(self):
        return {"backend": "drift", "kind": "video", "latent_channels": 3}


def test_video_windows_blend_without_seams():
    from napari_ctfoundation.engine.volume import Volume

    flat = Volume(np.zeros((30, 8, 8), np.float32))  # 0 HU: unit 0.5 in the default window
    vae = DriftingVideoVAE()

    def border_jumps(overlap):
        out = reconstruct_volume(flat, vae, window_slices=9, overlap=overlap, compute_metrics=False)
        return np.abs(np.diff(out.volume.array.mean(axis=(1, 2))))

    seams = border_jumps(0)
    blended = border_jumps(4)
    interior_step = 0.2 / 8 * 2000  # HU per slice inside one window
    assert seams.max() > 5 * interior_step  # disjoint windows: a seam (~400 HU)
    assert blended.max() <= 1.01 * interior_step  # blended: never steeper than the drift itself
