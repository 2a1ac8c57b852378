"""The losses of methods.md C. LRM: photometric (MSE on RGB composited on black), depth (L1 on the ground-truth
foreground, z-depth) and mask (MSE of the opacity against the mask). LIM: the triplane loss against the frozen LRM's
triplane of the in-between keyframe (the pseudo ground truth) and the causal consistency loss (two hops through
k + alpha_r must land where one hop lands)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

DEPTH_WEIGHT = 0.5
MASK_WEIGHT = 1.0


def lrm_loss(outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``BackboneSpec.loss`` of ``lrm``: the rendered views against the batch's ``images`` [B, V, 3, H, W],
    ``depth`` and ``mask`` [B, V, H, W] (the views ``outputs`` were rendered for: every view of the batch)."""
    mask = batch["mask"].to(outputs["rgb"].dtype)
    target = batch["images"].to(outputs["rgb"].dtype) * mask[:, :, None]
    photometric = F.mse_loss(outputs["rgb"], target)
    foreground = mask > 0.5
    depth = (
        (outputs["depth"] - batch["depth"].to(outputs["depth"].dtype)).abs()[foreground].mean()
        if bool(foreground.any())
        else outputs["depth"].sum() * 0.0
    )
    silhouette = F.mse_loss(outputs["mask"], mask)
    loss = photometric + DEPTH_WEIGHT * depth + MASK_WEIGHT * silhouette
    return {"loss": loss, "photometric": photometric.detach(), "depth": depth.detach(), "mask": silhouette.detach()}


def lim_loss(outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``BackboneSpec.loss`` of ``lim``: ``|| T(k + alpha_m) - T_LRM(k_m) ||^2`` (mean over texels) plus, when the
    outputs carry the second hop, ``causal_weight || T(two hops) - T(one hop) ||^2``."""
    triplane = F.mse_loss(outputs["triplane"], outputs["teacher"])
    terms = {"triplane": triplane.detach()}
    loss = triplane
    if outputs.get("causal") is not None:
        causal = F.mse_loss(outputs["causal"], outputs["causal_target"])
        loss = loss + outputs["causal_weight"] * causal
        terms["causal"] = causal.detach()
    return {"loss": loss, **terms}
