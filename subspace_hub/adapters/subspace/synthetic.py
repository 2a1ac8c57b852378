"""Random subspace bundles shaped for a model: for smoke tests, documentation and parameter counts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from subspace_hub.adapters.targets import resolve_targets
from subspace_hub.subspaces.bundle import ModuleSubspace, SubspaceBundle


def synthetic_bundle(
    model: nn.Module,
    attributes: Sequence[str] = ("texture", "geometry"),
    d: int = 2,
    *,
    targets: str | Sequence[str] | None = None,
    seed: int = 0,
) -> SubspaceBundle:
    """A bundle of random orthonormal d-dimensional bases per attribute for the model's (default) target
    modules: for smoke tests, documentation and parameter counts, not for fine-tuning (``info["synthetic"]``)."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    bundle = SubspaceBundle(info={"synthetic": True})
    for attribute in attributes:
        bundle.attributes[attribute] = {}
        for name in resolve_targets(model, targets):
            weight = modules[name].weight
            out_dim, in_dim = weight.shape[0], weight[0].numel()
            k = min(d, out_dim, in_dim)
            U = torch.linalg.qr(torch.randn(out_dim, k, generator=generator))[0]
            V = torch.linalg.qr(torch.randn(in_dim, k, generator=generator))[0]
            empty = torch.zeros(0)
            bundle.attributes[attribute][name] = ModuleSubspace(
                U=U, V=V, S=torch.ones(k), spectrum=torch.ones(k), weights=empty, residuals=empty
            )
    return bundle
