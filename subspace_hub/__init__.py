"""subspace-hub: fine-tune 3D foundation models through attribute subspaces mined from LoRA ensembles.

The public API::

    import subspace_hub
    model = subspace_hub.load_backbone("reference", config="tiny")
    model = subspace_hub.attach_adapter(model, "full")
    metric = subspace_hub.get_metric("abs_rel")

Plugins implement the hooks of :mod:`subspace_hub.hookspecs` with :data:`hookimpl` and register
:class:`BackboneSpec`, :class:`AdapterSpec`, :class:`DatasetSpec` and :class:`MetricSpec` objects.
Heavy dependencies (torch, peft, datasets) are imported when first used, not by ``import subspace_hub``.
"""

from typing import Any

from subspace_hub._version import __version__
from subspace_hub.adapters import attach_adapter, load_adapter, merge_adapter, save_adapter
from subspace_hub.backbones.loading import load_backbone, save_backbone
from subspace_hub.errors import SubspaceHubError
from subspace_hub.hookspecs import hookimpl
from subspace_hub.plugins import get_dataset, get_metric, list_components, list_plugins
from subspace_hub.specs import AdapterSpec, BackboneSpec, DatasetSpec, MetricExample, MetricSpec

__all__ = [
    "AdapterSpec",
    "BackboneSpec",
    "DatasetSpec",
    "MetricExample",
    "MetricSpec",
    "SubspaceHubError",
    "__version__",
    "SubspaceAdapter",
    "attach_adapter",
    "get_dataset",
    "get_metric",
    "hookimpl",
    "list_components",
    "list_plugins",
    "load_adapter",
    "load_backbone",
    "merge_adapter",
    "save_adapter",
    "save_backbone",
]


def __getattr__(name: str) -> Any:
    # SubspaceAdapter needs torch; import it on first use so `import subspace_hub` stays light.
    if name == "SubspaceAdapter":
        from subspace_hub.adapters.subspace import SubspaceAdapter

        return SubspaceAdapter
    raise AttributeError(f"module 'subspace_hub' has no attribute {name!r}")
