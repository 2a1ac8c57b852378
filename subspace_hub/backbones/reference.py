"""The builtin reference backbone: a few-layer multi-view transformer that predicts per-pixel depth.

It is small enough to train on a CPU in seconds, and it has the module layout that attribute-subspace
fine-tuning targets in real 3D foundation models (``blocks.{i}.attn.qkv``, ``attn.proj``, ``mlp.fc1``,
``mlp.fc2``, a convolutional patch embedding that stays frozen), so docs, tests and the CPU quickstart run the
whole pipeline on it. It is not meant to be accurate.

Architecture: a ``patch_size`` convolution embeds each view; a learned embedding marks the first view as the
reference frame (as VGGT's camera tokens do); fixed 2D sin-cos position codes are added; ``depth`` pre-norm
transformer blocks attend jointly over the tokens of all views of a scene; a linear head predicts, per patch
pixel, log-depth and a confidence logit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from subspace_hub.configuration import from_dict
from subspace_hub.errors import ConfigError, ShapeMismatchError
from subspace_hub.specs import BackboneSpec


@dataclass(frozen=True)
class ReferenceConfig:
    """Sizes of the reference backbone; every field goes to ``config.json``."""

    dim: int = 32
    """Token width."""

    depth: int = 2
    """Number of transformer blocks."""

    num_heads: int = 2
    """Attention heads; must divide ``dim``."""

    mlp_ratio: float = 4.0
    """Hidden width of the MLP as a multiple of ``dim``."""

    patch_size: int = 8
    """Side of the square patches in pixels; image sides must be multiples of it."""

    def __post_init__(self) -> None:
        for name in ("dim", "depth", "num_heads", "patch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ReferenceConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.dim % self.num_heads:
            raise ConfigError(f"ReferenceConfig.dim ({self.dim}) must be divisible by num_heads ({self.num_heads}).")
        if self.dim % 4:
            raise ConfigError(f"ReferenceConfig.dim ({self.dim}) must be a multiple of 4 (2D sin-cos position codes).")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"ReferenceConfig.mlp_ratio must be > 0, got {self.mlp_ratio}.")


PRESETS: Mapping[str, Mapping[str, Any]] = {
    "tiny": {"dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 4.0, "patch_size": 8},
    "small": {"dim": 64, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0, "patch_size": 8},
}


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv and output projections."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, C] -> [B, N, C]."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Two linear layers with a GELU between them."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def sincos_position_codes(h: int, w: int, dim: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Fixed 2D sin-cos codes, [h*w, dim]: the first half encodes the row, the second half the column."""
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    rows = torch.arange(h, device=device, dtype=torch.float32)[:, None] * freq  # [h, dim/4]
    cols = torch.arange(w, device=device, dtype=torch.float32)[:, None] * freq  # [w, dim/4]
    row_codes = torch.cat([rows.sin(), rows.cos()], dim=-1)[:, None, :].expand(h, w, 2 * quarter)
    col_codes = torch.cat([cols.sin(), cols.cos()], dim=-1)[None, :, :].expand(h, w, 2 * quarter)
    return torch.cat([row_codes, col_codes], dim=-1).reshape(h * w, 4 * quarter).to(dtype)


class ReferenceBackbone(nn.Module):
    """Multi-view depth transformer.

    Input: images [B, S, 3, H, W] in [0, 1], H and W multiples of ``patch_size``.
    Output: ``{"depth": [B, S, H, W] (scene units, > 0), "depth_conf": [B, S, H, W] (> 1)}``.
    """

    def __init__(self, config: ReferenceConfig) -> None:
        super().__init__()
        self.config = config
        p = config.patch_size
        self.patch_embed = nn.Conv2d(3, config.dim, kernel_size=p, stride=p)
        self.view_embed = nn.Parameter(torch.zeros(2, config.dim))  # row 0: reference view, row 1: the others
        self.blocks = nn.ModuleList(Block(config.dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, 2 * p * p)
        nn.init.normal_(self.view_embed, std=0.02)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 5 or images.shape[2] != 3:
            raise ShapeMismatchError(f"images must be [B, S, 3, H, W], got {list(images.shape)}.")
        b, s, _, h, w = images.shape
        p = self.config.patch_size
        if h % p or w % p:
            raise ShapeMismatchError(f"Image size {h}x{w} is not a multiple of the patch size {p}.")
        gh, gw = h // p, w // p
        tokens = self.patch_embed(images.flatten(0, 1)).flatten(2).transpose(1, 2)  # [B*S, gh*gw, C]
        tokens = tokens + sincos_position_codes(gh, gw, self.config.dim, device=tokens.device, dtype=tokens.dtype)
        view_index = torch.ones(s, dtype=torch.long, device=tokens.device)
        view_index[0] = 0
        tokens = tokens.reshape(b, s, gh * gw, -1) + self.view_embed[view_index][None, :, None, :]
        x = tokens.reshape(b, s * gh * gw, -1)
        for block in self.blocks:
            x = block(x)
        out = self.head(self.norm(x)).reshape(b, s, gh, gw, 2, p, p)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, s, 2, h, w)  # unpatchify
        log_depth, conf_logit = out.unbind(dim=2)
        # Clamp keeps exp() finite in the first steps of training from random weights.
        return {"depth": log_depth.clamp(-10.0, 10.0).exp(), "depth_conf": 1.0 + conf_logit.clamp(max=20.0).exp()}


def build(config: Mapping[str, Any]) -> ReferenceBackbone:
    """``BackboneSpec.build``: a :class:`ReferenceBackbone` from a config dict."""
    return ReferenceBackbone(from_dict(ReferenceConfig, config, what="reference backbone config"))


def depth_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Masked L1 depth error in scene units, averaged over valid pixels (``mask`` and ``depth > 0``)."""
    gt = batch["depth"].to(outputs["depth"])
    valid = batch["mask"].bool() & (gt > 0) if "mask" in batch else gt > 0
    count = valid.sum().clamp(min=1)
    l1 = ((outputs["depth"] - gt).abs() * valid).sum() / count
    return {"loss": l1, "depth_l1": l1.detach()}


def predict(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Depth [B, S, H, W] and its confidence; cameras are taken from the batch (this model predicts none)."""
    return {"depth": outputs["depth"], "depth_conf": outputs["depth_conf"]}


def example_batch(
    model: ReferenceBackbone, *, batch_size: int = 1, views: int = 2, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A random batch in the interchange format: 2 views of 2x2 patches, fronto-parallel cameras."""
    size = 2 * model.config.patch_size
    gen = torch.Generator().manual_seed(seed)
    focal = float(size)
    intrinsics = torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    extrinsics = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)
    return {
        "images": torch.rand(batch_size, views, 3, size, size, generator=gen),
        "depth": 1.0 + torch.rand(batch_size, views, size, size, generator=gen),
        "mask": torch.ones(batch_size, views, size, size, dtype=torch.bool),
        "intrinsics": intrinsics.expand(batch_size, views, 3, 3).clone(),
        "extrinsics": extrinsics.expand(batch_size, views, 3, 4).clone(),
    }


_BLOCK = r"blocks\.(?P<layer>\d+)\."

SPEC = BackboneSpec(
    "reference",
    build=build,
    description="builtin multi-view depth transformer for docs, tests and the CPU quickstart",
    presets=PRESETS,
    default_preset="tiny",
    target_groups={
        "qkv": _BLOCK + r"attn\.qkv",
        "proj": _BLOCK + r"attn\.proj",
        "fc1": _BLOCK + r"mlp\.fc1",
        "fc2": _BLOCK + r"mlp\.fc2",
        "attn": _BLOCK + r"attn\.(qkv|proj)",
        "mlp": _BLOCK + r"mlp\.fc[12]",
        "blocks": _BLOCK + r"(attn\.(qkv|proj)|mlp\.fc[12])",
        "head": r"head",
    },
    default_targets=("blocks",),
    frozen=(r"patch_embed",),
    example_batch=example_batch,
    loss=depth_loss,
    predict=predict,
    license="apache-2.0",
    image_multiple=lambda config: int(config.get("patch_size", 8)),
)
"""The spec registered by :mod:`subspace_hub.builtin.backbones`."""
