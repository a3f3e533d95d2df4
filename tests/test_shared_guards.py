"""The readers that share read_guard's helpers keep their own one-line messages.

Batch and generation manifests go through ``read_text_table``; the DiCE
checkpoint loader goes through ``build_checked`` / ``load_weights``.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from napari_ctfoundation.engine.batch.dataset import discover_cases
from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.generation.manifest import ManifestError, read_manifest

# A field past csv's field_size_limit (128 KiB) makes the csv module raise csv.Error.
HUGE_FIELD = "x" * (1 << 18)


def test_batch_manifest_not_utf8_or_damaged_is_one_line(tmp_path):
    bad = tmp_path / "cases.csv"
    bad.write_bytes(b"image\n\xff\xfe.nii\n")
    with pytest.raises(ConfigError, match=r"cases\.csv: not UTF-8 text \(byte \d+: invalid start byte\)$"):
        discover_cases(bad)
    bad.write_text(f"image\n{HUGE_FIELD}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cases\.csv: damaged manifest \(field larger than field limit"):
        discover_cases(bad)


def test_generation_manifest_not_utf8_or_damaged_is_a_manifest_error(tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_bytes(b"image,organ_mask,report\n\xff,b,c\n")
    with pytest.raises(ManifestError, match=r"train\.csv: not UTF-8 text \(byte \d+: invalid start byte\)$"):
        read_manifest(bad)
    bad.write_text(f"image,organ_mask,report\na,b,{HUGE_FIELD}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"train\.csv: damaged CSV \(field larger than field limit"):
        read_manifest(bad)


@pytest.fixture()
def dice_folder(tmp_path):
    pytest.importorskip("torch")
    from napari_ctfoundation.engine.sparse.dice.checkpoint import save_dice
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.dice.model import DiCE
    from napari_ctfoundation.engine.sparse.geometry import PRESETS

    geo = replace(PRESETS["deepsparse"].scaled(8, name="test-32"), n_candidates=24)
    return save_dice(DiCE(DiCEConfig.tiny(geo)), tmp_path / "ck")


def test_dice_mismatch_names_the_checkpoint_and_the_keys(dice_folder):
    from napari_ctfoundation.engine.sparse.dice.checkpoint import load_dice

    meta = json.loads((dice_folder / "config.json").read_text())
    meta["config"]["encoder_channels"] = [8, 8, 8, 8]
    (dice_folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as info:
        load_dice(dice_folder)
    message = str(info.value)
    assert message.startswith(f"--checkpoint {dice_folder}: weights do not match its config.json (wrong shape: ")
    assert "\n" not in message


def test_dice_bad_config_and_damaged_weights_are_one_line(dice_folder):
    from napari_ctfoundation.engine.sparse.dice.checkpoint import load_dice

    config = dice_folder / "config.json"
    meta = json.loads(config.read_text())
    grid = meta["config"]["feature_grid"]
    meta["config"]["feature_grid"] = 2  # DiCEConfig's own check
    config.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=f"^{config}: DiCE feature_grid must be >= 4, got 2$"):
        load_dice(dice_folder)
    meta["config"]["feature_grid"] = "eight"  # a wrong type fails while building
    config.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=f"^{config}: invalid DiCE config \\(TypeError: "):
        load_dice(dice_folder)
    meta["config"]["feature_grid"] = grid
    config.write_text(json.dumps(meta))
    load_dice(dice_folder)  # the saved value again: loads
    weights = dice_folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ConfigError, match=f"^{weights}: damaged weights file \\("):
        load_dice(dice_folder)
