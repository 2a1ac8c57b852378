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


def pa_mpjpe(prediction: Any, reference: Any, visible: Any = None) -> float:
    """MPJPE after aligning each sample's prediction to its reference with a similarity (Umeyama with scale,
    fitted on the visible joints). Samples need at least 3 visible joints."""
    pred, gt, vis = _inputs(prediction, reference, visible)
    errors = []
    for i in range(pred.shape[0]):
        joints = vis[i]
        if not bool(joints.any()):
            continue
        if int(joints.sum()) < 3:
            raise MetricInputError(
                f"pa_mpjpe: sample {i} has {int(joints.sum())} visible joint(s); a similarity needs at least 3."
            )
        aligned = umeyama(pred[i][joints], gt[i][joints]).apply(pred[i][joints])
        errors.append((aligned - gt[i][joints]).norm(dim=-1))
    return float(torch.cat(errors).mean())
