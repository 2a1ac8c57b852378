"""Transformer building blocks shared by the DINO encoder, the aggregator and the camera head.

Module and parameter names follow the official VGGT state dict (``norm1``, ``attn.qkv``, ``attn.q_norm``,
``ls1.gamma``, ``mlp.fc1``, ...), so official checkpoints load with strict key checks.

Rotary position embedding is applied from precomputed tables: the aggregator builds the cos/sin tables of its
token grid once per forward pass and every block reuses them, instead of gathering them per block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerScale(nn.Module):
    """Per-channel learned residual scale (``gamma``)."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` with exact (erf) GELU."""

    def __init__(
        self, in_features: int, hidden_features: int, out_features: int | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


RopeTables = tuple[torch.Tensor, torch.Tensor]
"""(cos, sin), each [N, head_dim] float32, for the N tokens of an attention call."""


def rope_tables(positions: torch.Tensor, head_dim: int, base: float) -> RopeTables:
    """Cos/sin tables of 2D rotary embedding for integer (y, x) positions [N, 2].

    The first half of each head encodes y and the second half x; within a half of size d, frequency
    ``base ** (-2j / d)`` (j < d/2) rotates the pair (j, j + d/2).
    """
    half = head_dim // 2
    inv_freq = 1.0 / (base ** (torch.arange(0, half, 2, device=positions.device, dtype=torch.float32) / half))
    angles = positions.to(torch.float32)[..., None] * inv_freq  # [N, 2, half/2]
    angles = torch.cat([angles, angles], dim=-1).flatten(-2)  # [N, head_dim]: y-half then x-half
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """Rotate queries or keys x [..., N, head_dim] by the tables of :func:`rope_tables`."""
    cos, sin = tables
    halves = x.unflatten(-1, (2, 2, x.shape[-1] // 4))  # [..., axis (y|x), part, n]
    rotated = torch.stack([-halves[..., 1, :], halves[..., 0, :]], dim=-2).flatten(-3)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with optional per-head LayerNorm on q and k and optional 2D RoPE."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, rope: RopeTables | None = None) -> torch.Tensor:
        """x: [B, N, C] -> [B, N, C]; ``rope`` tables cover the N tokens."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale: ``x + ls1(attn(norm1(x))); x + ls2(mlp(norm2(x)))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        qk_norm: bool = False,
        init_values: float | None = None,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor, rope: RopeTables | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class ConvPatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution: images [N, 3, H, W] -> tokens [N, (H/p)*(W/p), C]."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)
