"""Random subspace bundles: shaped for a model (smoke tests, documentation, parameter counts), or shaped exactly like
a mined bundle (the control that asks whether the mining matters or only the size of the trainable core)."""

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
            bundle.attributes[attribute][name] = _random_subspace(out_dim, in_dim, min(d, out_dim, in_dim), generator)
    return bundle


def random_like(bundle: SubspaceBundle, *, seed: int = 0) -> SubspaceBundle:
    """Random orthonormal bases of exactly ``bundle``'s sizes in the same modules (per attribute and module the
    same ``[out, d]`` and ``[in, d]``), uniformly distributed (QR of Gaussian matrices): fine-tuning with it
    trains cores of the same shapes as the mined bundle, in directions that no LoRA chose."""
    generator = torch.Generator().manual_seed(seed)
    info = {**bundle.info, "synthetic": True, "random_like": True, "seed": seed}
    out = SubspaceBundle(info=info)
    for attribute, module, sub in bundle.items():
        random = _random_subspace(sub.U.shape[0], sub.V.shape[0], sub.d, generator)
        out.attributes.setdefault(attribute, {})[module] = random
    return out


def _random_subspace(out_dim: int, in_dim: int, k: int, generator: torch.Generator) -> ModuleSubspace:
    U = torch.linalg.qr(torch.randn(out_dim, k, generator=generator))[0]
    V = torch.linalg.qr(torch.randn(in_dim, k, generator=generator))[0]
    empty = torch.zeros(0)
    return ModuleSubspace(U=U, V=V, S=torch.ones(k), spectrum=torch.ones(k), weights=empty, residuals=empty)
