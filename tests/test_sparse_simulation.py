"""Preprocessing, DRR simulation + noise, projection folders, FDK/SART round trip, metrics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from napari_ctfoundation.engine.errors import ConfigError, GeometryError, VolumeReadError
from napari_ctfoundation.engine.io import read_volume
from napari_ctfoundation.engine.sparse.geometry import PRESETS
from napari_ctfoundation.engine.sparse.metrics import psnr, sparse_metrics, ssim3d
from napari_ctfoundation.engine.sparse.preprocess import PAD_HU, Augment, keep_slab, to_grid
from napari_ctfoundation.engine.sparse.simulate import NoiseModel, ProjectionSet, simulate_projections

ROOT = Path(__file__).resolve().parents[1]
ABDOMEN = ROOT / "sample_data" / "ct_abdomen_3mm" / "ct.nii.gz"
SMALL = PRESETS["deepsparse"].scaled(8, name="test-32")  # 32^3 at 12.8 mm, 32^2 detector


@pytest.fixture(scope="module")
def grid():
    return to_grid(read_volume(ABDOMEN), SMALL)


def test_preprocessing_resamples_pads_and_scales(grid):
    assert grid.shape == (32, 32, 32)
    assert grid.spacing == (12.8, 12.8, 12.8)
    a = grid.array
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    # padding is -1000 HU -> 0; the body sits in the middle of the grid
    assert a[0].max() == 0 and a[-1].max() == 0
    assert a[16].mean() > 0.2
    # the grid is centred on the body, in the CT's world coordinates
    centre = np.array(grid.origin) + 15.5 * 12.8
    ct = read_volume(ABDOMEN)
    lo = ct.affine_lps() @ np.array([0, 0, 0, 1.0])
    hi = ct.affine_lps() @ np.array([*(np.array(ct.shape[::-1]) - 1), 1.0])
    assert np.all(centre >= np.minimum(lo, hi)[:3] - 1) and np.all(centre <= np.maximum(lo, hi)[:3] + 1)


def test_augmentation_zoom_enlarges_and_slab_keeps_a_short_range(grid):
    ct = read_volume(ABDOMEN)
    body = (grid.array > 0.25).sum()
    zoomed = to_grid(ct, SMALL, augment=Augment(zoom=1.3)).array
    # area scales with zoom^2 in-plane (z too: the zoom is isotropic), so clearly more body voxels
    assert (zoomed > 0.25).sum() > 1.5 * body
    shrunk = to_grid(ct, SMALL, augment=Augment(zoom=0.8)).array
    assert (shrunk > 0.25).sum() < 0.8 * body
    # a 30 mm slab of a 12.8 mm grid keeps at most 3 z-rows of body, everything else air
    slab = to_grid(ct, SMALL, augment=Augment(slab_mm=30.0, slab_position=0.5)).array
    rows = np.flatnonzero(slab.max(axis=(1, 2)) > 0)
    full_rows = np.flatnonzero(grid.array.max(axis=(1, 2)) > 0)
    assert 1 <= rows.size <= 3 < full_rows.size
    assert rows.min() >= full_rows.min() and rows.max() <= full_rows.max()


def test_keep_slab_positions_and_leaves_empty_volumes_alone():
    hu = np.full((20, 4, 4), PAD_HU, np.float32)
    hu[5:15] = 40.0  # body in rows 5..14
    top = keep_slab(hu, 1.0, 2.0, 0.0)
    assert np.flatnonzero(top.max(axis=(1, 2)) > PAD_HU).tolist() == [5, 6]
    bottom = keep_slab(hu, 1.0, 2.0, 1.0)
    assert np.flatnonzero(bottom.max(axis=(1, 2)) > PAD_HU).tolist() == [13, 14]
    assert np.array_equal(hu[5:15], np.full((10, 4, 4), 40.0))  # input untouched
    air = np.full((5, 2, 2), PAD_HU, np.float32)
    assert np.array_equal(keep_slab(air, 1.0, 2.0, 0.5), air)


def test_ct_too_small_for_the_grid_is_an_error():
    ct = read_volume(ABDOMEN)
    tiny = ct.with_array(ct.array)
    tiny.array = ct.array[14:16, 40:60, 40:60].copy()  # 6 mm thick vs a 410 mm grid
    with pytest.raises(GeometryError, match="too small for the reconstruction grid"):
        to_grid(tiny, SMALL)


def test_noise_model_seeded_and_unbiased():
    clean = np.full((4, 32, 32), 100.0, np.float32)
    noise = NoiseModel(photons=1e5, electronic_sigma=10.0)
    a = noise.apply(clean, np.random.default_rng(1))
    b = noise.apply(clean, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, clean)
    # mean count 1e5 * exp(-4) ~ 1832 photons: log-domain std ~ 1/sqrt(1832) / 0.04 ~ 0.58 mm
    assert abs(a.mean() - 100.0) < 0.1
    assert 0.4 < a.std() < 0.8
    assert np.array_equal(NoiseModel(enabled=False).apply(clean, np.random.default_rng(0)), clean)
    with pytest.raises(ConfigError, match="photon"):
        NoiseModel(photons=0)


def test_projection_folder_round_trip(grid, tmp_path):
    ps = simulate_projections(grid, SMALL, SMALL.select_views(6), seed=3, source="abdomen")
    assert ps.projections.shape == (6, 32, 32)
    assert ps.projections.max() > 50  # ~20 voxels of ~0.5 at 12.8 mm
    ps.save(tmp_path / "p")
    back = ProjectionSet.load(tmp_path / "p")
    np.testing.assert_allclose(back.projections, ps.projections)
    np.testing.assert_allclose(back.angles, ps.angles)
    assert back.geometry == SMALL and back.grid == ps.grid and back.seed == 3
    with pytest.raises(VolumeReadError, match="not a projection folder"):
        ProjectionSet.load(tmp_path)


def test_simulate_then_fdk_and_sart_round_trip(grid):
    from napari_ctfoundation.engine.sparse.methods import METHODS

    full = replace(SMALL, angle_range=360.0, n_candidates=90)
    ps = simulate_projections(grid, full, np.arange(90), noise=NoiseModel(enabled=False))
    fdk = METHODS.create("fdk", ps)
    assert fdk.same_grid(grid)
    scores = sparse_metrics(grid.array, fdk.array)
    assert scores["psnr"] > 25 and scores["ssim"] > 0.75
    assert np.corrcoef(fdk.array.ravel(), grid.array.ravel())[0, 1] > 0.95
    # 6 noisy views over 180 degrees: SART (positivity, iterations) beats FDK
    sparse = simulate_projections(grid, SMALL, SMALL.select_views(6), seed=0)
    f6 = sparse_metrics(grid.array, METHODS.create("fdk", sparse).array)
    s6 = sparse_metrics(grid.array, METHODS.create("sart", sparse, iterations=5).array)
    assert s6["psnr"] > f6["psnr"]
    with pytest.raises(ConfigError, match="iterations"):
        METHODS.create("sart", sparse, iterations=0)
    with pytest.raises(ConfigError, match="unknown sparse reconstruction method"):
        METHODS.get("nope")


def test_metrics_follow_the_paper():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    ref = rng.random((16, 16, 16))
    pred = np.clip(ref + rng.normal(0, 0.1, ref.shape), -0.5, 1.5)
    clipped = np.clip(pred, 0, 1)
    assert psnr(ref, pred) == pytest.approx(10 * np.log10(1 / np.mean((ref - clipped) ** 2)))
    assert ssim3d(ref, pred) == pytest.approx(structural_similarity(ref, clipped, data_range=1.0), abs=1e-9)
    assert ssim3d(ref, ref) == pytest.approx(1.0)
    with pytest.raises(GeometryError):
        sparse_metrics(ref, ref[:8])
