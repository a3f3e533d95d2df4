"""Generation on a corpus where some CTs have no organ mask (tumour-labelled chest CTs, report-only rows).

A dataset manifest from ``data index`` (empty organ_mask cells) goes through
``gen cache`` (with augmentation), ``gen train`` and ``gen evaluate``; the
missing organ mask is the null organ condition that mask dropout trains.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_ctfoundation.cli import main
from napari_ctfoundation.engine.generation.conditioning import LatentMask, condition_tensor

from _generation_helpers import crop, tiny_bert_folder

NODULES = 10  # lesion id of nodules_masses
TINY_TRAIN = ["--channels", "8,16", "--attention", "0,1", "--norm-groups", "8", "--head-channels", "8",
              "--mask-channels", "4", "--context-dim", "16", "--crop", "4,4,4", "--batch-size", "2",
              "--device", "cpu", "--log-every", "1", "--max-tokens", "8"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, nifti_ct, nifti_organs):
    """Case folders: a tumour-only CT, a CT with organs, a bare CT; indexed with --tumour-class."""
    from napari_ctfoundation.engine.io import read_labels, read_volume, write_volume

    root = tmp_path_factory.mktemp("no_organs")
    ct, organs = read_volume(nifti_ct), read_labels(nifti_organs)
    data = root / "corpus"
    zs = {"a_tumour": (6, 14), "b_organs": (14, 22), "c_bare": (10, 18)}
    reports = {"a_tumour": "Lung nodule in the right lower lobe.", "b_organs": "Liver and spleen normal.",
               "c_bare": "No pleural effusion."}
    for case, z in zs.items():
        write_volume(crop(ct, z, (30, 70), (34, 90)), data / case / "ct.nii.gz")
        (data / case / "report.txt").write_text(reports[case] + "\n")
    org = crop(organs, zs["b_organs"], (30, 70), (34, 90))
    write_volume(org, data / "b_organs" / "organs.nii.gz")
    liver = crop(organs, zs["a_tumour"], (30, 70), (34, 90))
    tumour = liver.with_array((liver.array == 5).astype(np.uint8))  # binary tumour mask (1)
    assert tumour.array.any()
    write_volume(tumour, data / "a_tumour" / "tumour.nii.gz")
    manifest = root / "index" / "manifest.csv"
    assert main(["data", "index", str(data), "--out", str(manifest), "--tumour-class", "nodules_masses"]) == 0
    return root, manifest


@pytest.fixture(scope="module")
def cached(corpus):
    root, manifest = corpus
    cache = root / "cache"
    assert main(["gen", "cache", str(manifest), str(cache), "--device", "cpu", "--augment", "1", "--seed", "2"]) == 0
    return root, manifest, cache


def test_dataset_manifest_with_empty_organ_cells_is_read(corpus):
    from napari_ctfoundation.engine.generation.manifest import read_manifest

    _, manifest = corpus
    header, *lines = manifest.read_text().splitlines()
    assert header == "case,image,organ_mask,disease_mask,report,layout"
    rows = read_manifest(manifest)
    assert [r.extra["case"] for r in rows] == ["a_tumour", "b_organs", "c_bare"]
    a, b, c = rows
    assert a.organ_mask is None and a.disease_mask.name == "a_tumour_lesions.nii.gz"
    assert b.organ_mask.name == "organs.nii.gz" and b.disease_mask is None
    assert c.organ_mask is None and c.disease_mask is None and c.report == "No pleural effusion."  # report only
    assert a.to_dict()["organ_mask"] is None


def test_cache_stores_cases_without_organ_mask(cached):
    from napari_ctfoundation.engine.generation.cache import build_cache, load_cache

    _, manifest, cache = cached
    index = json.loads((cache / "cache.json").read_text())
    entries = {e["name"]: e for e in index["cases"]}
    assert len(entries) == 6  # 3 cases + 1 augmented copy each
    for name in ("case_0000", "case_0000_aug01", "case_0002", "case_0002_aug01"):
        assert entries[name]["organ_mask"] is None
    assert entries["case_0001"]["organ_mask"].endswith("organs.nii.gz")
    cases = {c.name: c for c in load_cache(cache)}
    for name in ("case_0000", "case_0000_aug01"):  # tumour only: lesion 10, no organs
        assert cases[name].organs is None and cases[name].disease.ids == [NODULES]
        assert cases[name].disease.fractions.max() > 0.5
    assert cases["case_0002"].organs is None and cases["case_0002"].disease is None
    assert 5 in cases["case_0001"].organs.ids
    assert cases["case_0000_aug01"].meta["augment"]["copy"] == 1
    # the cache key is stable: a second run encodes nothing again
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.safetensors")}
    build_cache(manifest, cache, device="cpu", augment=1, seed=2)
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.safetensors")} == stamps


def test_missing_organ_mask_is_the_dropped_mask_condition(cached):
    from napari_ctfoundation.engine.generation.cache import load_cache
    from napari_ctfoundation.engine.generation.train import WindowSampler

    cases = load_cache(cached[2])
    tumour, organs, bare = cases[0], cases[2], cases[4]
    grid = tumour.latents.shape[1:]
    cond = condition_tensor(tumour.organs, tumour.disease, grid)
    dropped = cond * 0.0  # what p_drop_mask does in training
    assert np.array_equal(cond[:118], dropped[:118])  # indicator + organ channels: the null condition
    assert cond[118 + NODULES - 1].max() > 0.5 and cond[118:].sum() == cond[118 + NODULES - 1].sum()
    assert np.array_equal(condition_tensor(bare.organs, bare.disease, grid), dropped)  # report only: fully null
    # an organ map without any organ is read the same way as no map at all
    assert np.array_equal(condition_tensor(LatentMask([], np.zeros((0,) + grid, np.float32)), None, grid), dropped)
    assert condition_tensor(organs.organs, None, organs.latents.shape[1:])[0].min() == 1.0  # organs given
    # windows and class balancing: organ classes come from the organ case only, lesion 10 from the tumour case
    mean, std = np.zeros(32, np.float32), np.ones(32, np.float32)
    sampler = WindowSampler(cases, np.zeros((len(cases), 2, 3), np.float32), (4, 4, 4), mean, std, 117, 11,
                            seed=0, balance=1.0, weight_power=0.5)
    assert 117 + NODULES in sampler.centres  # channel 117 + lesion id
    assert {i for i, _ in sampler.centres[117 + NODULES]} == {0, 1}  # tumour case and its copy
    assert {i for ch, opts in sampler.centres.items() if ch <= 117 for i, _ in opts} == {2, 3}
    for _ in range(20):
        b = sampler.batch(2)
        assert np.isfinite(b["x"]).all() and np.isfinite(b["valid"]).all() and b["valid"].max() >= 1.0


def test_augment_without_organ_mask():
    from napari_ctfoundation.engine.generation.augment import AugmentParams, augment_case

    ct = np.full((2, 20, 30), -50.0, np.float32)
    disease = np.zeros((2, 20, 30), np.uint8)
    disease[:, 5:10, 2:6] = NODULES
    c, o, d = augment_case(ct, None, disease, AugmentParams(flip_lr=True, shift_yx=(1, 0)))
    assert o is None and set(np.unique(d[:, 6:11, 24:28])) == {NODULES} and (d > 0).sum() == (disease > 0).sum()
    c, o, d = augment_case(ct, None, None, AugmentParams(zoom=1.1, rotation_deg=5.0))
    assert o is None and d is None and c.shape == ct.shape


def test_train_and_evaluate_with_organless_rows(cached, capsys):
    root, manifest, cache = cached
    bert = tiny_bert_folder(root / "bert")
    run = root / "run"
    # case 0 (the preview case) has no organ mask
    assert main(["gen", "train", str(cache), str(run), "--text-encoder", f"hf:{bert}", "--steps", "2",
                 "--checkpoint-every", "2", "--preview-every", "2", "--balance-classes", "0.5",
                 "--class-weight-power", "0.5"] + TINY_TRAIN) == 0
    log = [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    assert (run / "previews" / "step_0000002.png").is_file()

    from napari_ctfoundation.engine.generation.pipeline import GenerationPipeline

    pipe = GenerationPipeline.from_pretrained(run / "model", device="cpu")
    assert not pipe.condition(np.zeros((8, 40, 56), np.uint8), None, (40, 56)).any()  # empty map = null condition
    capsys.readouterr()
    out = root / "eval.json"
    assert main(["gen", "evaluate", str(run / "model"), str(manifest), "--steps", "2", "--guidance", "1",
                 "--max-cases", "2", "--device", "cpu", "--edit-shifts", "3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    tumour, organs = report["cases"]
    assert tumour["no_organ_mask"] and tumour["real_organs"] == {} and tumour["mask_edits"] == []
    assert "follow_ratio_vs_original_generation" not in tumour and tumour["determinism_max_abs_diff_hu"] == 0.0
    assert report["skipped"] == ["case 0: no organ mask; organ HU figures, adherence and the mask-edit "
                                 "follow ratio skipped"]
    assert "liver" in organs["organs_over_seeds"]["1.0"] and np.isfinite(organs["follow_ratio_vs_original_generation"])
    assert report["mask_edit_follow_ratio"]["vs_original_generation"] == organs["follow_ratio_vs_original_generation"]
    row = report["by_guidance"]["1.0"]
    assert row["adherence"] == organs["runs"][0]["adherence"] and np.isfinite(row["frechet_vae"])
    printed = capsys.readouterr().out
    assert "case 0:" in printed and "no organ mask" in printed and "follow ratio" in printed
