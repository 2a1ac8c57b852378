"""The reconstruction protocol's steps with their options: which alignment runs, what reaches ICP and the metrics,
which pixels count, and the exact refusals. (test_metrics_pointcloud.py checks the numbers against references.)"""

from __future__ import annotations

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
