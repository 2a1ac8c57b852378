"""Camera geometry in the interchange conventions (see DESIGN.md): what datasets, backbones and metrics share.

- Extrinsics are camera-from-world ``[R | t]`` ([..., 3, 4]), OpenCV axes (x right, y down, z forward).
- Intrinsics are pixel matrices ([..., 3, 3]); pixel (u, v) has its centre at integer coordinates, so the
  principal point of a centred camera is (W/2, H/2).
- Depth is z-depth in scene units.

Everything is batched over leading dimensions and differentiable.
"""

from __future__ import annotations

import torch


def invert_extrinsics(extrinsics: torch.Tensor) -> torch.Tensor:
    """Closed-form SE(3) inverse of [..., 3, 4] (or [..., 4, 4]) matrices -> [..., 3, 4]: camera-to-world from
    camera-from-world."""
    rotation_t = extrinsics[..., :3, :3].transpose(-1, -2)
    return torch.cat([rotation_t, -rotation_t @ extrinsics[..., :3, 3:]], dim=-1)


def depth_to_camera_points(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Z-depth [..., H, W] and intrinsics [..., 3, 3] (zero skew) -> camera-frame points [..., H, W, 3]."""
    height, width = depth.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(height, device=depth.device, dtype=depth.dtype),
        torch.arange(width, device=depth.device, dtype=depth.dtype),
        indexing="ij",
    )
    fx, fy = intrinsics[..., 0, 0, None, None], intrinsics[..., 1, 1, None, None]
    cx, cy = intrinsics[..., 0, 2, None, None], intrinsics[..., 1, 2, None, None]
    return torch.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], dim=-1)


def depth_to_world_points(depth: torch.Tensor, extrinsics: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Unproject z-depth [..., H, W] (or [..., H, W, 1]) with camera-from-world extrinsics [..., 3, 4] and
    intrinsics [..., 3, 3] -> world points [..., H, W, 3]. This is how the paper gets points from the depth
    head and the predicted cameras."""
    if depth.shape[-1] == 1 and depth.ndim == extrinsics.ndim + 1:
        depth = depth[..., 0]
    camera = depth_to_camera_points(depth, intrinsics)
    cam_to_world = invert_extrinsics(extrinsics)
    rotation, translation = cam_to_world[..., None, None, :3, :3], cam_to_world[..., None, None, :3, 3]
    return (rotation @ camera[..., None])[..., 0] + translation


def project_points(
    points: torch.Tensor, extrinsics: torch.Tensor, intrinsics: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [..., N, 3] -> (pixels [..., N, 2], z-depth [..., N]) in cameras [..., 3, 4] / [..., 3, 3]."""
    camera = points @ extrinsics[..., :3, :3].transpose(-1, -2) + extrinsics[..., None, :3, 3]
    z = camera[..., 2]
    pixels = camera @ intrinsics.transpose(-1, -2)
    return pixels[..., :2] / pixels[..., 2:3], z
