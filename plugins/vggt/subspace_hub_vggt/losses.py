"""VGGT's training losses, as VGGT is trained (and as the attribute-subspace paper fine-tunes it).

Ground truth is first expressed in VGGT's normalised frame: the first camera's frame, scaled so that the valid
points of the scene are at mean distance 1 from the first camera (translations, depths and points are divided
by that scale; rotations and fields of view are unchanged). Then:

- camera loss (weight 5): L1 between predicted and ground-truth absT_quaR_FoV encodings for every refinement
  step, step i of n weighted ``gamma ** (n - 1 - i)`` (gamma 0.6) and averaged; translation (normalised scene
  units, per-element error clamped at 100) + rotation (quaternion components) + 0.5 x field of view (radians);
- depth loss (weight 1): per valid pixel, ``|d - d_gt|`` (normalised units) and its confidence-weighted form
  ``c |d - d_gt| - 0.2 log c``, both averaged after dropping the top 2% (``valid_range`` 0.98), plus a
  multi-scale (4 scales) L1 gradient-of-error term;
- optional point loss (weight 0 by default, as in VGGT's released training config): the same on the point
  head's [B, S, H, W, 3] maps, with a surface-normal term instead of the gradient term.

Non-finite values are zeroed and per-element losses clamped to [-100, 100], as VGGT does, so one bad pixel cannot
derail a run.

The loss never asks the GPU for a number while it is built (no boolean indexing, ``.item()`` or Python branches on
tensor values): valid pixels and scenes enter as weights, the quantile as a sort, and "too few valid pixels" as a
``torch.where``. A training step then runs ahead of the GPU instead of waiting for it some 20 times, which is what
limits small models and GPUs shared by several processes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from subspace_hub.errors import ShapeMismatchError
from subspace_hub_vggt.geometry import depth_to_world_points, extrinsics_intrinsics_to_pose_encoding, invert_extrinsics


@dataclass(frozen=True)
class VGGTLossConfig:
    """Weights and options of :func:`vggt_loss` (defaults: VGGT's released training config)."""

    camera_weight: float = 5.0
    camera_loss_type: Literal["l1", "l2"] = "l1"
    camera_gamma: float = 0.6
    """Weight of refinement step i of n: ``gamma ** (n - 1 - i)``."""

    weight_trans: float = 1.0
    weight_rot: float = 1.0
    weight_focal: float = 0.5
    depth_weight: float = 1.0
    depth_gradient_loss: Literal["grad", "grad+conf", "none"] = "grad"
    depth_valid_range: float = 0.98
    """Quantile above which per-pixel losses are dropped (robustness to label noise); <= 0 keeps all."""

    point_weight: float = 0.0
    point_gradient_loss: Literal["normal", "normal+conf", "grad", "none"] = "normal"
    point_valid_range: float = 0.98
    conf_gamma: float = 1.0
    conf_alpha: float = 0.2
    min_valid_pixels: int = 100
    """Scenes whose first view has fewer valid pixels get no camera loss; batches with fewer get no dense loss."""

    normalize: bool = True
    """Express the ground truth in the first camera's frame at unit mean point distance (VGGT's convention)."""


def fix_nonfinite(x: torch.Tensor, hard_max: float | None = 100.0) -> torch.Tensor:
    """Replace NaN/inf by 0 and clamp to [-hard_max, hard_max]."""
    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    return x.clamp(-hard_max, hard_max) if hard_max is not None else x


def normalize_ground_truth(
    extrinsics: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor, world_points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move a batch into the first camera's frame and divide lengths by the mean valid point distance.

    Args:
        extrinsics: [B, S, 3, 4] camera-from-world.
        depth: [B, S, H, W].
        mask: [B, S, H, W] bool, valid pixels.
        world_points: [B, S, H, W, 3].

    Returns:
        (extrinsics relative to camera 0, depth, world points in camera 0's frame, scale [B]), normalised.
    """
    first = extrinsics[:, 0]
    to_first = invert_extrinsics(first)  # world-from-camera0
    rotation, translation = to_first[..., :3], to_first[..., 3:]
    relative_rotation = extrinsics[..., :3] @ rotation[:, None]
    relative_translation = extrinsics[..., :3] @ translation[:, None] + extrinsics[..., 3:]
    points = world_points @ first[:, None, None, :3, :3].transpose(-1, -2) + first[:, None, None, None, :3, 3]
    valid = mask.to(points.dtype)
    distance = (points.norm(dim=-1) * valid).sum(dim=(1, 2, 3)) / (valid.sum(dim=(1, 2, 3)) + 1e-3)
    scale = distance.clamp(1e-6, 1e6)
    extrinsics_n = torch.cat([relative_rotation, relative_translation / scale[:, None, None, None]], dim=-1)
    return (
        fix_nonfinite(extrinsics_n, None),
        fix_nonfinite(depth / scale[:, None, None, None], None),
        fix_nonfinite(points / scale[:, None, None, None, None], None),
        scale,
    )


def robust_mean(
    values: torch.Tensor,
    valid: torch.Tensor,
    quantile: float,
    min_elements: int = 1000,
    hard_max: float = 100.0,
) -> torch.Tensor:
    """The mean of ``values[valid]`` after VGGT's robustness filter, without synchronising with the GPU.

    Values are clamped at ``hard_max``; when more than ``min_elements`` are valid and ``quantile > 0``, those at or
    above the ``quantile`` of the valid values (nearest rank, ``round(quantile * (n - 1))``) are dropped, unless no
    more than ``min_elements`` would remain. No valid value gives 0. Above 10^8 elements the threshold comes from
    10^6 random positions (memory). ``values`` must be finite where ``valid``; ``valid`` is a bool tensor of the
    same shape.
    """
    valid = valid.reshape(-1)
    clamped = torch.where(valid, values.reshape(-1), torch.zeros((), dtype=values.dtype, device=values.device))
    clamped = clamped.clamp(max=hard_max)
    count = valid.sum()
    mean_all = clamped.sum() / count.clamp(min=1)
    if quantile <= 0:
        return mean_all
    sample_values, sample_valid = clamped.detach(), valid
    if clamped.numel() > 100_000_000:
        chosen = torch.randperm(clamped.numel(), device=clamped.device)[:1_000_000]
        sample_values, sample_valid = sample_values[chosen], valid[chosen]
    ordered = torch.where(sample_valid, sample_values, torch.full_like(sample_values, math.inf)).sort().values
    sample_count = sample_valid.sum()
    rank = torch.round(quantile * (sample_count - 1).clamp(min=0).double()).long()
    threshold = ordered.gather(0, rank.reshape(1)).clamp(max=hard_max)
    keep = valid & (clamped < threshold)
    kept = keep.sum()
    mean_kept = torch.where(keep, clamped, torch.zeros_like(clamped)).sum() / kept.clamp(min=1)
    return torch.where((count > min_elements) & (kept > min_elements), mean_kept, mean_all)


def _gradient_loss(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, conf: torch.Tensor | None, gamma: float, alpha: float
) -> torch.Tensor:
    """L1 of the x/y finite differences of the error over valid neighbour pairs; [N, H, W, C] inputs."""
    mask = mask[..., None].expand_as(pred).to(pred.dtype)
    diff = torch.where(mask.bool(), pred - gt, torch.zeros_like(pred))
    grad_x = (diff[:, :, 1:] - diff[:, :, :-1]).abs()
    grad_y = (diff[:, 1:] - diff[:, :-1]).abs()
    mask_x = mask[:, :, 1:] * mask[:, :, :-1]
    mask_y = mask[:, 1:] * mask[:, :-1]
    grad_x = (mask_x * grad_x).clamp(max=100)
    grad_y = (mask_y * grad_y).clamp(max=100)
    if conf is not None:
        conf = conf[..., None].expand_as(pred)
        conf_x = torch.where(mask_x.bool(), conf[:, :, 1:], torch.ones_like(conf[:, :, 1:]))
        conf_y = torch.where(mask_y.bool(), conf[:, 1:], torch.ones_like(conf[:, 1:]))
        grad_x = (gamma * grad_x * conf_x - alpha * torch.log(conf_x)) * mask_x
        grad_y = (gamma * grad_y * conf_y - alpha * torch.log(conf_y)) * mask_y
    return (grad_x.sum() + grad_y.sum()) / mask.sum().clamp(min=1)


def _normals(points: torch.Tensor, mask: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Four cross-product normals per pixel of point maps [N, H, W, 3] -> ([4, N, H, W, 3], valid [4, N, H, W])."""
    padded_mask = F.pad(mask, (1, 1, 1, 1))
    pts = F.pad(points.permute(0, 3, 1, 2), (1, 1, 1, 1)).permute(0, 2, 3, 1)
    centre = pts[:, 1:-1, 1:-1]
    up, left = pts[:, :-2, 1:-1] - centre, pts[:, 1:-1, :-2] - centre
    down, right = pts[:, 2:, 1:-1] - centre, pts[:, 1:-1, 2:] - centre
    normals = torch.stack(
        [
            torch.cross(up, left, dim=-1),
            torch.cross(left, down, dim=-1),
            torch.cross(down, right, dim=-1),
            torch.cross(right, up, dim=-1),
        ]
    )
    m_c, m_u, m_l = padded_mask[:, 1:-1, 1:-1], padded_mask[:, :-2, 1:-1], padded_mask[:, 1:-1, :-2]
    m_d, m_r = padded_mask[:, 2:, 1:-1], padded_mask[:, 1:-1, 2:]
    valid = torch.stack([m_u & m_c & m_l, m_l & m_c & m_d, m_d & m_c & m_r, m_r & m_c & m_u])
    return F.normalize(normals, dim=-1, eps=eps), valid


def _normal_loss(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, conf: torch.Tensor | None, gamma: float, alpha: float
) -> torch.Tensor:
    """1 - cos between predicted and ground-truth surface normals; [N, H, W, 3] inputs."""
    eps = 1e-8
    pred_n, pred_valid = _normals(pred, mask, eps)
    gt_n, gt_valid = _normals(gt, mask, eps)
    valid = pred_valid & gt_valid
    if int(valid.sum()) < 10:
        return pred.sum() * 0.0
    loss = 1 - ((pred_n[valid] * gt_n[valid]).sum(-1)).clamp(-1 + eps, 1 - eps)
    loss = fix_nonfinite(loss)
    if conf is not None:
        c = conf[None].expand(4, *conf.shape)[valid]
        loss = gamma * loss * c - alpha * torch.log(c)
    return loss.mean()


def _multiscale(
    fn: Any,
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    conf: torch.Tensor | None,
    scales: int,
    gamma: float,
    alpha: float,
) -> torch.Tensor:
    total = pred.sum() * 0.0
    for scale in range(scales):
        step = 2**scale
        c = conf[:, ::step, ::step] if conf is not None else None
        total = total + fn(pred[:, ::step, ::step], gt[:, ::step, ::step], mask[:, ::step, ::step], c, gamma, alpha)
    return total / scales


def regression_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    conf: torch.Tensor,
    *,
    gradient: str,
    valid_range: float,
    gamma: float,
    alpha: float,
) -> dict[str, torch.Tensor]:
    """Confidence-weighted regression of dense maps [B, S, H, W, C] -> {"conf", "reg", "grad"} scalar losses."""
    b, s, h, w, c = pred.shape
    # every pixel is computed and the invalid ones weigh nothing (indexing by the mask would wait for the GPU)
    reg = fix_nonfinite(torch.linalg.vector_norm(gt - pred, dim=-1))
    safe_conf = torch.where(mask, conf, torch.ones_like(conf))
    conf_loss = fix_nonfinite(gamma * reg * safe_conf - alpha * torch.log(safe_conf))
    grad = pred.sum() * 0.0
    if gradient != "none":
        use_conf = conf.reshape(b * s, h, w) if "conf" in gradient else None
        args = (pred.reshape(b * s, h, w, c), gt.reshape(b * s, h, w, c), mask.reshape(b * s, h, w), use_conf)
        if gradient.startswith("normal"):
            grad = _multiscale(_normal_loss, *args, scales=3, gamma=gamma, alpha=alpha)
        else:
            grad = _multiscale(_gradient_loss, *args, scales=4, gamma=gamma, alpha=alpha)
    out = {name: robust_mean(values, mask, valid_range) for name, values in (("conf", conf_loss), ("reg", reg))}
    out["grad"] = grad
    return out


def camera_loss(
    pose_enc_list: list[torch.Tensor], gt_encoding: torch.Tensor, valid_scenes: torch.Tensor, config: VGGTLossConfig
) -> dict[str, torch.Tensor]:
    """Step-weighted camera loss over the refinement steps; encodings [B, S, 9], ``valid_scenes`` [B] bool."""
    n = len(pose_enc_list)
    totals = {"T": 0.0, "R": 0.0, "FL": 0.0}
    count = valid_scenes.sum()

    def mean_over_valid(error: torch.Tensor) -> torch.Tensor:  # [B, ...] -> mean over the valid scenes' elements
        keep = valid_scenes.reshape(-1, *[1] * (error.ndim - 1))
        error = torch.where(keep, fix_nonfinite(error), torch.zeros((), dtype=error.dtype, device=error.device))
        return error.sum() / (count * error[0].numel()).clamp(min=1)

    slices = {"T": slice(0, 3), "R": slice(3, 7), "FL": slice(7, None)}
    for i, pred in enumerate(pose_enc_list):
        weight = config.camera_gamma ** (n - i - 1)
        for key, part in slices.items():
            difference = pred[..., part] - gt_encoding[..., part]
            error = difference.abs() if config.camera_loss_type == "l1" else difference.norm(dim=-1)
            if key == "T":
                error = error.clamp(max=100)
            totals[key] = totals[key] + mean_over_valid(error) * weight
    avg = {k: v / n for k, v in totals.items()}
    total = avg["T"] * config.weight_trans + avg["R"] * config.weight_rot + avg["FL"] * config.weight_focal
    return {"loss_camera": total, "loss_T": avg["T"], "loss_R": avg["R"], "loss_FL": avg["FL"]}


def vggt_loss(
    outputs: Mapping[str, Any], batch: Mapping[str, Any], config: VGGTLossConfig | None = None
) -> dict[str, torch.Tensor]:
    """VGGT's multi-task training loss.

    Args:
        outputs: The model's output dict (``pose_enc_list``, ``depth``, ``depth_conf``, optionally
            ``world_points``, ``world_points_conf``).
        batch: Interchange-format tensors: ``images`` [B, S, 3, H, W], ``depth`` [B, S, H, W] (scene units, 0 where
            invalid), ``mask`` [B, S, H, W], ``extrinsics`` [B, S, 3, 4], ``intrinsics`` [B, S, 3, 3], optionally
            ``world_points`` [B, S, H, W, 3] (computed from depth and cameras when absent).
        config: Weights and options; defaults are VGGT's training config.

    Returns:
        ``loss`` (the weighted total to minimise) and its parts (``loss_camera``, ``loss_T``, ``loss_R``,
        ``loss_FL``, ``loss_conf_depth``, ``loss_reg_depth``, ``loss_grad_depth``, point terms when enabled).
    """
    config = config or VGGTLossConfig()
    depth = batch["depth"].float()
    if depth.ndim != 4:
        raise ShapeMismatchError(f"batch['depth'] must be [B, S, H, W], got {list(depth.shape)}.")
    mask = (batch["mask"].bool() if "mask" in batch else torch.ones_like(depth, dtype=torch.bool)) & (depth > 0)
    extrinsics, intrinsics = batch["extrinsics"].float(), batch["intrinsics"].float()
    world_points = batch.get("world_points")
    world_points = (
        depth_to_world_points(depth, extrinsics, intrinsics) if world_points is None else world_points.float()
    )
    if config.normalize:
        extrinsics, depth, world_points, _ = normalize_ground_truth(extrinsics, depth, mask, world_points)
    image_hw = tuple(batch["images"].shape[-2:])
    device = depth.device
    total = torch.zeros((), device=device)
    losses: dict[str, torch.Tensor] = {}

    if "pose_enc_list" in outputs:
        gt_encoding = extrinsics_intrinsics_to_pose_encoding(extrinsics, intrinsics, image_hw)
        valid_scenes = mask[:, 0].sum(dim=(-1, -2)) > config.min_valid_pixels
        parts = camera_loss([p.float() for p in outputs["pose_enc_list"]], gt_encoding, valid_scenes, config)
        losses.update(parts)
        total = total + config.camera_weight * parts["loss_camera"]

    dense = (
        (
            "depth",
            "depth_conf",
            depth[..., None],
            config.depth_weight,
            config.depth_gradient_loss,
            config.depth_valid_range,
        ),
        (
            "point",
            "world_points_conf",
            world_points,
            config.point_weight,
            config.point_gradient_loss,
            config.point_valid_range,
        ),
    )
    for name, conf_key, gt, weight, gradient, valid_range in dense:
        pred_key = "depth" if name == "depth" else "world_points"
        if pred_key not in outputs or weight == 0:
            continue
        pred = outputs[pred_key].float()
        parts = regression_loss(
            pred,
            fix_nonfinite(gt),
            mask,
            outputs[conf_key].float(),
            gradient=gradient,
            valid_range=valid_range,
            gamma=config.conf_gamma,
            alpha=config.conf_alpha,
        )
        enough = mask.sum() >= config.min_valid_pixels  # too few valid pixels: no dense loss
        parts = {key: torch.where(enough, value, torch.zeros_like(value)) for key, value in parts.items()}
        for key, value in parts.items():
            losses[f"loss_{key}_{name}"] = value
        total = total + weight * (parts["conf"] + parts["reg"] + parts["grad"])

    losses["loss"] = total
    return losses
