"""Accuracy, completeness and normal consistency of a reconstructed point cloud against the ground truth.

Conventions of the DUSt3R/VGGT family (shared/reference/methods.md E.1):

- Accuracy: for each predicted point, the distance to its nearest GT point; Completeness: for each GT point, the
  distance to its nearest predicted point. Mean and median (numpy's median), in the GT's units.
- NC1: mean of ``|n_gt[nn(pred)] . n_pred|`` over predicted points; NC2: the same over GT points with the
  predicted point nearest each; NC = (NC1 + NC2) / 2, for means and medians separately.
- Normals, when not given, are estimated as Open3D's ``estimate_normals()`` default does: the eigenvector of the
  smallest eigenvalue of the covariance of each point's 30 nearest neighbours (itself included). They are
  unoriented; the absolute value removes the sign.

Inputs are [N, 3] arrays or tensors (numpy, CPU or CUDA torch); CPU inputs use a KD-tree, CUDA inputs chunked
brute force on the GPU (see :mod:`.neighbors`).
"""

from __future__ import annotations

from typing import Any

import torch

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics._inputs import as_points, as_tensor, check_finite, median
from subspace_hub.metrics.neighbors import Backend, NeighborIndex

_NORMAL_CHUNK = 1 << 18  # points per covariance batch: [chunk, k, 3] float64 stays near 200 MB


def _mean_median(values: torch.Tensor, name: str) -> dict[str, float]:
    return {name: float(values.mean()), f"{name}_median": float(median(values))}


def chamfer(prediction: Any, reference: Any, *, backend: Backend = "auto") -> dict[str, float]:
    """Accuracy (prediction -> reference) and completeness (reference -> prediction) distances.

    Returns ``acc``, ``acc_median``, ``comp``, ``comp_median`` in the units of the inputs.
    """
    pred = as_points(prediction, "prediction")
    gt = as_points(reference, "reference", device=pred.device)
    acc, _ = NeighborIndex(gt, backend).query(pred)
    comp, _ = NeighborIndex(pred, backend).query(gt)
    return {**_mean_median(acc, "acc"), **_mean_median(comp, "comp")}


def estimate_normals(
    points: Any, k: int = 30, *, index: NeighborIndex | None = None, backend: Backend = "auto"
) -> torch.Tensor:
    """Unit normals [N, 3] from the k nearest neighbours of each point (itself included), as Open3D.

    Raises:
        MetricInputError: fewer than 3 points (no plane is defined).
    """
    cloud = as_points(points, "points")
    if cloud.shape[0] < 3:
        raise MetricInputError(f"estimating normals needs at least 3 points, got {cloud.shape[0]}.")
    index = index if index is not None else NeighborIndex(cloud, backend)
    normals = torch.empty_like(cloud)
    order = (
        index.spatial_order()
        if index.points is cloud or torch.equal(index.points, cloud)
        else torch.arange(cloud.shape[0], device=cloud.device)
    )
    for start in range(0, cloud.shape[0], _NORMAL_CHUNK):
        rows = order[start : start + _NORMAL_CHUNK]
        neighbors = index.neighbors(cloud[rows], k)  # [c, k]
        patch = index.points.index_select(0, neighbors.reshape(-1)).reshape(len(rows), -1, 3).to(cloud)
        centred = patch - patch.mean(dim=1, keepdim=True)
        normals[rows] = smallest_eigenvector(centred.transpose(1, 2) @ centred)
    return normals


def smallest_eigenvector(covariance: torch.Tensor) -> torch.Tensor:
    """Unit eigenvectors [N, 3] of the smallest eigenvalues of symmetric positive semi-definite 3x3 matrices
    [N, 3, 3], in closed form (several times faster than batched ``eigh``): the eigenvalue from the
    trigonometric solution of the characteristic cubic, the eigenvector as the largest cross product of two rows
    of ``A - lambda I``. Isotropic matrices (every direction an eigenvector) get (0, 0, 1), as Open3D's default."""
    a = covariance
    q = (a[:, 0, 0] + a[:, 1, 1] + a[:, 2, 2]) / 3
    off = a[:, 0, 1].square() + a[:, 0, 2].square() + a[:, 1, 2].square()
    p = (((a[:, 0, 0] - q).square() + (a[:, 1, 1] - q).square() + (a[:, 2, 2] - q).square() + 2 * off) / 6).sqrt()
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    safe_p = torch.where(p > 0, p, torch.ones_like(p))
    b = (a - q[:, None, None] * eye) / safe_p[:, None, None]
    r = (torch.linalg.det(b) / 2).clamp(-1.0, 1.0)
    phi = torch.acos(r) / 3
    smallest = q + 2 * p * torch.cos(phi + 2 * torch.pi / 3)
    m = a - smallest[:, None, None] * eye
    candidates = torch.stack(
        [
            torch.cross(m[:, 0], m[:, 1], dim=1),
            torch.cross(m[:, 0], m[:, 2], dim=1),
            torch.cross(m[:, 1], m[:, 2], dim=1),
        ],
        dim=1,
    )
    lengths = candidates.norm(dim=2)
    best = lengths.argmax(dim=1)
    rows = torch.arange(a.shape[0], device=a.device)
    vector, length = candidates[rows, best], lengths[rows, best][:, None]
    # Two smallest eigenvalues equal (collinear points): A - lambda I has rank 1, and any direction orthogonal to
    # its largest row is an eigenvector; take the cross product with the axis least aligned with that row.
    row = m[rows, m.norm(dim=2).argmax(dim=1)]
    axis = torch.nn.functional.one_hot(row.abs().argmin(dim=1), 3).to(a.dtype)
    orthogonal = torch.cross(row, axis, dim=1)
    scale = a.abs().amax(dim=(1, 2))[:, None]
    rank_one = length <= 1e-9 * scale.square()
    vector = torch.where(rank_one, orthogonal, vector)
    length = torch.where(rank_one, orthogonal.norm(dim=1, keepdim=True), length)
    isotropic = length <= 1e-12 * scale  # A = q I: every direction; Open3D's default normal
    default = torch.tensor([0.0, 0.0, 1.0], dtype=a.dtype, device=a.device).expand_as(vector)
    return torch.where(isotropic, default, vector / torch.where(length > 0, length, torch.ones_like(length)))


def _unit_normals(normals: Any, points: torch.Tensor, name: str) -> torch.Tensor:
    n = as_tensor(normals, name, device=points.device).reshape(-1, 3)
    if n.shape != points.shape:
        raise MetricInputError(f"{name} has {n.shape[0]} normals for {points.shape[0]} points.")
    check_finite(n, name)
    length = n.norm(dim=1, keepdim=True)
    if bool((length == 0).any()):
        raise MetricInputError(f"{name} has {int((length == 0).sum())} zero-length normal(s).")
    return n / length


def normal_consistency(
    prediction: Any,
    reference: Any,
    *,
    prediction_normals: Any = None,
    reference_normals: Any = None,
    k: int = 30,
    backend: Backend = "auto",
) -> dict[str, float]:
    """NC1 (over predicted points), NC2 (over GT points) and their average NC, means and medians (1 is best).

    Normals not given are estimated from ``k`` nearest neighbours (:func:`estimate_normals`).
    """
    pred = as_points(prediction, "prediction")
    gt = as_points(reference, "reference", device=pred.device)
    gt_index, pred_index = NeighborIndex(gt, backend), NeighborIndex(pred, backend)
    return _normal_consistency(pred, gt, pred_index, gt_index, prediction_normals, reference_normals, k)


def _normal_consistency(pred, gt, pred_index, gt_index, pred_normals, gt_normals, k, matches=None) -> dict[str, float]:
    n_pred = (
        estimate_normals(pred, k, index=pred_index)
        if pred_normals is None
        else _unit_normals(pred_normals, pred, "prediction_normals")
    )
    n_gt = (
        estimate_normals(gt, k, index=gt_index)
        if gt_normals is None
        else _unit_normals(gt_normals, gt, "reference_normals")
    )
    nn_of_pred, nn_of_gt = matches if matches is not None else (gt_index.query(pred)[1], pred_index.query(gt)[1])
    nc1 = (n_gt[nn_of_pred] * n_pred).sum(dim=1).abs()
    nc2 = (n_pred[nn_of_gt] * n_gt).sum(dim=1).abs()
    out = {**_mean_median(nc1, "nc1"), **_mean_median(nc2, "nc2")}
    out["nc"] = (out["nc1"] + out["nc2"]) / 2
    out["nc_median"] = (out["nc1_median"] + out["nc2_median"]) / 2
    return out


def chamfer_and_normals(
    prediction: Any,
    reference: Any,
    *,
    prediction_normals: Any = None,
    reference_normals: Any = None,
    k: int = 30,
    backend: Backend = "auto",
    reference_index: NeighborIndex | None = None,
) -> dict[str, float]:
    """:func:`chamfer` and :func:`normal_consistency` together, sharing the two indices and the matches
    (``reference_index``: an index over ``reference`` already built, e.g. by ICP)."""
    pred = as_points(prediction, "prediction")
    gt = as_points(reference, "reference", device=pred.device)
    gt_index = reference_index if reference_index is not None else NeighborIndex(gt, backend)
    pred_index = NeighborIndex(pred, backend)
    # each cloud's spatial order, computed once for its normals, also orders its queries into the other cloud
    acc, nn_of_pred = gt_index.query(pred, order=pred_index.spatial_order())
    comp, nn_of_gt = pred_index.query(gt, order=gt_index.spatial_order())
    out = {**_mean_median(acc, "acc"), **_mean_median(comp, "comp")}
    out.update(
        _normal_consistency(
            pred, gt, pred_index, gt_index, prediction_normals, reference_normals, k, (nn_of_pred, nn_of_gt)
        )
    )
    return out
