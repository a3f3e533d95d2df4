"""TAEF2 architecture: a tiny autoencoder for the FLUX.2 latent space.

Written from the spec shipped with the weights (``data/taef2/README.md``).
Module indices match the state-dict keys so the pretrained weights load
strictly; the blocks that carry ``pool.*`` weights are the GN-blocks.
"""

from __future__ import annotations

import torch
from torch import nn


def conv(n_in: int, n_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp of latents to about [-3, 3] before decoding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Residual block; with ``global_mix`` a GroupNorm branch is added first."""

    def __init__(self, channels: int = 64, global_mix: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            conv(channels, channels), nn.ReLU(), conv(channels, channels), nn.ReLU(), conv(channels, channels)
        )
        self.pool = (
            nn.Sequential(
                nn.Conv2d(channels, 4 * channels, 1, bias=False),
                nn.GroupNorm(4, 4 * channels),
                nn.ReLU(),
                nn.Conv2d(4 * channels, channels, 1, bias=False),
            )
            if global_mix
            else None
        )
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def make_encoder(latent_channels: int = 32, width: int = 64) -> nn.Sequential:
    return nn.Sequential(
        conv(3, width), Block(width),
        conv(width, width, stride=2, bias=False), Block(width), Block(width), Block(width),
        conv(width, width, stride=2, bias=False), Block(width), Block(width), Block(width),
        conv(width, width, stride=2, bias=False),
        Block(width, True), Block(width, True), Block(width, True),
        conv(width, latent_channels),
    )


def make_decoder(latent_channels: int = 32, width: int = 64) -> nn.Sequential:
    return nn.Sequential(
        Clamp(), conv(latent_channels, width), nn.ReLU(),
        Block(width, True), Block(width, True), Block(width, True),
        nn.Upsample(scale_factor=2), conv(width, width, bias=False), Block(width), Block(width), Block(width),
        nn.Upsample(scale_factor=2), conv(width, width, bias=False), Block(width), Block(width), Block(width),
        nn.Upsample(scale_factor=2), conv(width, width, bias=False), Block(width),
        conv(width, 3),
    )


class TAEF2(nn.Module):
    """Encoder + decoder; unit images in [0, 1], latents 32 x H/8 x W/8."""

    spatial_factor = 8

    def __init__(self, latent_channels: int = 32) -> None:
        super().__init__()
        self.encoder = make_encoder(latent_channels)
        self.decoder = make_decoder(latent_channels)
