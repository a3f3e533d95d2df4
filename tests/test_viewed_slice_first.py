"""Issue 13 part 1: the viewed slice first, then the rest as it arrives.

Engine: slabs start at ``start_slice`` and go outward; the slabs delivered
add up exactly to the returned volume, which equals a plain run (image and
video VAEs); cancel between slabs leaves nothing half-written.
Widget: it starts at the slice the viewer shows, ``[recon]`` appears after
the first slab and fills in live, slices not done yet are NaN and the layers
are hidden while the viewed slice is one of them.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_ctfoundation.engine.errors import ConfigError, OperationCancelled
from napari_ctfoundation.engine.latents import decode_latents, encode_volume
from napari_ctfoundation.engine.reconstruct import reconstruct_volume
from napari_ctfoundation.engine.slabs import outward_order
from napari_ctfoundation.engine.vae import load_vae
from napari_ctfoundation.engine.volume import Volume
from napari_ctfoundation.engine.window import HUWindow


def _ct_like(depth=11, height=24, width=40, seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    array = rng.normal(0, 300, (depth, height, width)).astype(np.float32)
    array[:, :4] = -1024  # air
    array[:, -3:] = 1800  # bone beyond the default window
    return Volume(array, spacing=(0.8, 0.8, 2.0))


def _collect(volume, vae, **kwargs):
    slabs = []
    result = reconstruct_volume(volume, vae, compute_metrics=False,
                                on_slab=lambda z0, z1, hu: slabs.append((z0, z1, hu.copy())), **kwargs)
    return result, slabs


def test_outward_order():
    assert outward_order(5, 2) == [2, 1, 3, 0, 4]
    assert outward_order(5, 0) == [0, 1, 2, 3, 4]
    assert outward_order(4, 3) == [3, 2, 1, 0]
    assert outward_order(1, 0) == [0]
    assert outward_order(5, 2, above_first=True) == [2, 3, 1, 4, 0]
    with pytest.raises(ConfigError):
        outward_order(3, 3)


@pytest.mark.parametrize("backend", ["bicubic_f16", "taef2"])
def test_image_vae_slabs_start_at_the_slice_and_add_up_to_a_plain_run(backend):
    vae = load_vae(backend, device="cpu")
    volume = _ct_like()
    plain = reconstruct_volume(volume, vae, batch_size=3, compute_metrics=False).volume.array
    result, slabs = _collect(volume, vae, batch_size=3, start_slice=7)
    # batches of 3 on the plain grid: [6, 9) holds slice 7, then below, above, ...
    assert [(z0, z1) for z0, z1, _ in slabs] == [(6, 9), (3, 6), (9, 11), (0, 3)]
    assembled = np.full(volume.shape, np.nan, np.float32)
    for z0, z1, hu in slabs:
        assert hu.dtype == np.float32 and np.isnan(assembled[z0:z1]).all()  # each slice once
        assembled[z0:z1] = hu
    assert np.array_equal(assembled, result.volume.array)
    assert np.array_equal(result.volume.array, plain)  # identical, not just close
    # the latent export path decodes to the same volume
    latent = encode_volume(volume, vae, batch_size=3)
    assert np.array_equal(decode_latents(latent, vae, batch_size=3).array, plain)


class SamplingImageVAE:
    """Image 'VAE' whose latents are sampled: the frame plus noise from the generator."""

    name, kind, latent_channels, spatial_factor = "sampling", "image", 3, 1
    device, dtype = "cpu", torch.float32

    def encode(self, images, generator=None):
        if generator is None:
            return images.clone()
        return images + 0.05 * torch.randn(images.shape, generator=generator)

    def decode(self, latents):
        return latents.clamp(0, 1)

    def describe(self):
        return {"backend": "sampling", "kind": "image", "latent_channels": 3}


def test_seeded_sampling_does_not_depend_on_the_order():
    vae = SamplingImageVAE()
    volume = _ct_like(depth=6, height=16, width=16)
    plain = reconstruct_volume(volume, vae, batch_size=2, seed=5, compute_metrics=False).volume.array
    late = reconstruct_volume(volume, vae, batch_size=2, seed=5, start_slice=5, compute_metrics=False).volume.array
    other = reconstruct_volume(volume, vae, batch_size=2, seed=6, compute_metrics=False).volume.array
    mean = reconstruct_volume(volume, vae, batch_size=2, compute_metrics=False).volume.array
    assert np.array_equal(plain, late)
    assert not np.array_equal(plain, other) and not np.array_equal(plain, mean)


class DriftingVideoVAE:
    """Video 'VAE': latents are the frames, decoding adds a drift along the window."""

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


@pytest.mark.parametrize("start", [0, 13, 29])
def test_video_vae_slabs_equal_the_blended_windows_of_a_plain_run(start):
    vae = DriftingVideoVAE()
    volume = _ct_like(depth=30, height=8, width=8)
    plain = reconstruct_volume(volume, vae, window_slices=9, overlap=4, compute_metrics=False)
    assert plain.settings["window_slices"] == 9 and plain.settings["overlap"] == 4
    result, slabs = _collect(volume, vae, window_slices=9, overlap=4, start_slice=start)
    # the start slice is final after the windows covering it: at most the second stretch delivered
    assert any(z0 <= start < z1 for z0, z1, _ in slabs[:2])
    covered = np.zeros(volume.shape[0], int)
    for z0, z1, hu in slabs:
        covered[z0:z1] += 1
        assert np.array_equal(hu, result.volume.array[z0:z1])
    assert (covered == 1).all()
    assert np.array_equal(result.volume.array, plain.volume.array)
    # ... and both equal the latent path's blend (engine.latents.decode_latents)
    latent = encode_volume(volume, vae, window_slices=9, overlap=4)
    assert np.array_equal(decode_latents(latent, vae).array, plain.volume.array)


def test_cancel_between_slabs_leaves_nothing_half_written():
    vae = load_vae("bicubic_f16", device="cpu")
    volume = _ct_like()
    out = np.full(volume.shape, np.nan, np.float32)
    slabs = []
    with pytest.raises(OperationCancelled, match="cancelled after 4 of 11 slices"):
        reconstruct_volume(volume, vae, batch_size=2, start_slice=5, out=out, compute_metrics=False,
                           on_slab=lambda z0, z1, hu: slabs.append((z0, z1)),
                           cancel=lambda: len(slabs) >= 2)
    assert slabs == [(4, 6), (2, 4)]
    done = ~np.isnan(out).all(axis=(1, 2))
    assert done.tolist() == [z in range(2, 6) for z in range(11)]  # whole slabs only
    assert not np.isnan(out[2:6]).any()
    with pytest.raises(ConfigError, match="start_slice 11"):
        reconstruct_volume(volume, vae, start_slice=11)


# ----------------------------------------------------------------- widget


@pytest.mark.gui
def test_widget_shows_the_viewed_slice_first_and_fills_in_live(make_napari_viewer, qtbot):
    from qtpy.QtCore import QObject, Qt

    from napari_ctfoundation.widgets.reconstruct import ReconstructionWidget

    viewer = make_napari_viewer()
    volume = _ct_like(depth=9, height=32, width=32)
    ct = viewer.add_image(volume.array, name="ct", scale=(2.0, 0.8, 0.8), contrast_limits=(-160, 240))
    viewer.dims.set_current_step(0, 6)  # the user looks at slice 6
    widget = ReconstructionWidget(viewer)
    widget.backend_combo.setCurrentText("bicubic_f16")
    widget.device_combo.setCurrentText("cpu")  # one slice per slab on the CPU

    # Hold the engine after each slab until the UI has shown it, so what the
    # user saw after each slab is observed exactly (no race with later slabs).
    shown = threading.Event()
    seen, opacities = [], []

    class Recorder(QObject):  # lives in the UI thread: a queued slot after the widget's own
        def record(self, live, z0, z1):
            layer = viewer.layers["ct [recon]"] if "ct [recon]" in viewer.layers else None
            diff = viewer.layers["ct [difference]"] if "ct [difference]" in viewer.layers else None
            finite = ~np.isnan(np.asarray(layer.data)).all(axis=(1, 2)) if layer is not None else None
            diff_finite = ~np.isnan(np.asarray(diff.data)).all(axis=(1, 2)) if diff is not None else None
            seen.append(((z0, z1), finite, diff_finite, widget.metrics_label.text(),
                         viewer.layers.selection.active is layer))
            if len(seen) == 1:  # scrolling to a slice not done yet hides the layers, back shows them
                opacities.append(layer.opacity)
                viewer.dims.set_current_step(0, 0)
                opacities.append((layer.opacity, diff.opacity))
                viewer.dims.set_current_step(0, 6)
                opacities.append(layer.opacity)
            shown.set()

    recorder = Recorder()
    widget.slab_ready.connect(recorder.record)

    def gate(*_):  # engine thread
        assert shown.wait(30), "the UI did not show a slab within 30 s"
        shown.clear()

    widget.slab_ready.connect(gate, Qt.ConnectionType.DirectConnection)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert widget.runner.last_outcome.status == "done", widget.runner.last_outcome.message

    assert opacities == [1.0, (0.0, 0.0), 1.0]
    order = [slab for slab, *_ in seen]
    assert order == [(6, 7), (5, 6), (7, 8), (4, 5), (8, 9), (3, 4), (2, 3), (1, 2), (0, 1)]
    done = set()
    for (z0, z1), finite, diff_finite, metrics, selected in seen:
        done.update(range(z0, z1))
        # the layer exists from the first slab on; exactly the slices done so far are
        # filled, the others are NaN (transparent), never zeros that look like air
        assert finite is not None and set(np.flatnonzero(finite)) == done
        assert set(np.flatnonzero(diff_finite)) == done
        assert metrics == "" and selected
    recon = viewer.layers["ct [recon]"]
    plain = reconstruct_volume(volume, "bicubic_f16", device="cpu", batch_size=1, compute_metrics=False)
    assert np.array_equal(np.asarray(recon.data), plain.volume.array)
    np.testing.assert_allclose(viewer.layers["ct [difference]"].data,
                               plain.volume.array - np.clip(volume.array, -1000, 1000), atol=1e-3)
    assert "PSNR" in widget.metrics_label.text() and recon.metadata["status"] == "complete"
    assert recon.metadata["metrics"]["psnr_db"] > 10
    assert tuple(recon.contrast_limits) == tuple(ct.contrast_limits)
    viewer.dims.set_current_step(0, 0)
    assert recon.opacity == 1.0  # complete: no longer follows the slider
