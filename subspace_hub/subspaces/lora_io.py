"""LoRA checkpoints -> per-module factor pairs ``(B, A)`` with ``dW = B @ A`` (the scaling folded into B).

Reads PEFT adapter folders (``adapter_config.json`` + ``adapter_model.safetensors``), single safetensors files
and in-memory state dicts. Keys may carry PEFT's ``base_model.model.`` prefix and an adapter name
(``lora_A.default.weight``); module names are reported relative to the base model, as ``named_modules()``
names them. The scaling is ``lora_alpha / r`` (``lora_alpha / sqrt(r)`` with rsLoRA), per module where the config
has ``rank_pattern`` / ``alpha_pattern``. Conv2d LoRAs become matrices over flattened kernels:
B is out x r and A is r x (in * kh * kw).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from subspace_hub.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from subspace_hub.fileio import read_tensors

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+?)\.lora_(?P<side>[AB])(?:\.(?P<adapter>[^.]+))?\.weight$")

LoraSource = str | os.PathLike[str] | Mapping[str, torch.Tensor]
"""A PEFT adapter folder, a ``.safetensors`` file, or a state dict."""


@dataclass
class LoraCheckpoint:
    """One LoRA adapter as factor pairs per module."""

    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    """Module name -> (B [out, r], A [r, in]) with the scaling folded into B."""

    source: dict[str, Any] = field(default_factory=dict)
    """Provenance: path, sha256 of the weights, base model and revision, rank and alpha."""


def _pattern_value(module: str, patterns: Mapping[str, Any] | None, default: Any) -> Any:
    """PEFT's ``rank_pattern``/``alpha_pattern`` lookup: a key applies when the module name ends with it
    (as a regex, at a ``.`` boundary)."""
    for pattern, value in (patterns or {}).items():
        if re.fullmatch(rf"(.*\.)?({pattern})", module):
            return value
    return default


def _scaling(module: str, rank: int, config: Mapping[str, Any] | None, default_scaling: float | None) -> float:
    if config is None:
        return 1.0 if default_scaling is None else float(default_scaling)
    r = int(_pattern_value(module, config.get("rank_pattern"), config.get("r", rank)))
    alpha = float(_pattern_value(module, config.get("alpha_pattern"), config.get("lora_alpha", r)))
    if r != rank:
        raise CheckpointError(f"{module}: adapter_config.json says rank {r}, the weights have rank {rank}.")
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_folder(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, Path]:
    config_path = folder / ADAPTER_CONFIG
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    for name in ADAPTER_WEIGHTS:
        path = folder / name
        if path.is_file():
            return _read_file(path), config, path
    raise CheckpointNotFoundError(
        f"No adapter weights in {folder}: expected {' or '.join(ADAPTER_WEIGHTS)} (a PEFT adapter folder)."
    )


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return read_tensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"Cannot read {path} with torch.load(weights_only=True): {exc}.") from exc


def load_lora(source: LoraSource, *, scaling: float | None = None, adapter: str | None = None) -> LoraCheckpoint:
    """Read one LoRA adapter.

    Args:
        source: A PEFT adapter folder, a ``.safetensors``/``.bin`` file, or a state dict.
        scaling: Scaling for sources without ``adapter_config.json`` (default 1: the state dict already holds
            ``B * scaling``); ignored when a config is present.
        adapter: Adapter name to read when the keys carry several (``lora_A.<name>.weight``).

    Raises:
        CheckpointNotFoundError, CheckpointError: unreadable or not a LoRA adapter.
    """
    config = None
    info: dict[str, Any] = {}
    if isinstance(source, Mapping):
        state = dict(source)
        info["path"] = None
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            state, config, weights_path = _read_folder(path)
        elif path.is_file():
            state, weights_path = _read_file(path), path
            sibling = path.parent / ADAPTER_CONFIG
            config = json.loads(sibling.read_text()) if sibling.is_file() else None
        else:
            raise CheckpointNotFoundError(f"No LoRA adapter at {path}.")
        info.update(path=str(path), sha256=_sha256(weights_path))
    if config is not None:
        if config.get("peft_type", "LORA").upper() != "LORA":
            raise CheckpointError(f"{info.get('path')}: peft_type {config.get('peft_type')!r} is not a LoRA adapter.")
        if config.get("use_dora"):
            raise CheckpointError(
                f"{info.get('path')}: DoRA adapters are not plain low-rank updates; train plain LoRAs."
            )
        info.update(
            base_model=config.get("base_model_name_or_path"),
            revision=config.get("revision"),
            r=config.get("r"),
            lora_alpha=config.get("lora_alpha"),
        )
    halves: dict[str, dict[str, torch.Tensor]] = {}
    adapters_seen: set[str] = set()
    for key, tensor in state.items():
        found = _KEY.match(key)
        if not found:
            continue
        name = found["adapter"]
        if name is not None:
            adapters_seen.add(name)
            if adapter is not None and name != adapter:
                continue
        halves.setdefault(found["module"], {})[found["side"]] = tensor
    if adapter is None and len(adapters_seen) > 1:
        raise ConfigError(
            f"The state dict holds several adapters ({', '.join(sorted(adapters_seen))}); pass adapter=NAME."
        )
    if not halves:
        raise CheckpointError(
            f"{info.get('path') or 'state dict'} holds no LoRA weights (keys like '<module>.lora_A.weight' and "
            "'<module>.lora_B.weight')."
        )
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for module, pair in sorted(halves.items()):
        if set(pair) != {"A", "B"}:
            raise CheckpointError(f"{module}: lora_{'B' if 'A' in pair else 'A'} is missing.")
        a, b = pair["A"].float(), pair["B"].float()
        rank = a.shape[0]
        a = a.reshape(rank, -1)  # Conv2d: [r, in, kh, kw] -> [r, in*kh*kw]
        b = b.reshape(b.shape[0], -1)  # Conv2d: [out, r, 1, 1] -> [out, r]
        if b.shape[1] != rank:
            raise CheckpointError(f"{module}: lora_B has {b.shape[1]} columns but lora_A has rank {rank}.")
        factors[module] = (b * _scaling(module, rank, config, scaling), a)
    return LoraCheckpoint(factors=factors, source=info)


def _adapter_in(path: Path) -> Path | None:
    """``path`` when it is an adapter folder, its ``adapter/`` when it is a training run folder, else None."""
    for candidate in (path, path / "adapter"):
        if (candidate / ADAPTER_CONFIG).is_file() or any((candidate / w).is_file() for w in ADAPTER_WEIGHTS):
            return candidate
    return None


def expand_sources(path: str | os.PathLike[str]) -> list[Path]:
    """An adapter folder or file (or a training run folder) -> [its adapter]; a folder of those -> their
    adapters, sorted by name."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        if (adapter := _adapter_in(path)) is not None:
            return [adapter]
        children = [_adapter_in(p) for p in sorted(path.iterdir()) if p.is_dir()]
        if any(children):
            return [child for child in children if child is not None]
        raise CheckpointNotFoundError(
            f"{path} holds no LoRA adapter: give an adapter folder (adapter_config.json + adapter_model.safetensors),"
            " a training run folder, or a folder of those."
        )
    raise CheckpointNotFoundError(f"No LoRA adapter at {path}.")
