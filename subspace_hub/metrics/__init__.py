"""Evaluation metrics with the field's conventions (shared/reference/methods.md E):

- point clouds: :func:`chamfer` (accuracy / completeness), :func:`normal_consistency`, :func:`estimate_normals`;
  alignment :func:`umeyama` (Sim(3)) and point-to-point :func:`icp`; the paper's whole protocol from depth and
  cameras: :func:`reconstruction_metrics`;
- depth: :func:`depth_metrics` (AbsRel, SqRel, RMSE, log-RMSE, delta), :func:`abs_rel`, :func:`delta`, ... with the
  alignment modes of :func:`align_depth`;
- landmarks: :func:`mpjpe`, :func:`pa_mpjpe`; images: :func:`psnr`.

Every function takes numpy arrays or torch tensors; CUDA tensors are scored on the GPU. Each is also registered
as a :class:`~subspace_hub.MetricSpec` (``subspace_hub.get_metric("chamfer")``) and shipped as an ``evaluate``
module folder (:func:`evaluate_module_path`).
"""

from subspace_hub.metrics.alignment import IcpResult, Similarity, icp, umeyama
from subspace_hub.metrics.depth import ALIGN_MODES, abs_rel, align_depth, delta, depth_metrics, log_rmse, rmse, sq_rel
from subspace_hub.metrics.hf_evaluate import evaluate_module_path
from subspace_hub.metrics.images import psnr
from subspace_hub.metrics.landmarks import mpjpe, pa_mpjpe
from subspace_hub.metrics.neighbors import NeighborIndex
from subspace_hub.metrics.pointcloud import chamfer, chamfer_and_normals, estimate_normals, normal_consistency
from subspace_hub.metrics.reconstruction import (
    align_points,
    align_reconstruction,
    point_cloud_metrics,
    point_map,
    reconstruction_metrics,
)

__all__ = [
    "ALIGN_MODES",
    "IcpResult",
    "NeighborIndex",
    "Similarity",
    "abs_rel",
    "align_depth",
    "align_points",
    "align_reconstruction",
    "chamfer",
    "chamfer_and_normals",
    "delta",
    "depth_metrics",
    "estimate_normals",
    "evaluate_module_path",
    "icp",
    "log_rmse",
    "mpjpe",
    "normal_consistency",
    "pa_mpjpe",
    "point_cloud_metrics",
    "point_map",
    "psnr",
    "reconstruction_metrics",
    "rmse",
    "sq_rel",
    "umeyama",
]
