"""The DiCE network (REFERENCE section 3), PyTorch.

Shared 2D encoder (4 scales) -> per-scale differentiable back-projection of
a fixed ``feature_grid``^3 voxel grid into every view with the simulator's
projection matrices, max over views -> per-scale EMA vector quantisation
(pre/post linear layers, straight-through) -> cross-scale 3D decoder ->
point decoder MLP over trilinear 3D + max-over-views pixel-aligned 2D
features -> normalised intensity.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import projection_matrices
from .config import DiCEConfig


def _norm(c: int) -> nn.Module:
    return nn.GroupNorm(min(4, c), c)


class Encoder2D(nn.Module):
    """4 scales: full resolution, then /2 per scale; shared across views."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        stages, c_in = [], 1
        for i, c in enumerate(channels):
            stages.append(nn.Sequential(
                nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1), _norm(c), nn.LeakyReLU(0.1),
                nn.Conv2d(c, c, 3, padding=1), _norm(c), nn.LeakyReLU(0.1),
            ))
            c_in = c
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class EMAQuantizer(nn.Module):
    """Vector quantisation with an EMA codebook (VQ-VAE v2), straight-through gradients."""

    def __init__(self, dim: int, codes: int, decay: float, commitment: float) -> None:
        super().__init__()
        self.decay, self.commitment, self.eps = decay, commitment, 1e-5
        self.register_buffer("embed", torch.randn(codes, dim) * 0.1)
        self.register_buffer("cluster_size", torch.zeros(codes))
        self.register_buffer("embed_avg", self.embed.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.frozen = False

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        b, c = z.shape[:2]
        flat = z.movedim(1, -1).reshape(-1, c)
        if self.training and not self.frozen and not bool(self.initialised):
            # Start the codebook on data so no code is born dead.
            pick = torch.randint(0, flat.shape[0], (self.embed.shape[0],), device=flat.device)
            self.embed.copy_(flat[pick].detach())
            self.embed_avg.copy_(self.embed)
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(True)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t()
                + self.embed.pow(2).sum(1)[None])
        idx = dist.argmin(1)
        q = self.embed[idx]
        if self.training and not self.frozen:
            with torch.no_grad():
                onehot = F.one_hot(idx, self.embed.shape[0]).type(flat.dtype)
                self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
                self.embed_avg.mul_(self.decay).add_(onehot.t() @ flat.detach(), alpha=1 - self.decay)
                n = self.cluster_size.sum()
                size = (self.cluster_size + self.eps) / (n + self.embed.shape[0] * self.eps) * n
                self.embed.copy_(self.embed_avg / size[:, None])
        loss = self.commitment * F.mse_loss(flat, q.detach())
        q = flat + (q - flat).detach()  # straight-through
        return q.reshape(b, *z.shape[2:], c).movedim(-1, 1), loss


def _conv3(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, padding=1), _norm(c_out), nn.LeakyReLU(0.1))


class CrossScaleDecoder(nn.Module):
    """Fuses the per-scale volumes coarse to fine: concat, then 3x3x3 convs."""

    def __init__(self, channels: Sequence[int], width: int, convs: int, out_convs: int) -> None:
        super().__init__()
        stages, c_prev = [], 0
        for c in reversed(channels):
            layers = [_conv3(c_prev + c, width)] + [_conv3(width, width) for _ in range(convs - 1)]
            stages.append(nn.Sequential(*layers))
            c_prev = width
        self.stages = nn.ModuleList(stages)
        self.out = nn.Sequential(*[_conv3(width, width) for _ in range(out_convs)])

    def forward(self, vols: Sequence[torch.Tensor]) -> torch.Tensor:
        h = None
        for stage, v in zip(self.stages, reversed(vols)):
            h = stage(v if h is None else torch.cat([h, v], 1))
        return h + self.out(h)


class Denoise3D(nn.Module):
    """Finetune step 2: shallow residual 3D CNN pulling sparse-view features to dense-view ones."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv3d(c, c, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv3d(c, c, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PointDecoder(nn.Module):
    def __init__(self, c_in: int, hidden: Sequence[int], skip_at: int) -> None:
        super().__init__()
        self.skip_at = skip_at
        layers, prev = [], c_in
        for i, h in enumerate(hidden):
            layers.append(nn.Linear(prev + (c_in if i == skip_at else 0), h))
            prev = h
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(prev, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            if i == self.skip_at:
                h = torch.cat([h, x], -1)
            h = F.leaky_relu(layer(h), 0.1)
        return self.head(h).squeeze(-1)


class DiCE(nn.Module):
    def __init__(self, config: DiCEConfig) -> None:
        super().__init__()
        self.config = config
        geo = config.geo
        ch = config.encoder_channels
        self.encoder = Encoder2D(ch)
        self.pre_quant = nn.ModuleList(nn.Conv3d(c, c, 1) for c in ch)
        self.quant = nn.ModuleList(EMAQuantizer(c, config.codebook_size, config.vq_decay, config.commitment) for c in ch)
        self.post_quant = nn.ModuleList(nn.Conv3d(c, c, 1) for c in ch)
        self.decoder = CrossScaleDecoder(ch, config.decoder_channels, config.decoder_convs, config.out_convs)
        self.point_decoder = PointDecoder(config.point_channels, config.mlp_hidden, config.mlp_skip_at)
        self.denoise = nn.ModuleList(Denoise3D(c) for c in ch) if config.denoise else None
        # Fixed geometry tensors (not parameters, not saved: rebuilt from the config).
        self.input_scale = 0.25 * geo.grid_extent
        self.half_extent = geo.grid_extent / 2.0
        self._det = (geo.detector_pixels, geo.detector_pitch, geo.detector_origin())
        g = config.feature_grid
        centres = (torch.arange(g, dtype=torch.float32) + 0.5) / g * geo.grid_extent - self.half_extent
        z, y, x = torch.meshgrid(centres, centres, centres, indexing="ij")
        self.register_buffer("grid_points", torch.stack([x, y, z], -1).reshape(-1, 3), persistent=False)

    def add_denoise(self) -> None:
        if self.denoise is None:
            self.config.denoise = True
            self.denoise = nn.ModuleList(Denoise3D(c) for c in self.config.encoder_channels)

    # ------------------------------------------------------------ geometry
    def matrices(self, angles_deg: torch.Tensor) -> torch.Tensor:
        """(B, V) angles -> (B, V, 3, 4) RTK projection matrices."""
        m = projection_matrices(angles_deg.detach().cpu().numpy().reshape(-1), self.config.geo)
        return torch.as_tensor(m, dtype=torch.float32, device=angles_deg.device).reshape(*angles_deg.shape, 3, 4)

    def project(self, points: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
        """Grid-frame points (B, N, 3) mm -> detector pixel indices (B, V, N, 2) (u, v)."""
        rtk = points[..., [0, 2, 1]]  # grid frame -> RTK frame (see geometry.grid_to_rtk)
        homog = torch.cat([rtk, torch.ones_like(rtk[..., :1])], -1)
        proj = torch.einsum("bvij,bnj->bvni", mats, homog)
        uv_mm = proj[..., :2] / proj[..., 2:3]
        (nu, nv), pitch, origin = self._det
        origin_t = torch.tensor(origin, dtype=uv_mm.dtype, device=uv_mm.device)
        pitch_t = torch.tensor(pitch, dtype=uv_mm.dtype, device=uv_mm.device)
        return (uv_mm - origin_t) / pitch_t

    def _sample_views(self, feats: List[torch.Tensor], uv: torch.Tensor) -> List[torch.Tensor]:
        """Max over views of bilinear samples: feats [B, V, C, h, w], uv (B, V, N, 2) -> [B, C, N]."""
        (nu, nv), _, _ = self._det
        size = torch.tensor([nu, nv], dtype=uv.dtype, device=uv.device)
        norm = (2 * uv + 1) / size - 1  # pixel index -> [-1, 1], align_corners=False, any scale
        b, v, n, _ = uv.shape
        out = []
        for f in feats:
            s = F.grid_sample(f.flatten(0, 1), norm.reshape(b * v, 1, n, 2), mode="bilinear",
                              padding_mode="zeros", align_corners=False)  # [B*V, C, 1, N]
            out.append(s.reshape(b, v, f.shape[2], n).max(1).values)  # max over views
        return out

    # --------------------------------------------------------------- parts
    def encode_views(self, projections: torch.Tensor) -> List[torch.Tensor]:
        """(B, V, v, u) line integrals -> per-scale [B, V, C, h, w]."""
        b, v = projections.shape[:2]
        feats = self.encoder((projections / self.input_scale).flatten(0, 1)[:, None])
        return [f.reshape(b, v, *f.shape[1:]) for f in feats]

    def back_project(self, feats: List[torch.Tensor], mats: torch.Tensor) -> List[torch.Tensor]:
        b = mats.shape[0]
        g = self.config.feature_grid
        uv = self.project(self.grid_points[None].expand(b, -1, -1), mats)
        return [s.reshape(b, s.shape[1], g, g, g) for s in self._sample_views(feats, uv)]

    def quantise(self, vols: List[torch.Tensor]) -> Tuple[List[torch.Tensor], torch.Tensor]:
        qs, loss = [], vols[0].new_zeros(())
        for pre, vq, v in zip(self.pre_quant, self.quant, vols):
            q, l = vq(pre(v))
            qs.append(q)
            loss = loss + l
        return qs, loss

    def volume_from_quantised(self, qs: List[torch.Tensor]) -> torch.Tensor:
        return self.decoder([post(q) for post, q in zip(self.post_quant, qs)])

    def features(self, projections: torch.Tensor, angles: torch.Tensor, *, denoise: bool = True):
        """Everything computed once per volume: (2D feats, matrices, 3D volume, quantised, vq loss)."""
        mats = self.matrices(angles)
        feats = self.encode_views(projections)
        qs, vq_loss = self.quantise(self.back_project(feats, mats))
        if denoise and self.denoise is not None:
            qs = [d(q) for d, q in zip(self.denoise, qs)]
        return feats, mats, qs, vq_loss

    def query(self, points: torch.Tensor, vol3d: torch.Tensor, feats: List[torch.Tensor], mats: torch.Tensor) -> torch.Tensor:
        """Points (B, N, 3) grid-frame mm -> predicted normalised intensity (B, N)."""
        norm = (points / self.half_extent)[:, :, None, None, :]  # (x, y, z) in [-1, 1]
        f3 = F.grid_sample(vol3d, norm, mode="bilinear", padding_mode="border", align_corners=False)
        f3 = f3.reshape(*f3.shape[:2], -1)  # [B, C, N]
        f2 = self._sample_views(feats, self.project(points, mats))
        x = torch.cat([f3] + f2, 1).transpose(1, 2)
        return self.point_decoder(x)

    def forward(self, projections: torch.Tensor, angles: torch.Tensor, points: torch.Tensor,
                projections3d: Optional[torch.Tensor] = None, angles3d: Optional[torch.Tensor] = None):
        """Training forward. HyViP: 2D features from ``projections``; 3D from ``projections3d`` if given."""
        if projections3d is None:
            feats, mats, qs, vq_loss = self.features(projections, angles)
        else:
            mats = self.matrices(angles)
            feats = self.encode_views(projections)
            _, _, qs, vq_loss = self.features(projections3d, angles3d)
        return self.query(points, self.volume_from_quantised(qs), feats, mats), vq_loss


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def grid_points(geometry, device=None) -> torch.Tensor:
    """Voxel centres of the reconstruction grid in array order [z, y, x] -> (N^3, 3) (x, y, z) mm."""
    n, sp = geometry.grid_size, geometry.grid_spacing
    c = torch.arange(n, dtype=torch.float32, device=device) * sp + geometry.grid_origin()
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    return torch.stack([x, y, z], -1).reshape(-1, 3)
