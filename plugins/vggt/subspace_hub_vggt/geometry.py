"""Camera geometry in VGGT's conventions.

- Extrinsics are camera-from-world ``[R | t]`` ([..., 3, 4]), OpenCV axes (x right, y down, z forward).
- Intrinsics are pixel matrices ([..., 3, 3]); pixel (u, v) has its centre at integer coordinates, so the
  principal point of a centred camera is (W/2, H/2).
- The absT_quaR_FoV pose encoding ([..., 9]) is ``[t (3), quaternion XYZW with w >= 0 (4), fov_h, fov_w]``,
  fields of view in radians.

Everything is batched over leading dimensions and differentiable. Unprojection and projection live in the core
(:mod:`subspace_hub.geometry`, shared with datasets and metrics) and are re-exported here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from subspace_hub.geometry import depth_to_camera_points, depth_to_world_points, invert_extrinsics, project_points

__all__ = [
    "depth_to_camera_points",
    "depth_to_world_points",
    "extrinsics_intrinsics_to_pose_encoding",
    "invert_extrinsics",
    "matrix_to_quaternion",
    "normalize_quaternion",
    "pose_encoding_to_extrinsics_intrinsics",
    "project_points",
    "quaternion_to_matrix",
]


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """XYZW quaternions [..., 4] (any norm) -> rotation matrices [..., 3, 3]."""
    x, y, z, w = quaternions.unbind(-1)
    s = 2.0 / (quaternions * quaternions).sum(-1).clamp(min=1e-12)  # a zero quaternion maps to the identity
    matrix = torch.stack(
        [
            1 - s * (y * y + z * z),
            s * (x * y - z * w),
            s * (x * z + y * w),
            s * (x * y + z * w),
            1 - s * (x * x + z * z),
            s * (y * z - x * w),
            s * (x * z - y * w),
            s * (y * z + x * w),
            1 - s * (x * x + y * y),
        ],
        dim=-1,
    )
    return matrix.reshape(quaternions.shape[:-1] + (3, 3))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> XYZW unit quaternions [..., 4] with a non-negative real part.

    Of the four algebraically equivalent formulas, the one dividing by the largest of |w|, |x|, |y|, |z| is
    used, which keeps the conversion accurate for every rotation (including 180 degrees).
    """
    m = matrix.reshape(matrix.shape[:-2] + (9,))
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    squares = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )  # 4 w^2, 4 x^2, 4 y^2, 4 z^2
    positive = squares > 0
    # sqrt of the positive part with a zero (not infinite) gradient where the argument is 0
    roots = torch.where(
        positive, torch.sqrt(torch.where(positive, squares, torch.ones_like(squares))), torch.zeros_like(squares)
    )
    # Row k: (w, x, y, z) scaled by the k-th root, from the formula that divides by that root.
    candidates = torch.stack(
        [
            torch.stack([roots[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, roots[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, roots[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, roots[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )
    candidates = candidates / (2.0 * roots[..., None].clamp(min=0.1))
    best = roots.argmax(dim=-1, keepdim=True)[..., None].expand(*roots.shape[:-1], 1, 4)
    wxyz = candidates.gather(-2, best).squeeze(-2)
    xyzw = torch.cat([wxyz[..., 1:], wxyz[..., :1]], dim=-1)
    return torch.where(xyzw[..., 3:] < 0, -xyzw, xyzw)


def extrinsics_intrinsics_to_pose_encoding(
    extrinsics: torch.Tensor, intrinsics: torch.Tensor, image_hw: tuple[int, int]
) -> torch.Tensor:
    """Cameras -> absT_quaR_FoV encodings [..., 9] (float32); ``image_hw`` is (height, width) in pixels."""
    height, width = image_hw
    rotation, translation = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    fov_h = 2 * torch.atan((height / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2) / intrinsics[..., 0, 0])
    return torch.cat([translation, matrix_to_quaternion(rotation), fov_h[..., None], fov_w[..., None]], dim=-1).float()


def pose_encoding_to_extrinsics_intrinsics(
    encoding: torch.Tensor, image_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """absT_quaR_FoV encodings [..., 9] -> (extrinsics [..., 3, 4], intrinsics [..., 3, 3]); the principal point
    is the image centre (W/2, H/2). Fields of view are clamped to (1e-6, pi - 1e-6) rad so that a degenerate
    prediction (e.g. an untrained head's 0) gives finite focal lengths."""
    height, width = image_hw
    rotation = quaternion_to_matrix(encoding[..., 3:7])
    extrinsics = torch.cat([rotation, encoding[..., :3, None]], dim=-1)
    fov = encoding[..., 7:9].clamp(1e-6, math.pi - 1e-6)
    fy = (height / 2.0) / torch.tan(fov[..., 0] / 2.0)
    fx = (width / 2.0) / torch.tan(fov[..., 1] / 2.0)
    zeros, ones = torch.zeros_like(fx), torch.ones_like(fx)
    intrinsics = torch.stack(
        [fx, zeros, zeros + width / 2, zeros, fy, zeros + height / 2, zeros, zeros, ones], dim=-1
    ).reshape(encoding.shape[:-1] + (3, 3))
    return extrinsics, intrinsics


def normalize_quaternion(quaternions: torch.Tensor) -> torch.Tensor:
    """Unit XYZW quaternions with non-negative real part."""
    q = F.normalize(quaternions, dim=-1)
    return torch.where(q[..., 3:] < 0, -q, q)
