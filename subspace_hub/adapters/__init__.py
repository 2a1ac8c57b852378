"""Adapter methods by name: attach, save, load, merge; the same calls for every method.

>>> model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "lora", rank=8)  # doctest: +SKIP
>>> subspace_hub.save_adapter(model, "runs/lora")  # doctest: +SKIP
>>> model = subspace_hub.load_adapter("runs/lora")  # rebuilds the backbone it was trained on  # doctest: +SKIP
>>> merged = subspace_hub.merge_adapter(model)  # doctest: +SKIP

What is attached, with which options, on which backbone, is the model's :class:`~subspace_hub.provenance.ModelRecord`.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

from subspace_hub._version import __version__
from subspace_hub.errors import CheckpointNotFoundError, ConfigError
from subspace_hub.fileio import atomic_write
from subspace_hub.plugins import get_adapter_spec
from subspace_hub.provenance import BuildInfo, ModelRecord, forget_adapter, own_record, record_of

MARKER_FILE = "subspace_hub_adapter.json"
"""Written by :func:`save_adapter` next to the method's own files: the method, its options, the backbone."""


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    """The options that survive a JSON round trip (a bundle object, say, does not and is left out)."""
    out = {}
    for key, value in options.items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


def _check_options(method: str, attach: Any, options: dict[str, Any]) -> None:
    """Refuse options the method's ``attach`` does not take, naming those it does."""
    parameters = inspect.signature(attach).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL][1:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"Adapter {method!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or 'none'}."
        )


def attach_adapter(model: Any, method: str, **options: Any) -> Any:
    """Prepare ``model`` for fine-tuning with the adapter ``method`` and return the model to train.

    Args:
        model: A backbone, typically from :func:`subspace_hub.load_backbone`.
        method: A registered adapter method (``subspace-hub plugins`` lists them): ``full``, ``lora``, ``pissa``,
            ``adalora``, ``psv``, ``subspace``, or one a plugin adds.
        **options: Method options, e.g. ``targets=["qkv", "fc1"]`` (target groups of the backbone or
            module-name regexes), ``layers=range(16, 24)``, ``rank=16``; ``subspace`` takes ``bundle=`` (a folder,
            Hub repo or :class:`SubspaceAdapter`) and ``attributes=``.

    Raises:
        UnknownComponentError: no plugin registers ``method``.
        ConfigError: the options do not fit the method or the model.
    """
    spec = get_adapter_spec(method)
    _check_options(method, spec.attach, options)
    adapted = spec.attach(model, **options)
    record = own_record(adapted)
    record.method, record.options = method, _jsonable(options)
    return adapted


def attached_method(model: Any) -> ModelRecord:
    """The record of a model made by :func:`attach_adapter` or :func:`load_adapter`: ``method``, ``options``,
    ``build``.

    Raises:
        ConfigError: no adapter is attached to ``model``.
    """
    record = record_of(model)
    if record is None or record.method is None:
        raise ConfigError("This model has no adapter attached by subspace_hub.attach_adapter or load_adapter.")
    return record


def save_adapter(model: Any, folder: str | os.PathLike[str]) -> Path:
    """Save what the attached method needs to rebuild the adapted model, plus a marker with the method, its
    options and the backbone it adapts."""
    record = attached_method(model)
    spec = get_adapter_spec(record.method)
    if spec.save is None:
        raise ConfigError(f"Adapter {record.method!r} does not support saving.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(model, folder)
    marker = {
        "method": record.method,
        "options": record.options,
        "backbone": None if record.build is None else record.build.to_dict(),
        "library_version": __version__,
    }
    atomic_write(folder / MARKER_FILE, lambda p: p.write_text(json.dumps(marker, indent=2) + "\n"))
    return folder


def load_adapter(folder: str | os.PathLike[str], model: Any = None) -> Any:
    """Rebuild an adapted model saved by :func:`save_adapter`.

    Args:
        folder: The saved adapter.
        model: A freshly built backbone to load into; default: rebuild the recorded backbone (name, config,
            pretrained weights) with :func:`subspace_hub.load_backbone`. Required when the backbone had random
            initial weights.
    """
    from subspace_hub.backbones import rebuild_backbone

    folder = Path(folder)
    marker_path = folder / MARKER_FILE
    if not marker_path.is_file():
        raise CheckpointNotFoundError(
            f"{folder} is not a saved adapter: {MARKER_FILE} is missing (save it with subspace_hub.save_adapter)."
        )
    marker = json.loads(marker_path.read_text())
    spec = get_adapter_spec(marker["method"])
    if spec.load is None:
        raise ConfigError(f"Adapter {marker['method']!r} does not support loading.")
    if model is None:
        if not marker.get("backbone"):
            raise ConfigError(f"{folder} does not record its backbone; pass model=<a freshly built backbone>.")
        model = rebuild_backbone(BuildInfo.from_dict(marker["backbone"]), what=str(folder))
    adapted = spec.load(model, folder)
    record = own_record(adapted)
    record.method, record.options = marker["method"], marker.get("options", {})
    return adapted


def merge_adapter(model: Any) -> Any:
    """Fold the attached adapter into the backbone weights; returns the plain backbone (no inference overhead)."""
    record = attached_method(model)
    spec = get_adapter_spec(record.method)
    if spec.merge is None:
        raise ConfigError(f"Adapter {record.method!r} does not support merging.")
    merged = spec.merge(model)
    forget_adapter(merged)
    return merged


__all__ = ["MARKER_FILE", "attach_adapter", "attached_method", "load_adapter", "merge_adapter", "save_adapter"]
