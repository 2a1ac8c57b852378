"""VGGT: the aggregator and its heads, with the official output dictionary."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from subspace_hub.errors import ShapeMismatchError
from subspace_hub_vggt.aggregator import Aggregator
from subspace_hub_vggt.config import VGGTConfig
from subspace_hub_vggt.heads import CameraHead, DPTHead, TrackHead

HeadPrecision = Literal["fp32", "autocast"]


class VGGT(nn.Module):
    """Visual Geometry Grounded Transformer.

    ``forward(images [B, S, 3, H, W] or [S, 3, H, W] in [0, 1], query_points [B, N, 2] or [N, 2] pixels)``
    returns a dict with the enabled heads' predictions, named and shaped as the official model's:

    - ``pose_enc`` [B, S, 9] (absT_quaR_FoV, last refinement step) and ``pose_enc_list`` (every step);
    - ``depth`` [B, S, H, W, 1] (scene units) and ``depth_conf`` [B, S, H, W] (> 1);
    - ``world_points`` [B, S, H, W, 3] (point head, first camera's frame) and ``world_points_conf``;
    - with query points: ``track`` [B, S, N, 2] (pixels), ``vis`` and ``conf`` [B, S, N] in [0, 1];
    - ``images`` (the input, in eval mode only).

    Under ``torch.autocast`` the aggregator runs in the autocast dtype; ``head_precision="fp32"`` (default, as the
    official model) runs the heads with autocast off, ``"autocast"`` lets them follow it (about 10x the official bf16
    error on the point map, and once compiled no faster: BENCHMARKS.md). The fastest exact-as-official setting is
    :meth:`compile_blocks` and :meth:`compile_heads` with fp32 heads.
    """

    def __init__(self, config: VGGTConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(config, VGGTConfig):
            config = VGGTConfig.from_dict(config)
        self.config = config
        dim_in = 2 * config.embed_dim
        self.aggregator = Aggregator(config)
        self.camera_head = CameraHead(dim_in, config.camera_head) if config.enable_camera else None
        self.point_head = (
            DPTHead(dim_in, config.patch_size, config.point_head, output_dim=4) if config.enable_point else None
        )
        self.depth_head = (
            DPTHead(dim_in, config.patch_size, config.depth_head, output_dim=2) if config.enable_depth else None
        )
        self.track_head = TrackHead(dim_in, config.patch_size, config.track_head) if config.enable_track else None
        self.head_precision: HeadPrecision = "fp32"

    def gradient_checkpointing_enable(self, enabled: bool = True) -> None:
        """Recompute each transformer block in the backward pass (training only) to save activation memory."""
        self.aggregator.gradient_checkpointing = enabled
        patch_embed = self.aggregator.patch_embed
        if hasattr(patch_embed, "gradient_checkpointing"):
            patch_embed.gradient_checkpointing = enabled

    def transformer_blocks(self) -> list[nn.Module]:
        """Every transformer block (DINO, frame, global, camera trunk): the hot path of the model."""
        blocks = [*self.aggregator.frame_blocks, *self.aggregator.global_blocks]
        blocks += list(getattr(self.aggregator.patch_embed, "blocks", []))
        if self.camera_head is not None:
            blocks += list(self.camera_head.trunk)
        return blocks

    def compile_blocks(self, **options: Any) -> None:
        """``torch.compile`` each transformer block in place (fuses its norms, RoPE, LayerScale and residual
        arithmetic); the first forward pays the compilation. ``options`` go to ``torch.compile``."""
        for block in self.transformer_blocks():
            block.compile(**options)

    def compile_heads(self, **options: Any) -> None:
        """``torch.compile`` the depth and point heads in place (fuses the pyramid's activations, residual additions
        and UV embeddings); the first forward pays the compilation. ``options`` go to ``torch.compile``."""
        for head in (self.depth_head, self.point_head):
            if head is not None:
                head.compile(**options)

    def _layers_needed(self, tracking: bool) -> set[int]:
        depth = self.config.aggregator.depth
        needed: set[int] = set()
        if self.camera_head is not None:
            needed.add(depth - 1)
        for head in (self.depth_head, self.point_head):
            if head is not None:
                needed.update(head.config.intermediate_layer_idx)
        if tracking and self.track_head is not None:
            needed.update(self.track_head.config.intermediate_layer_idx)
        return needed

    def _head_context(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.head_precision not in ("fp32", "autocast"):
            raise ValueError(f"head_precision must be 'fp32' or 'autocast', got {self.head_precision!r}.")
        if self.head_precision == "fp32" and torch.is_autocast_enabled(device.type):
            return torch.autocast(device_type=device.type, enabled=False)
        return contextlib.nullcontext()

    def forward(self, images: torch.Tensor, query_points: torch.Tensor | None = None) -> dict[str, Any]:
        if images.ndim == 4:
            images = images.unsqueeze(0)
        if images.ndim != 5:
            raise ShapeMismatchError(f"images must be [B, S, 3, H, W] or [S, 3, H, W], got {list(images.shape)}.")
        if query_points is not None and query_points.ndim == 2:
            query_points = query_points.unsqueeze(0)
        tracking = query_points is not None and self.track_head is not None
        layers = self.aggregator(images, keep_layers=self._layers_needed(tracking))
        size = (images.shape[-2], images.shape[-1])
        start = self.aggregator.patch_start_idx
        predictions: dict[str, Any] = {}
        with self._head_context(images.device):
            if self.camera_head is not None:
                pose_enc_list = self.camera_head(layers[-1])
                predictions["pose_enc"] = pose_enc_list[-1]
                predictions["pose_enc_list"] = pose_enc_list
            if self.depth_head is not None:
                predictions["depth"], predictions["depth_conf"] = self.depth_head(layers, size, start)
            if self.point_head is not None:
                predictions["world_points"], predictions["world_points_conf"] = self.point_head(layers, size, start)
        if tracking:
            tracks, vis, conf = self.track_head(layers, size, start, query_points)
            predictions["track"] = tracks[-1]
            predictions["track_list"] = tracks
            predictions["vis"] = vis
            predictions["conf"] = conf
        if not self.training:
            predictions["images"] = images
        return predictions
