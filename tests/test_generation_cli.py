"""End to end through the CLI and the training engine: cache -> train (resume) -> sample -> evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ctfoundation.cli import main

from _generation_helpers import tiny_bert_folder, write_tiny_dataset

TINY_TRAIN = ["--channels", "8,16", "--attention", "0,1", "--norm-groups", "8", "--head-channels", "8",
              "--mask-channels", "4", "--context-dim", "16", "--crop", "4,4,4", "--batch-size", "2",
              "--device", "cpu", "--log-every", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, nifti_ct, nifti_organs):
    root = tmp_path_factory.mktemp("gen_cli")
    manifest = write_tiny_dataset(root / "data", nifti_ct, nifti_organs)
    bert = tiny_bert_folder(root / "bert")
    assert main(["gen", "cache", str(manifest), str(root / "cache"), "--device", "cpu"]) == 0
    args = ["gen", "train", str(root / "cache"), str(root / "run"), "--text-encoder", f"hf:{bert}",
            "--max-tokens", "8"] + TINY_TRAIN
    assert main(args + ["--steps", "4", "--checkpoint-every", "2", "--preview-every", "4"]) == 0
    return root, manifest, args


def test_training_outputs_and_resume(trained):
    from napari_ctfoundation.engine.generation.train import TrainConfig, train

    root, _, args = trained
    run = root / "run"
    log = [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in log)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002", "step_0000004"]
    assert (run / "previews" / "step_0000004.png").is_file()
    config = json.loads((run / "model" / "pipeline.json").read_text())
    assert config["training"]["steps"] == 4 and config["text_encoder"]["dim"] == 32
    assert config["vae"]["spec"] == "taef2" and len(config["vocabulary"]["organs"]) == 117
    # resume: the same command with more steps continues from step 4
    assert main(args + ["--steps", "6", "--checkpoint-every", "2", "--preview-every", "0"]) == 0
    log = [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log][-2:] == [5, 6]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000004", "step_0000006"]
    # a checkpoint from another architecture is refused, not silently mixed
    other = TrainConfig(steps=8, crop=(4, 4, 4), text_encoder=config["text_encoder"]["spec"], max_tokens=8,
                        denoiser={"mask_channels": 8, "context_dim": 16, "backbone_kwargs": {
                            "channels": [8, 16], "attention_levels": [False, True],
                            "norm_num_groups": 8, "num_head_channels": 8}})
    from napari_ctfoundation.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="another denoiser config"):
        train(root / "cache", run, other)


def test_sample_keeps_mask_geometry_and_writes_sidecar(trained, tmp_path):
    from napari_ctfoundation.engine.io import read_labels, read_volume

    root, manifest, _ = trained
    organs = manifest.parent / "organs0.nii.gz"
    out = tmp_path / "gen.nii.gz"
    cmd = ["gen", "sample", str(root / "run" / "model"), str(out), "--organs", str(organs),
           "--report", "Small lung nodule.", "--seed", "3", "--steps", "2", "--guidance", "2", "--device", "cpu"]
    assert main(cmd) == 0
    generated, mask = read_volume(out), read_labels(organs)
    assert generated.same_grid(mask)  # source orientation and affine of the organ mask
    assert -1000.5 <= generated.array.min() and generated.array.max() <= 1000.5
    side = json.loads((tmp_path / "gen.json").read_text())
    assert side["seed"] == 3 and side["steps"] == 2 and side["report"] == "Small lung nodule."
    assert side["guidance_mask"] == 2.0 and "torch" in side["versions"] and side["organ_mask"] == str(organs)
    # same seed, same volume; existing output needs --overwrite
    assert main(cmd) == 2
    assert main(cmd + ["--overwrite"]) == 0
    assert np.array_equal(read_volume(out).array, generated.array)


def test_evaluate_reports_figures(trained, tmp_path, capsys):
    root, manifest, _ = trained
    out = tmp_path / "eval.json"
    assert main(["gen", "evaluate", str(root / "run" / "model"), str(manifest), "--steps", "2", "--guidance", "1,3",
                 "--max-cases", "1", "--device", "cpu", "--edit-shifts", "3,-5", "--seeds", "0,1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["by_guidance"]) == {"1.0", "3.0"}
    case = report["cases"][0]
    assert case["determinism_max_abs_diff_hu"] == 0.0
    assert 0.0 <= case["mask_edit"]["adherence_to_edited_mask"] <= 1.0
    assert [e["shift_voxels_x"] for e in case["mask_edits"]] == [3, -5]
    for e in case["mask_edits"]:  # estimates lie within the searched range (twice the shift)
        assert abs(e["estimated_vs_original_generation"]) <= 2 * abs(e["shift_voxels_x"]) + 0.5
    assert np.isfinite(case["follow_ratio_vs_original_generation"]) and np.isfinite(case["follow_ratio_vs_real_ct"])
    assert set(report["mask_edit_follow_ratio"]) == {"vs_original_generation", "vs_real_ct"}
    liver = case["real_organs"]["5"]
    assert liver["name"] == "liver" and -200 < liver["mean"] < 200
    # per guidance: the organ means averaged over the seeds, checked against the real [p10, p90]
    runs = [r["organs"]["liver"]["generated_mean"] for r in case["runs"] if r["guidance"] == 3.0]
    summary = case["organs_over_seeds"]["3.0"]["liver"]
    assert len(runs) == 2 and summary["seeds"] == 2 and summary["generated_mean"] == pytest.approx(np.mean(runs))
    assert summary["mean_in_real_p10_p90"] == (liver["p10"] <= summary["generated_mean"] <= liver["p90"])
    printed = capsys.readouterr().out
    assert "guidance 3.0: adherence" in printed and "follow ratio" in printed


def test_warm_start_from_a_model_folder(trained, tmp_path):
    from safetensors.torch import load_file

    from napari_ctfoundation.engine.errors import ConfigError
    from napari_ctfoundation.engine.generation.train import TrainConfig, train

    root, _, args = trained
    init = root / "run" / "model"
    warm = list(args)
    warm[warm.index(str(root / "run"))] = str(tmp_path / "warm")
    # lr 0: the optimiser cannot move the weights, so the saved EMA model is the warm start itself
    assert main(warm + ["--steps", "1", "--lr", "0", "--preview-every", "0", "--init-from", str(init)]) == 0
    before, after = load_file(str(init / "denoiser.safetensors")), load_file(str(tmp_path / "warm" / "model" / "denoiser.safetensors"))
    assert before.keys() == after.keys() and all(bool((before[k] == after[k]).all()) for k in before)
    config = json.loads((tmp_path / "warm" / "model" / "pipeline.json").read_text())
    assert config["training"]["config"]["init_from"] == str(init)
    other = TrainConfig(steps=1, crop=(4, 4, 4), text_encoder=config["text_encoder"]["spec"], max_tokens=8,
                        init_from=str(init), denoiser={"mask_channels": 8, "context_dim": 16, "backbone_kwargs": {
                            "channels": [8, 16], "attention_levels": [False, True],
                            "norm_num_groups": 8, "num_head_channels": 8}})
    with pytest.raises(ConfigError, match="init-from"):
        train(root / "cache", tmp_path / "other", other)


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("image,organ_mask,report\nnope.nii.gz,nope2.nii.gz,text\n")
    assert main(["gen", "cache", str(tmp_path / "m.csv"), str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gen", "train", str(tmp_path / "c2"), str(tmp_path / "o")]) == 2
    assert "not a latent cache" in capsys.readouterr().err
    assert main(["gen", "sample", str(tmp_path), str(tmp_path / "o.nii.gz"), "--organs", "x.nii.gz"]) == 2


def test_demo_use_carries_a_caution(capsys):
    from napari_ctfoundation.cli.gen import _note_if_demo

    _note_if_demo("demo")
    assert "note: demo" in capsys.readouterr().err
    _note_if_demo("/data/my_model")  # a user's own model: no caution
    assert capsys.readouterr().err == ""
