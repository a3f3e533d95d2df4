"""Helpers for the generation tests (issue 4): tiny crops of the real sample, tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from napari_ctfoundation.engine.volume import Volume

TINY_DENOISER = {
    "mask_channels": 4,
    "context_dim": 16,
    "backbone_kwargs": {"channels": [8, 16], "attention_levels": [False, True],
                        "num_res_blocks": 1, "num_head_channels": 8, "norm_num_groups": 8},
}


def crop(volume: Volume, z: Tuple[int, int], y: Tuple[int, int], x: Tuple[int, int]) -> Volume:
    """A sub-volume with its origin moved so it stays where it was in the patient."""
    offset = np.array([x[0], y[0], z[0]], float) * np.array(volume.spacing)
    origin = np.array(volume.origin) + volume.direction @ offset
    return Volume(np.ascontiguousarray(volume.array[z[0]:z[1], y[0]:y[1], x[0]:x[1]]), volume.spacing,
                  tuple(origin), volume.direction, dict(volume.metadata))


def tiny_pipeline_config(model, text_dim: int, **extra) -> dict:
    """``pipeline.json`` content for a tiny denoiser (taef2 reference, minilm spec), plus ``extra`` keys."""
    from napari_ctfoundation.engine.generation.pipeline import PIPELINE_VERSION
    from napari_ctfoundation.engine.generation.schedule import scheduler_config
    from napari_ctfoundation.engine.generation.vocab import vocabulary

    return {
        "format_version": PIPELINE_VERSION, "denoiser": model.config, "scheduler": scheduler_config(),
        "vae": {"spec": "taef2", "latent_channels": 4, "spatial_factor": 8, "kind": "image"},
        "hu_window": [-1000, 1000], "text_encoder": {"spec": "minilm", "dim": text_dim, "max_tokens": 4},
        "vocabulary": vocabulary(), "latent_mean": [0.1] * 4, "latent_std": [2.0] * 4,
        "window": {"depth": 4, "overlap": 2}, **extra,
    }


def write_tiny_dataset(root: Path, ct_path: Path, organs_path: Path, n_cases: int = 2) -> Path:
    """``n_cases`` 8-slice 40x56 crops of the real abdominal sample + a CSV manifest."""
    from napari_ctfoundation.engine.io import read_labels, read_volume, write_volume

    root.mkdir(parents=True, exist_ok=True)
    ct, organs = read_volume(ct_path), read_labels(organs_path)
    reports = ["Liver and spleen normal. No pleural effusion.",
               "Small lung nodule in the right lower lobe. Mild emphysema."]
    lines = ["image,organ_mask,disease_mask,report"]
    for i in range(n_cases):
        zs = (6 + 8 * i, 14 + 8 * i)
        write_volume(crop(ct, zs, (30, 70), (34, 90)), root / f"ct{i}.nii.gz")
        write_volume(crop(organs, zs, (30, 70), (34, 90)), root / f"organs{i}.nii.gz")
        lines.append(f"ct{i}.nii.gz,organs{i}.nii.gz,,{reports[i % 2]}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def tiny_bert_folder(root: Path) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with a word-piece tokenizer, saved offline."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "liver", "normal", "no", "effusion", "nodule",
             "lung", "the", "is", "a", "small", "pleural", "."]
    (root / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizerFast(vocab_file=str(root / "vocab.txt"))
    tok.save_pretrained(str(root))
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(root))
    return root
