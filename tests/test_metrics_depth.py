"""Depth metrics and alignment modes: hand-computed values, brute-force references, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from subspace_hub.errors import MetricInputError
from subspace_hub.metrics import abs_rel, align_depth, delta, depth_metrics, log_rmse, rmse, sq_rel
from subspace_hub.metrics.depth import ALIGN_MODES

RNG = np.random.default_rng(0)


def brute_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per-pixel Python loops over the valid pixels (gt > 0)."""
    rows = [(float(p), float(g)) for p, g in zip(pred.ravel(), gt.ravel(), strict=True) if g > 0]
    n = len(rows)
    out = {
        "abs_rel": sum(abs(p - g) / g for p, g in rows) / n,
        "sq_rel": sum((p - g) ** 2 / g for p, g in rows) / n,
        "rmse": (sum((p - g) ** 2 for p, g in rows) / n) ** 0.5,
    }
    clamped = [(max(p, 1e-5), g) for p, g in rows]
    out["log_rmse"] = (sum((np.log(p) - np.log(g)) ** 2 for p, g in clamped) / n) ** 0.5
    for i in (1, 2, 3):
        out[f"delta_{i}"] = sum(max(p / g, g / p) < 1.25**i for p, g in clamped) / n
    return out


def test_hand_computed_values():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # the 0 is invalid
    pred = np.array([[1.5, 2.0], [2.0, 7.0]])
    result = depth_metrics(pred, gt, align="metric")
    assert result["abs_rel"] == pytest.approx((0.5 / 1 + 0 + 2 / 4) / 3)
    assert result["sq_rel"] == pytest.approx((0.25 / 1 + 0 + 4 / 4) / 3)
    assert result["rmse"] == pytest.approx(((0.25 + 0 + 4) / 3) ** 0.5)
    assert result["log_rmse"] == pytest.approx(((np.log(1.5) ** 2 + 0 + np.log(0.5) ** 2) / 3) ** 0.5)
    assert result["delta_1"] == pytest.approx(1 / 3)  # ratios 1.5, 1, 2
    assert result["delta_2"] == pytest.approx(2 / 3)  # 1.5 < 1.5625 < 2
    assert result["delta_3"] == pytest.approx(2 / 3)  # 1.5 < 1.953 < 2
    assert result["valid_pixels"] == 3
    # median scaling over the valid pixels: median(gt) = 2, median(pred) = median(1.5, 2, 2) = 2
    pred[0, 1] = 3.0
    assert depth_metrics(pred, gt) == pytest.approx(depth_metrics(pred * 2 / 2.0, gt, align="metric"))
    pred[0, 0] = 2.5  # now median(2.5, 3, 2) = 2.5
    assert depth_metrics(pred, gt) == pytest.approx(depth_metrics(pred * 2 / 2.5, gt, align="metric"))


@pytest.mark.parametrize("align", ["median", "scale", "scale_shift_lstsq", "metric"])
def test_metrics_match_brute_force_after_each_alignment(align):
    gt = 1 + 4 * RNG.random((3, 12, 10))
    gt[RNG.random(gt.shape) < 0.2] = 0  # invalid pixels
    pred = gt * (0.5 + 0.1 * RNG.standard_normal(gt.shape)) + 0.2
    pred = np.abs(pred)
    aligned, scales, shifts = align_depth(pred, gt, align=align)
    assert aligned.shape == gt.shape and scales.shape == (3,)
    expected = brute_metrics(aligned.numpy(), gt)
    result = depth_metrics(pred, gt, align=align)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key


def test_alignment_fits_match_references():
    gt = 1 + RNG.random((2, 9, 9))
    pred = 0.4 * gt + 0.3 + 0.02 * RNG.standard_normal(gt.shape)
    valid = gt > 0
    # median: torch's lower median, as CUT3R
    _, s, _ = align_depth(pred, gt, align="median", per="sequence")
    assert float(s[0]) == pytest.approx(
        float(torch.median(torch.from_numpy(gt[valid]))) / float(torch.median(torch.from_numpy(pred[valid])))
    )
    # least squares scale and shift, per frame
    _, s, t = align_depth(pred, gt, align="scale_shift_lstsq")
    for i in range(2):
        solution = np.linalg.lstsq(np.c_[pred[i].ravel(), np.ones(81)], gt[i].ravel(), rcond=None)[0]
        assert (float(s[i]), float(t[i])) == pytest.approx(tuple(solution), rel=1e-9)
    # Weiszfeld L1 scale: 10 IRLS updates from the ratio of means
    p, g = pred.ravel(), gt.ravel()
    scale = g.mean() / p.mean()
    for _ in range(10):
        w = 1 / (np.abs(scale * p - g) + 1e-8)
        scale = (w * p * g).sum() / (w * p * p).sum()
    _, s, _ = align_depth(pred, gt, align="scale", per="sequence")
    assert float(s[0]) == pytest.approx(max(scale, 1e-3), rel=1e-9)


def test_scale_translation_fits_the_3d_similarity_without_rotation():
    """The paper's joint scale + 3D translation: a scaled prediction is aligned exactly, and the fit of a noisy one
    equals least squares of s P + t = G over the unprojected 3D points."""
    from subspace_hub.geometry import depth_to_camera_points

    gt = torch.from_numpy(1 + RNG.random((2, 8, 11)))
    K = torch.tensor([[9.0, 0, 5.5], [0, 9.0, 4.0], [0, 0, 1]], dtype=torch.float64).expand(2, 3, 3)
    pred = 0.5 * gt  # the reference's point map at half size: recovered exactly
    aligned, s, shift = align_depth(pred, gt, align="scale_translation", intrinsics=K)
    assert torch.allclose(aligned, gt) and s.tolist() == pytest.approx([2.0, 2.0])
    assert shift.abs().max() < 1e-12
    noisy = pred * (1 + 0.05 * torch.from_numpy(RNG.standard_normal(pred.shape)))
    _, s, shift = align_depth(noisy, gt, align="scale_translation", intrinsics=K, per="sequence")
    P, G = depth_to_camera_points(noisy, K).reshape(-1, 3), depth_to_camera_points(gt, K).reshape(-1, 3)
    design = torch.zeros(3 * len(P), 4, dtype=torch.float64)  # unknowns: s, tx, ty, tz
    design[:, 0] = P.reshape(-1)
    for axis in range(3):
        design[axis::3, 1 + axis] = 1
    solution = torch.linalg.lstsq(design, G.reshape(-1, 1)).solution[:, 0]
    assert (float(s[0]), float(shift[0])) == pytest.approx((float(solution[0]), float(solution[3])), rel=1e-9)
    result = depth_metrics(noisy, gt, align="scale_translation", intrinsics=K)
    assert 0 < result["abs_rel"] < 0.1
    with pytest.raises(MetricInputError, match="pass the reference intrinsics"):
        depth_metrics(noisy, gt, align="scale_translation")
    with pytest.raises(MetricInputError, match=r"intrinsics must be \[\.\.\., 3, 3\]"):
        depth_metrics(noisy, gt, align="scale_translation", intrinsics=K[0])


def test_exact_l1_scale_shift_reaches_the_linear_programming_optimum():
    gt = 1 + RNG.random(60)
    pred = 0.7 * gt + 0.2 + 0.05 * RNG.standard_normal(60)
    pred[:5] += 2.0  # outliers L1 ignores
    n = len(gt)
    # variables: s, t, e_1..e_n; minimise sum e subject to -e <= s p + t - g <= e
    c = np.r_[0, 0, np.ones(n)]
    A = np.block([[pred[:, None], np.ones((n, 1)), -np.eye(n)], [-pred[:, None], -np.ones((n, 1)), -np.eye(n)]])
    b = np.r_[gt, -gt]
    lp = linprog(c, A_ub=A, b_ub=b, bounds=[(None, None), (None, None)] + [(0, None)] * n)
    aligned, s, t = align_depth(pred[None], gt[None], align="scale_shift_l1", l1_solver="exact")
    ours = np.abs(aligned.numpy() - gt).sum()
    assert ours == pytest.approx(lp.fun, rel=1e-6)
    # the reference procedure (Adam, lr 1e-4) only moves near its median-ratio start: worse than the optimum
    reference_aligned, _, _ = align_depth(pred[None], gt[None], align="scale_shift_l1")
    assert np.abs(reference_aligned.numpy() - gt).sum() >= lp.fun - 1e-9


def test_per_frame_and_per_sequence_and_masks():
    gt = 1 + RNG.random((2, 5, 5))
    pred = gt.copy()
    pred[1] *= 3  # frame 1 has another scale
    assert depth_metrics(pred, gt)["abs_rel"] == pytest.approx(0, abs=1e-12)  # per frame: both exact
    assert depth_metrics(pred, gt, per="sequence")["abs_rel"] > 0.1
    mask = np.ones_like(gt, dtype=bool)
    mask[1] = False
    assert depth_metrics(pred, gt, mask, per="sequence")["abs_rel"] == pytest.approx(0, abs=1e-12)
    far = gt.copy()
    far[0, 0, 0] = 100.0
    assert (
        depth_metrics(pred, far, max_depth=70, align="metric", mask=~np.eye(5, dtype=bool)[None].repeat(2, 0))[
            "valid_pixels"
        ]
        == 2 * 20
    )


def test_single_metric_functions_agree_with_depth_metrics():
    gt = 1 + RNG.random((4, 6))
    pred = gt * 1.1 + 0.05 * RNG.random((4, 6))
    full = depth_metrics(pred, gt, align="scale")
    assert abs_rel(pred, gt, align="scale") == full["abs_rel"]
    assert sq_rel(pred, gt, align="scale") == full["sq_rel"]
    assert rmse(pred, gt, align="scale") == full["rmse"]
    assert log_rmse(pred, gt, align="scale") == full["log_rmse"]
    assert delta(pred, gt, align="scale") == full["delta_1"]
    assert delta(pred, gt, threshold=1.25**2, align="scale") == full["delta_2"]
    aligned, _, _ = align_depth(pred, gt, align="scale")
    ratio = np.maximum(aligned.numpy() / gt, gt / aligned.numpy())
    assert delta(pred, gt, threshold=1.01, align="scale") == pytest.approx((ratio < 1.01).mean())


def test_bad_depth_inputs_raise_clear_errors():
    gt = 1 + RNG.random((3, 4))
    with pytest.raises(MetricInputError, match="No valid pixel"):
        depth_metrics(gt, gt, np.zeros((3, 4), bool))
    with pytest.raises(MetricInputError, match="No valid pixel"):
        depth_metrics(gt, np.zeros((3, 4)))
    with pytest.raises(MetricInputError, match=r"same shape.*\(3, 4\) and \(4, 3\)"):
        depth_metrics(gt, gt.T)
    nan = gt.copy()
    nan[0, 0] = np.nan
    with pytest.raises(MetricInputError, match="predicted depth has 1 NaN"):
        depth_metrics(nan, gt)
    with pytest.raises(MetricInputError, match="reference depth has 1 NaN"):
        depth_metrics(gt, nan)
    assert depth_metrics(gt, gt, ~np.isnan(nan))["valid_pixels"] == 11  # masked NaNs are fine
    with pytest.raises(MetricInputError, match="Unknown alignment 'affine'"):
        depth_metrics(gt, gt, align="affine")
    with pytest.raises(MetricInputError, match="per must be"):
        depth_metrics(gt, gt, per="batch")
    with pytest.raises(MetricInputError, match=r"mask has shape \(4,\), expected \(3, 4\)"):
        depth_metrics(gt, gt, np.ones(4, bool))
    with pytest.raises(MetricInputError, match="median predicted depth is 0"):
        depth_metrics(np.zeros((3, 4)), gt)


# -- boundaries, by hand ----------------------------------------------------------------------------------------


def test_delta_counts_a_ratio_of_exactly_1_25_as_outside():
    gt = np.array([[4.0, 4.0, 4.0, 4.0]])
    pred = np.array([[5.0, 3.2, 4.0, 4.5]])  # ratios 1.25, 1.25, 1, 1.125: delta < 1.25 holds for two of four
    out = depth_metrics(pred, gt, align="metric")
    assert out["delta_1"] == 0.5
    assert delta(pred, gt, align="metric") == 0.5
    assert out["delta_2"] == 1.0


def test_max_depth_excludes_a_depth_of_exactly_max_depth():
    gt = np.array([[2.0, 70.0, 69.5]])
    pred = np.array([[2.0, 10.0, 69.5]])
    out = depth_metrics(pred, gt, align="metric", max_depth=70)
    assert out["valid_pixels"] == 2
    assert out["abs_rel"] == 0.0


def test_per_sequence_scale_and_shift_applies_the_shift():
    gt = np.stack([np.linspace(1.0, 3.0, 12).reshape(3, 4), np.linspace(2.0, 5.0, 12).reshape(3, 4)])
    pred = (gt - 1.0) / 2.0  # gt = 2 pred + 1 over the whole sequence
    aligned, scales, shifts = align_depth(pred, gt, align="scale_shift_lstsq", per="sequence")
    assert float(scales[0]) == pytest.approx(2.0) and float(shifts[0]) == pytest.approx(1.0)
    np.testing.assert_allclose(aligned.numpy(), gt, atol=1e-9)
    assert depth_metrics(pred, gt, align="scale_shift_lstsq", per="sequence")["abs_rel"] < 1e-9


def test_delta_at_each_standard_threshold_reads_its_own_share():
    gt = np.full((1, 5), 2.0)
    pred = gt * np.array([[1.0, 1.3, 1.6, 1.9, 2.5]])
    shares = {1.25: 0.2, 1.25**2: 0.4, 1.25**3: 0.8, 1.7: 0.6}  # 1.25^2 = 1.5625, 1.25^3 = 1.953125
    for threshold, share in shares.items():
        assert delta(pred, gt, threshold=threshold, align="metric") == pytest.approx(share), threshold


def depth_frames(frames: int = 3, height: int = 4, width: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = 1 + 4 * rng.random((frames, height, width))
    return gt * (1.3 + 0.2 * rng.standard_normal(gt.shape)), gt


def test_single_metrics_and_delta_pass_the_mask_and_every_option_on():
    pred, gt = depth_frames()
    mask = np.ones(gt.shape, bool)
    mask[:, 0] = False
    options = {"align": "scale_shift_l1", "per": "sequence", "max_depth": 4.0, "l1_solver": "exact"}
    full = depth_metrics(pred, gt, mask, **options)
    assert full != depth_metrics(pred, gt, **options) and full != depth_metrics(pred, gt, mask)  # both matter
    for function in (abs_rel, sq_rel, rmse, log_rmse):
        assert function(pred, gt, mask, **options) == full[function.__name__]
        assert function.__doc__.startswith(("Mean", "Root", "RMSE")) and "after alignment" in function.__doc__
    for i in (1, 2, 3):
        assert delta(pred, gt, mask, threshold=1.25**i, **options) == full[f"delta_{i}"]
    aligned, _, _ = align_depth(pred, gt, mask, **options)
    valid = mask & (gt < 4.0)
    ratio = np.maximum(aligned.numpy()[valid] / gt[valid], gt[valid] / aligned.numpy()[valid])
    assert delta(pred, gt, mask, threshold=1.1, **options) == pytest.approx(float((ratio < 1.1).mean()), abs=0)


def test_delta_clamps_predictions_at_1e_5_before_the_ratio():
    gt = np.full((1, 2, 2), 0.5)
    pred = np.array([[[0.49, 0.0], [-1.0, 0.5]]])  # zero and negative depths become 1e-5: far outside 1.06
    assert delta(pred, gt, align="metric", threshold=1.06) == 0.5
    assert delta(pred, gt, align="metric", threshold=1e6) == 1.0  # 0.5 / 1e-5 = 5e4 < 1e6


def test_valid_pixels_need_a_positive_reference_below_max_depth_and_in_the_mask():
    pred, gt = depth_frames()
    gt[0, 0, :2] = 0.0  # no depth
    gt[1, 1, :3] = 9.0  # beyond max_depth
    mask = np.ones(gt.shape, bool)
    mask[2, 2, :4] = False
    assert depth_metrics(pred, gt)["valid_pixels"] == gt.size - 2
    assert depth_metrics(pred, gt, max_depth=5.0)["valid_pixels"] == gt.size - 5
    assert depth_metrics(pred, gt, mask)["valid_pixels"] == gt.size - 6
    assert depth_metrics(pred, gt, mask, max_depth=5.0)["valid_pixels"] == gt.size - 9
    _, scales, _ = align_depth(pred * np.where(gt > 5.0, 100.0, 1.0), gt, max_depth=5.0)
    _, plain, _ = align_depth(pred, gt, max_depth=5.0)
    torch.testing.assert_close(scales, plain, rtol=0, atol=0)  # pixels beyond max_depth take no part in the fit


def test_alignment_defaults_and_per_frame_shapes():
    pred, gt = depth_frames(frames=3, height=4, width=5)
    aligned, scales, shifts = align_depth(pred, gt)
    explicit = align_depth(pred, gt, align="median", per="frame", l1_solver="reference")
    torch.testing.assert_close(aligned, explicit[0], rtol=0, atol=0)
    assert scales.shape == shifts.shape == (3,) and torch.equal(shifts, torch.zeros(3, dtype=torch.float64))
    reference = depth_metrics(pred, gt, align="scale_shift_l1")
    assert reference == depth_metrics(pred, gt, align="scale_shift_l1", l1_solver="reference")
    assert reference != depth_metrics(pred, gt, align="scale_shift_l1", l1_solver="exact")
    one = (pred[:1], gt[:1])
    for solver in ("reference", "exact"):  # one frame: per sequence is per frame, with the solver asked for
        by_frame = align_depth(*one, align="scale_shift_l1", l1_solver=solver)
        by_sequence = align_depth(*one, align="scale_shift_l1", l1_solver=solver, per="sequence")
        torch.testing.assert_close(by_sequence[0], by_frame[0], rtol=0, atol=1e-12)


def test_depth_refusals_name_the_input():
    pred, gt = depth_frames(frames=2)

    def says(message, *args, **options):
        with pytest.raises(MetricInputError) as caught:
            depth_metrics(*args, **options)
        assert str(caught.value) == message, str(caught.value)

    with pytest.raises(MetricInputError, match=r"^reference depth must be an array or tensor of numbers"):
        depth_metrics(pred, "abc")
    with pytest.raises(MetricInputError, match=r"^predicted depth must be an array or tensor of numbers"):
        depth_metrics("abc", gt)
    says(
        "predicted and reference depth (resize the prediction to the GT size first) must have the same shape, got "
        "(2, 4, 4) and (2, 4, 5).",
        pred[..., :4],
        gt,
    )
    says("depth maps must be [..., H, W], got shape (5,).", pred[0, 0], gt[0, 0])
    nan = gt.copy()
    nan[0, 0, 0] = np.nan
    says("reference depth has 1 NaN/infinite value(s) at valid pixels; set them to 0 or mask them.", pred, nan)
    says(
        "No valid pixel: every pixel is masked out, non-positive or beyond max_depth in the reference.",
        pred,
        gt,
        np.zeros(gt.shape, bool),
    )
    with pytest.raises(MetricInputError, match=r"^intrinsics must be an array or tensor of numbers"):
        depth_metrics(pred, gt, align="scale_translation", intrinsics="abc")
    says(
        "intrinsics must be [..., 3, 3] with one matrix per depth map (2,), got (3, 3, 3).",
        pred,
        gt,
        align="scale_translation",
        intrinsics=np.tile(np.eye(3), (3, 1, 1)),
    )


def test_each_alignments_refusals_and_limits():
    pred, gt = depth_frames(frames=1)

    def says(message, prediction, **options):
        with pytest.raises(MetricInputError) as caught:
            align_depth(prediction, gt, **options)
        assert str(caught.value) == message

    says(
        "scale_translation alignment unprojects depth into 3D points: pass the reference intrinsics ([..., 3, 3], "
        "pixels) as intrinsics=.",
        pred,
        align="scale_translation",
    )
    flat = np.zeros_like(pred)  # every predicted point is the camera centre
    intrinsics = np.array([[[4.0, 0, 2.5], [0, 4.0, 2.0], [0, 0, 1]]])
    says(
        "scale_translation alignment: the predicted points are all the same point.",
        flat,
        align="scale_translation",
        intrinsics=intrinsics,
    )
    says("median alignment: the median predicted depth is 0.", flat)
    says("scale alignment: the mean predicted depth is 0.", flat, align="scale")
    says("l1_solver must be 'reference' or 'exact', got 'lp'.", pred, align="scale_shift_l1", l1_solver="lp")
    says(f"Unknown alignment 'affine'; use one of {', '.join(ALIGN_MODES)}.", pred, align="affine")
    _, scales, shifts = align_depth(pred * 1e4, gt, align="scale")  # the L1 scale would be ~1e-4
    assert float(scales[0]) == 1e-3 and float(shifts[0]) == 0.0  # clamped at 1e-3; scale alone never shifts


def test_delta_fits_on_the_masked_pixels_only():
    pred, gt = depth_frames()
    mask = np.ones(gt.shape, bool)
    mask[:, 0] = False
    wild = pred.copy()
    wild[:, 0] *= 100.0  # outside the mask: must not move the fit
    for threshold in (1.1, 1.25):
        assert delta(wild, gt, mask, threshold=threshold, align="scale_shift_lstsq") == delta(
            pred, gt, mask, threshold=threshold, align="scale_shift_lstsq"
        )


def lp_l1_optimum(pred: np.ndarray, gt: np.ndarray) -> float:
    """min over (s, t) of sum |s p + t - g|, by linear programming."""
    n = len(gt)
    c = np.r_[0, 0, np.ones(n)]
    A = np.block([[pred[:, None], np.ones((n, 1)), -np.eye(n)], [-pred[:, None], -np.ones((n, 1)), -np.eye(n)]])
    lp = linprog(c, A_ub=A, b_ub=np.r_[gt, -gt], bounds=[(None, None), (None, None)] + [(0, None)] * n)
    return float(lp.fun)


@pytest.mark.parametrize(("true_scale", "offset"), [(0.3, 0.5), (0.7, -0.5), (1.6, 0.8), (4.0, -0.8)])
def test_the_exact_l1_fit_is_optimal_from_either_side_of_its_start(true_scale, offset):
    """The search starts at the median ratio and must walk down or up to the optimum: a positive offset puts the
    optimal scale below that start, a negative one above it."""
    rng = np.random.default_rng(int(true_scale * 10))
    gt = 1 + rng.random(40)
    pred = (gt - offset) / true_scale + 0.01 * rng.standard_normal(40)
    pred[:4] += 0.2  # outliers
    aligned, scales, _ = align_depth(pred[None], gt[None], align="scale_shift_l1", l1_solver="exact")
    start = float(np.median(gt) / np.median(pred))  # numpy's median of an even count: between the middle two
    assert (float(scales[0]) > start) == (offset < 0)
    assert np.abs(aligned.numpy() - gt).sum() == pytest.approx(lp_l1_optimum(pred, gt), rel=1e-9, abs=1e-12)


def reference_l1(pred: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
    """The reference's procedure as methods.md E.2 states it, written out again: Adam (lr 1e-4) on sum |s p + t - g|
    from s = median(g) / median(p), t = 0, at most 1000 steps, stopping once the loss changes by less than 1e-6."""
    s = torch.tensor([float(torch.median(gt) / torch.median(pred))], dtype=torch.float64, requires_grad=True)
    t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([s, t], lr=1e-4)
    previous = None
    for _ in range(1000):
        optimizer.zero_grad()
        loss = (s * pred + t - gt).abs().sum()
        loss.backward()
        optimizer.step()
        if previous is not None and abs(previous - loss.item()) < 1e-6:
            break
        previous = loss.item()
    return s.item(), t.item()


def test_the_reference_l1_solver_is_the_references_procedure():
    rng = np.random.default_rng(0)
    gt = 1 + rng.random(5)  # this one stops early, at step 139
    pred = gt * (1 + 0.01 * rng.standard_normal(5))
    noisy_gt = 1 + 4 * rng.random(400)  # this one takes all 1000 steps
    noisy_pred = 0.5 * noisy_gt + 1.0 + 0.3 * rng.standard_normal(400)
    for p, g in ((pred, gt), (noisy_pred.ravel(), noisy_gt.ravel())):
        _, scales, shifts = align_depth(p[None], g[None], align="scale_shift_l1", per="sequence")
        assert (scales.item(), shifts.item()) == reference_l1(torch.from_numpy(p), torch.from_numpy(g))
