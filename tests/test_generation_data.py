"""Generation data layer: manifest validation, masks on the latent grid, findings, latent cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ctfoundation.engine.errors import ConfigError, CTFoundationError
from napari_ctfoundation.engine.generation.conditioning import (
    check_label_ids, condition_tensor, findings_from_dict, latent_grid, mask_to_latent, parse_findings)
from napari_ctfoundation.engine.generation.manifest import ManifestError, read_manifest
from napari_ctfoundation.engine.generation.vocab import CTRATE_ABNORMALITIES, lesion_names, organ_names

from _generation_helpers import write_tiny_dataset


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory, nifti_ct, nifti_organs):
    return write_tiny_dataset(tmp_path_factory.mktemp("gen_data"), nifti_ct, nifti_organs)


def test_vocabularies_match_label_table():
    names = organ_names()
    assert len(names) == 117 and names[5] == "liver" and names[2] == "kidney_right"
    assert len(lesion_names()) == 11 and lesion_names()[4] == "emphysema"
    assert len(CTRATE_ABNORMALITIES) == 18


def test_manifest_reads_valid_rows_and_report_files(tiny_manifest):
    root = tiny_manifest.parent
    (root / "r.txt").write_text("Report from a file.\n")
    text = tiny_manifest.read_text().splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + ",r.txt"
    path = root / "with_file.csv"
    path.write_text("\n".join(text) + "\n")
    rows = read_manifest(path)
    assert len(rows) == 2
    assert rows[0].report.startswith("Liver") and rows[0].disease_mask is None
    assert rows[1].report == "Report from a file." and rows[1].report_source.endswith("r.txt")
    # JSONL gives the same rows
    jsonl = root / "m.jsonl"
    jsonl.write_text("\n".join(json.dumps({"image": str(r.image), "organ_mask": str(r.organ_mask),
                                           "report": r.report}) for r in rows) + "\n")
    assert [r.report for r in read_manifest(jsonl)] == [r.report for r in rows]


def test_manifest_lists_every_problem(tiny_manifest, tmp_path):
    from napari_ctfoundation.engine.io import read_labels, write_volume

    root = tiny_manifest.parent
    organs = read_labels(root / "organs0.nii.gz")
    bad_ids = organs.with_array(organs.array.copy())
    bad_ids.array[0, 0, 0] = 200  # not a TotalSegmentator id
    write_volume(bad_ids, tmp_path / "bad_ids.nii.gz")
    small = organs.with_array(organs.array)
    small.array = organs.array[:, :20].copy()
    write_volume(small, tmp_path / "small.nii.gz")
    ct = root / "ct0.nii.gz"
    rows = [
        "image,organ_mask,disease_mask,report",
        f"{tmp_path / 'missing.nii.gz'},{root / 'organs0.nii.gz'},,text",  # missing image
        f"{ct},{tmp_path / 'small.nii.gz'},,text",  # shape mismatch
        f"{ct},{tmp_path / 'bad_ids.nii.gz'},,text",  # unknown label id
        f"{ct},{root / 'organs0.nii.gz'},,   ",  # empty report
        f"{ct},{root / 'organs0.nii.gz'},{root / 'organs0.nii.gz'},text",  # organ ids > 11 as lesions
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    msg = str(info.value)
    assert "5 problem(s)" in msg
    assert "row 1" in msg and "does not exist" in msg
    assert "row 2" in msg and "shape" in msg
    assert "row 3" in msg and "unknown organ label id(s) [200]" in msg
    assert "row 4" in msg and "report is empty" in msg
    assert "row 5" in msg and "unknown lesion label id" in msg


def test_manifest_rejects_bad_files(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.csv")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ManifestError, match=".csv or .jsonl"):
        read_manifest(tmp_path / "m.txt")
    (tmp_path / "h.csv").write_text("image,report\na,b\n")
    with pytest.raises(ManifestError, match="organ_mask"):
        read_manifest(tmp_path / "h.csv")


def test_mask_fractions_on_latent_grid():
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 5, 2], size=(3, 20, 13)).astype(np.uint8)
    lm = mask_to_latent(labels, 8)
    t, h, w, ph, pw = latent_grid(labels.shape, 8)
    assert (t, h, w, ph, pw) == (3, 3, 2, 24, 16)
    assert lm.ids == [2, 5] and lm.fractions.shape == (2, 3, 3, 2)
    # exact block mean of the (edge-padded) one-hot mask
    padded = np.pad(labels, [(0, 0), (0, 4), (0, 3)], mode="edge")
    assert np.isclose(lm.fractions[1, 1, 0, 1], (padded[1, 0:8, 8:16] == 5).mean())
    assert np.all(lm.fractions.sum(0) <= 1 + 1e-6)
    cond = condition_tensor(lm, None, lm.grid)
    assert cond.shape == (129, 3, 3, 2)
    assert np.all(cond[0] == 1) and np.array_equal(cond[1 + 4], lm.fractions[1]) and np.array_equal(cond[2], lm.fractions[0])
    assert not condition_tensor(None, None, lm.grid).any()  # null condition


def test_label_id_check():
    assert check_label_ids(np.array([0, 5, 117]), "organ", "x") == [5, 117]
    with pytest.raises(CTFoundationError, match="lesion label id"):
        check_label_ids(np.array([0, 12]), "lesion", "x")


def test_findings_parser_handles_negation():
    flags = parse_findings("Mild emphysema. No pleural effusion. There is a small lung nodule but no consolidation.")
    idx = {n: i for i, n in enumerate(CTRATE_ABNORMALITIES)}
    assert flags[idx["emphysema"]] == 1 and flags[idx["lung nodule"]] == 1
    assert flags[idx["pleural effusion"]] == -1 and flags[idx["consolidation"]] == -1
    assert flags[idx["cardiomegaly"]] == 0
    given = findings_from_dict({"cardiomegaly": True, "hiatal_hernia": -1})
    assert given[idx["cardiomegaly"]] == 1 and given[idx["hiatal hernia"]] == -1
    with pytest.raises(ConfigError, match="unknown finding"):
        findings_from_dict({"broken leg": 1})


def test_cache_encodes_once_with_masks_on_latent_grid(tiny_manifest, tmp_path):
    from napari_ctfoundation.engine.generation.cache import build_cache, load_cache
    from napari_ctfoundation.engine.io import read_labels, read_volume
    from napari_ctfoundation.engine.latents import encode_volume
    from napari_ctfoundation.engine.vae import load_vae

    seen = []
    out = build_cache(tiny_manifest, tmp_path / "cache", device="cpu", progress=lambda d, t, u: seen.append((d, t, u)))
    assert seen[-1] == (2, 2, "cases")
    index = json.loads((out / "cache.json").read_text())
    assert index["vae"]["spec"] == "taef2" and len(index["latent_mean"]) == 32
    cases = load_cache(out)
    assert len(cases) == 2
    ct = read_volume(tiny_manifest.parent / "ct0.nii.gz").to_display()
    direct = encode_volume(ct, load_vae("taef2", device="cpu"))
    assert np.allclose(cases[0].latents, direct.latents[0], atol=1e-5)
    organs = read_labels(tiny_manifest.parent / "organs0.nii.gz").to_display().array
    expected = mask_to_latent(organs, 8, direct.padded_hw)
    assert cases[0].organs.ids == expected.ids
    assert np.allclose(cases[0].organs.fractions, expected.fractions, atol=1e-3)  # stored as float16
    assert cases[1].findings[CTRATE_ABNORMALITIES.index("emphysema")] == 1
    # a second run re-uses the encoded cases instead of encoding again
    stamp = (out / "case_0000.latents.safetensors").stat().st_mtime_ns
    build_cache(tiny_manifest, out, device="cpu")
    assert (out / "case_0000.latents.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="window"):
        from napari_ctfoundation.engine.window import HUWindow

        build_cache(tiny_manifest, out, device="cpu", window=HUWindow(-200, 300))


# ------------------------------------------------------------- augmentation
def test_left_right_label_swap_table():
    from napari_ctfoundation.engine.generation.augment import lr_swap_table, swap_left_right_labels
    from napari_ctfoundation.engine.labels import id_of

    table = lr_swap_table()
    assert table[id_of("kidney_left")] == id_of("kidney_right")
    assert table[id_of("kidney_right")] == id_of("kidney_left")
    assert table[id_of("rib_left_7")] == id_of("rib_right_7")
    assert table[id_of("lung_upper_lobe_left")] == id_of("lung_upper_lobe_right")
    assert table[id_of("liver")] == id_of("liver") and table[0] == 0
    # no left counterpart in the table: stays itself rather than becoming another organ
    assert table[id_of("lung_middle_lobe_right")] == id_of("lung_middle_lobe_right")
    assert np.array_equal(table[table], np.arange(len(table)))  # swapping twice is the identity
    names = organ_names()
    for a, b in enumerate(table):
        if a and a != b:
            assert names[a].replace("left", "X").replace("right", "left").replace("X", "right") == names[int(b)]
    labels = np.array([[[id_of("kidney_left"), 0, id_of("liver")]]], np.uint8)
    assert swap_left_right_labels(labels).tolist() == [[[id_of("kidney_right"), 0, id_of("liver")]]]


def test_augment_flip_shift_and_interpolation():
    from napari_ctfoundation.engine.generation.augment import AIR_HU, AugmentParams, augment_case, draw_params
    from napari_ctfoundation.engine.labels import id_of

    ct = np.full((2, 20, 30), -50.0, np.float32)
    organs = np.zeros((2, 20, 30), np.uint8)
    organs[:, 5:10, 2:6] = id_of("kidney_left")  # low x
    ct[:, 5:10, 2:6] = 30.0
    disease = (organs > 0).astype(np.uint8)
    # flip: the kidney moves to high x and is renamed to the other side; CT and lesions follow
    c, o, d = augment_case(ct, organs, disease, AugmentParams(flip_lr=True))
    assert set(np.unique(o[:, 5:10, 24:28])) == {id_of("kidney_right")} and not (o[:, :, :20] > 0).any()
    assert np.allclose(c[:, 5:10, 24:28], 30.0) and np.array_equal(d > 0, o > 0)
    # whole-voxel shift (3 is not a multiple of the VAE stride): exact, air / background enter
    c, o, _ = augment_case(ct, organs, None, AugmentParams(shift_yx=(1, 3)))
    assert set(np.unique(o[:, 6:11, 5:9])) == {id_of("kidney_left")} and (o > 0).sum() == (organs > 0).sum()
    assert np.allclose(c[:, 0, :], AIR_HU) and np.allclose(c[:, :, :3], AIR_HU)
    # zoom + rotation: labels stay labels (nearest), CT interpolated within its range
    c, o, _ = augment_case(ct, organs, None, AugmentParams(zoom=1.1, rotation_deg=7.0))
    assert set(np.unique(o)) <= {0, id_of("kidney_left")} and (o > 0).sum() > 0
    assert AIR_HU <= c.min() and c.max() <= 30.0 + 1e-3
    p1 = draw_params(np.random.default_rng(5), (20, 30))
    assert p1 == draw_params(np.random.default_rng(5), (20, 30))  # seeded
    assert abs(p1.shift_yx[0]) <= 2 and abs(p1.shift_yx[1]) <= 3 and 0.9 <= p1.zoom <= 1.1


def test_cache_augmented_copies_are_recorded_and_reused(tiny_manifest, tmp_path):
    from napari_ctfoundation.engine.generation.augment import AugmentParams, augment_case
    from napari_ctfoundation.engine.generation.cache import build_cache, load_cache
    from napari_ctfoundation.engine.io import read_labels, read_volume

    out = build_cache(tiny_manifest, tmp_path / "cache", device="cpu", augment=1, seed=3)
    index = json.loads((out / "cache.json").read_text())
    assert index["augment"] == {"copies": 1, "seed": 3}
    names = [c["name"] for c in index["cases"]]
    assert names == ["case_0000", "case_0000_aug01", "case_0001", "case_0001_aug01"]
    aug = index["cases"][1]["augment"]
    assert index["cases"][0]["augment"] is None and aug["seed"] == 3 and aug["copy"] == 1
    cases = load_cache(out)
    assert not np.allclose(cases[0].latents, cases[1].latents)
    # the stored masks are the augmented masks on the latent grid
    ct = read_volume(tiny_manifest.parent / "ct0.nii.gz").to_display()
    organs = read_labels(tiny_manifest.parent / "organs0.nii.gz").to_display().array
    params = AugmentParams(flip_lr=aug["flip_lr"], shift_yx=tuple(aug["shift_yx"]), zoom=aug["zoom"],
                           rotation_deg=aug["rotation_deg"])
    _, aug_organs, _ = augment_case(ct.array, organs, None, params)
    expected = mask_to_latent(aug_organs, 8, cases[1].meta["padded_hw"])
    assert cases[1].organs.ids == expected.ids
    assert np.allclose(cases[1].organs.fractions, expected.fractions, atol=1e-3)
    # same options again: nothing re-encoded; the same seed draws the same copies
    stamp = (out / "case_0001_aug01.latents.safetensors").stat().st_mtime_ns
    build_cache(tiny_manifest, out, device="cpu", augment=1, seed=3)
    assert (out / "case_0001_aug01.latents.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="negative"):
        build_cache(tiny_manifest, tmp_path / "c2", device="cpu", augment=-1)
