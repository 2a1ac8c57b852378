"""The multi-view reconstruction protocol of the attribute-subspace paper (Pi3 / recons_eval variant,
shared/reference/methods.md E.1), from a prediction and a GT sample to Acc / Comp / NC:

1. predicted points: the predicted depth unprojected with the predicted cameras (not a point head), the point
   map bilinearly resized to the GT resolution; GT points: the GT depth unprojected with the GT cameras;
2. valid pixels: the GT mask (when given) and GT depth > 1e-4;
3. Umeyama Sim(3) from predicted to GT points over the valid pixels;
4. point-to-point ICP (threshold 0.1 scene units, 100 for DTU's millimetres; at most 30 iterations);
5. normals estimated on both clouds after ICP; Acc / Comp / NC (:mod:`.pointcloud`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from subspace_hub.errors import MetricInputError
from subspace_hub.geometry import depth_to_world_points
from subspace_hub.metrics._inputs import as_mask, as_points, as_tensor, check_finite
from subspace_hub.metrics.alignment import IcpResult, Similarity, icp, umeyama
from subspace_hub.metrics.neighbors import Backend, NeighborIndex
from subspace_hub.metrics.pointcloud import chamfer_and_normals

Alignment = Literal["umeyama_icp", "umeyama", "none"]


@dataclass
class AlignedClouds:
    """The two clouds the metrics compare, and how the prediction was aligned."""

    prediction: torch.Tensor
    """[N, 3] aligned predicted points of the valid pixels."""
    reference: torch.Tensor
    """[N, 3] GT points of the same pixels."""
    similarity: Similarity | None
    icp: IcpResult | None
    reference_index: NeighborIndex | None = None
    """The index over ``reference`` that ICP built, for the metrics to reuse."""


def point_map(sample: Mapping[str, Any], name: str) -> torch.Tensor:
    """World points [S, H, W, 3] of a sample: its ``world_points`` if present, else its ``depth`` [S, H, W]
    unprojected with its ``extrinsics`` [S, 3, 4] and ``intrinsics`` [S, 3, 3]."""
    if "world_points" in sample and sample["world_points"] is not None:
        points = as_tensor(sample["world_points"], f"{name} world_points")
    else:
        missing = [key for key in ("depth", "extrinsics", "intrinsics") if sample.get(key) is None]
        if missing:
            raise MetricInputError(
                f"{name} needs world_points, or depth with extrinsics and intrinsics; it lacks {', '.join(missing)}."
            )
        depth = as_tensor(sample["depth"], f"{name} depth")
        extrinsics = as_tensor(sample["extrinsics"], f"{name} extrinsics", device=depth.device)
        intrinsics = as_tensor(sample["intrinsics"], f"{name} intrinsics", device=depth.device)
        if depth.ndim == 2:
            depth, extrinsics, intrinsics = depth[None], extrinsics.reshape(1, 3, 4), intrinsics.reshape(1, 3, 3)
        if depth.ndim != 3 or extrinsics.shape != (depth.shape[0], 3, 4) or intrinsics.shape != (depth.shape[0], 3, 3):
            raise MetricInputError(
                f"{name}: depth [S, H, W] needs extrinsics [S, 3, 4] and intrinsics [S, 3, 3]; got "
                f"{tuple(depth.shape)}, "
                f"{tuple(extrinsics.shape)}, {tuple(intrinsics.shape)}."
            )
        points = depth_to_world_points(depth, extrinsics, intrinsics)
    if points.ndim == 3:
        points = points[None]
    if points.ndim != 4 or points.shape[-1] != 3:
        raise MetricInputError(f"{name} world points must be [S, H, W, 3], got {tuple(points.shape)}.")
    return points


def resize_point_map(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a point map [S, h, w, 3] to [S, H, W, 3] (as the reference resizes predictions)."""
    if tuple(points.shape[1:3]) == tuple(size):
        return points
    moved = F.interpolate(points.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
    return moved.permute(0, 2, 3, 1)


def align_reconstruction(
    prediction: Mapping[str, Any],
    reference: Mapping[str, Any],
    *,
    alignment: Alignment = "umeyama_icp",
    icp_threshold: float = 0.1,
    icp_iterations: int = 30,
    min_depth: float = 1e-4,
    backend: Backend = "auto",
) -> AlignedClouds:
    """Steps 1-4 of the protocol: the valid GT points and the aligned predicted points of the same pixels."""
    gt_points = point_map(reference, "reference")
    pred_points = point_map(prediction, "prediction").to(gt_points.device)
    if pred_points.shape[0] != gt_points.shape[0]:
        raise MetricInputError(f"prediction has {pred_points.shape[0]} views and reference {gt_points.shape[0]}.")
    pred_points = resize_point_map(pred_points, tuple(gt_points.shape[1:3]))
    valid = torch.ones(gt_points.shape[:3], dtype=torch.bool, device=gt_points.device)
    if reference.get("mask") is not None:
        valid &= as_mask(reference["mask"], "reference mask", gt_points.shape[:3], gt_points.device)
    if reference.get("depth") is not None:
        gt_depth = as_tensor(reference["depth"], "reference depth", device=gt_points.device).reshape(
            gt_points.shape[:3]
        )
        valid &= gt_depth > min_depth
    if not bool(valid.any()):
        raise MetricInputError("The reference has no valid pixel (mask and depth > min_depth exclude every pixel).")
    gt = gt_points[valid]
    pred = pred_points[valid]
    check_finite(gt, "reference points")
    check_finite(pred, "predicted points")
    return align_points(
        pred, gt, alignment=alignment, icp_threshold=icp_threshold, icp_iterations=icp_iterations, backend=backend
    )


def align_points(
    prediction: Any,
    reference: Any,
    *,
    alignment: Alignment = "umeyama_icp",
    icp_threshold: float = 0.1,
    icp_iterations: int = 30,
    backend: Backend = "auto",
) -> AlignedClouds:
    """Steps 3-4 of the protocol on corresponding points [N, 3] (row i of both clouds is the same pixel)."""
    pred = as_points(prediction, "prediction")
    gt = as_points(reference, "reference", device=pred.device)
    if pred.shape != gt.shape:
        raise MetricInputError(
            f"align_points needs corresponding points, got {pred.shape[0]} predicted and {gt.shape[0]} reference "
            "points."
        )
    similarity = result = index = None
    if alignment not in ("umeyama_icp", "umeyama", "none"):
        raise MetricInputError(f"alignment must be 'umeyama_icp', 'umeyama' or 'none', got {alignment!r}.")
    if alignment != "none":
        similarity = umeyama(pred, gt, with_scale=True)
        pred = similarity.apply(pred)
    if alignment == "umeyama_icp":
        index = NeighborIndex(gt, backend)
        result = icp(
            pred, gt, max_correspondence_distance=icp_threshold, max_iterations=icp_iterations, target_index=index
        )
        pred = result.apply(pred)
    return AlignedClouds(pred, gt, similarity, result, index)


def point_cloud_metrics(
    prediction: Any,
    reference: Any,
    *,
    alignment: Alignment = "umeyama_icp",
    icp_threshold: float = 0.1,
    icp_iterations: int = 30,
    k: int = 30,
    backend: Backend = "auto",
) -> dict[str, float]:
    """Steps 3-5 of the protocol on corresponding points [N, 3]: align, then Acc / Comp / NC."""
    clouds = align_points(
        prediction,
        reference,
        alignment=alignment,
        icp_threshold=icp_threshold,
        icp_iterations=icp_iterations,
        backend=backend,
    )
    return chamfer_and_normals(
        clouds.prediction, clouds.reference, k=k, backend=backend, reference_index=clouds.reference_index
    )


def reconstruction_metrics(
    prediction: Mapping[str, Any],
    reference: Mapping[str, Any],
    *,
    alignment: Alignment = "umeyama_icp",
    icp_threshold: float = 0.1,
    icp_iterations: int = 30,
    min_depth: float = 1e-4,
    k: int = 30,
    backend: Backend = "auto",
) -> dict[str, float]:
    """Acc / Comp / NC (means and medians) of a multi-view prediction after the paper's alignment.

    Args:
        prediction: ``depth`` [S, h, w] with the predicted ``extrinsics`` [S, 3, 4] (camera-from-world) and
            ``intrinsics`` [S, 3, 3] in pixels of the h x w prediction, or ``world_points`` [S, h, w, 3].
        reference: the GT sample: ``depth`` [S, H, W], ``extrinsics``, ``intrinsics``, optional ``mask``
            [S, H, W] (or ``world_points``).
        alignment: ``umeyama_icp`` (the protocol), ``umeyama`` (Sim(3) only) or ``none`` (metric predictions).
        icp_threshold: ICP max correspondence distance, in GT units.

    Returns ``acc``, ``acc_median``, ``comp``, ``comp_median``, ``nc1``, ``nc1_median``, ``nc2``, ``nc2_median``,
    ``nc``, ``nc_median``.
    """
    clouds = align_reconstruction(
        prediction,
        reference,
        alignment=alignment,
        icp_threshold=icp_threshold,
        icp_iterations=icp_iterations,
        min_depth=min_depth,
        backend=backend,
    )
    return chamfer_and_normals(
        clouds.prediction, clouds.reference, k=k, backend=backend, reference_index=clouds.reference_index
    )


__all__ = [
    "AlignedClouds",
    "align_points",
    "align_reconstruction",
    "point_cloud_metrics",
    "point_map",
    "reconstruction_metrics",
    "resize_point_map",
]
