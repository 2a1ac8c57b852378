"""The VGGT aggregator: patch embedding, camera and register tokens, alternating frame/global attention.

Each frame contributes ``1 + R + P`` tokens (camera token, R register tokens, P patch tokens). The first frame
uses the first of two learned token sets and every other frame the second, which tells the network which frame
defines the world coordinate system. Frame blocks attend within each frame ([B*S, T, C]); global blocks attend
across all frames of a scene ([B, S*T, C]). Layer ``i`` outputs the concatenation of frame block ``i`` and
global block ``i`` outputs: [B, S, T, 2C].

Only the layers the enabled heads read are kept, so memory does not grow with the depth of the trunk.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.utils.checkpoint
from torch import nn

from subspace_hub.errors import ShapeMismatchError
from subspace_hub_vggt.config import VGGTConfig
from subspace_hub_vggt.dinov2 import DinoV2
from subspace_hub_vggt.layers import Block, ConvPatchEmbed, RopeTables, rope_tables

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _per_frame(tokens: nn.Parameter, batch: int, frames: int) -> torch.Tensor:
    """[1, 2, X, C] learned tokens -> [B*S, X, C]: set 0 for the first frame, set 1 for the others."""
    first = tokens[:, :1].expand(batch, 1, *tokens.shape[2:])
    others = tokens[:, 1:].expand(batch, frames - 1, *tokens.shape[2:])
    return torch.cat([first, others], dim=1).reshape(batch * frames, *tokens.shape[2:])


class Aggregator(nn.Module):
    """images [B, S, 3, H, W] in [0, 1] -> per-layer tokens [B, S, T, 2C] (only the requested layers)."""

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        agg = config.aggregator
        dim = config.embed_dim
        self.patch_size = config.patch_size
        self.depth = agg.depth
        self.aa_order = tuple(agg.aa_order)
        self.aa_block_size = agg.aa_block_size
        self.rope_freq = agg.rope_freq
        self.num_heads = agg.num_heads
        dino = config.dino
        if dino is None:
            self.patch_embed: nn.Module = ConvPatchEmbed(config.patch_size, dim)
        else:
            self.patch_embed = DinoV2(
                dino,
                img_size=config.img_size,
                patch_size=config.patch_size,
                num_register_tokens=agg.num_register_tokens,
            )

        def block() -> Block:
            return Block(
                dim,
                agg.num_heads,
                agg.mlp_ratio,
                qkv_bias=agg.qkv_bias,
                proj_bias=agg.proj_bias,
                ffn_bias=agg.ffn_bias,
                qk_norm=agg.qk_norm,
                init_values=agg.init_values,
            )

        self.frame_blocks = nn.ModuleList(block() for _ in range(agg.depth))
        self.global_blocks = nn.ModuleList(block() for _ in range(agg.depth))
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.randn(1, 2, agg.num_register_tokens, dim))
        nn.init.normal_(self.camera_token, std=1e-6)
        nn.init.normal_(self.register_token, std=1e-6)
        self.patch_start_idx = 1 + agg.num_register_tokens
        self.register_buffer("_resnet_mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("_resnet_std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)
        self.gradient_checkpointing = False

    def _rope(self, grid_h: int, grid_w: int, device: torch.device) -> RopeTables | None:
        """Tables for one frame's tokens: special tokens at (0, 0), patch (i, j) at (i + 1, j + 1)."""
        if self.rope_freq <= 0:
            return None
        ys, xs = torch.meshgrid(
            torch.arange(1, grid_h + 1, device=device), torch.arange(1, grid_w + 1, device=device), indexing="ij"
        )
        patches = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=-1)
        special = torch.zeros(self.patch_start_idx, 2, dtype=patches.dtype, device=device)
        return rope_tables(torch.cat([special, patches]), self.frame_blocks[0].attn.head_dim, self.rope_freq)

    def _run(self, block: Block, x: torch.Tensor, rope: RopeTables | None) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(block, x, rope, use_reentrant=False)
        return block(x, rope)

    def forward(self, images: torch.Tensor, keep_layers: Collection[int] | None = None) -> list[torch.Tensor | None]:
        """Run the trunk.

        Args:
            images: [B, S, 3, H, W] in [0, 1]; H and W multiples of the patch size.
            keep_layers: Layer indices to return (negative indices count from the end); ``None`` keeps all.

        Returns:
            A list of ``depth`` entries: [B, S, T, 2C] for kept layers, ``None`` for the others.
        """
        b, s, c, h, w = images.shape
        if c != 3:
            raise ShapeMismatchError(f"VGGT expects RGB images [B, S, 3, H, W], got {c} channels.")
        if h % self.patch_size or w % self.patch_size:
            raise ShapeMismatchError(
                f"Image size {h}x{w} is not a multiple of the patch size {self.patch_size}; resize or crop the images."
            )
        keep = set(range(self.depth)) if keep_layers is None else {i % self.depth for i in keep_layers}
        images = (images - self._resnet_mean) / self._resnet_std
        patches = self.patch_embed(images.reshape(b * s, c, h, w))
        tokens = torch.cat([_per_frame(self.camera_token, b, s), _per_frame(self.register_token, b, s), patches], dim=1)
        t, dim = tokens.shape[1], tokens.shape[2]
        frame_rope = self._rope(h // self.patch_size, w // self.patch_size, images.device)
        global_rope = None if frame_rope is None else (frame_rope[0].repeat(s, 1), frame_rope[1].repeat(s, 1))

        outputs: list[torch.Tensor | None] = [None] * self.depth
        frame_idx = global_idx = 0
        for _ in range(self.depth // self.aa_block_size):
            per_type: dict[str, list[torch.Tensor]] = {}
            for kind in self.aa_order:
                per_type[kind] = []
                for _ in range(self.aa_block_size):
                    if kind == "frame":
                        tokens = self._run(self.frame_blocks[frame_idx], tokens.reshape(b * s, t, dim), frame_rope)
                        frame_idx += 1
                    else:
                        tokens = self._run(self.global_blocks[global_idx], tokens.reshape(b, s * t, dim), global_rope)
                        global_idx += 1
                    per_type[kind].append(tokens.reshape(b, s, t, dim))
            first_layer = frame_idx - self.aa_block_size
            for i in range(self.aa_block_size):
                if first_layer + i in keep:
                    outputs[first_layer + i] = torch.cat([per_type["frame"][i], per_type["global"][i]], dim=-1)
        return outputs
