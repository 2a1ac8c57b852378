"""Attribute-subspace mining: shared subspaces of LoRA ensembles, their dimensions, comparison and combination.

>>> from subspace_hub.subspaces import shared_subspace
>>> result = shared_subspace([(B1, A1), (B2, A2), (B3, A3)], d=16)  # doctest: +SKIP
"""

from subspace_hub.subspaces.allocation import allocate_dims, effective_rank, energy_dim, spectral_gap_dim
from subspace_hub.subspaces.analysis import module_group, orthogonality_eigenvalues, principal_angles
from subspace_hub.subspaces.bundle import ModuleSubspace, SubspaceBundle
from subspace_hub.subspaces.combine import CombinedBasis, combine_bases
from subspace_hub.subspaces.extraction import FactorCores, SharedSubspace, reduce_factors, shared_subspace
from subspace_hub.subspaces.lora_io import LoraCheckpoint, load_lora
from subspace_hub.subspaces.mining import ExtractionSettings, extract_bundle

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
