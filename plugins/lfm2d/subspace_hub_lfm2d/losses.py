"""The 2D-only loss of 2D-LFM (methods.md B.2): the predicted 3D shape, seen by the orthographic camera that fits it
best, must reproduce the visible 2D landmarks. The camera (scale s and the first two rows R2 of a rotation) is not
predicted: it is solved per sample in closed form by orthographic Procrustes.

    L_2D = mean over visible landmarks of || (x - mean x) - s (y - mean y) R2^T ||^2

over the visible landmarks, with (s, R2) from :func:`orthographic_procrustes`. ``stop_gradient`` treats (s, R2)
as constants (PAUL's bilevel scheme); otherwise the gradient flows through the solve and the SVDs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def orthographic_procrustes(
    x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, *, iterations: int = 2, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best orthographic camera taking 3D points ``y`` [B, N, 3] to 2D points ``x`` [B, N, 2] over ``weights``
    [B, N] (1 visible, 0 not): returns (scale [B], R2 [B, 2, 3] with orthonormal rows, the weighted centres of x
    [B, 2] and y [B, 3]).

    The start is the least-squares linear map ``A`` (2 x 3) with ``x_c = y_c A^T``, projected onto ``s R2`` by its
    SVD (exact when the 2D points are an orthographic view of the 3D ones); ``iterations`` refinement steps then
    complete the 2D points with the depth the current camera gives them and solve the full 3D similarity (Umeyama's
    SVD), which never increases the 2D error (the Procrustes alternation of methods.md B.2)."""
    w = weights.to(x.dtype)[..., None]
    count = w.sum(1).clamp(min=1.0)
    x_mean, y_mean = (w * x).sum(1) / count, (w * y).sum(1) / count
    xc, yc = (x - x_mean[:, None]) * w, (y - y_mean[:, None]) * w
    gram = yc.transpose(1, 2) @ yc
    ridge = eps * (gram.diagonal(dim1=1, dim2=2).sum(-1) / 3 + eps)
    gram = gram + ridge[:, None, None] * torch.eye(3, dtype=x.dtype, device=x.device)
    linear = torch.linalg.solve(gram, yc.transpose(1, 2) @ xc).transpose(1, 2)  # A [B, 2, 3]
    u, singular, vh = torch.linalg.svd(linear, full_matrices=False)
    r2, scale = u @ vh, singular.mean(-1)
    norm = yc.square().sum((1, 2)).clamp(min=eps)
    for _ in range(iterations):
        r3 = torch.linalg.cross(r2[:, 0], r2[:, 1])
        depth = scale[:, None, None] * (yc @ r3[..., None])  # [B, N, 1]: the depth the camera gives each point
        x3 = torch.cat([xc, depth * w], dim=-1)
        u, singular, vh = torch.linalg.svd(x3.transpose(1, 2) @ yc)
        sign = torch.linalg.det(u @ vh).sign()
        signs = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1)
        rotation = u @ (signs[..., None] * vh)
        scale = (singular * signs).sum(-1) / norm
        r2 = rotation[:, :2]
    return scale, r2, x_mean, y_mean


def reprojection_loss(
    landmarks3d: torch.Tensor, landmarks2d: torch.Tensor, visible: torch.Tensor, *, stop_gradient: bool = False
) -> torch.Tensor:
    """The masked orthographic reprojection error (mean squared over visible landmarks) of the best camera."""
    weights = visible.to(landmarks2d.dtype)
    y = landmarks3d.to(landmarks2d.dtype)
    if stop_gradient:
        with torch.no_grad():
            scale, r2, _, _ = orthographic_procrustes(landmarks2d, y, weights)
    else:
        scale, r2, _, _ = orthographic_procrustes(landmarks2d, y, weights)
    w = weights[..., None]
    count = weights.sum(1, keepdim=True).clamp(min=1.0)[..., None]
    x_mean = (w * landmarks2d).sum(1, keepdim=True) / count
    y_mean = (w * y).sum(1, keepdim=True) / count
    projected = scale[:, None, None] * ((y - y_mean) @ r2.transpose(1, 2))
    error = ((landmarks2d - x_mean) - projected).square().sum(-1) * weights
    return error.sum() / weights.sum().clamp(min=1.0)


def lfm2d_loss(outputs: Mapping[str, Any], batch: Mapping[str, Any], *, stop_gradient: bool = False) -> dict:
    """``BackboneSpec.loss``: ``{"loss": L_2D}`` from the model's ``landmarks`` and the batch's ``landmarks2d``,
    ``visible`` (and ``valid``, the real, non-padding slots). No 3D ground truth is read."""
    visible = batch["visible"].bool()
    if batch.get("valid") is not None:
        visible = visible & batch["valid"].bool()
    loss = reprojection_loss(outputs["landmarks"], batch["landmarks2d"].float(), visible, stop_gradient=stop_gradient)
    return {"loss": loss, "reprojection": loss.detach()}
