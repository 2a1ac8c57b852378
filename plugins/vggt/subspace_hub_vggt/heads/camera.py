"""Camera head: iterative refinement of the absT_quaR_FoV pose encoding from the camera tokens.

Each of ``num_iterations`` steps embeds the current estimate (a learned empty pose at first), turns it into an
adaptive-LayerNorm modulation (shift, scale, gate) of the camera tokens, runs a small transformer trunk over the
frames and adds the predicted delta. Earlier estimates are detached, so each step learns a correction.
"""

from __future__ import annotations

import torch
from torch import nn

from subspace_hub_vggt.config import CameraHeadConfig
from subspace_hub_vggt.heads.activations import activate_pose
from subspace_hub_vggt.layers import Block, Mlp

POSE_ENCODING_DIM = 9
"""absT_quaR_FoV: translation (3), quaternion XYZW (4), vertical and horizontal field of view in radians (2)."""


class CameraHead(nn.Module):
    """Last-layer tokens [B, S, T, 2C] -> list of pose encodings [B, S, 9], one per refinement step."""

    def __init__(self, dim_in: int, config: CameraHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = nn.Sequential(
            *(
                Block(dim_in, config.num_heads, config.mlp_ratio, init_values=config.init_values)
                for _ in range(config.trunk_depth)
            )
        )
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENCODING_DIM))
        self.embed_pose = nn.Linear(POSE_ENCODING_DIM, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, dim_in // 2, POSE_ENCODING_DIM)

    def forward(self, last_layer: torch.Tensor, num_iterations: int | None = None) -> list[torch.Tensor]:
        cfg = self.config
        tokens = self.token_norm(last_layer[:, :, 0])  # the camera token of every frame: [B, S, 2C]
        b, s, _ = tokens.shape
        normed = self.adaln_norm(tokens)
        estimate: torch.Tensor | None = None
        estimates = []
        for _ in range(num_iterations or cfg.num_iterations):
            if estimate is None:
                condition = self.embed_pose(self.empty_pose_tokens.expand(b, s, -1))
            else:
                estimate = estimate.detach()
                condition = self.embed_pose(estimate)
            shift, scale, gate = self.poseLN_modulation(condition).chunk(3, dim=-1)
            modulated = gate * (normed * (1 + scale) + shift) + tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(modulated)))
            estimate = delta if estimate is None else estimate + delta
            estimates.append(activate_pose(estimate, cfg.trans_act, cfg.quat_act, cfg.fl_act))
        return estimates
