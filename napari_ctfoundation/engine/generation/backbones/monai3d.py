"""MONAI generative ``DiffusionModelUNet`` in 3D with cross-attention (the default).

Why this one: the latent of an image VAE is a true 3D grid (one latent frame
per slice), and a 3D UNet sees through-plane context in every block, which
the reference's 2D-UNet + identity-initialised temporal convolutions only
get after a second training stage. MONAI's implementation has spatial
transformer blocks with cross-attention built in, is fully convolutional
(any window size that is a multiple of 2**(levels-1)) and is maintained for
medical imaging.
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

from ..denoiser import BACKBONES


@BACKBONES.register("monai3d")
def build_monai3d(
    in_channels: int,
    out_channels: int,
    context_dim: int,
    channels: Sequence[int] = (32, 64, 64),
    attention_levels: Sequence[bool] = (False, False, True),
    num_res_blocks: int = 1,
    num_head_channels: int = 16,
    norm_num_groups: int = 16,
    transformer_num_layers: int = 1,
    **_: Any,
) -> Tuple[Any, int]:
    """MONAI DiffusionModelUNet (3D, cross-attention to report tokens)."""
    import torch
    from monai.networks.nets import DiffusionModelUNet

    # A damaged or hostile pipeline config must be refused, not built for hours.
    sizes = [in_channels, out_channels, context_dim, num_head_channels, norm_num_groups, *channels]
    if len(channels) > 8 or any(not 0 < int(s) <= 8192 for s in sizes):
        raise ValueError(f"channel sizes must be in [1, 8192] with at most 8 levels, got {list(channels)}")
    if not 0 < int(num_res_blocks) <= 16 or not 0 < int(transformer_num_layers) <= 16:
        raise ValueError("num_res_blocks and transformer_num_layers must be in [1, 16]")

    net = DiffusionModelUNet(
        spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
        channels=tuple(channels), attention_levels=tuple(bool(a) for a in attention_levels),
        num_res_blocks=num_res_blocks, num_head_channels=num_head_channels,
        norm_num_groups=norm_num_groups, with_conditioning=True,
        cross_attention_dim=context_dim, transformer_num_layers=transformer_num_layers,
    )

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x, t, context):
            return self.net(x, timesteps=t, context=context)

    return Wrapped(), 2 ** (len(channels) - 1)
