"""The reconstruction protocol's steps with their options: which alignment runs, what reaches ICP and the metrics,
which pixels count, and the exact refusals. (test_metrics_pointcloud.py checks the numbers against references.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics import chamfer_and_normals, icp, point_cloud_metrics, reconstruction_metrics, umeyama
from subspace_hub.metrics.reconstruction import align_points, align_reconstruction, point_map


def wavy(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    uv = rng.random((n, 2))
    return torch.from_numpy(np.c_[uv, 0.3 * np.sin(3 * uv[:, 0]) * np.cos(2 * uv[:, 1])])


def moved(points: torch.Tensor, seed: int, noise: float = 0.01) -> torch.Tensor:
    """The points in another similarity frame, with some noise (so ICP has work to do)."""
    rng = np.random.default_rng(seed)
    rotation = torch.from_numpy(Rotation.random(random_state=seed).as_matrix())
    noisy = points + noise * torch.from_numpy(rng.standard_normal(points.shape))
    return 1.7 * noisy @ rotation.T + torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)


@pytest.fixture(scope="module")
def clouds() -> tuple[torch.Tensor, torch.Tensor]:
    gt = wavy(400, 0)
    return moved(gt, 1), gt


def test_each_alignment_does_its_steps_and_only_those(clouds):
    pred, gt = clouds
    none = align_points(pred, gt, alignment="none")
    assert (none.similarity, none.icp, none.reference_index) == (None, None, None)
    assert torch.equal(none.prediction, pred) and torch.equal(none.reference, gt)

    sim = umeyama(pred, gt, with_scale=True)
    only = align_points(pred, gt, alignment="umeyama")
    assert only.icp is None and only.reference_index is None and only.similarity.scale == pytest.approx(sim.scale)
    torch.testing.assert_close(only.prediction, sim.apply(pred), rtol=0, atol=1e-12)

    full = align_points(pred, gt)  # the protocol: Umeyama, then ICP from there
    refined = icp(sim.apply(pred), gt)
    torch.testing.assert_close(full.icp.transformation, refined.transformation, rtol=0, atol=1e-12)
    torch.testing.assert_close(full.prediction, refined.apply(sim.apply(pred)), rtol=0, atol=1e-12)
    assert full.reference_index.backend == "kdtree" and torch.equal(full.reference_index.points, gt)
    assert full.icp.iterations > 1  # the noise leaves ICP something to do


def test_icp_options_reach_icp(clouds):
    pred, gt = clouds
    start = umeyama(pred, gt, with_scale=True).apply(pred)
    for threshold, iterations in ((0.02, 2), (0.005, 30), (1.0, 1)):
        aligned = align_points(pred, gt, icp_threshold=threshold, icp_iterations=iterations)
        direct = icp(start, gt, max_correspondence_distance=threshold, max_iterations=iterations)
        assert (aligned.icp.fitness, aligned.icp.iterations) == pytest.approx((direct.fitness, direct.iterations))
        torch.testing.assert_close(aligned.icp.transformation, direct.transformation, rtol=0, atol=1e-12)
    assert align_points(pred, gt, icp_iterations=1).icp.iterations == 1
    assert align_points(pred, gt, backend="brute").reference_index.backend == "brute"


def test_point_cloud_metrics_pass_every_option_on(clouds):
    pred, gt = clouds
    for options in (
        {"alignment": "umeyama", "k": 10},
        {"alignment": "umeyama_icp", "icp_threshold": 0.02, "icp_iterations": 2, "k": 12},
        {"alignment": "none", "k": 8, "backend": "brute"},
    ):
        aligned = align_points(
            pred, gt, **{k: v for k, v in options.items() if k in ("alignment", "icp_threshold", "icp_iterations")}
        )
        expected = chamfer_and_normals(aligned.prediction, gt, k=options["k"])
        assert point_cloud_metrics(pred, gt, **options) == pytest.approx(expected, abs=1e-12), options
    assert point_cloud_metrics(pred, gt, k=8) != pytest.approx(point_cloud_metrics(pred, gt, k=30), abs=1e-9)


def test_refusals_name_what_was_wrong(clouds):
    pred, gt = clouds
    with pytest.raises(MetricInputError) as caught:
        align_points(pred[:5], gt[:6])
    assert str(caught.value) == ("align_points needs corresponding points, got 5 predicted and 6 reference points.")
    for alignment in ("sim3", "icp", ""):
        with pytest.raises(MetricInputError) as caught:
            align_points(pred, gt, alignment=alignment)
        assert str(caught.value) == f"alignment must be 'umeyama_icp', 'umeyama' or 'none', got {alignment!r}."


def scene(views: int = 2, height: int = 10, width: int = 12) -> dict[str, np.ndarray]:
    v, u = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    depth = np.stack([2 + 0.4 * np.sin(u / 3 + i + 0.3) * np.cos(v / 4 + 0.2) for i in range(views)])
    extrinsics = np.zeros((views, 3, 4))
    extrinsics[:, :, :3] = np.eye(3)
    extrinsics[:, 0, 3] = -0.3 * np.arange(views)
    intrinsics = np.tile(np.array([[12.0, 0, width / 2], [0, 12.0, height / 2], [0, 0, 1]]), (views, 1, 1))
    return {"depth": depth, "extrinsics": extrinsics, "intrinsics": intrinsics}


def test_the_valid_pixels_are_the_mask_and_depth_above_min_depth():
    gt = scene()
    depth = gt["depth"]
    mask = np.ones(depth.shape, bool)
    mask[0, :2] = False
    prediction = dict(gt)
    every = align_reconstruction(prediction, gt, alignment="none")
    assert every.reference.shape == (depth.size, 3)
    masked = align_reconstruction(prediction, {**gt, "mask": mask}, alignment="none")
    assert masked.reference.shape == (mask.sum(), 3)
    threshold = float(np.median(depth))
    deep = align_reconstruction(prediction, {**gt, "mask": mask}, alignment="none", min_depth=threshold)
    assert deep.reference.shape == ((mask & (depth > threshold)).sum(), 3)
    points = point_map(gt, "gt").reshape(-1, 3)[torch.from_numpy((mask & (depth > threshold)).reshape(-1))]
    torch.testing.assert_close(deep.reference, points, rtol=0, atol=0)
    torch.testing.assert_close(deep.prediction, points, rtol=0, atol=0)  # the prediction is the same scene
    world = {"world_points": point_map(gt, "gt").numpy()}  # no depth: every pixel counts
    assert align_reconstruction(prediction, world, alignment="none").reference.shape == (depth.size, 3)
    with pytest.raises(MetricInputError, match="min_depth exclude every pixel"):
        align_reconstruction(prediction, gt, min_depth=10.0)


def test_a_coarser_prediction_is_resized_to_the_reference():
    gt = scene(height=10, width=12)
    coarse = scene(height=5, width=6)
    aligned = align_reconstruction(coarse, gt, alignment="none")
    assert aligned.prediction.shape == aligned.reference.shape == (2 * 10 * 12, 3)


def test_reconstruction_metrics_pass_every_option_on():
    gt = scene(height=14, width=16)
    prediction = {**gt, "depth": gt["depth"] * (1 + 0.02 * np.random.default_rng(0).standard_normal(gt["depth"].shape))}
    for options in (
        {"alignment": "umeyama", "k": 10, "min_depth": 2.0},
        {"icp_threshold": 0.05, "icp_iterations": 2, "k": 12, "backend": "brute"},
    ):
        aligned = align_reconstruction(
            prediction, gt, **{k: v for k, v in options.items() if k not in ("k", "backend")}
        )
        expected = chamfer_and_normals(aligned.prediction, aligned.reference, k=options["k"])
        assert reconstruction_metrics(prediction, gt, **options) == pytest.approx(expected, abs=1e-12), options


def test_the_protocols_defaults_are_the_papers():
    """methods.md E.1: ICP threshold 0.1 scene units and at most 30 iterations, normals from 30 neighbours, GT depth
    above 1e-4, Umeyama then ICP. Every entry point has them."""
    import inspect

    for function in (align_points, align_reconstruction, point_cloud_metrics, reconstruction_metrics):
        defaults = {
            name: p.default for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty
        }
        assert defaults["alignment"] == "umeyama_icp" and defaults["backend"] == "auto", function.__name__
        assert (defaults["icp_threshold"], defaults["icp_iterations"]) == (0.1, 30), function.__name__
        if "k" in defaults:
            assert defaults["k"] == 30, function.__name__
        if "min_depth" in defaults:
            assert defaults["min_depth"] == 1e-4, function.__name__


def test_align_reconstruction_passes_its_icp_options_on():
    gt = scene(height=14, width=16)
    prediction = {**gt, "depth": gt["depth"] * (1 + 0.02 * np.random.default_rng(1).standard_normal(gt["depth"].shape))}
    assert align_reconstruction(prediction, gt, icp_iterations=1).icp.iterations == 1
    assert align_reconstruction(prediction, gt).icp.iterations > 1
    tight = align_reconstruction(prediction, gt, icp_threshold=1e-4).icp
    assert tight.fitness < align_reconstruction(prediction, gt).icp.fitness
    assert align_reconstruction(prediction, gt, backend="brute").reference_index.backend == "brute"


def test_one_index_per_cloud_of_the_chosen_backend(clouds, monkeypatch):
    """ICP's index over the reference is the one the metrics use; every index has the caller's backend."""
    from subspace_hub.metrics import alignment, neighbors, pointcloud, reconstruction

    built = []

    class Recording(neighbors.NeighborIndex):
        def __init__(self, points, backend="auto"):
            built.append(backend)
            super().__init__(points, backend)

    for module in (alignment, pointcloud, reconstruction):
        monkeypatch.setattr(module, "NeighborIndex", Recording)
    pred, gt = clouds
    point_cloud_metrics(pred, gt, backend="brute")
    assert built == ["brute", "brute"]
    built.clear()
    gt_sample = scene()
    reconstruction_metrics(gt_sample, gt_sample, backend="brute")
    assert built == ["brute", "brute"]


def test_a_point_map_of_the_right_size_is_returned_as_is():
    from subspace_hub.metrics.reconstruction import resize_point_map

    points = torch.rand(2, 5, 6, 3, dtype=torch.float64)
    assert resize_point_map(points, (5, 6)) is points
    assert resize_point_map(points, (5, 7)).shape == (2, 5, 7, 3)


def test_every_refusal_names_the_input_it_is_about():
    gt = scene()
    bools = gt["depth"] > 0

    def says(prediction, reference, message):
        with pytest.raises(MetricInputError) as caught:
            reconstruction_metrics(prediction, reference)
        assert str(caught.value).startswith(message), str(caught.value)

    says({"world_points": "abc"}, gt, "prediction world_points must be an array or tensor of numbers")
    says({**gt, "depth": "abc"}, gt, "prediction depth must be an array or tensor of numbers")
    says({**gt, "extrinsics": "abc"}, gt, "prediction extrinsics must be an array or tensor of numbers")
    says({**gt, "intrinsics": "abc"}, gt, "prediction intrinsics must be an array or tensor of numbers")
    says({"depth": gt["depth"]}, gt, "prediction needs world_points, or depth with extrinsics and intrinsics; it lacks")
    says(gt, {"depth": gt["depth"]}, "reference needs world_points, or depth with extrinsics and intrinsics; it lacks")
    world = point_map(gt, "gt").numpy()
    says(gt, {"world_points": world, "depth": bools}, "reference depth must hold numbers, got booleans.")
    says(gt, {**gt, "mask": bools[:1]}, "reference mask has shape (1, 10, 12), expected (2, 10, 12)")
    broken = world.copy()
    broken[0, 0, 0, 1] = np.nan
    says(gt, {"world_points": broken}, "reference points has 1 point(s) with NaN or infinite coordinates")
    says(
        gt,
        {**gt, "mask": np.zeros_like(bools)},
        ("The reference has no valid pixel (mask and depth > min_depth exclude every pixel)."),
    )
    with pytest.raises(MetricInputError, match=r"^prediction must be an array or tensor of numbers"):
        align_points("abc", world.reshape(-1, 3))
    with pytest.raises(MetricInputError, match=r"^reference must have shape \[N, 3\]"):
        align_points(world.reshape(-1, 3), world.reshape(-1, 3)[:, :2])


def test_calls_without_options_use_the_protocols_values():
    """On inputs where each default matters (outliers between 0.1 and 1.1 scene units from the surface, GT depth
    between 1e-4 and 1, normals that change with k), leaving an option out equals passing the protocol's value."""
    gt = wavy(400, 3)
    pred = moved(gt, 4)
    rng = np.random.default_rng(5)
    outliers = rng.choice(400, 40, replace=False)
    pred[outliers] += 0.5 * torch.from_numpy(rng.standard_normal((40, 3)))  # far for ICP's 0.1, near for 1.1
    protocol = {"icp_threshold": 0.1, "icp_iterations": 30}
    for options in ({"icp_threshold": 1.1}, {"k": 31}):
        assert point_cloud_metrics(pred, gt, **options) != pytest.approx(point_cloud_metrics(pred, gt), abs=1e-9)
    assert point_cloud_metrics(pred, gt) == point_cloud_metrics(pred, gt, **protocol, k=30)
    default, explicit = align_points(pred, gt), align_points(pred, gt, **protocol)
    assert torch.equal(default.icp.transformation, explicit.icp.transformation)
    assert not torch.equal(align_points(pred, gt, icp_threshold=1.1).icp.transformation, default.icp.transformation)

    sample = scene(height=14, width=16)
    sample["depth"][0, :3] = 0.5  # above 1e-4, below 1.0001
    noisy = {**sample, "depth": sample["depth"].copy()}
    noisy["depth"][1, 5:8] += 0.6  # outlier rows
    full = {**protocol, "min_depth": 1e-4}
    assert reconstruction_metrics(noisy, sample) == reconstruction_metrics(noisy, sample, **full, k=30)
    for options in ({"icp_threshold": 1.1}, {"k": 31}, {"min_depth": 1.0001}):
        assert reconstruction_metrics(noisy, sample, **options) != pytest.approx(
            reconstruction_metrics(noisy, sample), abs=1e-9
        ), options
    default, explicit = align_reconstruction(noisy, sample), align_reconstruction(noisy, sample, **full)
    assert torch.equal(default.prediction, explicit.prediction) and default.reference.shape == explicit.reference.shape


def test_morton_order_is_the_z_curve_of_21_bits_per_axis():
    """Against a bit-by-bit interleaving (x in bit 3b, y in 3b + 1, z in 3b + 2 of the code): the queries' order.
    Integer points spanning 0 .. 2**21 - 1 on each axis quantise to themselves, so every one of the 21 bits is seen:
    clusters that differ in the lowest bits only, and points spread over the whole range."""
    from subspace_hub.metrics.neighbors import morton_order

    rng = np.random.default_rng(0)
    top = 2**21 - 1
    spread_out = rng.integers(0, top, (1500, 3))
    clusters = rng.integers(0, top - 256, (30, 1, 3)) + rng.integers(0, 256, (30, 50, 3))
    points = np.concatenate([[[0, 0, 0], [top, top, top]], spread_out, clusters.reshape(-1, 3)]).astype(float)
    codes = []
    for x, y, z in points.astype(np.int64).tolist():
        code = 0
        for bit in range(21):
            code |= (
                ((x >> bit) & 1) << (3 * bit) | ((y >> bit) & 1) << (3 * bit + 1) | ((z >> bit) & 1) << (3 * bit + 2)
            )
        codes.append(code)
    np.testing.assert_array_equal(morton_order(points), np.argsort(np.array(codes, dtype=np.uint64), kind="stable"))
    expected = morton_order(points)
    for moved_points in (
        points * 2.0**-22 - 5.0,  # an extent below 1 (exact: a power of two), an offset
        points + [0.0, 3e6, -7e6],  # each axis its own offset
        points * [1.0, 2.0, 4.0],  # each axis its own extent
    ):  # each axis is quantised over its own range: the same cells, the same order
        np.testing.assert_array_equal(morton_order(moved_points), expected)
    corners = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], dtype=float)[::-1]
    np.testing.assert_array_equal(morton_order(corners), np.arange(8)[::-1])  # x, then y, then z
    ties = rng.integers(0, 3, (2000, 1)) * np.ones((1, 3))  # three distinct points, many times each
    order = morton_order(ties)
    for value in range(3):  # equal codes keep their input order
        rows = order[ties[order, 0] == value]
        np.testing.assert_array_equal(rows, np.sort(rows))
    np.testing.assert_array_equal(morton_order(np.ones((40, 3))), np.arange(40))  # no extent: one cell


def test_a_neighbour_exactly_at_the_bound_is_out_for_both_backends():
    """As scipy's cKDTree and pykdtree: only neighbours nearer than ``distance_upper_bound`` count (ICP's
    correspondences, chamfer with a bound), whichever backend answers."""
    from subspace_hub.metrics.neighbors import NeighborIndex

    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64)
    queries = torch.tensor([[0.5, 0, 0], [0.25, 0, 0]], dtype=torch.float64)
    for backend in ("kdtree", "brute"):
        index = NeighborIndex(points, backend)
        distances, indices = index.query(queries, distance_upper_bound=0.5)
        assert distances.tolist() == [math.inf, 0.25] and indices.tolist() == [-1, 0], backend
        distances, indices = index.query(queries, k=2, distance_upper_bound=0.75)
        assert distances.tolist() == [[0.5, 0.5], [0.25, math.inf]], backend
        assert indices[1].tolist() == [0, -1], backend


def test_neighbour_lists_are_int32_below_2_31_points_and_take_any_float_queries():
    from subspace_hub.metrics.neighbors import NeighborIndex

    points = wavy(300, 7)
    index = NeighborIndex(points)
    expected = index.neighbors(points[:20], 5)
    assert expected.dtype == torch.int32 and expected.shape == (20, 5)
    assert torch.equal(index.neighbors(points[:20].float().double(), 5), expected)
    single = index.neighbors(points[:20].float(), 5)  # float32 queries are asked in float64
    assert single.dtype == torch.int32 and (single[:, 0] == torch.arange(20, dtype=torch.int32)).all()
    brute = NeighborIndex(points, "brute").neighbors(points[:20], 5)
    assert torch.equal(brute.sort(dim=1).values.to(torch.int32), expected.sort(dim=1).values)
