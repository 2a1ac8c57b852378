"""Point-cloud metrics, alignment and the reconstruction protocol: known answers and brute-force references."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics import (
    NeighborIndex,
    chamfer,
    chamfer_and_normals,
    estimate_normals,
    icp,
    normal_consistency,
    point_cloud_metrics,
    reconstruction_metrics,
    umeyama,
)

RNG = np.random.default_rng(0)


# -- brute-force references (full distance matrices, per-point loops) -------------------------------------------


def brute_nn(queries: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distances = np.sqrt(((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    index = distances.argmin(axis=1)
    return distances[np.arange(len(queries)), index], index


def brute_normals(points: np.ndarray, k: int) -> np.ndarray:
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    normals = []
    for i in range(len(points)):
        patch = points[np.argsort(distances[i])[:k]]
        centred = patch - patch.mean(axis=0)
        _, vectors = np.linalg.eigh(centred.T @ centred)
        normals.append(vectors[:, 0])
    return np.array(normals)


def surface(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uv = rng.random((n, 2))
    return np.c_[uv, 0.3 * np.sin(3 * uv[:, 0]) * np.cos(2 * uv[:, 1])]


# -- known answers ----------------------------------------------------------------------------------------------


def test_parallel_planes_offset_by_h():
    u, v = np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 30))
    plane = np.c_[u.ravel(), v.ravel(), np.zeros(u.size)]
    for h in (0.01, 0.25):
        result = chamfer(plane + [0, 0, h], plane)
        for key in ("acc", "acc_median", "comp", "comp_median"):
            assert result[key] == pytest.approx(h, abs=1e-12), key


def test_normal_consistency_of_a_sphere_with_itself_is_one():
    x = RNG.standard_normal((3000, 3))
    sphere = x / np.linalg.norm(x, axis=1, keepdims=True)
    result = normal_consistency(sphere, sphere)
    assert all(value == pytest.approx(1.0, abs=1e-12) for value in result.values())
    # estimated normals of a unit sphere are radial up to the curvature of 30-point patches
    normals = estimate_normals(sphere).numpy()
    assert np.abs((normals * sphere).sum(1)).min() > 0.99


def random_similarity(seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return float(rng.uniform(0.3, 3.0)), Rotation.random(random_state=seed).as_matrix(), rng.standard_normal(3)


def test_umeyama_recovers_a_similarity_exactly():
    x = RNG.standard_normal((200, 3))
    scale, rotation, translation = random_similarity(1)
    y = scale * x @ rotation.T + translation
    sim = umeyama(x, y)
    assert sim.scale == pytest.approx(scale, rel=1e-12)
    np.testing.assert_allclose(sim.rotation.numpy(), rotation, atol=1e-12)
    np.testing.assert_allclose(sim.translation.numpy(), translation, atol=1e-12)
    rigid = umeyama(x, x @ rotation.T + translation, with_scale=False)
    assert rigid.scale == 1.0 and np.allclose(rigid.rotation.numpy(), rotation, atol=1e-12)
    np.testing.assert_allclose(sim.matrix.numpy()[:3, :3], scale * rotation, atol=1e-12)


def test_umeyama_is_the_least_squares_optimum_under_noise():
    x = RNG.standard_normal((100, 3))
    scale, rotation, translation = random_similarity(2)
    y = scale * x @ rotation.T + translation + 0.05 * RNG.standard_normal((100, 3))

    def objective(params: np.ndarray) -> float:
        c, R, t = math.exp(params[0]), Rotation.from_rotvec(params[1:4]).as_matrix(), params[4:]
        return float(((y - (c * x @ R.T + t)) ** 2).sum())

    start = np.r_[0.0, np.zeros(3), np.zeros(3)]
    best = minimize(objective, start, method="BFGS", options={"gtol": 1e-10}).fun
    sim = umeyama(x, y)
    ours = float(((y - sim.apply(torch.from_numpy(x)).numpy()) ** 2).sum())
    assert ours == pytest.approx(best, rel=1e-6)
    assert ours <= best + 1e-9


def test_reconstruction_of_a_similarity_transformed_copy_is_zero():
    """GT from depth + cameras; the prediction is the same scene in another similarity frame (scaled depth,
    transformed cameras), once as depth + cameras and once as world points."""
    S, H, W = 3, 20, 24
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    # Phases off the pixel grid: a depth symmetric about a pixel gives exactly tied 30th neighbours, which the
    # 1e-15 residue of the alignment may break differently in the two clouds (one normal a little off).
    depth = np.stack([2 + 0.3 * np.sin(u / 4 + i + 0.37) * np.cos(v / 5 + 0.21) for i in range(S)])
    extrinsics = np.zeros((S, 3, 4))
    for i in range(S):
        extrinsics[i, :, :3] = Rotation.from_rotvec([0, 0.1 * i, 0.02 * i]).as_matrix()
        extrinsics[i, :, 3] = [-0.2 * i, 0.05 * i, 0.0]
    intrinsics = np.tile(np.array([[20.0, 0, W / 2], [0, 20.0, H / 2], [0, 0, 1]]), (S, 1, 1))
    gt = {"depth": depth, "extrinsics": extrinsics, "intrinsics": intrinsics, "mask": depth > 0}
    scale, rotation, translation = random_similarity(3)
    pred_extrinsics = np.zeros_like(extrinsics)  # x_c' = s x_c for world X' = s R X + t
    pred_extrinsics[:, :, :3] = extrinsics[:, :, :3] @ rotation.T
    pred_extrinsics[:, :, 3] = scale * extrinsics[:, :, 3] - (extrinsics[:, :, :3] @ rotation.T @ translation)
    prediction = {"depth": scale * depth, "extrinsics": pred_extrinsics, "intrinsics": intrinsics}
    result = reconstruction_metrics(prediction, gt)
    for key in ("acc", "acc_median", "comp", "comp_median"):
        assert result[key] < 1e-9, key
    assert result["nc"] == pytest.approx(1.0, abs=1e-9)
    from subspace_hub.metrics import point_map

    world = point_map(gt, "gt").numpy()
    moved = scale * world @ rotation.T + translation
    assert reconstruction_metrics({"world_points": moved}, gt)["acc"] < 1e-9
    # without alignment the same prediction is far off
    assert reconstruction_metrics({"world_points": moved}, gt, alignment="none")["acc"] > 0.1


def test_icp_registers_a_small_rigid_motion():
    target = surface(3000, 0)
    rotation = Rotation.from_rotvec([0.0, 0.0, 0.05]).as_matrix()
    source = target @ rotation.T + [0.02, -0.01, 0.015]
    result = icp(source, target, max_correspondence_distance=0.1)
    assert result.fitness == 1.0 and result.inlier_rmse < 1e-6 and 1 <= result.iterations <= 30
    np.testing.assert_allclose(result.apply(torch.from_numpy(source)).numpy(), target, atol=1e-6)
    far = icp(source + 10.0, target, max_correspondence_distance=0.1)  # no correspondence: nothing moves
    assert (
        far.fitness == 0.0
        and far.iterations == 0
        and torch.equal(far.transformation, torch.eye(4, dtype=torch.float64))
    )


# -- agreement with brute force -----------------------------------------------------------------------------------


def test_chamfer_matches_brute_force_on_random_clouds():
    pred, gt = RNG.random((700, 3)), RNG.random((500, 3)) * [1, 1, 0.2]
    acc, _ = brute_nn(pred, gt)
    comp, _ = brute_nn(gt, pred)
    expected = {"acc": acc.mean(), "acc_median": np.median(acc), "comp": comp.mean(), "comp_median": np.median(comp)}
    for backend in ("kdtree", "brute"):
        result = chamfer(pred, gt, backend=backend)
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=1e-6, rel=1e-6), (backend, key)


def test_normals_and_nc_match_brute_force():
    pred, gt = surface(400, 1) + 0.005 * RNG.standard_normal((400, 3)), surface(300, 2)
    for backend in ("kdtree", "brute"):
        normals = estimate_normals(pred, k=30, backend=backend).numpy()
        reference = brute_normals(pred, 30)
        np.testing.assert_allclose(np.abs((normals * reference).sum(1)), 1.0, atol=1e-6)
    n_pred, n_gt = brute_normals(pred, 30), brute_normals(gt, 30)
    _, nn_pred = brute_nn(pred, gt)
    _, nn_gt = brute_nn(gt, pred)
    nc1 = np.abs((n_gt[nn_pred] * n_pred).sum(1))
    nc2 = np.abs((n_pred[nn_gt] * n_gt).sum(1))
    result = normal_consistency(pred, gt)
    assert result["nc1"] == pytest.approx(nc1.mean(), abs=1e-6) and result["nc1_median"] == pytest.approx(
        np.median(nc1), abs=1e-6
    )
    assert result["nc2"] == pytest.approx(nc2.mean(), abs=1e-6) and result["nc2_median"] == pytest.approx(
        np.median(nc2), abs=1e-6
    )
    assert result["nc"] == pytest.approx((nc1.mean() + nc2.mean()) / 2, abs=1e-6)
    combined = chamfer_and_normals(pred, gt)
    assert combined["nc"] == pytest.approx(result["nc"], abs=1e-12) and combined["acc"] == pytest.approx(
        chamfer(pred, gt)["acc"], abs=1e-12
    )
    # given normals are used as they are (normalised)
    given = normal_consistency(pred, gt, prediction_normals=3 * n_pred, reference_normals=n_gt)
    assert given["nc1"] == pytest.approx(nc1.mean(), abs=1e-9)


def brute_icp(
    source: np.ndarray, target: np.ndarray, threshold: float, iterations: int = 30
) -> tuple[np.ndarray, float, float]:
    """Open3D's point-to-point loop, written with full distance matrices and an SVD per step."""

    def evaluate(points):
        d, idx = brute_nn(points, target)
        keep = d < threshold
        return keep.mean(), (math.sqrt((d[keep] ** 2).mean()) if keep.any() else 0.0), keep, idx

    transform, current = np.eye(4), source.copy()
    fitness, rmse, keep, idx = evaluate(current)
    for _ in range(iterations):
        a, b = current[keep], target[idx[keep]]
        ca, cb = a.mean(0), b.mean(0)
        U, _, Vt = np.linalg.svd((b - cb).T @ (a - ca))
        D = np.diag([1, 1, np.sign(np.linalg.det(U) * np.linalg.det(Vt))])
        R = U @ D @ Vt
        step = np.eye(4)
        step[:3, :3], step[:3, 3] = R, cb - R @ ca
        transform, current = step @ transform, current @ R.T + step[:3, 3]
        previous = (fitness, rmse)
        fitness, rmse, keep, idx = evaluate(current)
        if abs(previous[0] - fitness) < 1e-6 and abs(previous[1] - rmse) < 1e-6:
            break
    return transform, fitness, rmse


def test_icp_matches_a_brute_force_loop():
    target = surface(800, 3)
    source = target[:600] @ Rotation.from_rotvec([0.02, -0.03, 0.04]).as_matrix().T + [0.03, 0.0, -0.02]
    source += 0.003 * RNG.standard_normal(source.shape)
    transform, fitness, rmse = brute_icp(source, target, 0.1)
    result = icp(source, target, max_correspondence_distance=0.1)
    np.testing.assert_allclose(result.transformation.numpy(), transform, atol=1e-6)
    assert result.fitness == pytest.approx(fitness, abs=1e-12) and result.inlier_rmse == pytest.approx(rmse, abs=1e-6)


def test_protocol_on_corresponding_points_matches_the_steps():
    gt = surface(500, 4)
    scale, rotation, translation = random_similarity(5)
    pred = scale * (gt + 0.01 * RNG.standard_normal(gt.shape)) @ rotation.T + translation
    sim = umeyama(pred, gt)
    aligned = sim.apply(torch.from_numpy(pred))
    refined = icp(aligned, gt).apply(aligned)
    expected = chamfer_and_normals(refined, gt)
    assert point_cloud_metrics(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_neighbor_index_backends_agree_with_bounds_and_k():
    points, queries = torch.from_numpy(RNG.random((2000, 3))), torch.from_numpy(RNG.random((300, 3)))
    kd, brute = NeighborIndex(points, "kdtree"), NeighborIndex(points, "brute")
    for k in (1, 7):
        (d1, i1), (d2, i2) = kd.query(queries, k=k), brute.query(queries, k=k)
        torch.testing.assert_close(d1, d2, atol=1e-12, rtol=0)
        assert torch.equal(i1, i2)
    d, i = kd.query(queries, distance_upper_bound=0.02)
    db, ib = brute.query(queries, distance_upper_bound=0.02)
    assert torch.equal(i, ib) and bool((i == -1).any()) and bool(torch.isinf(d[i == -1]).all())
    with pytest.raises(ValueError, match="backend must be"):
        NeighborIndex(points, "faiss")


def test_kdtree_queries_use_torchs_thread_count_and_any_float_dtype():
    """The tree's OpenMP threads follow torch.set_num_threads (processes sharing the cores stay in their share),
    and float32 queries against a float64 cloud (or the reverse) are answered in float64."""
    from threadpoolctl import threadpool_info

    points = torch.from_numpy(RNG.random((500, 3)))
    index = NeighborIndex(points, "kdtree")
    seen = []

    class Recording:  # the tree, recording the thread count of pykdtree's OpenMP runtime at each query
        def __init__(self, tree):
            self.tree = tree

        def query(self, *args, **kwargs):
            seen.extend(info["num_threads"] for info in threadpool_info() if "pykdtree" in info["filepath"])
            return self.tree.query(*args, **kwargs)

    index._tree = Recording(index._tree)
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            index.query(points[:10])
            assert seen[-1] == threads
    finally:
        torch.set_num_threads(previous)
    d64, i64 = index.query(points[:50] + 1e-3)
    d32, i32 = index.query((points[:50] + 1e-3).float())
    assert torch.equal(i32, i64) and d32.dtype == torch.float64
    torch.testing.assert_close(d32, d64, atol=1e-7, rtol=0)
    d, i = NeighborIndex(points.float(), "kdtree").query(points[:50])
    assert torch.equal(i, torch.arange(50)) and float(d.max()) < 1e-7


def _query_in_a_child(points):
    NeighborIndex(points, "kdtree").query(points[:50_000], k=5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_query_after_its_parent_did():
    """GNU OpenMP hangs a forked child whose parent ran a parallel region, unless the child stays on one thread
    (a DataLoader worker or a fork-based pool computing metrics)."""
    import multiprocessing

    points = torch.from_numpy(RNG.random((100_000, 3)))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        NeighborIndex(points, "kdtree").query(points[:50_000], k=5)  # the parent's OpenMP team exists now
        child = multiprocessing.get_context("fork").Process(target=_query_in_a_child, args=(points,))
        child.start()
        child.join(timeout=120)
        hung = child.is_alive()
        if hung:
            child.kill()
    finally:
        torch.set_num_threads(previous)
    assert not hung and child.exitcode == 0


def test_brute_force_over_several_reference_chunks_matches_the_tree():
    """Brute force splits more than 4,096 reference points (CPU) into chunks and merges each chunk's best k: the
    merged answers (k = 1 and k > 1, with a bound) equal the KD-tree's."""
    points, queries = torch.from_numpy(RNG.random((9_000, 3))), torch.from_numpy(RNG.random((300, 3)))
    kd, brute = NeighborIndex(points, "kdtree"), NeighborIndex(points, "brute")
    for k in (1, 7):
        (d1, i1), (d2, i2) = kd.query(queries, k=k), brute.query(queries, k=k)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(d1, d2, atol=1e-12, rtol=0)
    (d1, i1), (d2, i2) = (
        kd.query(queries, k=3, distance_upper_bound=0.03),
        brute.query(queries, k=3, distance_upper_bound=0.03),
    )
    assert torch.equal(i1, i2) and bool((i1 == -1).any()) and bool((i1 >= 0).any())
    torch.testing.assert_close(d1, d2, atol=1e-12, rtol=0)


def test_neighbor_lists_and_queries_in_a_given_order_match_brute_force():
    """``neighbors`` (the lean path of normal estimation: indices only, int32 where they fit) and ``query`` with a
    caller's order of the queries give the brute-force answers, in the queries' own order."""
    points, queries = torch.from_numpy(RNG.random((3000, 3))), torch.from_numpy(RNG.random((700, 3)))
    kd, brute = NeighborIndex(points, "kdtree"), NeighborIndex(points, "brute")
    lean = kd.neighbors(queries, 6)
    assert lean.shape == (700, 6) and lean.dtype in (torch.int32, torch.int64)
    assert torch.equal(lean.long(), brute.query(queries, k=6)[1])
    assert torch.equal(brute.neighbors(queries, 6), lean.long())
    order = torch.randperm(700, generator=torch.Generator().manual_seed(0))
    (d1, i1), (d2, i2) = kd.query(queries, order=order), brute.query(queries)
    assert torch.equal(i1, i2)
    torch.testing.assert_close(d1, d2, atol=1e-12, rtol=0)
    assert kd.neighbors(queries[:5], 5000).shape == (5, 3000)  # k capped at the number of points


# -- bad input ------------------------------------------------------------------------------------------------------


def test_bad_point_clouds_raise_clear_errors():
    good = RNG.random((10, 3))
    with pytest.raises(MetricInputError, match="prediction is empty"):
        chamfer(np.zeros((0, 3)), good)
    nan = good.copy()
    nan[3, 1] = np.nan
    with pytest.raises(MetricInputError, match=r"reference has 1 point\(s\) with NaN or infinite coordinates"):
        chamfer(good, nan)
    with pytest.raises(MetricInputError, match=r"must have shape \[N, 3\]"):
        chamfer(good[:, :2], good)
    with pytest.raises(MetricInputError, match="same shape"):
        umeyama(good, good[:5])
    with pytest.raises(MetricInputError, match="at least 3 corresponding points"):
        umeyama(good[:2], good[:2])
    with pytest.raises(MetricInputError, match="^umeyama: all source points coincide"):
        umeyama(np.ones((5, 3)), good[:5])
    with pytest.raises(MetricInputError, match="needs at least 3 points"):
        estimate_normals(good[:2])
    with pytest.raises(MetricInputError, match="1 zero-length normal"):
        normal_consistency(good, good, prediction_normals=np.r_[np.zeros((1, 3)), np.ones((9, 3))])
    with pytest.raises(MetricInputError, match="must be an array or tensor of numbers"):
        chamfer("points", good)


def test_bad_reconstruction_inputs_raise_clear_errors():
    depth = np.ones((2, 4, 5))
    cams = {"extrinsics": np.tile(np.eye(3, 4), (2, 1, 1)), "intrinsics": np.tile(np.eye(3), (2, 1, 1))}
    gt = {"depth": depth, **cams}
    with pytest.raises(MetricInputError, match="no valid pixel"):
        reconstruction_metrics({"depth": depth, **cams}, {**gt, "mask": np.zeros((2, 4, 5), bool)})
    with pytest.raises(MetricInputError, match="lacks extrinsics, intrinsics"):
        reconstruction_metrics({"depth": depth}, gt)
    with pytest.raises(MetricInputError, match="prediction has 1 views and reference 2"):
        reconstruction_metrics(
            {"depth": depth[:1], "extrinsics": cams["extrinsics"][:1], "intrinsics": cams["intrinsics"][:1]}, gt
        )
    bad = depth.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(MetricInputError, match=r"predicted points has 1 point\(s\) with NaN"):
        reconstruction_metrics({"depth": bad, **cams}, gt)
    with pytest.raises(MetricInputError, match="alignment must be"):
        reconstruction_metrics({"depth": depth, **cams}, gt, alignment="sim3")


def test_large_query_sets_are_answered_in_input_order():
    """Above 50K queries the KD-tree path reorders them along a Z-curve; answers come back in input order."""
    from subspace_hub.metrics.neighbors import morton_order

    points, queries = torch.from_numpy(RNG.random((3000, 3))), torch.from_numpy(RNG.random((60_000, 3)))
    order = morton_order(queries.numpy())
    assert sorted(order.tolist()) == list(range(60_000))
    kd, brute = NeighborIndex(points, "kdtree"), NeighborIndex(points, "brute")
    (d1, i1), (d2, i2) = kd.query(queries), brute.query(queries)
    assert torch.equal(i1, i2)
    torch.testing.assert_close(d1, d2, atol=1e-12, rtol=0)
    assert torch.equal(kd.query(queries, sort=False)[1], i1)


def test_closed_form_normals_handle_degenerate_neighbourhoods():
    from subspace_hub.metrics.pointcloud import smallest_eigenvector

    rotations = torch.from_numpy(Rotation.random(500, random_state=0).as_matrix())
    spectra = torch.from_numpy(RNG.random((500, 3)) + 0.01)
    covariance = rotations @ torch.diag_embed(spectra) @ rotations.transpose(1, 2)
    vectors = smallest_eigenvector(covariance)
    expected = torch.linalg.eigh(covariance)[1][:, :, 0]
    torch.testing.assert_close(
        (vectors * expected).sum(1).abs(), torch.ones(500, dtype=torch.float64), atol=1e-9, rtol=0
    )
    line = (
        rotations[:1]
        @ torch.diag(torch.tensor([1.0, 1e-12, 1e-12], dtype=torch.float64))
        @ rotations[:1].transpose(1, 2)
    )
    v = smallest_eigenvector(line)[0]  # any unit vector orthogonal to the line
    assert float(v.norm()) == pytest.approx(1.0) and abs(float(v @ rotations[0][:, 0])) < 1e-9
    assert smallest_eigenvector(2 * torch.eye(3, dtype=torch.float64)[None]).tolist() == [[0.0, 0.0, 1.0]]
    collinear = np.c_[np.linspace(0, 1, 40), np.zeros(40), np.zeros(40)]
    normals = estimate_normals(collinear, k=5).numpy()
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0) and np.abs(normals[:, 0]).max() < 1e-9


# -- boundaries, by hand ----------------------------------------------------------------------------------------


def test_umeyama_scale_is_optimal_when_the_best_rotation_needed_a_reflection_fix():
    """A mirrored, scaled copy: the best proper rotation comes from flipping the smallest singular direction, and the
    scale must use the same sign (c = tr(D S) / var); then no other scale fits better with that rotation."""
    x = RNG.standard_normal((50, 3)) * np.array([3.0, 2.0, 0.5])
    y = 2.0 * x * np.array([1.0, 1.0, -1.0]) + np.array([0.3, -0.2, 1.0])
    sim = umeyama(x, y)
    rotation = sim.rotation.numpy()
    assert np.linalg.det(rotation) == pytest.approx(1.0)

    def residual(scale: float) -> float:
        translation = y.mean(0) - scale * rotation @ x.mean(0)
        return float(((y - (scale * x @ rotation.T + translation)) ** 2).sum())

    assert residual(sim.scale) < residual(sim.scale * 0.99)
    assert residual(sim.scale) < residual(sim.scale * 1.01)


def test_point_maps_are_resized_with_pixel_centres_not_corners():
    from subspace_hub.metrics.reconstruction import resize_point_map

    ramp = torch.zeros(1, 1, 2, 3, dtype=torch.float64)
    ramp[0, 0, :, 0] = torch.tensor([0.0, 3.0])  # x coordinate 0 then 3 along the width
    resized = resize_point_map(ramp, (1, 4))[0, 0, :, 0]
    # align_corners=False: output pixel centres sit at input x = -0.25, 0.25, 0.75, 1.25 (clamped at the ends)
    np.testing.assert_allclose(resized.numpy(), [0.0, 0.75, 2.25, 3.0])


def test_reconstruction_ignores_reference_pixels_below_min_depth():
    S, H, W = 2, 12, 14
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    depth = np.stack([2 + 0.3 * np.sin(u / 3 + i) * np.cos(v / 4) for i in range(S)])
    extrinsics = np.zeros((S, 3, 4))
    extrinsics[:, :, :3] = np.eye(3)
    extrinsics[1, 0, 3] = -0.3
    intrinsics = np.tile(np.array([[15.0, 0, W / 2], [0, 15.0, H / 2], [0, 0, 1]]), (S, 1, 1))
    prediction = {"depth": depth.copy(), "extrinsics": extrinsics, "intrinsics": intrinsics}
    prediction["depth"][:, :3] = 50.0  # the prediction is wild where the reference is (nearly) empty
    near_zero = depth.copy()
    near_zero[:, :3] = 1e-5  # below the protocol's min_depth of 1e-4
    kept = reconstruction_metrics(prediction, {"depth": near_zero, "extrinsics": extrinsics, "intrinsics": intrinsics})
    masked = reconstruction_metrics(
        prediction,
        {
            "depth": depth,
            "extrinsics": extrinsics,
            "intrinsics": intrinsics,
            "mask": np.broadcast_to(np.arange(H)[None, :, None] >= 3, (S, H, W)),
        },
    )
    assert kept["acc"] == pytest.approx(masked["acc"], abs=1e-12)
    assert kept["acc"] < 1e-9


def test_icp_keeps_iterating_while_the_fitness_moves_by_more_than_its_default_tolerance():
    """With the RMSE test relaxed, convergence rests on the fitness alone: from 12 % of the points within 0.07 (a
    0.08 shift), ICP goes on until every point is an inlier instead of stopping after its first step."""
    target = torch.rand(100, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    source = target + torch.tensor([0.08, 0.0, 0.0], dtype=torch.float64)
    assert icp(source, target, max_correspondence_distance=0.07, max_iterations=0).fitness == 0.12
    result = icp(source, target, max_correspondence_distance=0.07, relative_rmse=1.0)
    assert result.fitness == 1.0 and result.iterations > 1


def test_umeyama_and_icp_defaults_boundaries_starts_and_messages():
    """What the agreement tests cannot see: ICP's defaults (threshold 0.1, 30 iterations, strict convergence
    tests), its start transform, the three-correspondence minimum, an empty correspondence set (fitness and RMSE
    0, as Open3D), dtype of a similarity applied to float32 points, and each error names what is wrong."""
    x = torch.from_numpy(RNG.standard_normal((40, 3)))
    angle = 0.3
    rotation = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    start = torch.eye(4, dtype=torch.float64)
    start[:3, :3], start[:3, 3] = rotation, torch.tensor([0.5, -0.2, 0.3], dtype=torch.float64)
    y = x @ rotation.T + start[:3, 3]
    # a start transform that is the answer: every point corresponds at once (subtracting its translation would not)
    result = icp(x, y, init=start)
    assert result.fitness == 1.0 and result.inlier_rmse < 1e-12
    torch.testing.assert_close(result.transformation, start, atol=1e-12, rtol=0)
    # the default threshold is 0.1: a lattice of spacing 2 shifted by 0.5 has no correspondence (fitness, RMSE 0)
    lattice = torch.stack(torch.meshgrid(*[torch.arange(4.0, dtype=torch.float64) * 2] * 3, indexing="ij"), -1)
    lattice = lattice.reshape(-1, 3)
    far = icp(lattice, lattice + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))
    assert (far.fitness, far.inlier_rmse, far.iterations) == (0.0, 0.0, 0)
    # zero tolerances never count as converged (strict tests): all 30 default iterations run, whichever of the two
    # tests has the zero; with the defaults a small motion converges well before that
    for tolerances in ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0)):
        settled = icp(x, x + 0.01, relative_fitness=tolerances[0], relative_rmse=tolerances[1])
        assert settled.iterations == 30 and settled.fitness == 1.0, tolerances
    assert 1 <= icp(x, x + 0.01).iterations < 30
    assert result.apply(x.float()).dtype == torch.float32
    torch.testing.assert_close(result.apply(x.float()), y.float(), atol=1e-5, rtol=0)
    # exactly three correspondences are enough to iterate (the other points are far from every target point)
    few = x.clone()
    few[3:] += 100.0
    three = icp(few, x + 0.01)
    assert three.iterations >= 1 and three.fitness == pytest.approx(3 / 40)
    # a similarity fitted in float64 transforms float32 points into float32 points
    sim = umeyama(x, 2 * y)
    assert sim.apply(x.float()).dtype == torch.float32
    torch.testing.assert_close(sim.apply(x.float()), (2 * y).float(), atol=1e-4, rtol=0)
    umeyama(x[:3], y[:3])  # three points suffice
    with pytest.raises(MetricInputError, match="umeyama needs at least 3 corresponding points, got 2"):
        umeyama(x[:2], y[:2])
    with pytest.raises(MetricInputError, match="^source and target must have the same shape"):
        umeyama(x[:5], y[:4])
    with pytest.raises(MetricInputError, match="^target must have shape"):
        umeyama(x, y[:, :2])
    with pytest.raises(MetricInputError, match="^umeyama: all source points coincide"):
        umeyama(torch.ones(5, 3, dtype=torch.float64), y[:5])
    with pytest.raises(MetricInputError, match="^source must have shape"):
        umeyama(x[:, :2], y)
    with pytest.raises(MetricInputError, match="^target must have shape"):
        icp(x, y[:, :2])
    with pytest.raises(MetricInputError, match="^source must have shape"):
        icp(x[:, :2], y)
    with pytest.raises(MetricInputError, match="max_correspondence_distance must be positive, got 0"):
        icp(x, y, max_correspondence_distance=0.0)
    with pytest.raises(MetricInputError, match=r"init must be a 4x4 matrix, got shape \(3, 3\)"):
        icp(x, y, init=np.eye(3))
    with pytest.raises(MetricInputError, match="^init"):
        icp(x, y, init=np.full((4, 4), np.nan))
    with pytest.raises(MetricInputError, match="^init must be an array"):
        icp(x, y, init="identity")


def test_estimate_normals_defaults_to_30_neighbours_and_needs_3_points():
    """Open3D's default neighbourhood is 30 points: the default must give the k = 30 normals (not those of 29 or
    31) on a curved, noisy cloud; three points define a plane, two do not."""
    cloud = torch.from_numpy(RNG.standard_normal((200, 3)) * [1.0, 1.0, 0.3])
    default = estimate_normals(cloud)
    torch.testing.assert_close(default, estimate_normals(cloud, k=30), atol=0, rtol=0)
    for k in (29, 31):
        assert not torch.allclose(default.abs(), estimate_normals(cloud, k=k).abs())
    plane = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(estimate_normals(plane).abs(), torch.tensor([[0.0, 0.0, 1.0]] * 3, dtype=torch.float64))
    with pytest.raises(MetricInputError, match="^estimating normals needs at least 3 points, got 2"):
        estimate_normals(plane[:2])
    with pytest.raises(MetricInputError, match="^points must have shape"):
        estimate_normals(plane[:, :2])


def test_given_normals_and_k_are_used_by_both_normal_consistency_entry_points():
    """Normals passed in replace the estimated ones (on either side), ``k`` reaches the estimation, and a normals
    array of the wrong length or with a zero vector is refused with its name."""
    gt = torch.from_numpy(RNG.standard_normal((300, 3)) * [1.0, 1.0, 0.2])
    pred = gt + torch.from_numpy(RNG.normal(0, 0.02, (300, 3)))
    up = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(300, 3)
    side = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand(300, 3)
    for score in (normal_consistency, chamfer_and_normals):
        assert score(pred, gt, prediction_normals=up, reference_normals=side)["nc"] == pytest.approx(0.0, abs=1e-12)
        assert score(pred, gt, prediction_normals=up, reference_normals=up)["nc"] == pytest.approx(1.0, abs=1e-12)
        estimated = score(pred, gt)["nc"]
        assert score(pred, gt, prediction_normals=up)["nc"] != pytest.approx(estimated, abs=1e-6)
        assert score(pred, gt, reference_normals=up)["nc"] != pytest.approx(estimated, abs=1e-6)
        assert score(pred, gt, k=8)["nc"] != pytest.approx(estimated, abs=1e-6)
        own = {"prediction_normals": estimate_normals(pred, 8), "reference_normals": estimate_normals(gt, 8)}
        # k reaches both sides' estimation (to rounding: the summation order depends on the thread count)
        assert score(pred, gt, k=8)["nc"] == pytest.approx(score(pred, gt, **own)["nc"], abs=1e-12)
        with pytest.raises(MetricInputError, match="^prediction must have shape"):
            score(pred[:, :2], gt)
        with pytest.raises(MetricInputError, match="^reference must have shape"):
            score(pred, gt[:, :2])
        with pytest.raises(MetricInputError, match="^prediction_normals has 299 normals for 300 points"):
            score(pred, gt, prediction_normals=up[:299])
        with pytest.raises(MetricInputError, match="^reference_normals has 1 zero-length normal"):
            score(pred, gt, reference_normals=torch.cat([up[:299], torch.zeros(1, 3, dtype=torch.float64)]))
        with pytest.raises(MetricInputError, match="^reference_normals"):
            score(pred, gt, reference_normals=torch.full((300, 3), math.nan, dtype=torch.float64))


def test_point_maps_from_single_views_and_their_refusals():
    """A single view's depth [H, W] with [3, 4] / [3, 3] cameras, or world points [H, W, 3], become one-view maps;
    each malformed input is refused naming what it got."""
    from subspace_hub.geometry import depth_to_world_points
    from subspace_hub.metrics.reconstruction import align_reconstruction, point_map

    torch.manual_seed(0)
    depth = 1 + torch.rand(5, 6, dtype=torch.float64)
    extrinsics = torch.cat(
        [torch.eye(3, dtype=torch.float64), torch.tensor([[0.1], [0.2], [0.3]], dtype=torch.float64)], 1
    )
    intrinsics = torch.tensor([[4.0, 0, 3.0], [0, 4.0, 2.5], [0, 0, 1]], dtype=torch.float64)
    single = point_map({"depth": depth, "extrinsics": extrinsics, "intrinsics": intrinsics}, "pred")
    expected = depth_to_world_points(depth[None], extrinsics[None], intrinsics[None])
    assert single.shape == (1, 5, 6, 3)
    torch.testing.assert_close(single, expected)
    assert point_map({"world_points": expected[0]}, "pred").shape == (1, 5, 6, 3)
    two = {
        "depth": depth.expand(2, 5, 6),
        "extrinsics": extrinsics.expand(2, 3, 4),
        "intrinsics": intrinsics.expand(2, 3, 3),
    }
    for key, bad in (("extrinsics", extrinsics.expand(3, 3, 4)), ("intrinsics", intrinsics.expand(3, 3, 3))):
        shapes = {k: tuple(v.shape) for k, v in {**two, key: bad}.items()}
        with pytest.raises(MetricInputError) as caught:
            point_map({**two, key: bad}, "pred")
        assert str(caught.value) == (
            f"pred: depth [S, H, W] needs extrinsics [S, 3, 4] and intrinsics [S, 3, 3]; got {shapes['depth']}, "
            f"{shapes['extrinsics']}, {shapes['intrinsics']}."
        )
    with pytest.raises(MetricInputError, match=r"^pred: depth \[S, H, W\] needs .* got \(1, 2, 5, 6\), \(2, 3, 4\)"):
        point_map({**two, "depth": depth.expand(1, 2, 5, 6)}, "pred")
    for bad in (torch.zeros(1, 5, 6, 2), torch.zeros(1, 1, 5, 6, 3)):
        with pytest.raises(
            MetricInputError,
            match=rf"^pred world points must be \[S, H, W, 3\], got {re.escape(str(tuple(bad.shape)))}\.$",
        ):
            point_map({"world_points": bad}, "pred")
    with pytest.raises(MetricInputError, match=r"^pred needs world_points, or depth with extrinsics and intrinsics; "
                       r"it lacks extrinsics, intrinsics\.$"):  # fmt: skip
        point_map({"depth": depth}, "pred")
    # the defaults: Umeyama then ICP, GT depth above 1e-4 only
    reference = {"depth": depth.clone(), "extrinsics": extrinsics, "intrinsics": intrinsics}
    reference["depth"][0, :3] = 5e-5  # three pixels too close: left out
    aligned = align_reconstruction({"world_points": expected}, reference)
    assert aligned.reference.shape == (27, 3) and aligned.similarity is not None and aligned.icp is not None
