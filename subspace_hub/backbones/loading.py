"""``load_backbone``: name -> spec -> config -> model -> (pretrained weights).

torch is imported inside the functions so that ``import subspace_hub`` stays light.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from subspace_hub.configuration import to_dict
from subspace_hub.errors import CheckpointNotFoundError, ConfigError
from subspace_hub.hub import download, is_repo_id
from subspace_hub.plugins import get_backbone_spec
from subspace_hub.provenance import BuildInfo, build_info, own_record, pretrained_reference
from subspace_hub.specs import BackboneSpec

if TYPE_CHECKING:
    import torch
    from torch import nn


def spec_of(model: Any) -> BackboneSpec | None:
    """The :class:`BackboneSpec` of a model made by :func:`load_backbone`, else ``None``."""
    info = build_info(model)
    return get_backbone_spec(info.backbone) if info is not None else None


def resolve_config(spec: BackboneSpec, config: Any = None, checkpoint: Path | None = None) -> dict[str, Any]:
    """The config dict for ``spec.build``.

    ``config`` may be ``None`` (the checkpoint's ``config.json`` if any, else the default preset, else ``{}``),
    a preset name, a path to a ``.json``/``.yaml`` file, a mapping or a dataclass instance.
    """
    if config is None:
        from subspace_hub.backbones.checkpoint import read_config

        from_checkpoint = read_config(checkpoint) if checkpoint is not None and checkpoint.is_dir() else None
        if from_checkpoint is not None:
            return from_checkpoint
        return dict(spec.presets[spec.default_preset]) if spec.default_preset else {}
    if isinstance(config, str):
        if config in spec.presets:
            return dict(spec.presets[config])
        path = Path(config).expanduser()
        if path.suffix in {".json", ".yaml", ".yml"} and path.is_file():
            return _read_config_file(path)
        raise ConfigError(
            f"Unknown config {config!r} for backbone {spec.name!r}: not a preset "
            f"({', '.join(spec.presets) or 'the backbone has none'}) and not a .json/.yaml file."
        )
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return to_dict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise ConfigError(
        f"config must be a preset name, a file path, a mapping or a dataclass; got {type(config).__name__}."
    )


def _read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ConfigError(f"Cannot parse {path}: {exc}.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config fields, got {type(data).__name__}.")
    return data


def resolve_pretrained(
    pretrained: str | os.PathLike[str], revision: str | None = None, spec: BackboneSpec | None = None
) -> Path:
    """A local checkpoint folder or file for ``pretrained``: the name of weights the backbone knows
    (``spec.weights``), an existing path, or a Hub repo id downloaded (only the checkpoint files).

    Raises:
        CheckpointNotFoundError: none of these, or an unreachable Hub repo.
    """
    if spec is not None and os.fspath(pretrained) in spec.weights:
        pretrained = spec.weights[os.fspath(pretrained)]
    path = Path(pretrained).expanduser()
    if path.exists():
        if revision is not None:
            raise ConfigError(f"revision={revision!r} only applies to Hub repos, but {path} is a local path.")
        return path
    text = os.fspath(pretrained)
    if not is_repo_id(text):
        named = f" or one of the weights of {spec.name!r} ({', '.join(spec.weights)})" if spec and spec.weights else ""
        raise CheckpointNotFoundError(
            f"No checkpoint at {path}: the path does not exist, and it is not a Hub repo id (org/name){named}."
        )
    from subspace_hub.backbones.checkpoint import CHECKPOINT_FILES

    return download(text, revision, allow_patterns=CHECKPOINT_FILES)


def load_backbone(
    name: str,
    config: Any = None,
    pretrained: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Build the backbone registered as ``name`` and optionally load pretrained weights.

    Args:
        name: A registered backbone, e.g. ``"reference"`` or ``"vggt"`` (see ``subspace-hub plugins``).
        config: A preset name, a mapping, a dataclass, or a ``.json``/``.yaml`` path; ``None`` takes the
            checkpoint's ``config.json`` when ``pretrained`` is given, else the backbone's default preset.
        pretrained: Weights the backbone names (``BackboneSpec.weights``, e.g. ``"vggt-tiny-synthetic"``), a local
            folder/file or a Hub repo id holding ``config.json`` + ``model.safetensors``.
        revision: Hub branch, tag or commit of ``pretrained``.
        device: Where parameters are created; ``"meta"`` builds without allocating memory (shapes only).
        dtype: Cast parameters to this dtype after loading.

    Returns:
        The ``nn.Module``, in training mode as built, with its :class:`BuildInfo` attached.

    Raises:
        UnknownComponentError: no plugin registers ``name``.
        ConfigError: the config is not valid for this backbone.
        CheckpointNotFoundError, CheckpointMismatchError: the weights cannot be found or do not fit (strict).

    >>> model = load_backbone("reference", config="tiny")  # doctest: +SKIP
    """
    from subspace_hub.backbones.checkpoint import load_state_dict_strict, read_state_dict

    spec = get_backbone_spec(name)
    checkpoint = resolve_pretrained(pretrained, revision, spec) if pretrained is not None else None
    reference = None if pretrained is None else pretrained_reference(pretrained)
    model = build_backbone(spec, config, device=device, checkpoint=checkpoint, pretrained=reference, revision=revision)
    if checkpoint is not None:
        state = read_state_dict(checkpoint)
        if spec.convert_state_dict is not None:
            state = spec.convert_state_dict(state)
        load_state_dict_strict(model, state, source=f"Checkpoint {os.fspath(pretrained)!r}")
    if dtype is not None:
        model.to(dtype=dtype)
    return model


def build_backbone(
    spec: BackboneSpec,
    config: Any = None,
    *,
    device: str | torch.device | None = None,
    checkpoint: Path | None = None,
    pretrained: str | None = None,
    revision: str | None = None,
) -> nn.Module:
    """``spec.build`` on the resolved config (see :func:`resolve_config`), on ``device``, with the model's
    provenance recorded; the weights stay as built. :func:`load_backbone` is this plus a registry lookup and the
    pretrained weights.

    Raises:
        ConfigError: the config is not valid, or ``build`` did not return an ``nn.Module``.
    """
    import torch

    resolved = resolve_config(spec, config, checkpoint)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = spec.build(dict(resolved))
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"Backbone {spec.name!r}: build() returned {type(model).__name__}, not a torch.nn.Module.")
    own_record(model).build = BuildInfo(spec.name, resolved, pretrained, revision)
    return model


def rebuild_backbone(info: BuildInfo, *, what: str) -> nn.Module:
    """The backbone ``info`` records, rebuilt with :func:`load_backbone` (for reloading a saved adapter).

    Raises:
        ConfigError: the backbone had random initial weights, which cannot be rebuilt: the adapter would sit on
            another base (``what`` names the saved thing in the message).
    """
    if info.pretrained is None:
        raise ConfigError(
            f"{what} was trained on a {info.backbone!r} backbone with random initial weights (no pretrained=), "
            "which cannot be rebuilt; pass model=<that backbone>."
        )
    return load_backbone(info.backbone, config=dict(info.config), pretrained=info.pretrained, revision=info.revision)


def save_backbone(model: nn.Module, folder: str | os.PathLike[str]) -> Path:
    """Save a model made by :func:`load_backbone` as ``config.json`` + ``model.safetensors`` in ``folder``,
    the layout :func:`load_backbone` (``pretrained=folder``) reads back."""
    from subspace_hub.backbones.checkpoint import save_checkpoint

    info = build_info(model)
    if info is None:
        raise ConfigError("save_backbone needs a model made by load_backbone (it records the config to save).")
    return save_checkpoint(model, folder, info.config)
