"""Depth metrics after alignment, with CUT3R's semantics (shared/reference/methods.md E.2): the mask comes
first, then the prediction is fitted to the GT.

Valid pixels: GT > 0, GT < ``max_depth`` when set, and the optional ``mask``. Alignment modes, fitted per frame
(each [H, W] map) or per sequence (everything passed at once):

- ``median``: ``s = median(gt) / median(pred)`` (``torch.median``, the lower middle value, as the reference);
- ``scale``: L1 scale by Weiszfeld IRLS: ``s = mean(gt) / mean(pred)``, then 10 updates with weights
  ``1 / (|s pred - gt| + 1e-8)``; ``s`` is clamped to at least 1e-3;
- ``scale_shift_l1``: ``(s, t)`` minimising ``sum |s pred + t - gt|``. ``l1_solver="reference"`` runs the
  reference's procedure (Adam, lr 1e-4, at most 1000 steps from ``s = median ratio``, ``t = 0``, stopping when
  the loss changes by less than 1e-6), which does not reach the optimum but reproduces published numbers;
  ``l1_solver="exact"`` finds the true minimiser;
- ``scale_shift_lstsq``: least squares on ``[pred, 1]``;
- ``scale_translation``: the joint scale and 3D translation of the seed paper's real-face depth evaluation: the
  predicted and reference depths are unprojected through the reference ``intrinsics`` into camera-frame points
  ``P = pred * r`` and ``G = gt * r`` (``r = K^-1 [u, v, 1]``), ``(s, t)`` minimise
  ``sum |s P + t - G|^2`` (closed form: centroids and ``s = <P - mean P, G - mean G> / |P - mean P|^2``), and the
  aligned depth is the z of ``s P + t``, i.e. ``s pred + t_z``;
- ``metric``: none.

Metrics over all valid pixels passed: ``abs_rel = mean |p - g| / g``, ``sq_rel = mean (p - g)^2 / g``,
``rmse``, then with ``p`` clamped to at least 1e-5: ``log_rmse`` and ``delta_i`` = share of pixels with
``max(p / g, g / p) < 1.25^i`` (fractions; tables often show them x100).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics._inputs import as_mask, as_tensor, median, same_shape

AlignMode = Literal["median", "scale", "scale_shift_l1", "scale_shift_lstsq", "scale_translation", "metric"]
ALIGN_MODES: tuple[str, ...] = ("median", "scale", "scale_shift_l1", "scale_shift_lstsq", "scale_translation", "metric")
DEPTH_METRICS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta_1", "delta_2", "delta_3")
LOWER_IS_BETTER = {"abs_rel", "sq_rel", "rmse", "log_rmse"}


def _inputs(
    prediction: Any, reference: Any, mask: Any, max_depth: float | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gt = as_tensor(reference, "reference depth")
    pred = as_tensor(prediction, "predicted depth", device=gt.device)
    same_shape(pred, gt, "predicted and reference depth (resize the prediction to the GT size first)")
    if gt.ndim < 2:
        raise MetricInputError(f"depth maps must be [..., H, W], got shape {tuple(gt.shape)}.")
    valid = (gt > 0) | torch.isnan(gt)  # NaN is not "invalid by convention": it must be masked or set to 0
    if max_depth is not None:
        valid &= (gt < max_depth) | ~torch.isfinite(gt)
    if mask is not None:
        valid &= as_mask(mask, "mask", gt.shape, gt.device)
    bad_gt = valid & ~torch.isfinite(gt)
    if bool(bad_gt.any()):
        raise MetricInputError(
            f"reference depth has {int(bad_gt.sum())} NaN/infinite value(s) at valid pixels; set them to 0 or mask "
            "them."
        )
    bad_pred = valid & ~torch.isfinite(pred)
    if bool(bad_pred.any()):
        raise MetricInputError(f"predicted depth has {int(bad_pred.sum())} NaN/infinite value(s) at valid pixels.")
    if not bool(valid.any()):
        raise MetricInputError(
            "No valid pixel: every pixel is masked out, non-positive or beyond max_depth in the reference."
        )
    return pred, gt, valid


def _fit(
    pred: torch.Tensor, gt: torch.Tensor, mode: str, l1_solver: str, rays: torch.Tensor | None = None
) -> tuple[float, float]:
    """(scale, shift) taking ``pred`` to ``gt`` (1-D tensors of the valid pixels of one group; ``rays`` [N, 3]
    their camera rays with z = 1, for ``scale_translation``)."""
    if mode == "metric":
        return 1.0, 0.0
    if mode == "scale_translation":
        if rays is None:
            raise MetricInputError(
                "scale_translation alignment unprojects depth into 3D points: pass the reference intrinsics "
                "([..., 3, 3], pixels) as intrinsics=."
            )
        P, G = pred[:, None] * rays, gt[:, None] * rays
        Pc, Gc = P - P.mean(0), G - G.mean(0)
        denominator = float(Pc.square().sum())
        if denominator == 0:
            raise MetricInputError("scale_translation alignment: the predicted points are all the same point.")
        s = float((Pc * Gc).sum()) / denominator
        translation = G.mean(0) - s * P.mean(0)
        return s, float(translation[2])
    if mode == "median":
        denominator = float(torch.median(pred))
        if denominator == 0:
            raise MetricInputError("median alignment: the median predicted depth is 0.")
        return float(torch.median(gt)) / denominator, 0.0
    if mode == "scale":
        if float(pred.mean()) == 0:
            raise MetricInputError("scale alignment: the mean predicted depth is 0.")
        s = gt.mean() / pred.mean()
        for _ in range(10):
            weights = 1.0 / ((s * pred - gt).abs() + 1e-8)
            s = (weights * pred * gt).sum() / (weights * pred.square()).sum()
        return max(float(s), 1e-3), 0.0
    if mode == "scale_shift_lstsq":
        design = torch.stack([pred, torch.ones_like(pred)], dim=1)
        solution = torch.linalg.lstsq(design.cpu(), gt.cpu()[:, None]).solution[:, 0]
        return float(solution[0]), float(solution[1])
    if mode == "scale_shift_l1":
        if l1_solver == "reference":
            return _l1_adam(pred, gt)
        if l1_solver == "exact":
            return _l1_exact(pred, gt)
        raise MetricInputError(f"l1_solver must be 'reference' or 'exact', got {l1_solver!r}.")
    raise MetricInputError(f"Unknown alignment {mode!r}; use one of {', '.join(ALIGN_MODES)}.")


def _l1_adam(pred: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
    s = torch.tensor(
        [float(torch.median(gt) / torch.median(pred))], dtype=pred.dtype, device=pred.device, requires_grad=True
    )
    t = torch.zeros(1, dtype=pred.dtype, device=pred.device, requires_grad=True)
    optimizer = torch.optim.Adam([s, t], lr=1e-4)
    previous = None
    with torch.enable_grad():
        for _ in range(1000):
            optimizer.zero_grad()
            loss = (s * pred + t - gt).abs().sum()
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if previous is not None and abs(previous - value) < 1e-6:
                break
            previous = value
    return float(s.detach()), float(t.detach())


def _l1_exact(pred: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
    """The minimiser of ``sum |s p + t - g|``: for a given s the best t is ``median(g - s p)``, and the remaining
    function of s is convex and piecewise linear, so bisection on the sign of its slope finds the optimum."""

    def slope(s: float) -> float:
        residual = s * pred - gt
        t = -float(median(residual))
        return float((torch.sign(residual + t) * pred).sum())

    lo = hi = float(torch.median(gt) / torch.median(pred)) if float(torch.median(pred)) != 0 else 1.0
    width = max(abs(lo), 1.0)
    while slope(lo) > 0:
        lo -= width
        width *= 2
    width = max(abs(hi), 1.0)
    while slope(hi) < 0:
        hi += width
        width *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if slope(mid) < 0:
            lo = mid
        else:
            hi = mid
    candidates = []
    for s in (lo, hi):
        t = float(median(gt - s * pred))
        candidates.append((float((s * pred + t - gt).abs().sum()), s, t))
    _, s, t = min(candidates)
    return s, t


def _rays(intrinsics: Any, gt: torch.Tensor) -> torch.Tensor:
    """[..., H, W, 3] camera rays with z = 1 of depth maps shaped like ``gt`` (the project's pixel convention,
    :func:`subspace_hub.geometry.depth_to_camera_points`)."""
    from subspace_hub.geometry import depth_to_camera_points

    K = as_tensor(intrinsics, "intrinsics", device=gt.device).to(gt.dtype)
    if K.shape[-2:] != (3, 3) or K.shape[:-2] != gt.shape[:-2]:
        raise MetricInputError(
            f"intrinsics must be [..., 3, 3] with one matrix per depth map {tuple(gt.shape[:-2])}, got "
            f"{tuple(K.shape)}."
        )
    return depth_to_camera_points(torch.ones_like(gt), K)


def align_depth(
    prediction: Any,
    reference: Any,
    mask: Any = None,
    *,
    align: AlignMode = "median",
    per: Literal["frame", "sequence"] = "frame",
    max_depth: float | None = None,
    l1_solver: Literal["reference", "exact"] = "reference",
    intrinsics: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The aligned prediction (same shape as the input, float64) and the fitted scales and shifts
    (one per frame, or one in total with ``per="sequence"``). Frames without valid pixels keep scale 1.
    ``intrinsics`` ([..., 3, 3] of the reference, pixels) are needed by ``align="scale_translation"`` only."""
    pred, gt, valid = _inputs(prediction, reference, mask, max_depth)
    if per not in ("frame", "sequence"):
        raise MetricInputError(f"per must be 'frame' or 'sequence', got {per!r}.")
    rays = _rays(intrinsics, gt) if align == "scale_translation" and intrinsics is not None else None
    if per == "sequence":
        s, t = _fit(pred[valid], gt[valid], align, l1_solver, None if rays is None else rays[valid])
        scales, shifts = torch.tensor([s], dtype=pred.dtype), torch.tensor([t], dtype=pred.dtype)
        return pred * s + t, scales, shifts
    frames_pred, frames_gt, frames_valid = (
        pred.reshape(-1, *pred.shape[-2:]),
        gt.reshape(-1, *gt.shape[-2:]),
        valid.reshape(-1, *valid.shape[-2:]),
    )
    scales = torch.ones(frames_pred.shape[0], dtype=pred.dtype)
    shifts = torch.zeros(frames_pred.shape[0], dtype=pred.dtype)
    aligned = frames_pred.clone()
    frames_rays = None if rays is None else rays.reshape(-1, *rays.shape[-3:])
    for i in range(frames_pred.shape[0]):
        if bool(frames_valid[i].any()):
            ray = None if frames_rays is None else frames_rays[i][frames_valid[i]]
            s, t = _fit(frames_pred[i][frames_valid[i]], frames_gt[i][frames_valid[i]], align, l1_solver, ray)
            scales[i], shifts[i] = s, t
            aligned[i] = frames_pred[i] * s + t
    return aligned.reshape(pred.shape), scales, shifts


def depth_metrics(
    prediction: Any,
    reference: Any,
    mask: Any = None,
    *,
    align: AlignMode = "median",
    per: Literal["frame", "sequence"] = "frame",
    max_depth: float | None = None,
    l1_solver: Literal["reference", "exact"] = "reference",
    intrinsics: Any = None,
) -> dict[str, float]:
    """AbsRel, SqRel, RMSE, log-RMSE and delta < 1.25, 1.25^2, 1.25^3 over the valid pixels after alignment.

    Args:
        prediction, reference: depth maps [..., H, W] of the same shape (z-depth, GT units).
        mask: optional bool [..., H, W]; pixels outside it are ignored.
        align, per, l1_solver: see the module docstring (the default is per-frame median scaling, the monocular
            depth convention; use ``align="metric"`` for metric depth).
        max_depth: ignore GT depths at or beyond this value (70 for Sintel, Bonn and KITTI video depth).
        intrinsics: [..., 3, 3] of the reference views (pixels); used by ``align="scale_translation"`` only.

    Returns the metrics and ``valid_pixels`` (the count, for weighting averages over sequences).
    """
    aligned, _, _ = align_depth(
        prediction,
        reference,
        mask,
        align=align,
        per=per,
        max_depth=max_depth,
        l1_solver=l1_solver,
        intrinsics=intrinsics,
    )
    _, gt, valid = _inputs(prediction, reference, mask, max_depth)
    p, g = aligned[valid], gt[valid]
    diff = p - g
    out = {
        "abs_rel": float((diff.abs() / g).mean()),
        "sq_rel": float((diff.square() / g).mean()),
        "rmse": float(diff.square().mean().sqrt()),
    }
    p = p.clamp(min=1e-5)
    out["log_rmse"] = float((p.log() - g.log()).square().mean().sqrt())
    ratio = torch.maximum(p / g, g / p)
    for i in (1, 2, 3):
        out[f"delta_{i}"] = float((ratio < 1.25**i).double().mean())
    out["valid_pixels"] = int(valid.sum())
    return out


def _single(name: str, doc: str):
    def metric(prediction: Any, reference: Any, mask: Any = None, **options: Any) -> float:
        return depth_metrics(prediction, reference, mask, **options)[name]

    metric.__name__ = name
    metric.__doc__ = f"{doc} after alignment (options as :func:`depth_metrics`; default per-frame median scaling)."
    return metric


abs_rel = _single("abs_rel", "Mean absolute relative error ``|p - g| / g``")
sq_rel = _single("sq_rel", "Mean squared relative error ``(p - g)^2 / g``")
rmse = _single("rmse", "Root mean squared error, in GT units,")
log_rmse = _single("log_rmse", "RMSE of log depths")


def delta(prediction: Any, reference: Any, mask: Any = None, threshold: float = 1.25, **options: Any) -> float:
    """Share of valid pixels with ``max(p / g, g / p) < threshold`` after alignment (options as
    :func:`depth_metrics`)."""
    aligned, _, _ = align_depth(prediction, reference, mask, **options)
    _, gt, valid = _inputs(prediction, reference, mask, options.get("max_depth"))
    p, g = aligned[valid].clamp(min=1e-5), gt[valid]
    return float((torch.maximum(p / g, g / p) < threshold).double().mean())
