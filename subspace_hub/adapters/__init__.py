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
from subspace_hub.errors import CheckpointError, CheckpointNotFoundError, ConfigError
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


def write_marker(folder: Path, method: str, options: dict[str, Any], build: BuildInfo | None) -> None:
    """``subspace_hub_adapter.json``: the method, its options and the backbone a saved adapter belongs to, so
    :func:`load_adapter` rebuilds it from the folder (or its Hub repo) alone, from any working directory."""
    marker = {
        "method": method,
        "options": options,
        "backbone": None if build is None else build.to_dict(),
        "library_version": __version__,
    }
    atomic_write(folder / MARKER_FILE, lambda p: p.write_text(json.dumps(marker, indent=2) + "\n"))


def save_adapter(model: Any, folder: str | os.PathLike[str]) -> Path:
    """Save what the attached method needs to rebuild the adapted model, the marker (method, options,
    backbone) and a model card (``README.md``)."""
    record = attached_method(model)
    spec = get_adapter_spec(record.method)
    if spec.save is None:
        raise ConfigError(f"Adapter {record.method!r} does not support saving.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(model, folder)
    write_marker(folder, record.method, record.options, record.build)
    write_adapter_card(folder, record.method, record.options, record.build, model)
    return folder


def write_adapter_card(folder: Path, method: str, options: dict[str, Any], build: BuildInfo | None, model: Any) -> None:
    """The adapter folder's ``README.md`` (from :data:`subspace_hub.templates.ADAPTER_CARD`, replacing PEFT's empty
    template): what it adapts, how to load it, and the licence of the weights it was trained on."""
    from huggingface_hub import ModelCard, ModelCardData

    from subspace_hub.plugins import get_backbone_spec
    from subspace_hub.templates import ADAPTER_CARD

    backbone = get_backbone_spec(build.backbone) if build is not None else None
    base = build.pretrained if build is not None else None
    data = ModelCardData(
        library_name="subspace-hub",
        base_model=base if base and "/" in base and not Path(base).exists() else None,
        license=backbone.license if backbone is not None else None,
        tags=["subspace-hub", method, *([build.backbone] if build is not None else [])],
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    card = ModelCard.from_template(
        data,
        template_path=str(ADAPTER_CARD),
        method=method,
        options=json.dumps(options),
        backbone=build.backbone if build is not None else "unknown",
        pretrained=base,
        trainable=f"{trainable:,}",
        subspace_hub_version=__version__,
    )
    atomic_write(folder / "README.md", lambda p: p.write_text(str(card)))


def _detect_method(folder: Path) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(method, options, backbone record) of a saved adapter folder, from its marker or, for folders written by
    ``SubspaceAdapter.save_pretrained`` or PEFT itself, from their own files."""
    from subspace_hub.adapters.subspace.config import CONFIG_FILE as SUBSPACE_CONFIG
    from subspace_hub.fileio import read_json_object

    if (folder / MARKER_FILE).is_file():
        marker = read_json_object(folder / MARKER_FILE)
        if not isinstance(marker.get("method"), str):
            raise CheckpointError(f"{folder / MARKER_FILE} names no method; save the adapter again.")
        return marker["method"], dict(marker.get("options") or {}), marker.get("backbone")
    if (folder / SUBSPACE_CONFIG).is_file():
        return "subspace", {}, read_json_object(folder / SUBSPACE_CONFIG).get("backbone")
    if (folder / "adapter_config.json").is_file():
        peft_type = str(read_json_object(folder / "adapter_config.json").get("peft_type", "")).upper()
        method = {"LORA": "lora", "ADALORA": "adalora", "PSOFT": "psv"}.get(peft_type)
        if method is None:
            raise CheckpointError(
                f"{folder / 'adapter_config.json'} holds a PEFT {peft_type or 'unknown'} adapter; subspace-hub loads "
                "LoRA, AdaLoRA and PSOFT (psv) adapters."
            )
        return method, {}, None
    raise CheckpointNotFoundError(
        f"{folder} holds no saved adapter: expected {MARKER_FILE} (subspace_hub.save_adapter), {SUBSPACE_CONFIG} "
        "(SubspaceAdapter.save_pretrained) or adapter_config.json (PEFT)."
    )


def load_adapter(source: str | os.PathLike[str], model: Any = None, *, revision: str | None = None) -> Any:
    """Rebuild an adapted model from a saved adapter: a folder or a Hub repo (at ``revision``) written by
    :func:`save_adapter`, :meth:`SubspaceAdapter.save_pretrained` / ``push_to_hub``, or PEFT's ``save_pretrained``.

    Args:
        source: The folder, or ``org/name`` on the configured Hub endpoint.
        model: A freshly built backbone to load into; default: rebuild the recorded backbone (name, config,
            pretrained weights) with :func:`subspace_hub.load_backbone`. Required when the backbone had random
            initial weights, or for a plain PEFT folder (which does not say which backbone it adapts).
        revision: Branch, tag or commit of a Hub repo.

    Raises:
        CheckpointNotFoundError: neither a saved adapter folder nor a reachable Hub repo.
        ConfigError: the backbone cannot be rebuilt (pass ``model=``), or the method cannot load.
    """
    from subspace_hub.backbones import rebuild_backbone
    from subspace_hub.hub import default_client, is_repo_id

    folder = Path(source).expanduser()
    if not folder.exists():
        if not is_repo_id(os.fspath(source)):
            raise CheckpointNotFoundError(
                f"No adapter at {folder}: the path does not exist and is not a Hub repo id (org/name)."
            )
        folder = default_client().download(os.fspath(source), revision)
    elif revision is not None:
        raise ConfigError(f"revision={revision!r} only applies to Hub repos, but {folder} is a local folder.")
    method, options, backbone = _detect_method(folder)
    spec = get_adapter_spec(method)
    if spec.load is None:
        raise ConfigError(f"Adapter {method!r} does not support loading.")
    if model is None:
        if not backbone:
            raise ConfigError(f"{folder} does not record its backbone; pass model=<a freshly built backbone>.")
        model = rebuild_backbone(BuildInfo.from_dict(backbone), what=str(source))
    adapted = spec.load(model, folder)
    record = own_record(adapted)
    record.method, record.options = method, options
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


__all__ = [
    "MARKER_FILE",
    "attach_adapter",
    "attached_method",
    "load_adapter",
    "merge_adapter",
    "save_adapter",
    "write_marker",
]
