"""Attribute-subspace mining: shared subspaces of LoRA ensembles, their dimensions, comparison and combination.

>>> from subspace_hub.subspaces import shared_subspace
>>> result = shared_subspace([(B1, A1), (B2, A2), (B3, A3)], d=16)  # doctest: +SKIP
"""

import importlib
from typing import Any

# Names resolve on first use: importing subspace_hub.subspaces (its settings, say) does not import torch.
_EXPORTS = {
    "CombinedBasis": "subspace_hub.subspaces.combine",
    "ExtractionSettings": "subspace_hub.subspaces.settings",
    "FactorCores": "subspace_hub.subspaces.extraction",
    "LoraCheckpoint": "subspace_hub.subspaces.lora_io",
    "ModuleSubspace": "subspace_hub.subspaces.bundle",
    "SharedSubspace": "subspace_hub.subspaces.extraction",
    "SubspaceBundle": "subspace_hub.subspaces.bundle",
    "allocate_dims": "subspace_hub.subspaces.allocation",
    "combine_bases": "subspace_hub.subspaces.combine",
    "effective_rank": "subspace_hub.subspaces.allocation",
    "energy_dim": "subspace_hub.subspaces.allocation",
    "extract_bundle": "subspace_hub.subspaces.mining",
    "load_lora": "subspace_hub.subspaces.lora_io",
    "module_group": "subspace_hub.subspaces.analysis",
    "orthogonality_eigenvalues": "subspace_hub.subspaces.analysis",
    "principal_angles": "subspace_hub.subspaces.analysis",
    "reduce_factors": "subspace_hub.subspaces.extraction",
    "shared_subspace": "subspace_hub.subspaces.extraction",
    "spectral_gap_dim": "subspace_hub.subspaces.allocation",
}

__all__ = [
    "CombinedBasis",
    "ExtractionSettings",
    "FactorCores",
    "LoraCheckpoint",
    "ModuleSubspace",
    "SharedSubspace",
    "SubspaceBundle",
    "allocate_dims",
    "combine_bases",
    "effective_rank",
    "energy_dim",
    "extract_bundle",
    "load_lora",
    "module_group",
    "orthogonality_eigenvalues",
    "principal_angles",
    "reduce_factors",
    "shared_subspace",
    "spectral_gap_dim",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'subspace_hub.subspaces' has no attribute {name!r}")
