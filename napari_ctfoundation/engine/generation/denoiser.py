"""The conditional denoiser: masks concatenated, report tokens cross-attended.

``ConditionalDenoiser`` wraps a backbone from the ``BACKBONES`` registry
(one file per backbone in ``backbones/``) with the conditioning layers:

* masks: the per-class fraction channels (``conditioning.condition_tensor``)
  go through a learned 1x1x1 convolution (a learned embedding of every organ
  and lesion class, mixed by fraction) and are concatenated to the noisy
  latent;
* text: frozen token embeddings are projected to ``context_dim``; the 18
  CT-RATE finding flags (when enabled) become one extra context token;
* any window shape: the input is zero-padded at the far end of each axis to
  the backbone's multiple and the output cropped back.

This module imports torch at the top; it is only imported lazily.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

BACKBONES: Registry = Registry("denoiser backbone", "napari_ctfoundation.engine.generation.backbones")

DEFAULT_CONFIG: Dict[str, Any] = {
    "backbone": "monai3d",
    "latent_channels": 32,
    "n_organs": 117,
    "n_lesions": 11,
    "mask_channels": 16,
    "text_dim": 384,
    "context_dim": 128,
    "use_findings": True,
    "n_findings": 18,
    "backbone_kwargs": {
        "channels": [32, 64, 64],
        "attention_levels": [False, False, True],
        "num_res_blocks": 1,
        "num_head_channels": 16,
        "norm_num_groups": 16,
    },
}


def denoiser_config(**overrides: Any) -> Dict[str, Any]:
    """DEFAULT_CONFIG with ``overrides`` (``backbone_kwargs`` merged key by key)."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    unknown = set(overrides) - set(config)
    if unknown:
        raise ConfigError(f"unknown denoiser option(s) {sorted(unknown)}; known: {sorted(config)}")
    bk = overrides.pop("backbone_kwargs", None) or {}
    config.update(overrides)
    config["backbone_kwargs"].update(bk)
    return config


class ConditionalDenoiser(nn.Module):
    def __init__(self, config: Dict[str, Any]) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        c = self.config
        n_cond = 1 + int(c["n_organs"]) + int(c["n_lesions"])
        self.mask_embed = nn.Conv3d(n_cond, int(c["mask_channels"]), kernel_size=1)
        self.text_proj = nn.Linear(int(c["text_dim"]), int(c["context_dim"]))
        self.findings_proj = nn.Linear(int(c["n_findings"]), int(c["context_dim"])) if c["use_findings"] else None
        build = BACKBONES.get(c["backbone"])
        try:
            self.backbone, self.multiple = build(
                in_channels=int(c["latent_channels"]) + int(c["mask_channels"]),
                out_channels=int(c["latent_channels"]), context_dim=int(c["context_dim"]),
                **c["backbone_kwargs"])
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError(f"denoiser backbone {c['backbone']!r}: invalid settings ({exc})") from None

    def context(self, tokens: torch.Tensor, findings: Optional[torch.Tensor]) -> torch.Tensor:
        ctx = self.text_proj(tokens)
        if self.findings_proj is not None:
            if findings is None:
                findings = tokens.new_zeros(tokens.shape[0], int(self.config["n_findings"]))
            ctx = torch.cat([ctx, self.findings_proj(findings)[:, None]], dim=1)
        return ctx

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor,
                tokens: torch.Tensor, findings: Optional[torch.Tensor] = None) -> torch.Tensor:
        t, h, w = x.shape[-3:]
        m = self.multiple
        pad = [(-s) % m for s in (t, h, w)]
        feats = torch.cat([x, self.mask_embed(cond)], dim=1)
        if any(pad):
            feats = nn.functional.pad(feats, (0, pad[2], 0, pad[1], 0, pad[0]))
        out = self.backbone(feats, timesteps, self.context(tokens, findings))
        return out[:, :, :t, :h, :w]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
