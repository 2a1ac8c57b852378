"""DPT dense head: four aggregator layers -> a multi-scale feature pyramid -> per-pixel predictions.

Each selected layer's patch tokens are normalised, reshaped to a [2C, h, w] map (h, w in patches), projected by
a 1x1 convolution and resampled to 4x, 2x, 1x and 1/2x the patch grid. RefineNet-style fusion blocks merge the
pyramid from coarse to fine; the result is resized to the image (or 1/``down_ratio`` of it) and decoded.
Optional UV sin-cos embeddings (scaled by 0.1) are added after projection and after the final resize.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from subspace_hub_vggt.config import DPTHeadConfig
from subspace_hub_vggt.heads.activations import activate_dense

_INTERPOLATE_MAX_ELEMENTS = 1_610_612_736  # keep F.interpolate below its int32 indexing limit


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with aligned corners, split along the batch when the output would overflow int32."""
    if size[0] * size[1] * x.shape[0] * x.shape[1] <= _INTERPOLATE_MAX_ELEMENTS:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    chunks = size[0] * size[1] * x.shape[0] * x.shape[1] // _INTERPOLATE_MAX_ELEMENTS + 1
    return torch.cat(
        [F.interpolate(c, size=size, mode="bilinear", align_corners=True) for c in x.chunk(chunks, dim=0)], dim=0
    ).contiguous()


def uv_grid(width: int, height: int, aspect_ratio: float, device: torch.device) -> torch.Tensor:
    """[height, width, 2] image-plane coordinates, centred, spanning +-aspect/diag by +-1/diag (pixel centres)."""
    diag = (aspect_ratio**2 + 1.0) ** 0.5
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    xs = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, device=device)
    ys = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def sincos(positions: torch.Tensor, dim: int, omega_0: float = 100.0) -> torch.Tensor:
    """[M] positions -> [M, dim] = [sin(p * w_k), cos(p * w_k)], w_k = omega_0 ** (-k / (dim/2)), in float64."""
    omega = 1.0 / omega_0 ** (torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0))
    angles = positions.reshape(-1, 1).to(torch.float64) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def uv_embedding(height: int, width: int, channels: int, aspect_ratio: float, device: torch.device) -> torch.Tensor:
    """[channels, height, width] embedding: half the channels encode u, half encode v."""
    grid = uv_grid(width, height, aspect_ratio, device).reshape(-1, 2)
    emb = torch.cat([sincos(grid[:, 0], channels // 2), sincos(grid[:, 1], channels // 2)], dim=-1)
    return emb.reshape(height, width, channels).permute(2, 0, 1)


class ResidualConvUnit(nn.Module):
    """``conv2(relu(conv1(relu(x)))) + relu(x)`` (the residual is taken after the activation)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """Adds a lateral input (through a residual unit), refines, upsamples, projects (1x1)."""

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)

    def forward(
        self, x: torch.Tensor, lateral: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if lateral is not None:
            x = x + self.resConfUnit1(lateral)
        x = self.resConfUnit2(x)
        x = resize(x, size or (int(x.shape[-2] * 2), int(x.shape[-1] * 2)))
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Dense head. With ``output_dim`` it returns (values [B, S, H, W, output_dim-1], conf [B, S, H, W]);
    with ``output_dim=None`` it returns feature maps [B, S, features, H/down, W/down]."""

    def __init__(self, dim_in: int, patch_size: int, config: DPTHeadConfig, output_dim: int | None) -> None:
        super().__init__()
        self.config = config
        self.patch_size = patch_size
        self.feature_only = output_dim is None
        oc = config.out_channels
        features = config.features
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, kernel_size=1) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = nn.Module()
        for i, c in enumerate(oc, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(c, features, kernel_size=3, padding=1, bias=False))
        self.scratch.refinenet1 = FusionBlock(features)
        self.scratch.refinenet2 = FusionBlock(features)
        self.scratch.refinenet3 = FusionBlock(features)
        self.scratch.refinenet4 = FusionBlock(features, has_residual=False)
        if self.feature_only:
            self.scratch.output_conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        else:
            self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
            self.scratch.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, output_dim, kernel_size=1),
            )

    def _add_uv(self, x: torch.Tensor, aspect_ratio: float) -> torch.Tensor:
        emb = uv_embedding(x.shape[-2], x.shape[-1], x.shape[1], aspect_ratio, x.device)
        return x + (0.1 * emb).to(x.dtype)

    def _fuse(self, maps: list[torch.Tensor]) -> torch.Tensor:
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(m) for i, m in enumerate(maps, start=1))
        out = s.refinenet4(l4, size=l3.shape[2:])
        out = s.refinenet3(out, l3, size=l2.shape[2:])
        out = s.refinenet2(out, l2, size=l1.shape[2:])
        out = s.refinenet1(out, l1)
        return s.output_conv1(out)

    def _decode(self, layers: list[torch.Tensor], height: int, width: int, patch_start: int) -> torch.Tensor:
        """Layers: the selected [B, S', T, 2C] outputs for a chunk of frames -> [B*S', C_out, H', W']."""
        b, s = layers[0].shape[:2]
        gh, gw = height // self.patch_size, width // self.patch_size
        aspect = width / height
        maps = []
        for project, resample, tokens in zip(self.projects, self.resize_layers, layers, strict=True):
            x = self.norm(tokens[:, :, patch_start:].reshape(b * s, gh * gw, -1))
            x = project(x.permute(0, 2, 1).reshape(b * s, -1, gh, gw))
            if self.config.pos_embed:
                x = self._add_uv(x, aspect)
            maps.append(resample(x))
        out = self._fuse(maps)
        down = self.config.down_ratio
        out = resize(out, (int(gh * self.patch_size / down), int(gw * self.patch_size / down)))
        if self.config.pos_embed:
            out = self._add_uv(out, aspect)
        return out

    def forward(
        self,
        layer_outputs: list[torch.Tensor | None],
        image_size: tuple[int, int],
        patch_start: int,
        frames_chunk_size: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Decode frames in chunks of ``frames_chunk_size`` (default: the config's; 0 = all at once). Chunking
        bounds memory; the result does not depend on it."""
        height, width = image_size
        selected = [layer_outputs[i] for i in self.config.intermediate_layer_idx]
        b, s = selected[0].shape[:2]
        chunk = (self.config.frames_chunk_size if frames_chunk_size is None else frames_chunk_size) or s
        values, confs = [], []
        for start in range(0, s, chunk):
            out = self._decode([t[:, start : start + chunk] for t in selected], height, width, patch_start)
            n = out.shape[0] // b
            if self.feature_only:
                values.append(out.reshape(b, n, *out.shape[1:]))
                continue
            value, conf = activate_dense(
                self.scratch.output_conv2(out), self.config.activation, self.config.conf_activation
            )
            values.append(value.reshape(b, n, *value.shape[1:]))
            confs.append(conf.reshape(b, n, *conf.shape[1:]))
        if self.feature_only:
            return torch.cat(values, dim=1)
        return torch.cat(values, dim=1), torch.cat(confs, dim=1)
