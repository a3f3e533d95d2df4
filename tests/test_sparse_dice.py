"""DiCE: sizes, tiny training (HyViP, step 1, step 2) with save/load/resume, checkpoint errors, inference."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_ctfoundation.engine.errors import ConfigError  # noqa: E402
from napari_ctfoundation.engine.sparse.dice.checkpoint import (  # noqa: E402
    SHIPPED,
    check_geometry,
    dice_predict,
    load_dice,
    save_dice,
)
from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig  # noqa: E402
from napari_ctfoundation.engine.sparse.dice.model import DiCE, parameter_count  # noqa: E402
from napari_ctfoundation.engine.sparse.geometry import PRESETS  # noqa: E402
from napari_ctfoundation.engine.sparse.simulate import NoiseModel  # noqa: E402
from napari_ctfoundation.engine.sparse.train import TrainSettings, _draw_points, build_cache, train_dice  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ABDOMEN = ROOT / "sample_data" / "ct_abdomen_3mm" / "ct.nii.gz"
# 32^3 grid, 32^2 detector, 24 candidates over 180 degrees: seconds per step
TINY_GEO = replace(PRESETS["deepsparse"].scaled(8, name="test-32"), n_candidates=24)


def test_paper_config_has_about_7m_parameters():
    n = parameter_count(DiCE(DiCEConfig.paper()))
    assert 6.5e6 < n < 7.5e6  # paper: about 7.2 M
    assert DiCEConfig.paper().point_channels == 368  # 128 + 16 + 32 + 64 + 128


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse_cache")
    files = build_cache([ABDOMEN], folder, TINY_GEO, augment=1, noise=NoiseModel(), seed=0)
    assert len(files) == 2
    again = build_cache([ABDOMEN], folder, TINY_GEO, augment=1, noise=NoiseModel(), seed=0)
    assert again == files  # cached once per volume
    return files


def _rows(path: Path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_train_save_load_resume_and_finetune(cache, tmp_path):
    torch.manual_seed(0)
    config = DiCEConfig.tiny(TINY_GEO)
    settings = TrainSettings(stage="pretrain", epochs=3, batch_size=2, lr=1e-3, points=512,
                             min_views=2, max_views=8, max_steps=2, device="cpu")
    out = train_dice(cache, tmp_path / "pre", settings, config=config)
    rows = _rows(out / "loss_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(2 <= int(r["views"]) <= 8 and np.isfinite(float(r["loss"])) for r in rows)
    model = load_dice(out)
    assert model.config.to_dict() == config.to_dict()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000001", "step_0000002"]
    # resume: continues at step 3 and appends to the log
    settings.max_steps = 3
    train_dice(cache, out, settings, config=config, resume=True)
    rows = _rows(out / "loss_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    # finetune step 1 then step 2 (encoder frozen, denoise layers added)
    s1 = train_dice(cache, tmp_path / "s1", TrainSettings(stage="step1", epochs=1, points=256, views=(6,),
                                                          max_steps=1, device="cpu"), init_checkpoint=out)
    before = {k: v.clone() for k, v in load_dice(s1).encoder.state_dict().items()}
    codebook = load_dice(s1).quant[0].embed.clone()
    s2 = train_dice(cache, tmp_path / "s2", TrainSettings(stage="step2", epochs=1, points=256, views=(6,),
                                                          max_steps=2, lr=1e-2, device="cpu"), init_checkpoint=s1)
    m2 = load_dice(s2)
    assert m2.config.denoise and m2.denoise is not None
    for k, v in m2.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(m2.quant[0].embed, codebook)
    assert float(_rows(s2 / "loss_log.csv")[0]["feature"]) >= 0
    assert any(p.abs().sum() > 0 for p in m2.denoise[0].body[-1].parameters())  # denoise layers trained


def test_finetune_needs_a_checkpoint(cache, tmp_path):
    with pytest.raises(ConfigError, match="--init"):
        train_dice(cache, tmp_path / "x", TrainSettings(stage="step1", device="cpu"))


def test_wrong_checkpoints_are_clear_errors(tmp_path):
    model = DiCE(DiCEConfig.tiny(TINY_GEO))
    folder = save_dice(model, tmp_path / "ck")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["encoder_channels"] = [8, 8, 8, 8]
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="weights do not match"):
        load_dice(folder)
    with pytest.raises(ConfigError, match="not a DiCE checkpoint"):
        load_dice(tmp_path)
    with pytest.raises(ConfigError, match="trained for geometry"):
        check_geometry(model.config, PRESETS["deepsparse"])


def test_inference_full_grid_in_chunks():
    torch.manual_seed(0)
    model = DiCE(DiCEConfig.tiny(TINY_GEO)).eval()
    proj = np.random.default_rng(0).random((6, 32, 32)).astype(np.float32) * 50
    angles = TINY_GEO.candidate_angles[TINY_GEO.select_views(6)]
    seen = []
    a = dice_predict(model, proj, angles, chunk=5000, query="dense", progress=lambda d, t, u: seen.append((d, t)))
    b = dice_predict(model, proj, angles, chunk=32 ** 3, query="dense")
    assert a.shape == (32, 32, 32) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_allclose(a, b, atol=1e-5)  # chunking does not change the result
    assert seen[-1] == (8, 8)  # 1 feature pass + 7 chunks


def test_shipped_checkpoint_loads():
    model = load_dice(SHIPPED)
    assert model.config.geo.name == "deepsparse-64"
    assert (SHIPPED / "model.safetensors").stat().st_size < 30e6


def test_body_points_land_in_and_near_the_body():
    vols = torch.zeros(2, 16, 16, 16)
    vols[:, 6:10, 6:10, 6:10] = 0.5  # a body cube; air elsewhere
    body = (vols[0] > 0.25).reshape(-1).numpy()
    rng = np.random.default_rng(0)
    inside = _draw_points(vols, TrainSettings(points=500, body_points=1.0, body_margin=0), 0.25, rng)
    assert body[inside].all()
    near = _draw_points(vols, TrainSettings(points=500, body_points=1.0, body_margin=2), 0.25, rng)
    z, y, x = np.unravel_index(near, (16, 16, 16))
    assert all(((4 <= c) & (c <= 11)).all() for c in (z, y, x))  # within 2 voxels of the cube
    assert not body[near].all() and body[near].any()  # the margin's air is sampled too
    half = _draw_points(vols, TrainSettings(points=1000, body_points=0.5, body_margin=0), 0.25, rng)
    assert body[half[:, :500]].all() and body[half[:, 500:]].mean() < 0.2  # the rest uniform (cube = 1.6 %)
    with pytest.raises(ConfigError, match="body-margin"):
        TrainSettings(body_margin=-1)


def test_density_scale_multiplies_volume_and_its_exact_projections():
    from napari_ctfoundation.engine.sparse.rtk import forward_project
    from napari_ctfoundation.engine.sparse.train import _scale_density

    geo = TINY_GEO
    rng = np.random.default_rng(0)
    vol = np.zeros((geo.grid_size,) * 3, np.float32)
    vol[10:22, 8:24, 8:24] = 0.5  # water-like block in air (0)
    angles = geo.candidate_angles[:3]
    proj = torch.from_numpy(forward_project(vol, angles, geo))[None]
    scaled_proj, scaled_vol = _scale_density(proj, torch.from_numpy(vol)[None], (0.8, 1.2), rng)
    factor = float(scaled_vol.max() / 0.5)
    assert 0.8 <= factor <= 1.2 and factor != 1.0
    # The scaled projections are the projections of the scaled volume (line integrals are linear in it).
    np.testing.assert_allclose(scaled_proj[0].numpy(), forward_project(scaled_vol[0].numpy(), angles, geo),
                               rtol=1e-4, atol=1e-4)
    # Two samples in one batch get their own factors; (1, 1) leaves the batch untouched.
    _, two = _scale_density(proj.repeat(2, 1, 1, 1), torch.ones(2, 4, 4, 4), (0.8, 1.2), rng)
    assert two[0, 0, 0, 0] != two[1, 0, 0, 0]
    same_proj, same_vol = _scale_density(proj, torch.ones(1, 4, 4, 4), (1.0, 1.0), rng)
    assert same_proj is proj and float(same_vol.sum()) == 64
    with pytest.raises(ConfigError, match="density-scale"):
        TrainSettings(density_scale=(1.2, 0.8))
