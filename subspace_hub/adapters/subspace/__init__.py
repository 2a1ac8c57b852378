"""Fine-tuning inside attribute subspaces, split the PEFT way: :mod:`.config` (the saved settings),
:mod:`.layer` (:class:`SubspaceLayer`), :mod:`.model` (:class:`SubspaceAdapter` and the ``subspace`` method)."""

from subspace_hub.adapters.subspace.config import CONFIG_FILE, WEIGHTS_FILE, SubspaceAdapterConfig
from subspace_hub.adapters.subspace.layer import SubspaceLayer
from subspace_hub.adapters.subspace.model import (
    ModuleBases,
    SubspaceAdapter,
    attach_subspace,
    load_subspace,
    merge_subspace,
    save_subspace,
)
from subspace_hub.adapters.subspace.synthetic import random_like, synthetic_bundle

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "ModuleBases",
    "SubspaceAdapter",
    "SubspaceAdapterConfig",
    "SubspaceLayer",
    "attach_subspace",
    "load_subspace",
    "merge_subspace",
    "save_subspace",
    "random_like",
    "synthetic_bundle",
]
