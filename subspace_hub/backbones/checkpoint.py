"""Backbone checkpoints on disk: ``config.json`` + ``model.safetensors``, the layout of ``facebook/VGGT-1B``.

Reading also accepts a sharded ``model.safetensors.index.json`` and, for legacy checkpoints, ``model.pt`` /
``pytorch_model.bin`` read with ``torch.load(weights_only=True)`` (never unpickling arbitrary objects).
Loading into a model is strict: every mismatch is reported at once, with the keys and shapes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subspace_hub.errors import CheckpointError, CheckpointMismatchError, CheckpointNotFoundError
from subspace_hub.fileio import atomic_write, read_json_object, read_tensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
LEGACY_WEIGHTS_NAMES = ("model.pt", "pytorch_model.bin")
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME, "model-*.safetensors", *LEGACY_WEIGHTS_NAMES)
"""Glob patterns of the files a checkpoint consists of (what a Hub download fetches)."""

_MAX_LISTED = 12


def read_config(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The dict in ``folder/config.json``, or ``None`` if the folder has none."""
    path = Path(folder) / CONFIG_NAME
    return read_json_object(path) if path.is_file() else None


def read_state_dict(location: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint folder or a single weights file, on the CPU.

    Raises:
        CheckpointNotFoundError: no weights file exists at ``location``.
        CheckpointError: the file is corrupt or holds something else than tensors.
    """
    path = Path(location)
    if path.is_dir():
        for name in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME, *LEGACY_WEIGHTS_NAMES):
            if (path / name).is_file():
                return read_state_dict(path / name)
        raise CheckpointNotFoundError(
            f"No weights in {path}: expected {WEIGHTS_NAME} (or {WEIGHTS_INDEX_NAME}, "
            f"{' or '.join(LEGACY_WEIGHTS_NAMES)}). Point at the folder that holds the checkpoint."
        )
    if not path.is_file():
        raise CheckpointNotFoundError(f"No checkpoint file at {path}.")
    if path.name.endswith(".index.json"):
        return _read_sharded(path)
    if path.suffix == ".safetensors":
        return read_tensors(path)
    return _read_legacy(path)


def _read_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"Cannot read the shard index {index_path}: {exc}.") from exc
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointNotFoundError(f"Shard {shard} listed in {index_path} is missing.")
        state.update(read_tensors(shard_path))
    return state


def _read_legacy(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"Cannot read {path} with torch.load(weights_only=True): {exc}. Only tensors and plain containers "
            "are accepted from legacy checkpoints; convert it to safetensors with a trusted copy of its code."
        ) from exc
    # Training checkpoints often wrap the weights: {"model": state_dict, "optimizer": ...}.
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors).")
    return dict(obj)


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "checkpoint"
) -> None:
    """Copy ``state_dict`` into ``model``, failing on any missing, unexpected or mis-shaped key.

    All problems are listed in one :class:`CheckpointMismatchError`, so a user sees at once whether the
    config is wrong (many mis-shaped keys) or the checkpoint is of another layout (missing/unexpected keys).
    Values are cast to the model's dtypes. Models built on the meta device receive the tensors themselves.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = ", ".join(items[:_MAX_LISTED]) + (
                    f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
                )
                parts.append(f"{len(items)} {label} key(s): {shown}")
        raise CheckpointMismatchError(
            f"{source} does not fit the model: " + "; ".join(parts) + ". Check that the config matches the "
            "checkpoint (its config.json), or give the backbone a convert_state_dict for this key layout."
        )
    on_meta = any(t.is_meta for t in expected.values())
    model.load_state_dict(dict(state_dict), strict=True, assign=on_meta)


def save_checkpoint(model: nn.Module, folder: str | os.PathLike[str], config: Mapping[str, Any]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created if needed); returns the folder.

    Files are written to temporaries and renamed, so an interrupted save never leaves a half-written file.
    Tensors that share storage (tied weights) are stored once each as independent copies.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in model.state_dict().items():
        if value.is_meta:
            raise CheckpointError(f"Cannot save {key}: it lives on the meta device (the model has no weights yet).")
        tensor = value.detach().cpu()
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        tensor = tensor.clone() if ident in seen or not tensor.is_contiguous() else tensor
        seen.add(ident)
        tensors[key] = tensor.contiguous()
    atomic_write(
        folder / CONFIG_NAME, lambda p: p.write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n")
    )
    atomic_write(folder / WEIGHTS_NAME, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    return folder
