"""The 2D-only loss of 2D-LFM (methods.md B.2): the predicted 3D shape, seen by the orthographic camera that fits it
best, must reproduce the visible 2D landmarks. The camera (scale s and the first two rows R2 of a rotation) is not
predicted: it is solved per sample in closed form by orthographic Procrustes.

    L_2D = mean over visible landmarks of || (x - mean x) - s (y - mean y) R2^T ||^2

over the visible landmarks, with (s, R2) from :func:`orthographic_procrustes`. ``stop_gradient`` treats (s, R2)
as constants (PAUL's bilevel scheme); otherwise the gradient flows through the solve and the SVDs.

That loss alone is minimised exactly by a model that lifts every view flat (its own 2D points at zero depth). The
canonicalisation term of C3DPO (methods.md B.3) rules that out: :func:`canonical_views` turns each predicted shape
by a random rotation and projects it, the model lifts that view again, and :func:`canonical_loss` asks for the
first shape back (same canonical frame, both centred and divided by the new view's 2D radius).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def _rotation_and_scale(
    target: torch.Tensor, source: torch.Tensor, norm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Umeyama's proper rotation R [B, 3, 3] and scale s [B] minimising ``||target - s source R^T||`` for centred
    point sets [B, N, 3]; ``norm`` [B] is ``||source||^2`` (differentiable through the SVD)."""
    u, singular, vh = torch.linalg.svd(target.transpose(1, 2) @ source)
    sign = torch.linalg.det(u @ vh).sign()
    signs = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1)
    return u @ (signs[..., None] * vh), (singular * signs).sum(-1) / norm


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
        rotation, scale = _rotation_and_scale(x3, yc, norm)
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


def random_rotations(count: int, *, device: Any = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[count, 3, 3] rotations drawn uniformly (Haar) from torch's global generator: QR of Gaussian matrices with
    the signs fixed, then the determinant made +1."""
    q, r = torch.linalg.qr(torch.randn(count, 3, 3, device=device, dtype=dtype))
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign()[:, None, :]
    flip = torch.linalg.det(q) < 0
    q[flip, :, 2] = -q[flip, :, 2]
    return q


def _centred(points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    w = weights.to(points.dtype)[..., None]
    return points - (w * points).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)


def canonical_views(
    landmarks3d: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """A new view of each predicted shape [B, N, 3]: (the orthographic projection of the shape turned by a random
    rotation, centred and scaled to unit RMS radius over ``weights`` [B, N] as the data's views are [B, N, 2];
    the shape itself, centred and divided by the same radius, which a second lift of that view must give back
    [B, N, 3])."""
    shape = _centred(landmarks3d, weights)
    turned = shape @ random_rotations(shape.shape[0], device=shape.device, dtype=shape.dtype).transpose(1, 2)
    view = turned[..., :2]
    w = weights.to(shape.dtype)[..., None]
    radius = ((w * view.square()).sum((1, 2)) / w.sum((1, 2)).clamp(min=1.0)).sqrt().clamp(min=eps)
    return view / radius[:, None, None], shape / radius[:, None, None]


def canonical_loss(lifted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean squared distance over ``weights`` between the second lift [B, N, 3] (centred) and the first shape."""
    error = (_centred(lifted, weights) - target).square().sum(-1) * weights.to(target.dtype)
    return error.sum() / weights.sum().clamp(min=1.0)


def aligned_shape_loss(landmarks3d: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean squared distance over ``weights`` [B, N] between the target shapes [B, N, 3] and the predictions
    [B, N, 3] after the similarity (rotation, scale, translation) that fits each prediction to its target best
    (Umeyama; differentiable): the 3D-supervised control's loss, PA-MPJPE's alignment squared."""
    w = weights.to(target.dtype)[..., None]
    prediction, target = _centred(landmarks3d.to(target.dtype), weights) * w, _centred(target, weights) * w
    rotation, scale = _rotation_and_scale(target, prediction, prediction.square().sum((1, 2)).clamp(min=1e-8))
    aligned = scale[:, None, None] * prediction @ rotation.transpose(1, 2)
    return (aligned - target).square().sum() / weights.sum().clamp(min=1.0)


def lfm2d_loss(outputs: Mapping[str, Any], batch: Mapping[str, Any], *, stop_gradient: bool = False) -> dict:
    """``BackboneSpec.loss``: ``{"loss": L_2D (+ w L_canonical)}`` from the model's ``landmarks`` and the batch's
    ``landmarks2d``, ``visible`` (and ``valid``, the real, non-padding slots); the canonicalisation term when the
    outputs carry one (``outputs["canonical"]``, from a training forward). No 3D ground truth is read, except by
    the 3D-supervised control (``outputs["target3d"]``, set by a model configured with ``supervision="3d"``): then
    the loss is :func:`aligned_shape_loss` over the real landmarks, hidden ones included."""
    visible = batch["visible"].bool()
    valid = batch.get("valid")
    if valid is not None:
        visible = visible & valid.bool()
    if outputs.get("target3d") is not None:
        real = torch.ones_like(visible) if valid is None else valid.bool()
        loss = aligned_shape_loss(outputs["landmarks"].float(), outputs["target3d"].float(), real)
        return {"loss": loss, "shape_3d": loss.detach()}
    loss = reprojection_loss(outputs["landmarks"], batch["landmarks2d"].float(), visible, stop_gradient=stop_gradient)
    terms = {"reprojection": loss.detach()}
    canonical = outputs.get("canonical")
    if canonical is not None:
        term = canonical_loss(canonical["lifted"].float(), canonical["target"].float(), canonical["weights"])
        loss = loss + canonical["weight"] * term
        terms["canonical"] = term.detach()
    return {"loss": loss, **terms}
