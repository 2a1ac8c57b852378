"""Point-cloud metrics at scale: Acc/Comp/NC for 1M vs 1M points, and the paper's whole protocol on a 16-view
518 x 518 prediction, side by side with two baselines:

- ``naive``: exact brute-force nearest neighbours (chunked distance matrices in torch, no tree), the first thing
  one writes; at 1M x 1M it is timed on a slice of the queries and extrapolated linearly (marked as such);
- ``reference``: what the evaluation code of the field runs (shared/reference/methods.md E.1): a single-threaded
  scipy ``cKDTree`` for the distances and Open3D for normals and ICP. Runs only when ``open3d`` imports.

Each timing is the best of ``--repeat`` runs. Agreement of the numbers is printed too.

Usage (repository root)::

    PYTHONPATH=. python benchmarks/bench_metrics.py --points 1000000 --views 16 --size 518 --json out.json
    PYTHONPATH=. python benchmarks/bench_metrics.py --device cuda ...    # our GPU path (brute force on the GPU)
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path

from subspace_hub.metrics import NeighborIndex, chamfer_and_normals
from subspace_hub.metrics.alignment import umeyama
from subspace_hub.metrics.reconstruction import align_reconstruction


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def surface_cloud(n: int, seed: int, noise: float = 0.0) -> np.ndarray:
    """n points on a wavy 2 x 2 surface (a stand-in for a scanned scene), optionally with Gaussian noise."""
    rng = np.random.default_rng(seed)
    uv = rng.random((n, 2)) * 2
    points = np.c_[uv, 0.2 * np.sin(3 * uv[:, 0]) * np.cos(2 * uv[:, 1])]
    return points + noise * rng.standard_normal(points.shape)


def scene(views: int, size: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A GT sample (depth, cameras, mask) and a prediction of it in another similarity frame with 1% depth noise."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    v, u = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    depth = np.stack([2 + 0.3 * np.sin(u / 40 + i) * np.cos(v / 55) for i in range(views)])
    extrinsics = np.zeros((views, 3, 4))
    for i in range(views):
        extrinsics[i, :, :3] = Rotation.from_rotvec([0, 0.05 * i, 0.01 * i]).as_matrix()
        extrinsics[i, :, 3] = [-0.1 * i, 0.02 * i, 0]
    intrinsics = np.tile(np.array([[0.8 * size, 0, size / 2], [0, 0.8 * size, size / 2], [0, 0, 1]]), (views, 1, 1))
    gt = {"depth": depth, "extrinsics": extrinsics, "intrinsics": intrinsics, "mask": depth > 0}
    scale, rotation, translation = 1.7, Rotation.random(random_state=seed).as_matrix(), np.array([0.3, -0.2, 0.5])
    pred_extrinsics = np.zeros_like(extrinsics)
    pred_extrinsics[:, :, :3] = extrinsics[:, :, :3] @ rotation.T
    pred_extrinsics[:, :, 3] = scale * extrinsics[:, :, 3] - extrinsics[:, :, :3] @ rotation.T @ translation
    noisy = scale * depth * (1 + 0.01 * rng.standard_normal(depth.shape))
    return {"depth": noisy, "extrinsics": pred_extrinsics, "intrinsics": intrinsics}, gt


def naive_nn_seconds(queries: torch.Tensor, points: torch.Tensor, slice_size: int) -> float:
    """Seconds of exact brute-force NN for all queries, extrapolated from ``slice_size`` of them."""
    index = NeighborIndex(points, "brute")
    part = queries[:slice_size]
    seconds, _ = best_of(lambda: index.query(part), 1)
    return seconds * queries.shape[0] / part.shape[0]


def open3d_or_none() -> Any:
    try:
        import open3d

        return open3d
    except Exception:
        return None


def reference_cloud_metrics(o3d: Any, pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The field's evaluation code path: single-threaded scipy KD-trees, Open3D normals (k=30)."""
    from scipy.spatial import cKDTree

    def cloud(points):
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        pcd.estimate_normals()
        return np.asarray(pcd.normals)

    n_pred, n_gt = cloud(pred), cloud(gt)
    acc, nn_pred = cKDTree(gt).query(pred)
    comp, nn_gt = cKDTree(pred).query(gt)
    nc1 = np.abs((n_gt[nn_pred] * n_pred).sum(1))
    nc2 = np.abs((n_pred[nn_gt] * n_gt).sum(1))
    return {"acc": acc.mean(), "comp": comp.mean(), "nc": (nc1.mean() + nc2.mean()) / 2}


def reference_protocol(o3d: Any, prediction: dict, gt: dict) -> dict[str, float]:
    clouds = align_reconstruction(prediction, gt, alignment="none")
    pred, ref = clouds.prediction.numpy(), clouds.reference.numpy()
    sim = umeyama(pred, ref)
    pred = sim.apply(torch.from_numpy(pred)).numpy()
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pred))
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(ref))
    result = o3d.pipelines.registration.registration_icp(
        source, target, 0.1, np.eye(4), o3d.pipelines.registration.TransformationEstimationPointToPoint()
    )
    source.transform(result.transformation)
    return reference_cloud_metrics(o3d, np.asarray(source.points), ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--naive-slice", type=int, default=20_000, help="queries timed for the naive extrapolation")
    parser.add_argument("--skip-protocol", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device(args.device)
    report: dict[str, Any] = header(device.type)
    o3d = open3d_or_none()
    report["open3d"] = None if o3d is None else o3d.__version__

    # 1. Acc / Comp / NC, 1M vs 1M
    gt_np, pred_np = surface_cloud(args.points, 0), surface_cloud(args.points, 1, noise=0.002)
    gt, pred = torch.from_numpy(gt_np).to(device), torch.from_numpy(pred_np).to(device)
    seconds, ours = best_of(lambda: chamfer_and_normals(pred, gt), args.repeat)
    cloud: dict[str, Any] = {
        "points": args.points,
        "ours_s": seconds,
        "ours": {k: ours[k] for k in ("acc", "comp", "nc")},
    }
    print(f"clouds {args.points:,} vs {args.points:,}: ours {seconds:.2f} s {cloud['ours']}", flush=True)
    naive_nn = naive_nn_seconds(pred, gt, args.naive_slice)
    # naive = 2 NN passes plus the two 30-NN normal passes (>= the cost of NN passes)
    cloud["naive_nn_pass_s_extrapolated"] = naive_nn
    cloud["naive_total_s_extrapolated_lower_bound"] = 4 * naive_nn
    print(
        f"  naive brute-force NN (torch, {device.type}): {naive_nn:.1f} s per pass (extrapolated from "
        f"{args.naive_slice:,} queries); >= {4 * naive_nn:.0f} s in total",
        flush=True,
    )
    if o3d is not None and device.type == "cpu":
        seconds, reference = best_of(lambda: reference_cloud_metrics(o3d, pred_np, gt_np), 1)
        cloud["reference_s"] = seconds
        cloud["reference"] = reference
        cloud["max_abs_difference_vs_reference"] = max(abs(reference[k] - ours[k]) for k in reference)
        print(f"  reference (scipy 1 thread + Open3D): {seconds:.2f} s {reference}", flush=True)
    report["clouds"] = cloud

    # 2. the protocol on a 16-view prediction
    if not args.skip_protocol:
        prediction, sample = scene(args.views, args.size)
        if device.type == "cuda":
            prediction = {k: torch.from_numpy(v).to(device) for k, v in prediction.items()}
            sample = {k: torch.from_numpy(v).to(device) for k, v in sample.items()}
        # reconstruction_metrics = align_reconstruction + chamfer_and_normals; timed as its two stages
        stage, clouds = best_of(lambda: align_reconstruction(prediction, sample), 1)
        metrics_s, ours = best_of(
            lambda: chamfer_and_normals(clouds.prediction, clouds.reference, reference_index=clouds.reference_index), 1
        )
        seconds = stage + metrics_s
        protocol: dict[str, Any] = {
            "views": args.views,
            "size": args.size,
            "points": int(clouds.reference.shape[0]),
            "ours_s": seconds,
            "ours_alignment_s": stage,
            "icp_iterations": clouds.icp.iterations,
            "ours": {k: ours[k] for k in ("acc", "comp", "nc")},
        }
        print(
            f"protocol {args.views} x {args.size}^2 ({protocol['points']:,} points): ours {seconds:.1f} s (alignment "
            f"{stage:.1f} s, ICP {clouds.icp.iterations} it.) {protocol['ours']}",
            flush=True,
        )
        if device.type == "cpu":
            pts = clouds.reference
            naive = naive_nn_seconds(clouds.prediction, pts, args.naive_slice // 4)
            protocol["naive_nn_pass_s_extrapolated"] = naive
            protocol["naive_total_s_extrapolated_lower_bound"] = (clouds.icp.iterations + 1 + 4) * naive
            print(
                f"  naive: {naive:.0f} s per NN pass (extrapolated); "
                f">= {protocol['naive_total_s_extrapolated_lower_bound']:.0f} s "
                f"with {clouds.icp.iterations + 1} ICP passes",
                flush=True,
            )
        if o3d is not None and device.type == "cpu":
            seconds, reference = best_of(lambda: reference_protocol(o3d, prediction, sample), 1)
            protocol["reference_s"] = seconds
            protocol["reference"] = reference
            protocol["max_abs_difference_vs_reference"] = max(abs(reference[k] - ours[k]) for k in reference)
            print(f"  reference (scipy 1 thread + Open3D ICP/normals): {seconds:.1f} s {reference}", flush=True)
        report["protocol"] = protocol
    finish(report, args.json)


if __name__ == "__main__":
    main()
