"""Turning user inputs (numpy arrays, torch tensors, nested lists) into checked float64 tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from subspace_hub.errors import MetricInputError


def as_tensor(
    value: Any, name: str, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """``value`` as a tensor of ``dtype`` on its own device (CUDA tensors stay on the GPU) or on ``device``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as exc:
            raise MetricInputError(
                f"{name} must be an array or tensor of numbers, got {type(value).__name__}: {exc}"
            ) from exc
    if tensor.dtype == torch.bool and dtype != torch.bool:
        raise MetricInputError(f"{name} must hold numbers, got booleans.")
    return tensor.to(device=device if device is not None else tensor.device, dtype=dtype)


def as_mask(value: Any, name: str, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A boolean mask of ``shape`` (a mask of 0/1 numbers is accepted)."""
    mask = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if mask.shape != shape:
        raise MetricInputError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(shape)} (one flag per value).")
    return mask.to(device=device).bool() if mask.dtype != torch.bool else mask.to(device)


def as_points(value: Any, name: str, device: torch.device | str | None = None) -> torch.Tensor:
    """A non-empty, finite [N, 3] float64 point cloud (leading dimensions are flattened: [..., 3])."""
    points = as_tensor(value, name, device=device)
    if points.ndim < 2 or points.shape[-1] != 3:
        raise MetricInputError(f"{name} must have shape [N, 3] (or [..., 3]), got {tuple(points.shape)}.")
    points = points.reshape(-1, 3)
    if points.shape[0] == 0:
        raise MetricInputError(f"{name} is empty: a point cloud needs at least one point.")
    check_finite(points, name)
    return points


def check_finite(tensor: torch.Tensor, name: str) -> None:
    """Raise unless every value is finite; [N, 3] clouds are counted in points."""
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        if tensor.ndim == 2 and tensor.shape[-1] == 3:
            what = f"{int(bad.any(dim=1).sum())} point(s) with NaN or infinite coordinates; drop or mask them first"
        else:
            what = f"{int(bad.sum())} NaN or infinite value(s); mask them out first"
        raise MetricInputError(f"{name} has {what}.")


def same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise MetricInputError(f"{names} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")


def median(values: torch.Tensor) -> torch.Tensor:
    """The median as numpy defines it (mean of the two middle values for an even count); ``torch.median``
    returns the lower one."""
    n = values.numel()
    flat = values.reshape(-1)
    if n % 2:
        return flat.kthvalue(n // 2 + 1).values
    return (flat.kthvalue(n // 2).values + flat.kthvalue(n // 2 + 1).values) / 2
