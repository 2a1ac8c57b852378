"""Adapter methods by name: attach, save, load, merge; the same calls for every method.

>>> model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "lora", rank=8)  # doctest: +SKIP
>>> subspace_hub.save_adapter(model, "runs/lora")  # doctest: +SKIP
>>> model = subspace_hub.load_adapter("runs/lora")  # rebuilds the backbone it was trained on  # doctest: +SKIP
>>> merged = subspace_hub.merge_adapter(model)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subspace_hub._version import __version__
from subspace_hub.errors import CheckpointNotFoundError, ConfigError
from subspace_hub.plugins import get_adapter_spec

ADAPTER_ATTR = "subspace_hub_adapter"
"""Attribute of an adapted model recording the attached method (an :class:`AttachedAdapter`)."""

MARKER_FILE = "subspace_hub_adapter.json"
"""Written by :func:`save_adapter` next to the method's own files: the method, its options, the backbone."""


@dataclass(frozen=True)
class AttachedAdapter:
    """Which method is attached to a model, and with which (JSON-serialisable) options."""

    method: str
    options: dict[str, Any] = field(default_factory=dict)


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in options.items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


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
    signature = inspect.signature(spec.attach)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    if not takes_any:
        accepted = [n for n, p in signature.parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL][1:]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"Adapter {method!r} does not take option(s) {', '.join(unknown)}; it takes: "
                f"{', '.join(accepted) or 'none'}."
            )
    adapted = spec.attach(model, **options)
    adapted.__dict__[ADAPTER_ATTR] = AttachedAdapter(method, _jsonable(options))
    return adapted


def attached_method(model: Any) -> AttachedAdapter:
    """The :class:`AttachedAdapter` of a model made by :func:`attach_adapter` or :func:`load_adapter`."""
    state = getattr(model, "__dict__", {}).get(ADAPTER_ATTR)
    if state is None:
        raise ConfigError("This model has no adapter attached by subspace_hub.attach_adapter or load_adapter.")
    return state


def save_adapter(model: Any, folder: str | os.PathLike[str]) -> Path:
    """Save what the attached method needs to rebuild the adapted model, plus a marker with the method, its
    options and the backbone it adapts."""
    from subspace_hub.backbones import build_info
    from subspace_hub.fileio import atomic_write

    state = attached_method(model)
    spec = get_adapter_spec(state.method)
    if spec.save is None:
        raise ConfigError(f"Adapter {state.method!r} does not support saving.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(model, folder)
    info = build_info(model)
    marker = {
        "method": state.method,
        "options": state.options,
        "backbone": None
        if info is None
        else {
            "name": info.backbone,
            "config": dict(info.config),
            "pretrained": info.pretrained,
            "revision": info.revision,
        },
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
        backbone = marker.get("backbone")
        if not backbone:
            raise ConfigError(f"{folder} does not record its backbone; pass model=<a freshly built backbone>.")
        if backbone.get("pretrained") is None:
            # Rebuilding would draw new random weights, and the adapter would sit on the wrong base.
            raise ConfigError(
                f"{folder} was trained on a {backbone['name']!r} backbone with random initial weights (no "
                "pretrained=), "
                "which cannot be rebuilt; pass model=<that backbone> to load_adapter."
            )
        from subspace_hub.backbones import load_backbone

        model = load_backbone(
            backbone["name"],
            config=backbone["config"],
            pretrained=backbone["pretrained"],
            revision=backbone["revision"],
        )
    adapted = spec.load(model, folder)
    adapted.__dict__[ADAPTER_ATTR] = AttachedAdapter(marker["method"], marker.get("options", {}))
    return adapted


def merge_adapter(model: Any) -> Any:
    """Fold the attached adapter into the backbone weights; returns the plain backbone (no inference overhead)."""
    state = attached_method(model)
    spec = get_adapter_spec(state.method)
    if spec.merge is None:
        raise ConfigError(f"Adapter {state.method!r} does not support merging.")
    merged = spec.merge(model)
    getattr(merged, "__dict__", {}).pop(ADAPTER_ATTR, None)
    return merged


__all__ = ["AttachedAdapter", "attach_adapter", "attached_method", "load_adapter", "merge_adapter", "save_adapter"]
