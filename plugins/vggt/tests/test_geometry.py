"""Camera geometry: quaternions, pose encodings, unprojection; checked against closed forms and round trips."""

from __future__ import annotations

import math

import torch

from subspace_hub_vggt.geometry import (
    depth_to_world_points,
    extrinsics_intrinsics_to_pose_encoding,
    invert_extrinsics,
    matrix_to_quaternion,
    pose_encoding_to_extrinsics_intrinsics,
    project_points,
    quaternion_to_matrix,
)


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    return q * torch.det(q)[:, None, None]  # proper rotations


def test_quaternion_of_a_known_rotation():
    angle = 0.7
    rz = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]]
    )
    q = matrix_to_quaternion(rz)
    torch.testing.assert_close(q, torch.tensor([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)]))
    torch.testing.assert_close(quaternion_to_matrix(q), rz)


def test_round_trips_including_half_turns():
    rotations = torch.cat(
        [
            random_rotations(500),
            torch.diag_embed(torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)),
        ]
    )
    q = matrix_to_quaternion(rotations)
    assert torch.all(q[..., 3] >= 0)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(q), dtype=torch.float64))
    torch.testing.assert_close(quaternion_to_matrix(q), rotations, atol=1e-10, rtol=0)
    torch.testing.assert_close(quaternion_to_matrix(-q), rotations, atol=1e-10, rtol=0)  # sign does not matter


def test_pose_encoding_round_trip():
    extrinsics = torch.cat([random_rotations(6, seed=1).float(), torch.randn(6, 3, 1)], dim=-1).reshape(2, 3, 3, 4)
    height, width = 280, 518
    focal = torch.tensor([300.0, 450.0, 600.0])
    intrinsics = torch.zeros(2, 3, 3, 3)
    intrinsics[..., 0, 0], intrinsics[..., 1, 1] = focal, focal * 1.1
    intrinsics[..., 0, 2], intrinsics[..., 1, 2], intrinsics[..., 2, 2] = width / 2, height / 2, 1.0
    encoding = extrinsics_intrinsics_to_pose_encoding(extrinsics, intrinsics, (height, width))
    assert encoding.shape == (2, 3, 9)
    torch.testing.assert_close(encoding[..., 7], 2 * torch.atan(height / 2 / (focal * 1.1)).expand(2, 3))
    back_e, back_i = pose_encoding_to_extrinsics_intrinsics(encoding, (height, width))
    torch.testing.assert_close(back_e, extrinsics, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(back_i, intrinsics, atol=1e-3, rtol=1e-5)


def test_degenerate_field_of_view_gives_finite_cameras():
    encoding = torch.zeros(1, 1, 9)
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(encoding, (28, 42))
    assert torch.isfinite(extrinsics).all() and torch.isfinite(intrinsics).all()
    torch.testing.assert_close(extrinsics[0, 0, :, :3], torch.eye(3))


def test_unprojected_depth_projects_back_to_its_pixels():
    height, width = 6, 8
    extrinsics = torch.cat([random_rotations(2, seed=2).float(), torch.randn(2, 3, 1)], dim=-1)
    intrinsics = torch.tensor([[10.0, 0, 4.0], [0, 11.0, 3.0], [0, 0, 1]]).expand(2, 3, 3)
    depth = 1.0 + torch.rand(2, height, width)
    points = depth_to_world_points(depth, extrinsics, intrinsics)
    assert points.shape == (2, height, width, 3)
    pixels, z = project_points(points.reshape(2, -1, 3), extrinsics, intrinsics)
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    torch.testing.assert_close(pixels, torch.stack([u, v], -1).reshape(1, -1, 2).expand(2, -1, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, depth.reshape(2, -1), atol=1e-5, rtol=1e-5)
    # accepts [..., H, W, 1] depth as the model outputs it
    torch.testing.assert_close(depth_to_world_points(depth[..., None], extrinsics, intrinsics), points)


def test_invert_extrinsics():
    extrinsics = torch.cat([random_rotations(3, seed=3).float(), torch.randn(3, 3, 1)], dim=-1)
    inverse = invert_extrinsics(extrinsics)
    homogeneous = lambda m: torch.cat([m, torch.tensor([0, 0, 0, 1.0]).expand(len(m), 1, 4)], dim=1)  # noqa: E731
    torch.testing.assert_close(
        homogeneous(inverse) @ homogeneous(extrinsics), torch.eye(4).expand(3, 4, 4), atol=1e-5, rtol=0
    )
