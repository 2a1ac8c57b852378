"""DINOv2 vision transformer with register tokens, as VGGT uses it to embed image patches.

Layout (state-dict names): ``patch_embed.proj`` (patch convolution), ``cls_token``, ``pos_embed`` (learned, for
the pretraining grid plus the class token), ``register_tokens`` (no position embedding), ``mask_token``
(unused at inference, kept frozen), ``blocks.{i}`` (pre-norm blocks, LayerNorm eps 1e-6, LayerScale) and the
final ``norm``. The output VGGT reads is the normalised patch tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from subspace_hub_vggt.config import DinoConfig
from subspace_hub_vggt.layers import Block, ConvPatchEmbed


class DinoV2(nn.Module):
    """DINOv2 ViT with registers: images [N, 3, H, W] (normalised) -> patch tokens [N, (H/p)*(W/p), C]."""

    def __init__(self, config: DinoConfig, *, img_size: int, patch_size: int, num_register_tokens: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = config.interpolate_antialias
        self.interpolate_offset = config.interpolate_offset
        dim = config.embed_dim
        grid = img_size // patch_size
        self.patch_embed = ConvPatchEmbed(patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, dim)) if num_register_tokens else None
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio, init_values=config.init_values, norm_eps=1e-6)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim), requires_grad=False)
        self.gradient_checkpointing = False
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def position_embedding(self, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        """Class + patch position embeddings [1, 1 + h*w, C] for an image of ``height`` x ``width`` pixels.

        The learned grid is resized bicubically (in float32) when the patch grid differs from the pretraining
        grid or the image is not square.
        """
        h, w = height // self.patch_size, width // self.patch_size
        num_pretrain = self.pos_embed.shape[1] - 1
        if h * w == num_pretrain and height == width:
            return self.pos_embed
        side = int(round(num_pretrain**0.5))
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            scale = ((h + self.interpolate_offset) / side, (w + self.interpolate_offset) / side)
            resized = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=self.interpolate_antialias)
        else:
            resized = F.interpolate(patch_pos, size=(h, w), mode="bicubic", antialias=self.interpolate_antialias)
        resized = resized.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([pos[:, :1], resized], dim=1).to(dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1)
        x = x + self.position_embedding(height, width, x.dtype)
        if self.register_tokens is not None:
            x = torch.cat([x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.norm(x)[:, 1 + self.num_register_tokens :]
