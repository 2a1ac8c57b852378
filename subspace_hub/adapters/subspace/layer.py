"""The layer of fine-tuning in a subspace: a frozen Linear or Conv2d plus ``s * U @ core @ V^T``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from subspace_hub.errors import ConfigError, ShapeMismatchError


class SubspaceLayer(nn.Module):
    """A Linear or Conv2d plus ``s * U @ core @ V^T``; ``base_layer`` and the bases are frozen.

    Args:
        base: The layer to adapt (``nn.Linear``, or ``nn.Conv2d`` with groups 1 and zero padding).
        U: [out, k_out] orthonormal output-side basis.
        V: [in, k_in] orthonormal input-side basis; ``in`` is ``in_channels * kh * kw`` for a convolution.
        scale: ``s``.
        name: The module's name in its model, for error messages.

    The core ``M`` [k_out, k_in] is the only parameter; it starts at zero, so the layer starts as ``base``.
    """

    def __init__(self, base: nn.Module, U: torch.Tensor, V: torch.Tensor, scale: float, name: str = "") -> None:
        super().__init__()
        weight = base.weight
        if isinstance(base, nn.Conv2d):
            if base.groups != 1 or base.padding_mode != "zeros":
                raise ConfigError(f"{name}: subspace adapters support Conv2d with groups=1 and zero padding only.")
            in_dim = base.in_channels * base.kernel_size[0] * base.kernel_size[1]
        elif isinstance(base, nn.Linear):
            in_dim = base.in_features
        else:
            raise ConfigError(f"{name}: subspace adapters support nn.Linear and nn.Conv2d, not {type(base).__name__}.")
        out_dim = weight.shape[0]
        if U.shape[0] != out_dim or V.shape[0] != in_dim:
            raise ShapeMismatchError(
                f"Module {name}: the bundle's bases fit a {U.shape[0]}x{V.shape[0]} weight, the model's layer is "
                f"{out_dim}x{in_dim}. The bundle was extracted for another backbone or config."
            )
        self.base_layer = base
        self.register_buffer("U", U.to(device=weight.device, dtype=weight.dtype), persistent=False)
        self.register_buffer("V", V.to(device=weight.device, dtype=weight.dtype), persistent=False)
        self.core = nn.Parameter(torch.zeros(U.shape[1], V.shape[1], device=weight.device, dtype=weight.dtype))
        self.scale = float(scale)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """``s * U @ core @ V^T`` in the shape of the base weight."""
        return (self.scale * self.U @ self.core @ self.V.T).reshape(self.base_layer.weight.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.merged:
            return result
        down = self.core @ self.V.T  # [k_out, in]: project onto V and apply the core in one matrix
        base = self.base_layer
        if isinstance(base, nn.Conv2d):
            hidden = F.conv2d(
                x, down.reshape(-1, *base.weight.shape[1:]), None, base.stride, base.padding, base.dilation
            )
            return result + self.scale * F.conv2d(hidden, self.U[:, :, None, None])
        return result + self.scale * F.linear(F.linear(x, down), self.U)

    def merge(self) -> nn.Module:
        """Add the update to the base weight and return the base layer (no overhead left)."""
        with torch.no_grad():
            self.base_layer.weight += self.delta_weight().to(self.base_layer.weight.dtype)
        self.merged = True
        return self.base_layer


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule ``name`` (dotted path) of ``model`` by ``module``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
