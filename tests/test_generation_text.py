"""Text-encoder registry: embedded MiniLM (offline) and any Hugging Face encoder by folder."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.generation.text import TEXT_ENCODERS, load_text_encoder

from _generation_helpers import tiny_bert_folder


def test_registry_lists_one_file_per_encoder():
    assert {"minilm", "hf"} <= set(TEXT_ENCODERS.names())


def test_minilm_token_embeddings_offline():
    enc = load_text_encoder("minilm", max_tokens=16)
    tokens, mask = enc.encode(["Liver normal. No pleural effusion.", "Large right pleural effusion.",
                               "word " * 40])
    assert tokens.shape == (3, 16, 384) and tokens.dtype == np.float32
    assert 3 < mask[0].sum() < 16 and mask[2].sum() == 16  # long text truncated
    assert not tokens[0][mask[0] == 0].any()  # padding is zeros
    assert not np.allclose(tokens[0], tokens[1])
    again, _ = enc.encode(["Liver normal. No pleural effusion."])
    assert np.allclose(again[0], tokens[0], atol=1e-5)
    assert enc.describe() == {"spec": "minilm", "name": "minilm", "dim": 384, "max_tokens": 16}


def test_hf_encoder_from_local_folder(tmp_path):
    folder = tiny_bert_folder(tmp_path / "tiny_bert")
    enc = load_text_encoder(f"hf:{folder}", max_tokens=8)
    assert enc.dim == 32 and enc.spec() == f"hf:{folder.resolve()}"
    tokens, mask = enc.encode(["the liver is normal .", "small lung nodule"])
    assert tokens.shape == (2, 8, 32)
    assert mask[0].sum() == 7 and mask[1].sum() == 5  # [CLS] words [SEP]
    assert np.isfinite(tokens).all() and not np.allclose(tokens[0, 1], tokens[1, 1])
    # a bare folder path works too, and reloads the same encoder
    same, _ = load_text_encoder(str(folder), max_tokens=8).encode(["the liver is normal ."])
    assert np.allclose(same[0], tokens[0], atol=1e-5)


def test_unknown_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a registered name"):
        load_text_encoder("no-such-encoder")
    with pytest.raises(ConfigError, match="cannot load"):
        load_text_encoder(f"hf:{tmp_path}")  # empty folder
    with pytest.raises(ConfigError, match="max_tokens"):
        load_text_encoder("minilm", max_tokens=0)
