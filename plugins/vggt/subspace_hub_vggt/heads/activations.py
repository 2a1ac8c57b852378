"""Output activations of the VGGT heads (pose encodings, dense maps and their confidences)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def inverse_log(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) * (exp(|x|) - 1)``: the inverse of a symmetric log compression."""
    return torch.sign(x) * torch.expm1(x.abs())


def activate(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Elementwise activation for pose components: linear, inv_log, exp or relu."""
    if kind == "linear":
        return x
    if kind == "inv_log":
        return inverse_log(x)
    if kind == "exp":
        return x.exp()
    if kind == "relu":
        return F.relu(x)
    raise ValueError(f"unknown activation {kind!r}")


def activate_pose(encoding: torch.Tensor, trans_act: str, quat_act: str, fl_act: str) -> torch.Tensor:
    """Activate a [..., 9] pose encoding: translation [:3], quaternion [3:7], field of view [7:]."""
    return torch.cat(
        [
            activate(encoding[..., :3], trans_act),
            activate(encoding[..., 3:7], quat_act),
            activate(encoding[..., 7:], fl_act),
        ],
        dim=-1,
    )


def activate_dense(out: torch.Tensor, activation: str, conf_activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a dense head output [N, C, H, W] into values [N, H, W, C-1] and confidence [N, H, W]."""
    out = out.permute(0, 2, 3, 1)
    values, conf = out[..., :-1], out[..., -1]
    if activation == "norm_exp":
        norm = values.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        values = values / norm * torch.expm1(norm)
    elif activation == "norm":
        values = values / values.norm(dim=-1, keepdim=True)
    elif activation == "xy_inv_log":
        xy, z = values.split([2, 1], dim=-1)
        z = inverse_log(z)
        values = torch.cat([xy * z, z], dim=-1)
    elif activation == "sigmoid":
        values = torch.sigmoid(values)
    else:
        values = activate(values, activation)
    if conf_activation == "expp1":
        conf = 1 + conf.exp()
    elif conf_activation == "expp0":
        conf = conf.exp()
    elif conf_activation == "sigmoid":
        conf = torch.sigmoid(conf)
    else:
        raise ValueError(f"unknown confidence activation {conf_activation!r}")
    return values, conf
