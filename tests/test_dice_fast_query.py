"""DiCE fast grid query (issue 13 part 2): exact restructured decoder, coarse to fine, --grid / --query."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_ctfoundation.cli import main  # noqa: E402
from napari_ctfoundation.engine.errors import ConfigError  # noqa: E402
from napari_ctfoundation.engine.io import read_volume  # noqa: E402
from napari_ctfoundation.engine.sparse.dice.checkpoint import save_dice  # noqa: E402
from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig  # noqa: E402
from napari_ctfoundation.engine.sparse.dice.fast_query import PointQuery, coarse_to_fine, grid_axis  # noqa: E402
from napari_ctfoundation.engine.sparse.dice.model import DiCE, grid_points  # noqa: E402
from napari_ctfoundation.engine.sparse.dice.predict import predict_grid, regrid  # noqa: E402
from napari_ctfoundation.engine.sparse.geometry import PRESETS  # noqa: E402

GEO = replace(PRESETS["deepsparse"].scaled(8, name="test-32"), n_candidates=24)  # 32^3 grid, 32^2 detector


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-20)))


@pytest.fixture(scope="module")
def half_air_model():
    """A tiny random DiCE whose output is air (clipped to 0) on part of the cube and not elsewhere."""
    torch.manual_seed(0)
    model = DiCE(DiCEConfig.tiny(GEO)).eval()
    proj = np.random.default_rng(0).random((6, 32, 32)).astype(np.float32) * 50
    proj[:, :, :12] = 0  # a dark band, so the features (and the output) vary across the cube
    angles = GEO.candidate_angles[GEO.select_views(6)]
    with torch.inference_mode():
        feats, mats, qs, _ = model.features(torch.as_tensor(proj)[None], torch.tensor(angles, dtype=torch.float32)[None])
        raw = model.query(grid_points(GEO)[None], model.volume_from_quantised(qs), feats, mats)[0]
        # Shift the output so about 60 % of the voxels fall below 0 and 40 % above (scaled up to span [0, 1]).
        model.point_decoder.head.weight.mul_(1.0 / float(raw.std() + 1e-6))
        model.point_decoder.head.bias.mul_(1.0 / float(raw.std() + 1e-6))
        model.point_decoder.head.bias.sub_(float(np.quantile(raw.numpy(), 0.6)) / float(raw.std() + 1e-6))
    return model, proj, angles


@pytest.mark.parametrize("skip_at", [1, 0, 9])
def test_point_query_equals_dice_query(skip_at):
    torch.manual_seed(1)
    config = DiCEConfig.tiny(GEO)
    config.mlp_skip_at = skip_at  # 9: no skip layer at all
    model = DiCE(config).eval()
    proj = torch.rand(1, 6, 32, 32) * 50
    angles = torch.tensor(GEO.candidate_angles[GEO.select_views(6)], dtype=torch.float32)[None]
    with torch.inference_mode():
        feats, mats, qs, _ = model.features(proj, angles)
        vol3d = model.volume_from_quantised(qs)
        # inside the cube and beyond it (border padding in 3D, zeros off the detector in 2D)
        points = (torch.rand(3000, 3) * 2.4 - 1.2) * model.half_extent
        dense = model.query(points[None], vol3d, feats, mats)[0]
        fast = PointQuery(model, vol3d, feats, mats)(points)
    assert float(dense.std()) > 0
    torch.testing.assert_close(fast, dense, atol=1e-5, rtol=1e-5)


def test_fast_grid_matches_dense_on_trained_and_finer_grids(half_air_model):
    model, proj, angles = half_air_model
    for n in (32, 48):
        dense = predict_grid(model, proj, angles, grid=n, query="dense")
        stats = {}
        fast = predict_grid(model, proj, angles, grid=n, query="fast", stats=stats)
        assert fast.shape == dense.shape == (n, n, n)
        assert 0.05 < (dense == 0).mean() < 0.95  # both air and tissue
        assert 0 < stats["queried_fraction"] <= 1
        assert _psnr(fast, dense) >= 45.0
        assert (np.abs(fast - dense) > 1e-5).mean() < 0.05  # interpolation only where it cannot matter
    exact = predict_grid(model, proj, angles, grid=40, query="fast", stride=1)
    np.testing.assert_allclose(exact, predict_grid(model, proj, angles, grid=40, query="dense"), atol=1e-5)


def test_coarse_to_fine_skips_air_and_keeps_the_body():
    """A smooth ball in air: only cells near the ball are queried, the rest is interpolated air."""
    calls = []

    def ball(points):
        calls.append(len(points))
        r = points.norm(dim=1)
        return 0.6 * torch.sigmoid((60.0 - r) / 3.0) - 0.05 + 0.02 * torch.cos(points[:, 0] / 7.0)

    n, extent = 64, 400.0
    stats = {}
    out = coarse_to_fine(ball, extent, n, stride=4, air=0.01, chunk=10_000, stats=stats)
    axis = grid_axis(extent, n)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    truth = ball(torch.stack([x, y, z], -1).reshape(-1, 3)).reshape(n, n, n).numpy()
    assert stats["queried_fraction"] < 0.25 and sum(calls[:-1]) == stats["coarse_points"] + stats["refined_points"]
    assert _psnr(np.clip(out, 0, 1), np.clip(truth, 0, 1)) >= 60.0
    body = truth > 0.01
    np.testing.assert_allclose(out[body], truth[body], atol=1e-6)  # every non-air voxel is queried exactly


def test_dense_query_at_the_trained_grid_is_the_original_query(half_air_model):
    model, proj, angles = half_air_model
    with torch.inference_mode():
        feats, mats, qs, _ = model.features(torch.as_tensor(proj)[None], torch.tensor(angles, dtype=torch.float32)[None])
        ref = model.query(grid_points(GEO)[None], model.volume_from_quantised(qs), feats, mats)[0]
    ref = np.clip(ref.numpy().reshape(32, 32, 32), 0, 1)
    np.testing.assert_allclose(predict_grid(model, proj, angles, query="dense"), ref, atol=1e-4)  # float rounding


def test_progress_reaches_its_total(half_air_model):
    model, proj, angles = half_air_model
    seen = []
    predict_grid(model, proj, angles, grid=48, chunk=2000, progress=lambda d, t, u: seen.append((d, t, u)))
    assert seen[-1][0] == seen[-1][1] and seen[-1][2] == "chunks"


def test_bad_grid_and_query_values():
    model = DiCE(DiCEConfig.tiny(GEO)).eval()
    proj = np.zeros((6, 32, 32), np.float32)
    angles = GEO.candidate_angles[GEO.select_views(6)]
    for grid in (0, 1, 5000, 2.5, True):
        with pytest.raises(ConfigError, match="--grid"):
            predict_grid(model, proj, angles, grid=grid)
    with pytest.raises(ConfigError, match="--query 'sparse': use fast or dense"):
        predict_grid(model, proj, angles, query="sparse")


def test_regrid_keeps_the_cube():
    grid = {"shape_zyx": [32] * 3, "spacing_xyz": [12.8] * 3, "origin_xyz_lps": [-198.4, -100.0, 50.0],
            "direction": list(np.eye(3).ravel())}
    out = regrid(grid, 32, 12.8, 64)
    assert out["spacing_xyz"] == [6.4] * 3 and out["shape_zyx"] == [64] * 3
    # first and last voxel centres +- half a voxel bound the same cube
    for o_old, o_new in zip(grid["origin_xyz_lps"], out["origin_xyz_lps"]):
        assert o_old - 6.4 == pytest.approx(o_new - 3.2)
        assert o_old + 31 * 12.8 + 6.4 == pytest.approx(o_new + 63 * 6.4 + 3.2)


@pytest.mark.slow
def test_cli_grid_and_query(nifti_ct, tmp_path, capsys):
    torch.manual_seed(0)
    model = DiCE(DiCEConfig.tiny(GEO)).eval()
    with torch.no_grad():  # an untrained output is near-constant: shift it so part of the cube reads as air
        model.point_decoder.head.bias.add_(0.02 - float(model.point_decoder.head.bias))
    ckpt = save_dice(model, tmp_path / "ckpt")
    preset = GEO.save(tmp_path / "geometry.json")
    ct = tmp_path / "ct.nii.gz"
    shutil.copy(nifti_ct, ct)
    proj = tmp_path / "proj"
    assert main(["sparse", "simulate", str(ct), str(proj), "--views", "6", "--preset", str(preset)]) == 0
    base = ["sparse", "reconstruct", str(proj)]
    opts = ["--method", "dice", "--checkpoint", str(ckpt), "--device", "cpu", "--normalised"]
    assert main(base + [str(tmp_path / "fast.nii.gz")] + opts + ["--grid", "48"]) == 0
    assert main(base + [str(tmp_path / "dense.nii.gz")] + opts + ["--grid", "48", "--query", "dense"]) == 0
    assert main(base + [str(tmp_path / "native.nii.gz")] + opts) == 0
    fast, dense = read_volume(tmp_path / "fast.nii.gz"), read_volume(tmp_path / "dense.nii.gz")
    native = read_volume(tmp_path / "native.nii.gz")
    assert fast.shape == (48, 48, 48) and native.shape == (32, 32, 32)
    assert fast.spacing == pytest.approx((GEO.grid_extent / 48,) * 3)
    assert _psnr(fast.array, dense.array) >= 45.0
    # the 48^3 and 32^3 grids cover the same cube in world coordinates
    lo_fast = np.asarray(fast.origin) - np.asarray(fast.spacing) / 2
    lo_native = np.asarray(native.origin) - np.asarray(native.spacing) / 2
    np.testing.assert_allclose(lo_fast, lo_native, atol=1e-3)
    capsys.readouterr()
    for bad, message in ((["--grid", "abc"], "--grid 'abc'"), (["--grid", "0"], "--grid 0"),
                         (["--grid", "99999"], "--grid 99999"), (["--query", "sparse"], "--query 'sparse'")):
        assert main(base + [str(tmp_path / "bad.nii.gz")] + opts + bad) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err
    assert main(base + [str(tmp_path / "bad.nii.gz"), "--method", "fdk", "--grid", "48"]) == 2
    assert "apply to --method dice" in capsys.readouterr().err
    assert not (tmp_path / "bad.nii.gz").exists()
