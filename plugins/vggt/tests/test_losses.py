"""VGGT's training losses: hand-computed values, invariances, and that a few steps on them learn."""

from __future__ import annotations

import math

import pytest
import torch

import subspace_hub
from subspace_hub_vggt.geometry import extrinsics_intrinsics_to_pose_encoding
from subspace_hub_vggt.losses import VGGTLossConfig, normalize_ground_truth, robust_mean, vggt_loss
from subspace_hub_vggt.plugin import example_batch


def scene(batch=1, views=2, height=12, width=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    extrinsics = torch.zeros(batch, views, 3, 4)
    extrinsics[..., :3, :3] = torch.eye(3)
    extrinsics[..., 0, 3] = -0.2 * torch.arange(views, dtype=torch.float32)
    intrinsics = (
        torch.tensor([[20.0, 0, width / 2], [0, 20.0, height / 2], [0, 0, 1]]).expand(batch, views, 3, 3).clone()
    )
    depth = 2.0 + torch.rand(batch, views, height, width, generator=gen)
    return {
        "images": torch.zeros(batch, views, 3, height, width),
        "depth": depth,
        "mask": torch.ones(batch, views, height, width, dtype=torch.bool),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
    }


def perfect_outputs(batch, conf=2.0, config=None):
    """Outputs that equal the normalised ground truth."""
    from subspace_hub_vggt.geometry import depth_to_world_points

    world = depth_to_world_points(batch["depth"], batch["extrinsics"], batch["intrinsics"])
    extrinsics, depth, _, _ = normalize_ground_truth(batch["extrinsics"], batch["depth"], batch["mask"], world)
    encoding = extrinsics_intrinsics_to_pose_encoding(extrinsics, batch["intrinsics"], batch["images"].shape[-2:])
    return {
        "pose_enc_list": [encoding.clone() for _ in range(4)],
        "depth": depth[..., None].clone(),
        "depth_conf": torch.full_like(depth, conf),
    }


def test_a_perfect_prediction_leaves_only_the_confidence_prior():
    batch = scene()
    losses = vggt_loss(perfect_outputs(batch, conf=2.0), batch)
    assert losses["loss_camera"] == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_reg_depth"] == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_grad_depth"] == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_conf_depth"] == pytest.approx(-0.2 * math.log(2.0), rel=1e-5)
    assert losses["loss"] == pytest.approx(-0.2 * math.log(2.0), rel=1e-5)


def test_hand_computed_depth_and_camera_errors():
    batch = scene(height=12, width=16)  # > 100 valid pixels in the first view, or the scene gets no camera loss
    outputs = perfect_outputs(batch, conf=1.0)
    outputs["depth"] = outputs["depth"] + 0.5  # a uniform offset: no gradient term
    outputs["pose_enc_list"] = [p + torch.tensor([0.1, 0, 0, 0, 0, 0, 0, 0.2, 0]) for p in outputs["pose_enc_list"]]
    config = VGGTLossConfig(depth_valid_range=-1)
    losses = vggt_loss(outputs, batch, config)
    assert losses["loss_reg_depth"] == pytest.approx(0.5, rel=1e-5)
    assert losses["loss_conf_depth"] == pytest.approx(0.5, rel=1e-5)  # conf 1: log term is 0
    assert losses["loss_grad_depth"] == pytest.approx(0.0, abs=1e-6)
    # translation error 0.1 on 1 of 3 components, fov error 0.2 on 1 of 2, every step -> step weights average
    step_weights = sum(0.6**k for k in range(4)) / 4
    assert losses["loss_T"] == pytest.approx(0.1 / 3 * step_weights, rel=1e-5)
    assert losses["loss_FL"] == pytest.approx(0.2 / 2 * step_weights, rel=1e-5)
    expected_camera = losses["loss_T"] + 0.5 * losses["loss_FL"]
    assert losses["loss_camera"] == pytest.approx(float(expected_camera), rel=1e-5)
    assert losses["loss"] == pytest.approx(5 * float(expected_camera) + 1.0, rel=1e-5)


def test_the_loss_is_invariant_to_world_frame_and_scale():
    batch = scene(views=3)
    outputs = perfect_outputs(batch, conf=1.5)
    outputs["depth"] = outputs["depth"] * 1.1
    reference = vggt_loss(outputs, batch)
    moved = dict(batch)
    angle = 0.4
    rotation = torch.tensor(
        [[math.cos(angle), 0, math.sin(angle)], [0, 1.0, 0], [-math.sin(angle), 0, math.cos(angle)]]
    )
    offset = torch.tensor([1.0, -2.0, 0.5])
    # world' = 3 * (R w + o): cameras see the same images; extrinsics change, depth scales by 3
    world_from_new = torch.eye(4)
    world_from_new[:3, :3] = rotation.T
    world_from_new[:3, 3] = -rotation.T @ offset
    e = torch.cat([batch["extrinsics"], torch.tensor([0, 0, 0, 1.0]).expand(1, 3, 1, 4)], dim=-2) @ world_from_new
    e[..., :3, 3] *= 3
    moved["extrinsics"], moved["depth"] = e[..., :3, :], batch["depth"] * 3
    for key, value in vggt_loss(outputs, moved).items():
        torch.testing.assert_close(value, reference[key], atol=1e-4, rtol=1e-4, msg=key)


def test_scenes_with_few_valid_pixels_get_no_camera_loss():
    batch = scene(height=8, width=8)
    outputs = perfect_outputs(batch)
    outputs["pose_enc_list"] = [p + 1.0 for p in outputs["pose_enc_list"]]
    assert vggt_loss(outputs, batch)["loss_camera"] == 0.0


def test_invalid_pixels_and_empty_scenes():
    batch = scene()
    batch["mask"] = torch.zeros_like(batch["mask"])
    losses = vggt_loss(perfect_outputs(scene()), batch)
    assert losses["loss"] == 0.0
    nan_batch = scene()
    nan_batch["depth"][0, 0, 0, 0] = float("nan")
    outputs = perfect_outputs(scene())
    assert torch.isfinite(vggt_loss(outputs, nan_batch)["loss"])


def test_robust_mean_drops_the_top_quantile_of_the_valid_values_only():
    values = torch.arange(2000, dtype=torch.float32) / 20  # 0, 0.05, ..., 99.95
    valid = torch.ones(2000, dtype=torch.bool)
    # nearest rank round(0.98 * 1999) = 1959: values[:1959] stay (below 97.95), their mean is 1958 / 2 / 20
    assert float(robust_mean(values, valid, 0.98)) == pytest.approx(48.95)
    # invalid entries, however large or non-finite, count for nothing
    padded = torch.cat([values, torch.tensor([1e9, float("nan"), -5.0])])
    assert float(robust_mean(padded, torch.cat([valid, torch.zeros(3, dtype=torch.bool)]), 0.98)) == pytest.approx(
        48.95
    )
    # values are clamped at 100 first: 0..99 and 1900 x 100, the threshold 100 would leave 100 values (not more than
    # 1000), so the plain mean of the clamped values is kept
    assert float(robust_mean(values * 20, valid, 0.98)) == pytest.approx((4950 + 1900 * 100) / 2000)
    # 1000 valid values or fewer: no filter; no valid value: 0; quantile <= 0: no filter
    assert float(robust_mean(values[:1000], valid[:1000], 0.98)) == pytest.approx(999 / 2 / 20)
    assert float(robust_mean(values, torch.zeros_like(valid), 0.98)) == 0.0
    assert float(robust_mean(values, valid, 0.0)) == pytest.approx(1999 / 2 / 20)


def test_the_loss_and_its_gradient_never_wait_for_the_device():
    """No boolean indexing, .item() or branch on a tensor value: each would stall a GPU step (a host sync)."""
    from torch.profiler import ProfilerActivity, profile

    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    batch = example_batch(model, batch_size=2, views=2)
    batch["mask"][0, 0, :, : batch["mask"].shape[-1] // 2] = False  # some invalid pixels
    outputs = model(batch["images"])
    with profile(activities=[ProfilerActivity.CPU]) as recorded:
        vggt_loss(outputs, batch)["loss"].backward()
    syncing = {"aten::nonzero", "aten::item", "aten::_local_scalar_dense", "aten::is_nonzero", "aten::masked_select"}
    assert {event.key for event in recorded.key_averages()} & syncing == set()


def test_point_loss_path():
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    batch = example_batch(model)
    losses = vggt_loss(model(batch["images"]), batch, VGGTLossConfig(point_weight=1.0))
    assert {"loss_conf_point", "loss_reg_point", "loss_grad_point"} <= set(losses)
    losses["loss"].backward()
    assert model.point_head.scratch.output_conv1.weight.grad is not None


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    model = subspace_hub.attach_adapter(model, "full")
    batch = example_batch(model, batch_size=2, views=2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(12):
        loss = vggt_loss(model(batch["images"]), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
