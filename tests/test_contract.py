"""The names DESIGN.md's contract surface promises to plugin authors and users stay importable and callable."""

from __future__ import annotations

import inspect

import subspace_hub
from subspace_hub import metrics, subspaces


def test_the_public_api_names():
    for name in ("hookimpl", "load_backbone", "attach_adapter", "get_metric", "list_plugins", "SubspaceAdapter"):
        assert callable(getattr(subspace_hub, name)), name
    for name in ("BackboneSpec", "AdapterSpec", "DatasetSpec", "MetricSpec"):
        assert inspect.isclass(getattr(subspace_hub, name)), name
    assert list(inspect.signature(subspace_hub.load_backbone).parameters)[:4] == [
        "name",
        "config",
        "pretrained",
        "revision",
    ]
    adapter = subspace_hub.SubspaceAdapter
    for method in ("from_pretrained", "attach", "save_pretrained", "push_to_hub"):
        assert callable(getattr(adapter, method)), method


def test_the_hooks_and_methods():
    from subspace_hub import hookspecs

    for hook in ("register_backbones", "register_adapters", "register_datasets", "register_metrics"):
        assert list(inspect.signature(getattr(hookspecs, hook)).parameters)[0] == "register"
    assert {"lora", "pissa", "adalora", "psv", "subspace", "full"} <= set(subspace_hub.list_components("adapter"))


def test_the_subspace_and_metric_functions():
    signature = inspect.signature(subspaces.shared_subspace)
    assert list(signature.parameters)[:2] == ["factors", "d"]
    assert {"alpha", "mode", "max_iter", "tol"} <= set(signature.parameters)
    for name in ("chamfer", "normal_consistency", "abs_rel", "delta", "umeyama", "icp", "pa_mpjpe", "psnr"):
        assert callable(getattr(metrics, name)), name
