"""``subspace_adapter.json``: the settings and provenance of fine-tuning in subspaces, one typed schema.

Next to it, ``subspace_adapter.safetensors`` holds per adapted module ``{module}.U``, ``{module}.V`` and
``{module}.core`` (float32) and, with LoRA on the modules without bases, ``lora.{PEFT state-dict key}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from subspace_hub._version import __version__
from subspace_hub.configuration import from_dict, to_dict
from subspace_hub.errors import ConfigError
from subspace_hub.fileio import atomic_write, check_format_version, read_json_object

CONFIG_FILE = "subspace_adapter.json"
WEIGHTS_FILE = "subspace_adapter.safetensors"
FORMAT_VERSION = 1
"""The format this version writes and the newest it reads."""

Combine = Literal["qr", "loewdin"]


@dataclass
class LoraSettings:
    """Plain LoRA (through PEFT) on the targeted modules that have no bases."""

    rank: int
    alpha: float
    """LoRA scaling numerator; the update is ``alpha / rank * B @ A``."""
    modules: list[str] = field(default_factory=list)
    """The modules that carry LoRA."""


@dataclass
class ModuleCore:
    """One adapted module: which attributes its bases combine and the size of its core."""

    attributes: list[str]
    core: list[int]
    """``[k_out, k_in]``."""
    d: dict[str, int] = field(default_factory=dict)
    """Attribute -> the bundle's dimension for this module."""
    dropped_out: int = 0
    """Output-side columns dropped as linearly dependent when the attributes' bases were combined."""
    dropped_in: int = 0
    """Input-side columns dropped likewise."""


@dataclass
class SubspaceAdapterConfig:
    """How a :class:`~subspace_hub.SubspaceAdapter` fine-tunes, and, once trained, what it adapted."""

    scale: float = 2.0
    """``s`` in ``dW = s * U @ M @ V^T`` (2, as the paper's code)."""
    combine: Combine = "qr"
    """How the attributes' bases of one module are joined: rank-revealing QR in attribute order, or Loewdin."""
    tol: float = 1e-6
    """Relative tolerance under which a combined column counts as dependent and is dropped."""
    attributes: list[str] = field(default_factory=list)
    """The attributes a trained adapter combined (empty: not trained yet)."""
    modules: dict[str, ModuleCore] = field(default_factory=dict)
    """Module -> its core, for a trained adapter."""
    lora: LoraSettings | None = None
    """LoRA on the modules without bases, if any."""
    backbone: dict[str, Any] | None = None
    """The backbone it was trained on (:meth:`subspace_hub.provenance.BuildInfo.to_dict`)."""
    sources: dict[str, Any] = field(default_factory=dict)
    """The bundle's source LoRAs, per attribute."""
    format_version: int = FORMAT_VERSION
    library: str = "subspace-hub"
    library_version: str = __version__

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ConfigError(f"The subspace adapter's scale must be positive, got {self.scale}.")
        if not self.tol > 0:
            raise ConfigError(f"The subspace adapter's tol must be positive, got {self.tol}.")


def read_config(folder: str | os.PathLike[str]) -> SubspaceAdapterConfig | None:
    """The config in ``folder``, or ``None`` if the folder holds a bundle only.

    Raises:
        CheckpointError: the file is unreadable, or written by a newer subspace-hub (its ``format_version``).
        ConfigError: a field is unknown or mistyped (named in the message).
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    data = read_json_object(path)
    check_format_version(data, FORMAT_VERSION, source=str(path), what="subspace adapter")
    return from_dict(SubspaceAdapterConfig, data, what=str(path))


def write_config(config: SubspaceAdapterConfig, folder: str | os.PathLike[str]) -> Path:
    """Write ``config`` as ``folder/subspace_adapter.json`` (atomically), stamped with this library's version."""
    data = {**to_dict(config), "format_version": FORMAT_VERSION, "library_version": __version__}
    path = Path(folder) / CONFIG_FILE
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))
    return path
