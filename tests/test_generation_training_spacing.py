"""A model trained on a resampled cache generates at its training spacing and returns the mask's exact grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.generation.denoiser import ConditionalDenoiser, denoiser_config
from napari_ctfoundation.engine.volume import Volume

from _generation_helpers import TINY_DENOISER, tiny_bert_folder, tiny_pipeline_config, write_tiny_dataset

TEXT_DIM = 12
RAS = np.diag([-1.0, -1.0, 1.0])  # stored like a NIfTI: generate() works in display orientation


def _config(model, spacing=None):
    return tiny_pipeline_config(model, TEXT_DIM, **({} if spacing is None else {"spacing_xyz": spacing}))


def _pipe(tmp_path, spacing=None, name="m"):
    from napari_ctfoundation.engine.generation.pipeline import GenerationPipeline

    torch.manual_seed(0)
    model = ConditionalDenoiser(denoiser_config(**TINY_DENOISER, latent_channels=4, text_dim=TEXT_DIM))
    GenerationPipeline(model, _config(model, spacing)).save_pretrained(tmp_path / name)
    return GenerationPipeline.from_pretrained(tmp_path / name, device="cpu")


def _organs(spacing=(0.75, 0.75, 2.5), shape=(4, 48, 64)) -> Volume:
    labels = np.zeros(shape, np.uint8)
    z, y, x = shape
    labels[:, y // 4: 3 * y // 4, x // 4: x // 2] = 5  # liver
    labels[:, y // 4: 3 * y // 4, x // 2: 3 * x // 4] = 1  # spleen
    return Volume(labels, spacing=spacing, origin=(10.0, -20.0, 30.0), direction=RAS,
                  metadata={"source_orientation": "RAS"})


@pytest.fixture
def fake_decode(monkeypatch):
    """decode_latents without a VAE: a ramp in physical x (mm), recorded per call, on the grid it is given."""
    import napari_ctfoundation.engine.latents as latents_mod

    calls = []

    def decode(lv, vae, cancel=None):
        grid = Volume.from_geometry_dict(np.zeros(lv.shape_zyx, np.float32), lv.geometry, decoded_from="fake")
        xs = grid.origin[0] + grid.direction[0, 0] * grid.spacing[0] * np.arange(grid.shape[2])
        grid.array[:] = xs[None, None, :].astype(np.float32)
        calls.append(grid)
        return grid

    monkeypatch.setattr(latents_mod, "decode_latents", decode)
    return calls


def _exact_grid(a: Volume, b: Volume) -> bool:
    return (a.shape == b.shape and a.spacing == b.spacing and a.origin == b.origin
            and np.array_equal(a.direction, b.direction))


def test_generates_at_training_spacing_and_returns_the_mask_grid(tmp_path, fake_decode):
    pipe = _pipe(tmp_path, spacing=[1.5, 1.5, 0])
    organs = _organs()
    disease = organs.with_array(np.where(organs.array == 5, 3, 0).astype(np.uint8))
    seen = []
    original = pipe.condition
    pipe.condition = lambda o, d, hw: seen.append((o.shape, None if d is None else d.shape)) or original(o, d, hw)
    res = pipe.generate(organs, "", disease, seed=2, steps=2)
    display = organs.to_display()
    # sampled on the coarse grid: 48x64 at 0.75 mm -> 24x32 at 1.5 mm -> 3x4 latent cells; z kept (0 = native)
    assert seen == [((4, 24, 32), (4, 24, 32))]
    assert res.latents.shape == (4, 4, 3, 4)
    assert fake_decode[0].spacing == (1.5, 1.5, 2.5) and fake_decode[0].shape == (4, 24, 32)
    assert res.settings["generated_at_spacing"] == [1.5, 1.5, 2.5]
    assert res.volume.metadata["generation"]["generated_at_spacing"] == [1.5, 1.5, 2.5]
    # back on the mask's exact grid: shape, spacing, origin, direction, and the file orientation to write it in
    assert _exact_grid(res.volume, display) and res.volume.array.dtype == np.float32
    assert res.volume.to_source_orientation().same_grid(organs, atol=1e-9)
    # linear interpolation of the coarse ramp; the far edge (past the last coarse centre) takes the nearest value
    xs = display.origin[0] + display.spacing[0] * np.arange(display.shape[2])
    inside = xs <= fake_decode[0].origin[0] + 1.5 * 31
    assert np.allclose(res.volume.array[0, 0, inside], xs[inside], atol=1e-3)
    assert np.allclose(res.volume.array[0, 0, ~inside], fake_decode[0].array[0, 0, -1], atol=1e-3)


def test_a_mask_already_at_the_training_spacing_is_not_resampled(tmp_path, fake_decode, monkeypatch):
    import napari_ctfoundation.engine.resample as resample_mod

    def refuse(*args, **kwargs):
        raise AssertionError("resampled a mask already on the training spacing")

    organs = _organs(spacing=(1.50004, 1.5, 2.5), shape=(4, 24, 32))  # within 1e-4 of 1.5: used as it is
    plain = _pipe(tmp_path, name="plain").generate(organs, "", seed=4, steps=2)
    monkeypatch.setattr(resample_mod, "resample_onto", refuse)
    near = organs
    res = _pipe(tmp_path, spacing=[1.5, 1.5, 2.5], name="fine").generate(near, "", seed=4, steps=2)
    assert np.array_equal(res.latents, plain.latents) and np.array_equal(res.volume.array, plain.volume.array)
    assert res.settings["generated_at_spacing"] == [1.5, 1.5, 2.5] and res.volume.spacing == near.spacing


def test_no_training_spacing_is_todays_generation(tmp_path, fake_decode, monkeypatch):
    """Without the field: the mask's own grid, no resampling, the latents of a direct sample, no new setting."""
    import napari_ctfoundation.engine.resample as resample_mod
    from napari_ctfoundation.engine.generation.conditioning import latent_grid
    from napari_ctfoundation.engine.generation.sampling import sample_latents

    def refuse(*args, **kwargs):
        raise AssertionError("resampled without a training spacing")

    monkeypatch.setattr(resample_mod, "resample_to_spacing", refuse)
    monkeypatch.setattr(resample_mod, "resample_onto", refuse)
    pipe = _pipe(tmp_path)
    assert "spacing_xyz" not in pipe.config
    organs = _organs()
    res = pipe.generate(organs, "", seed=5, steps=2)
    display = organs.to_display()
    # the pre-change path, by hand: condition on the mask's grid, sample, denormalise
    t, h, w, ph, pw = latent_grid(display.shape, 8)
    cond = pipe.condition(display.array, None, (ph, pw))
    tokens = np.zeros((1, 4, TEXT_DIM), np.float32)
    z = sample_latents(pipe.denoiser, pipe.config["scheduler"], cond, tokens, None, latent_channels=4, seed=5,
                       steps=2, sampler="ddim", guidance_mask=1.0, guidance_text=1.0, window=4, overlap=2,
                       device="cpu")
    assert res.latents.shape == (4, 4, 6, 8) and np.array_equal(res.latents, pipe.denormalise(z))
    assert "generated_at_spacing" not in res.settings
    assert _exact_grid(res.volume, display) and fake_decode[0].spacing == display.spacing


def test_pipeline_json_with_and_without_the_field(tmp_path):
    from napari_ctfoundation.engine.generation.pipeline import GenerationPipeline

    old = _pipe(tmp_path, name="old")  # an older file: no spacing_xyz
    assert json.loads((tmp_path / "old" / "pipeline.json").read_text()).get("spacing_xyz") is None
    new = _pipe(tmp_path, spacing=[1.5, 1.5, 0], name="new")
    assert new.config["spacing_xyz"] == [1.5, 1.5, 0] and old.config.get("spacing_xyz") is None
    # older readers see an extra key only: everything they use is unchanged
    a = json.loads((tmp_path / "old" / "pipeline.json").read_text())
    b = json.loads((tmp_path / "new" / "pipeline.json").read_text())
    assert {k: v for k, v in b.items() if k != "spacing_xyz"} == a
    for bad in ([1.5, 1.5], [1.5, -1, 0], "1.5,1.5,0", [1.5, True, 0]):
        cfg = dict(b, spacing_xyz=bad)
        (tmp_path / "new" / "pipeline.json").write_text(json.dumps(cfg))
        with pytest.raises(ConfigError, match="spacing_xyz .* is not three values"):
            GenerationPipeline.from_pretrained(tmp_path / "new", device="cpu")


def test_resample_onto_keeps_the_reference_grid_exactly():
    from napari_ctfoundation.engine.resample import resample_onto, resample_to_spacing

    fine = _organs().to_display()
    coarse = resample_to_spacing(fine, (1.5, 1.5, 0), labels=True)
    back = resample_onto(coarse, fine, labels=True)
    assert _exact_grid(back, fine) and back.array.dtype == np.uint8
    assert set(np.unique(back.array)) == {0, 1, 5}
    assert resample_onto(fine, fine, labels=True) is fine
    # a CT: linear, air outside unless extrapolated
    ct = coarse.with_array(np.full(coarse.shape, 40.0, np.float32))
    out = resample_onto(ct, fine, labels=False)
    assert out.array.dtype == np.float32 and out.array[:, :, -1].max() == -1000.0
    assert np.allclose(resample_onto(ct, fine, labels=False, extrapolate=True).array, 40.0)


# ------------------------------------------------------------------ training
def test_training_spacing_from_the_cache_index():
    from napari_ctfoundation.engine.generation.train import training_spacing

    assert training_spacing({"cases": [{"resampled_to": [6, 6, 0]}, {"resampled_to": [6.0, 6.0, 0.0]}]}) == [6.0, 6.0, 0.0]
    assert training_spacing({"cases": [{"resampled_to": None}, {"resampled_to": None}]}) is None
    assert training_spacing({"cases": [{"resampled_to": [6, 6, 0]}, {"resampled_to": None}]}) is None  # mixed
    assert training_spacing({"cases": [{"resampled_to": [6, 6, 0]}, {"resampled_to": [3, 3, 0]}]}) is None
    assert training_spacing({"cases": [{"name": "from an older cache"}]}) is None


@pytest.mark.slow
def test_train_records_the_cache_spacing_and_sample_uses_it(tmp_path, nifti_ct, nifti_organs, capsys):
    from napari_ctfoundation.cli import main
    from napari_ctfoundation.engine.generation.cache import build_cache, read_index
    from napari_ctfoundation.engine.generation.train import TrainConfig, _pipeline_config, train
    from napari_ctfoundation.engine.io import read_labels, read_volume

    manifest = write_tiny_dataset(tmp_path / "data", nifti_ct, nifti_organs, n_cases=1)
    cache = build_cache(manifest, tmp_path / "cache", device="cpu", spacing_xyz=(6, 6, 0))
    bert = tiny_bert_folder(tmp_path / "bert")
    cfg = TrainConfig(steps=1, crop=(4, 4, 4), batch_size=1, device="cpu", text_encoder=f"hf:{bert}", max_tokens=8,
                      preview_every=0, denoiser=TINY_DENOISER)
    result = train(cache, tmp_path / "run", cfg)
    assert json.loads((result.model_dir / "pipeline.json").read_text())["spacing_xyz"] == [6.0, 6.0, 0.0]
    # a native cache (same data, no --spacing) records nothing
    native = build_cache(manifest, tmp_path / "native", device="cpu")
    desc = {"spec": "x", "dim": 32, "max_tokens": 8}
    assert "spacing_xyz" not in _pipeline_config(read_index(native), cfg, {}, {}, desc, 1, 0.0)
    # gen sample on the native 3 mm mask: sampled at 6 mm, written on the mask's grid, recorded in the sidecar
    organs = manifest.parent / "organs0.nii.gz"
    out = tmp_path / "gen.nii.gz"
    assert main(["gen", "sample", str(result.model_dir), str(out), "--organs", str(organs), "--steps", "2",
                 "--device", "cpu"]) == 0
    assert "generated at the model's training spacing 6x6x3 mm" in capsys.readouterr().out
    generated, mask = read_volume(out), read_labels(organs)
    assert generated.same_grid(mask) and generated.shape == (8, 40, 56)
    assert -1000.5 <= generated.array.min() and generated.array.max() <= 1000.5
    side = json.loads((tmp_path / "gen.json").read_text())
    assert side["generated_at_spacing"] == [6.0, 6.0, 3.0] and side["geometry"]["shape_zyx"] == [8, 40, 56]
