"""2D-LFM: a transformer that lifts N 2D landmarks of any category to N 3D points (methods.md B.2).

Tokens are ``Embed(X) = X W + b + TPE(X) + e_c`` (a linear map of the 2D coordinates, their random-Fourier encoding
projected to the width, and a learnable category embedding), padded to ``max_landmarks``. The correspondence
encoding Phi indexes landmark identity (slot j of the category's list), is added to the input tokens and, in the
layers ``phi_layers`` selects, to the queries and keys (and values with ``phi_on_values``). Without Phi the model is
permutation-equivariant, which is why 2D supervision alone cannot identify the 3D shape (Proposition 1).

Module names (adapter targets): ``blocks.{i}.attn.q|k|v|proj``, ``blocks.{i}.mlp.fc1|fc2``, ``embed.coords``,
``embed.tpe``, ``head``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from subspace_hub_lfm2d.config import LFM2DConfig

_BASIS_GAIN = 10.0


def rff_phi(slots: int, dim: int, sigma: float = 2.5) -> torch.Tensor:
    """[slots, dim] deterministic correspondence encoding: ``Phi_j = [sin(w_k j); cos(w_k j)]`` over ``k < dim/2``
    with ``w_k = sigma * sqrt(2) * erfinv((k + 1/2) / (dim/2))``, the quantiles of a half-normal of scale sigma (the
    inverse-Gaussian-CDF spectrum; the half-step keeps erfinv finite)."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float64)
    omega = sigma * math.sqrt(2.0) * torch.special.erfinv((k + 0.5) / half)
    angles = torch.arange(slots, dtype=torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def laplacian_phi(adjacency: torch.Tensor, dim: int, projection: torch.Tensor) -> torch.Tensor:
    """[B, N, dim] correspondence encoding from skeleton graphs ``adjacency`` [B, N, N] (symmetric, 0/1): the
    eigenvectors of the normalised graph Laplacian (smallest eigenvalues first, each with its sign fixed so its
    largest-magnitude entry is positive), mapped to ``dim`` by the fixed matrix ``projection`` [N, dim]."""
    a = adjacency.float()
    degree = a.sum(-1).clamp(min=1e-6)
    d = degree.rsqrt()
    laplacian = torch.eye(a.shape[-1], device=a.device) - d[..., :, None] * a * d[..., None, :]
    _, vectors = torch.linalg.eigh(laplacian)
    index = vectors.abs().argmax(dim=-2, keepdim=True)
    signs = torch.gather(vectors, -2, index).sign()
    signs[signs == 0] = 1
    return (vectors * signs) @ projection


class Embedding(nn.Module):
    """``X W + b + TPE(X) + e_c``, with a learned token for landmarks that are not visible."""

    def __init__(self, config: LFM2DConfig) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(config.seed)
        frequencies = torch.randn(2, config.tpe_features // 2, generator=generator) * config.tpe_sigma
        self.register_buffer("frequencies", frequencies, persistent=True)
        self.coords = nn.Linear(2, config.dim)
        self.tpe = nn.Linear(config.tpe_features, config.dim)
        self.category = nn.Embedding(config.categories, config.dim)
        self.missing = nn.Parameter(torch.zeros(config.dim))

    def forward(self, landmarks: torch.Tensor, visible: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * landmarks @ self.frequencies
        tokens = self.coords(landmarks) + self.tpe(torch.cat([angles.sin(), angles.cos()], dim=-1))
        tokens = torch.where(visible[..., None], tokens, self.missing.to(tokens.dtype))
        return tokens + self.category(category)[:, None, :]


class Attention(nn.Module):
    """Multi-head self-attention whose queries and keys (and optionally values) get Phi added after projection."""

    def __init__(self, config: LFM2DConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.q = nn.Linear(config.dim, config.dim)
        self.k = nn.Linear(config.dim, config.dim)
        self.v = nn.Linear(config.dim, config.dim)
        self.proj = nn.Linear(config.dim, config.dim)

    def forward(
        self, x: torch.Tensor, keys_valid: torch.Tensor, phi: torch.Tensor | None, phi_on_values: bool
    ) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        if phi is not None:
            q, k = q + phi, k + phi
            if phi_on_values:
                v = v + phi
        b, n, d = x.shape
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        mask = keys_valid[:, None, None, :]  # [B, 1, 1, N]: attend to visible, real landmarks only
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, config: LFM2DConfig) -> None:
        super().__init__()
        hidden = int(config.dim * config.mlp_ratio)
        self.fc1 = nn.Linear(config.dim, hidden)
        self.fc2 = nn.Linear(hidden, config.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: LFM2DConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.dim)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, keys_valid: torch.Tensor, phi: torch.Tensor | None, phi_on_values: bool
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), keys_valid, phi, phi_on_values)
        return x + self.mlp(self.norm2(x))


class LFM2D(nn.Module):
    """``forward(landmarks2d [B, N, 2], visible [B, N] bool, category [B] long, valid [B, N] bool = all,
    adjacency [B, N, N] = None) -> {"landmarks": [B, N, 3]}`` (a canonical 3D shape, up to a similarity)."""

    def __init__(self, config: LFM2DConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LFM2DConfig()
        self.embed = Embedding(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        if config.shape_basis:
            self.head = nn.Linear(config.dim, config.shape_basis)  # pooled tokens -> the K basis coefficients
            basis = torch.randn(
                config.categories,
                config.shape_basis + 1,
                config.max_landmarks,
                3,
                generator=torch.Generator().manual_seed(config.seed + 2),
            )
            # [C, 1 + K, N_max, 3]: mean shape, then basis shapes, stored divided by _BASIS_GAIN: Adam moves every
            # parameter by about the learning rate a step, and unit-sized shapes need larger steps than weights
            self.basis = nn.Parameter(basis / math.sqrt(3) / _BASIS_GAIN)
        else:
            self.head = nn.Linear(config.dim, 3)
        self.register_buffer("phi_rff", rff_phi(config.max_landmarks, config.dim, config.phi_sigma), persistent=False)
        projection = torch.randn(
            config.max_landmarks, config.dim, generator=torch.Generator().manual_seed(config.seed + 1)
        ) / math.sqrt(config.max_landmarks)
        self.register_buffer("phi_projection", projection, persistent=False)

    def phi(self, n: int, adjacency: torch.Tensor | None) -> torch.Tensor | None:
        """[1 or B, N, dim] Phi of the first ``n`` slots, or ``None`` without a correspondence encoding."""
        if self.config.phi == "none":
            return None
        if self.config.phi == "laplacian":
            if adjacency is None:
                raise ValueError("phi='laplacian' needs batch['adjacency'] [B, N, N] (the skeleton of each sample).")
            return laplacian_phi(adjacency, self.config.dim, self.phi_projection[:n])
        return self.phi_rff[:n][None]

    def forward(
        self,
        landmarks2d: torch.Tensor,
        visible: torch.Tensor,
        category: torch.Tensor,
        valid: torch.Tensor | None = None,
        adjacency: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        b, n, _ = landmarks2d.shape
        if n > self.config.max_landmarks:
            raise ValueError(f"{n} landmarks exceed max_landmarks={self.config.max_landmarks} of this model.")
        valid = torch.ones(b, n, dtype=torch.bool, device=landmarks2d.device) if valid is None else valid.bool()
        visible = visible.bool() & valid
        phi = self.phi(n, adjacency)
        x = self.embed(landmarks2d, visible, category)
        if phi is not None:
            x = x + phi.to(x.dtype)
        keys = visible.clone()
        keys[~keys.any(-1)] = True  # a sample with nothing visible attends to its padding instead of to nothing
        for layer, block in enumerate(self.blocks):
            x = block(x, keys, phi if self.config.phi_in_layer(layer) else None, self.config.phi_on_values)
        x = self.norm(x)
        if not self.config.shape_basis:
            return {"landmarks": self.head(x)}
        weights = visible.to(x.dtype)[..., None]
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        coefficients = self.head(pooled)  # [B, K]
        basis = self.basis[category, :, :n].to(x.dtype) * _BASIS_GAIN  # [B, 1 + K, N, 3]
        shape = basis[:, 0] + torch.einsum("bk,bknc->bnc", coefficients, basis[:, 1:])
        return {"landmarks": shape}
