"""Landmark errors: MPJPE and PA-MPJPE (after a per-sample similarity alignment), in the input's units (mm in
the 2D-LFM / 3D-LFM tables)."""

from __future__ import annotations

from typing import Any

import torch

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics._inputs import as_mask, as_tensor, check_finite, same_shape
from subspace_hub.metrics.alignment import umeyama


def _inputs(prediction: Any, reference: Any, visible: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gt = as_tensor(reference, "reference landmarks")
    pred = as_tensor(prediction, "predicted landmarks", device=gt.device)
    same_shape(pred, gt, "predicted and reference landmarks")
    if gt.ndim < 2 or gt.shape[-1] != 3:
        raise MetricInputError(f"landmarks must be [..., J, 3], got shape {tuple(gt.shape)}.")
    if visible is None:
        vis = torch.ones(gt.shape[:-1], dtype=torch.bool, device=gt.device)
    else:
        vis = as_mask(visible, "visible", gt.shape[:-1], gt.device)
    pred, gt, vis = pred.reshape(-1, *gt.shape[-2:]), gt.reshape(-1, *gt.shape[-2:]), vis.reshape(-1, gt.shape[-2])
    if not bool(vis.any()):
        raise MetricInputError("No visible landmark: the visibility mask excludes every joint.")
    check_finite(gt[vis], "reference landmarks")
    check_finite(pred[vis], "predicted landmarks")
    return pred, gt, vis


def mpjpe(prediction: Any, reference: Any, visible: Any = None) -> float:
    """Mean Euclidean distance between predicted and reference landmarks [..., J, 3] over visible joints
    (``visible``: bool [..., J])."""
    pred, gt, vis = _inputs(prediction, reference, visible)
    return float((pred - gt).norm(dim=-1)[vis].mean())


def pa_mpjpe(prediction: Any, reference: Any, visible: Any = None, *, reflection: bool = False) -> float:
    """MPJPE after aligning each sample's prediction to its reference with a similarity (Umeyama with scale,
    fitted on the visible joints). Samples need at least 3 visible joints.

    ``reflection``: also align the prediction's mirror image and keep the smaller error per sample. An orthographic
    view cannot tell a shape from its mirror image, so a model trained on 2D alone may lift every sample of a
    category mirrored (C3DPO's evaluation takes the better of the prediction and its depth-flipped copy)."""
    pred, gt, vis = _inputs(prediction, reference, visible)
    mirror = torch.tensor([1.0, 1.0, -1.0], dtype=pred.dtype, device=pred.device)
    errors = []
    for i in range(pred.shape[0]):
        joints = vis[i]
        if not bool(joints.any()):
            continue
        if int(joints.sum()) < 3:
            raise MetricInputError(
                f"pa_mpjpe: sample {i} has {int(joints.sum())} visible joint(s); a similarity needs at least 3."
            )
        candidates = [pred[i][joints]] + ([pred[i][joints] * mirror] if reflection else [])
        per_joint = [(umeyama(c, gt[i][joints]).apply(c) - gt[i][joints]).norm(dim=-1) for c in candidates]
        errors.append(min(per_joint, key=lambda e: float(e.mean())))
    return float(torch.cat(errors).mean())
