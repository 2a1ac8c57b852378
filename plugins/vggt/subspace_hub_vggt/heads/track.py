"""Track head: a stride-2 DPT feature map per frame and an iterative point tracker (CoTracker/VGGSfM style).

For N query points given in the first frame, the tracker keeps a position and a feature per frame and point.
Each iteration samples a multi-level correlation window around the current positions, encodes the motion
relative to the query, and lets a transformer that alternates attention over time (per track) and over space
(tracks <-> a few learned virtual tracks) predict position and feature updates. Positions in the first frame
stay fixed at the query.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from subspace_hub_vggt.config import DPTHeadConfig, TrackHeadConfig
from subspace_hub_vggt.heads.dpt import DPTHead
from subspace_hub_vggt.layers import Mlp


def sample_bilinear(maps: torch.Tensor, points: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Sample maps [B, C, H, W] at pixel positions points [B, ..., 2] (x, y; pixel centres at integers,
    corners aligned) -> [B, C, ...]."""
    h, w = maps.shape[-2:]
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=points.device, dtype=maps.dtype)
    grid = points.to(maps.dtype) * scale - 1.0
    if grid.ndim == 3:
        return F.grid_sample(maps, grid[:, :, None], align_corners=True, padding_mode=padding_mode)[..., 0]
    return F.grid_sample(maps, grid, align_corners=True, padding_mode=padding_mode)


def point_features(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Features of maps [B, C, H, W] at points [B, N, 2] -> [B, N, C] (border padding)."""
    return sample_bilinear(maps, points, "border").transpose(1, 2)


def sincos_grid_embedding(dim: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """[1, dim, H, W]: the first half of the channels encodes x (column), the second half y (row), with
    frequencies 10000 ** (-k / (dim/4))."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )

    def encode(values: torch.Tensor, d: int) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64, device=device) / (d / 2.0))
        angles = values.reshape(-1, 1).to(torch.float64) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1).float()

    emb = torch.cat([encode(xs, dim // 2), encode(ys, dim // 2)], dim=1)  # [H*W, dim]
    return emb.reshape(1, height, width, dim).permute(0, 3, 1, 2)


def motion_embedding(flows: torch.Tensor, channels: int) -> torch.Tensor:
    """flows [..., 2] (pixels) -> [..., 2*channels]: interleaved sin/cos of x then of y, frequencies k*1000/channels."""
    freq = torch.arange(0, channels, 2, device=flows.device, dtype=torch.float32) * (1000.0 / channels)
    parts = []
    for axis in range(2):
        angles = flows[..., axis : axis + 1].float() * freq
        parts.append(torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2))
    return torch.cat(parts, dim=-1)


class AttnBlock(nn.Module):
    """Self-attention block whose residual starts from the normalised input:
    x = norm1(x); x += attn(x); x += mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """Cross-attention block: x = norm1(x); x += attn(x, norm_context(ctx)); x += mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        context = self.norm_context(context)
        x = x + self.cross_attn(x, context, context, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class UpdateTransformer(nn.Module):
    """Tracks [B, N, S, D_in] -> updates [B, N, S, D_out], alternating time and space (via virtual tracks) attention."""

    def __init__(self, config: TrackHeadConfig, input_dim: int, output_dim: int) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.num_virtual_tracks = config.num_virtual_tracks
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden)
        self.output_norm = nn.LayerNorm(hidden)
        self.flow_head = nn.Linear(hidden, output_dim)
        # The misspelling is the checkpoint's key; keep it so official weights load.
        self.virual_tracks = nn.Parameter(torch.randn(1, config.num_virtual_tracks, 1, hidden))
        heads, ratio, depth = config.num_heads, config.mlp_ratio, config.depth
        self.time_blocks = nn.ModuleList(AttnBlock(hidden, heads, ratio) for _ in range(depth))
        self.space_virtual_blocks = nn.ModuleList(AttnBlock(hidden, heads, ratio) for _ in range(depth))
        self.space_point2virtual_blocks = nn.ModuleList(CrossAttnBlock(hidden, heads, ratio) for _ in range(depth))
        self.space_virtual2point_blocks = nn.ModuleList(CrossAttnBlock(hidden, heads, ratio) for _ in range(depth))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.flow_head.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.input_transform(self.input_norm(x))
        initial = tokens
        b, n, t, c = tokens.shape
        tokens = torch.cat([tokens, self.virual_tracks.expand(b, -1, t, -1)], dim=1)
        total = tokens.shape[1]
        every = len(self.time_blocks) // len(self.space_virtual_blocks)
        space_idx = 0
        for i, time_block in enumerate(self.time_blocks):
            tokens = time_block(tokens.reshape(b * total, t, c)).reshape(b, total, t, c)
            if i % every == 0:
                space = tokens.permute(0, 2, 1, 3).reshape(b * t, total, c)
                points, virtual = space[:, :n], space[:, n:]
                virtual = self.space_virtual2point_blocks[space_idx](virtual, points)
                virtual = self.space_virtual_blocks[space_idx](virtual)
                points = self.space_point2virtual_blocks[space_idx](points, virtual)
                tokens = torch.cat([points, virtual], dim=1).reshape(b, t, total, c).permute(0, 2, 1, 3)
                space_idx += 1
        return self.flow_head(self.output_norm(tokens[:, :n] + initial))


class Tracker(nn.Module):
    """Iterative tracker: query points [B, N, 2] (pixels, first frame) + feature maps [B, S, C, h, w]."""

    def __init__(self, config: TrackHeadConfig) -> None:
        super().__init__()
        self.config = config
        latent = config.features
        self.latent_dim = latent
        self.transformer_dim = 3 * latent + 4
        window = (2 * config.corr_radius + 1) ** 2
        self.corr_mlp = Mlp(config.corr_levels * window, config.hidden_size, latent)
        self.query_ref_token = nn.Parameter(torch.randn(1, 2, self.transformer_dim))
        self.updateformer = UpdateTransformer(config, self.transformer_dim, latent + 2)
        self.fmap_norm = nn.LayerNorm(latent)
        self.ffeat_norm = nn.GroupNorm(1, latent)
        self.ffeat_updater = nn.Sequential(nn.Linear(latent, latent), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(latent, 1))
        if config.predict_conf:
            self.conf_predictor = nn.Sequential(nn.Linear(latent, 1))

    def _correlations(self, pyramid: list[torch.Tensor], feats: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Correlation windows [B, S, N, levels*(2r+1)^2] of feats [B, S, N, C] around coords [B, S, N, 2]."""
        b, s, n, c = feats.shape
        r = self.config.corr_radius
        offsets = torch.linspace(-r, r, 2 * r + 1, device=coords.device, dtype=coords.dtype)
        # Window cell (a, b) samples at (x + offset_a, y + offset_b): the checkpoint was trained with this layout.
        window = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)  # [2r+1, 2r+1, 2]
        out = []
        for level, maps in enumerate(pyramid):
            h, w = maps.shape[-2:]
            corr = torch.matmul(feats, maps.reshape(b, s, c, h * w)) / math.sqrt(c)  # [B, S, N, h*w]
            centres = coords.reshape(b * s * n, 1, 1, 2) / 2**level
            sampled = sample_bilinear(corr.reshape(b * s * n, 1, h, w), centres + window, "zeros")
            out.append(sampled.reshape(b, s, n, -1))
        return torch.cat(out, dim=-1)

    def forward(
        self, query_points: torch.Tensor, fmaps: torch.Tensor, iters: int | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        cfg = self.config
        b, n, _ = query_points.shape
        s, _, h, w = fmaps.shape[1:]
        latent = self.latent_dim
        fmaps = self.fmap_norm(fmaps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        query = query_points / float(cfg.stride)
        coords = query.reshape(b, 1, n, 2).repeat(1, s, 1, 1)
        feats = point_features(fmaps[:, 0], query)[:, None].repeat(1, s, 1, 1)  # [B, S, N, C]
        pyramid = [fmaps]
        for _ in range(cfg.corr_levels - 1):
            last = pyramid[-1]
            pooled = F.avg_pool2d(last.reshape(b * s, *last.shape[2:]), kernel_size=2, stride=2)
            pyramid.append(pooled.reshape(b, s, *pooled.shape[1:]))
        # The query's position embedding and the first/other-frame tokens do not change across iterations.
        grid_embedding = sincos_grid_embedding(self.transformer_dim, h, w, fmaps.device).expand(b, -1, -1, -1)
        position = point_features(grid_embedding, query).reshape(b * n, 1, -1)
        frame_tokens = torch.cat(
            [self.query_ref_token[:, :1], self.query_ref_token[:, 1:2].expand(-1, s - 1, -1)], dim=1
        )

        predictions = []
        for _ in range(iters or cfg.iters):
            coords = coords.detach()
            corr = self.corr_mlp(self._correlations(pyramid, feats, coords).permute(0, 2, 1, 3).reshape(b * n, s, -1))
            flows = (coords - coords[:, :1]).permute(0, 2, 1, 3).reshape(b * n, s, 2)
            motion = torch.cat(
                [motion_embedding(flows, latent // 2), flows / cfg.max_scale, flows / cfg.max_scale], dim=-1
            )
            track_feats = feats.permute(0, 2, 1, 3).reshape(b * n, s, latent)
            x = torch.cat([motion, corr, track_feats], dim=-1) + position
            x = x + frame_tokens.to(x.dtype)
            delta = self.updateformer(x.reshape(b, n, s, -1)).reshape(b * n * s, latent + 2)
            track_feats = self.ffeat_updater(self.ffeat_norm(delta[:, 2:])) + track_feats.reshape(b * n * s, latent)
            feats = track_feats.reshape(b, n, s, latent).permute(0, 2, 1, 3)
            coords = coords + delta[:, :2].reshape(b, n, s, 2).permute(0, 2, 1, 3)
            coords = torch.cat([query[:, None], coords[:, 1:]], dim=1)  # the query frame stays at the query
            predictions.append(coords * cfg.stride)
        flat = feats.reshape(b * s * n, latent)
        vis = torch.sigmoid(self.vis_predictor(flat).reshape(b, s, n))
        conf = torch.sigmoid(self.conf_predictor(flat).reshape(b, s, n)) if cfg.predict_conf else None
        return predictions, vis, conf


class TrackHead(nn.Module):
    """Layers + query points [B, N, 2] (pixels of the first frame) -> (tracks per iteration [B, S, N, 2],
    visibility [B, S, N], confidence [B, S, N] or None)."""

    def __init__(self, dim_in: int, patch_size: int, config: TrackHeadConfig) -> None:
        super().__init__()
        self.config = config
        features_config = DPTHeadConfig(
            features=config.features,
            out_channels=config.out_channels,
            intermediate_layer_idx=config.intermediate_layer_idx,
            pos_embed=False,
            down_ratio=2,
        )
        self.feature_extractor = DPTHead(dim_in, patch_size, features_config, output_dim=None)
        self.tracker = Tracker(config)

    def forward(
        self,
        layer_outputs: list[torch.Tensor | None],
        image_size: tuple[int, int],
        patch_start: int,
        query_points: torch.Tensor,
        iters: int | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        fmaps = self.feature_extractor(layer_outputs, image_size, patch_start)
        return self.tracker(query_points, fmaps, iters)
