"""Aligning a predicted point cloud to the ground truth: Umeyama Sim(3) and point-to-point ICP.

Both follow the DUSt3R/VGGT evaluation conventions (shared/reference/methods.md E.1): Umeyama's closed form on
known correspondences (with or without scale), then ICP with Open3D's point-to-point semantics: correspondences
are nearest target points within ``max_correspondence_distance``; each iteration fits a rigid transform to
them; it stops after ``max_iterations`` or when both fitness and inlier RMSE change by less than their
tolerances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics._inputs import as_points, as_tensor, check_finite, same_shape
from subspace_hub.metrics.neighbors import Backend, NeighborIndex, morton_order


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * R x + t``: a similarity (scale 1 for a rigid transform)."""

    scale: float
    rotation: torch.Tensor
    """[3, 3], a proper rotation (det +1)."""
    translation: torch.Tensor
    """[3]."""

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """Transform points [..., 3]."""
        return self.scale * points @ self.rotation.T.to(points) + self.translation.to(points)

    @property
    def matrix(self) -> torch.Tensor:
        """The 4x4 homogeneous matrix."""
        out = torch.eye(4, dtype=self.rotation.dtype, device=self.rotation.device)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out


def umeyama(source: Any, target: Any, with_scale: bool = True) -> Similarity:
    """The similarity minimising ``sum_i ||target_i - (c R source_i + t)||^2`` over corresponding points.

    Args:
        source, target: [N, 3] corresponding points (N >= 3), e.g. predicted and GT points of the same pixels.
        with_scale: fit the scale c (Sim(3)); ``False`` fits a rigid transform (c = 1).

    Raises:
        MetricInputError: fewer than 3 points, mismatched shapes, non-finite values, or all source points equal.
    """
    x = as_points(source, "source")
    y = as_points(target, "target", device=x.device)
    same_shape(x, y, "source and target")
    if x.shape[0] < 3:
        raise MetricInputError(f"umeyama needs at least 3 corresponding points, got {x.shape[0]}.")
    mu_x, mu_y = x.mean(dim=0), y.mean(dim=0)
    xc, yc = x - mu_x, y - mu_y
    var_x = xc.square().sum(dim=1).mean()
    if not float(var_x) > 0:
        raise MetricInputError("umeyama: all source points coincide, so no rotation or scale can be fitted.")
    cov = yc.T @ xc / x.shape[0]
    U, D, Vh = torch.linalg.svd(cov)
    S = torch.ones(3, dtype=x.dtype, device=x.device)
    if float(torch.linalg.det(U) * torch.linalg.det(Vh)) < 0:
        S[2] = -1.0
    rotation = U @ torch.diag(S) @ Vh
    scale = float((D * S).sum() / var_x) if with_scale else 1.0
    translation = mu_y - scale * rotation @ mu_x
    return Similarity(scale, rotation, translation)


@dataclass(frozen=True)
class IcpResult:
    """What :func:`icp` found."""

    transformation: torch.Tensor
    """[4, 4] rigid transform taking the source onto the target (including the initial transform)."""
    fitness: float
    """Share of source points with a correspondence within the distance threshold."""
    inlier_rmse: float
    """RMSE over those correspondences (0 when there are none)."""
    iterations: int
    """Transform updates performed."""

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        return points @ self.transformation[:3, :3].T.to(points) + self.transformation[:3, 3].to(points)


def icp(
    source: Any,
    target: Any,
    *,
    max_correspondence_distance: float = 0.1,
    max_iterations: int = 30,
    relative_fitness: float = 1e-6,
    relative_rmse: float = 1e-6,
    init: Any = None,
    target_index: NeighborIndex | None = None,
    backend: Backend = "auto",
) -> IcpResult:
    """Point-to-point ICP from ``source`` [N, 3] to ``target`` [M, 3], as Open3D's ``registration_icp``.

    Defaults are the reference protocol's: threshold 0.1 in scene units (100 for DTU's millimetres), at most 30
    iterations, convergence when fitness and inlier RMSE both change by less than 1e-6 (absolute changes, as
    Open3D compares them despite the names). ``init`` is a 4x4 starting transform (identity by default);
    ``target_index`` reuses a prebuilt :class:`NeighborIndex` over ``target``.
    """
    x = as_points(source, "source")
    y = as_points(target, "target", device=x.device)
    if not max_correspondence_distance > 0:
        raise MetricInputError(f"max_correspondence_distance must be positive, got {max_correspondence_distance}.")
    transformation = (
        torch.eye(4, dtype=x.dtype, device=x.device) if init is None else as_tensor(init, "init", device=x.device)
    )
    if transformation.shape != (4, 4):
        raise MetricInputError(f"init must be a 4x4 matrix, got shape {tuple(transformation.shape)}.")
    check_finite(transformation, "init")
    index = target_index if target_index is not None else NeighborIndex(y, backend)
    current = x @ transformation[:3, :3].T + transformation[:3, 3]
    if index.backend == "kdtree":
        # The source moves rigidly, so one Z-order of its points keeps every iteration's tree queries in spatial
        # order (the result does not depend on the order of the source points).
        current = current[torch.from_numpy(morton_order(current.detach().cpu().numpy())).to(current.device)]

    def evaluate(points: torch.Tensor) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        distances, indices = index.query(points, distance_upper_bound=max_correspondence_distance, sort=False)
        found = indices >= 0
        count = int(found.sum())
        fitness = count / points.shape[0]
        rmse = math.sqrt(float(distances[found].square().sum()) / count) if count else 0.0
        return fitness, rmse, found, indices

    fitness, rmse, found, indices = evaluate(current)
    iterations = 0
    for _ in range(max_iterations):
        if int(found.sum()) < 3:
            break  # Open3D would return identity updates from here on
        step = umeyama(current[found], y[indices[found]], with_scale=False)
        update = step.matrix
        transformation = update @ transformation
        current = step.apply(current)
        iterations += 1
        previous = (fitness, rmse)
        fitness, rmse, found, indices = evaluate(current)
        if abs(previous[0] - fitness) < relative_fitness and abs(previous[1] - rmse) < relative_rmse:
            break
    return IcpResult(transformation, fitness, rmse, iterations)
