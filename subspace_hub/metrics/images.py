"""Image metrics: PSNR, optionally restricted to a mask (LIM's PSNR_FG is PSNR over the foreground)."""

from __future__ import annotations

import math
from typing import Any

import torch

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics._inputs import as_mask, as_tensor, check_finite, same_shape


def psnr(prediction: Any, reference: Any, mask: Any = None, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``, per image, averaged over images.

    Args:
        prediction, reference: images [..., C, H, W] (channels first, as the interchange format), values in
            [0, data_range].
        mask: optional bool [..., H, W]: the MSE of each image runs over its masked pixels (all channels).
        data_range: 1.0 for float images, 255 for 8-bit ones.

    Returns ``inf`` when every image is reproduced exactly.
    """
    gt = as_tensor(reference, "reference images")
    pred = as_tensor(prediction, "predicted images", device=gt.device)
    same_shape(pred, gt, "predicted and reference images")
    if gt.ndim < 3:
        raise MetricInputError(f"images must be [..., C, H, W], got shape {tuple(gt.shape)}.")
    check_finite(pred, "predicted images")
    check_finite(gt, "reference images")
    squared = (pred - gt).square().reshape(-1, *gt.shape[-3:])  # [N, C, H, W]
    if mask is None:
        weights = torch.ones(squared.shape[0], *gt.shape[-2:], dtype=squared.dtype, device=gt.device)
    else:
        weights = (
            as_mask(mask, "mask", gt.shape[:-3] + gt.shape[-2:], gt.device)
            .reshape(-1, *gt.shape[-2:])
            .to(squared.dtype)
        )
    counts = weights.sum(dim=(1, 2)) * gt.shape[-3]
    if not bool((counts > 0).all()):
        raise MetricInputError(f"{int((counts == 0).sum())} image(s) have an empty mask; PSNR is undefined for them.")
    mse = (squared * weights[:, None]).sum(dim=(1, 2, 3)) / counts
    values = [math.inf if float(m) == 0 else 10 * math.log10(data_range**2 / float(m)) for m in mse]
    return sum(values) / len(values)
