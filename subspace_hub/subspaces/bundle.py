"""A subspace bundle: per attribute and module, the extracted bases and their diagnostics, with provenance.

On disk (a folder, the layout a Hub repo of subspaces holds):

- ``subspaces.safetensors``: tensors named ``{attribute}.{module}.{field}`` with fields ``U`` [out, d],
  ``V`` [in, d], ``S`` [d], ``spectrum``, ``weights`` [N] and ``residuals`` [N] (float32);
- ``subspace_config.json``: format version, attributes in order, per module d / iterations / convergence,
  the extraction settings, the source LoRAs (paths, sha256, base model and revision), the backbone and the
  library version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from subspace_hub._version import __version__
from subspace_hub.errors import CheckpointError, CheckpointNotFoundError
from subspace_hub.fileio import atomic_write, check_format_version, read_json_object, read_tensors
from subspace_hub.specs import validate_slug

BASES_FILE = "subspaces.safetensors"
CONFIG_FILE = "subspace_config.json"
FORMAT_VERSION = 1
TENSOR_FIELDS = ("U", "V", "S", "spectrum", "weights", "residuals")


@dataclass
class ModuleSubspace:
    """One attribute's subspace of one weight matrix."""

    U: torch.Tensor
    """[out, d] orthonormal output-side basis."""

    V: torch.Tensor
    """[in, d] orthonormal input-side basis (in * kh * kw for convolutions)."""

    S: torch.Tensor
    """[d] singular values (see :class:`subspace_hub.subspaces.SharedSubspace`)."""

    spectrum: torch.Tensor
    """First-iteration singular values, descending."""

    weights: torch.Tensor
    """[N] IRLS weights of the source LoRAs."""

    residuals: torch.Tensor
    """[N] residuals of the source LoRAs."""

    iterations: int = 0
    converged: bool = True

    @property
    def d(self) -> int:
        return self.U.shape[1]


@dataclass
class SubspaceBundle:
    """Attribute -> module -> :class:`ModuleSubspace`, plus provenance in ``info``."""

    attributes: dict[str, dict[str, ModuleSubspace]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.attributes:
            validate_slug(name, "attribute name")

    @property
    def attribute_names(self) -> list[str]:
        return list(self.attributes)

    def modules(self) -> list[str]:
        """Every module that has a subspace for at least one attribute, sorted."""
        return sorted({m for subspaces in self.attributes.values() for m in subspaces})

    def items(self) -> Iterator[tuple[str, str, ModuleSubspace]]:
        for attribute, subspaces in self.attributes.items():
            for module, subspace in subspaces.items():
                yield attribute, module, subspace

    def dims(self) -> dict[str, dict[str, int]]:
        """Attribute -> module -> d."""
        return {a: {m: s.d for m, s in subs.items()} for a, subs in self.attributes.items()}

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``subspaces.safetensors`` and ``subspace_config.json`` into ``folder`` (atomically per file)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {}
        modules: dict[str, dict[str, Any]] = {}
        for attribute, module, sub in self.items():
            for name in TENSOR_FIELDS:
                tensors[f"{attribute}.{module}.{name}"] = (
                    getattr(sub, name).detach().to("cpu", torch.float32).contiguous()
                )
            modules.setdefault(attribute, {})[module] = {
                "d": sub.d,
                "iterations": sub.iterations,
                "converged": sub.converged,
            }
        config = {
            "format_version": FORMAT_VERSION,
            "library": "subspace-hub",
            "library_version": __version__,
            **{k: v for k, v in self.info.items() if k not in {"format_version", "attributes", "modules"}},
            "attributes": self.attribute_names,
            "modules": modules,
        }
        atomic_write(folder / BASES_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
        atomic_write(folder / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> SubspaceBundle:
        """Read a bundle folder written by :meth:`save`.

        Raises:
            CheckpointNotFoundError: the folder lacks the bundle files.
            CheckpointError: the files are inconsistent (a module listed in the config without its tensors).
        """
        folder = Path(folder)
        config_path, bases_path = folder / CONFIG_FILE, folder / BASES_FILE
        if not config_path.is_file() or not bases_path.is_file():
            raise CheckpointNotFoundError(
                f"{folder} is not a subspace bundle: expected {CONFIG_FILE} and {BASES_FILE} "
                "(made by `subspace-hub extract` or SubspaceBundle.save)."
            )
        config = read_json_object(config_path)
        check_format_version(config, FORMAT_VERSION, source=str(folder), what="subspace bundle")
        tensors = read_tensors(bases_path)
        attributes: dict[str, dict[str, ModuleSubspace]] = {}
        for attribute in config["attributes"]:
            attributes[attribute] = {}
            for module, meta in config["modules"].get(attribute, {}).items():
                try:
                    fields = {name: tensors[f"{attribute}.{module}.{name}"] for name in TENSOR_FIELDS}
                except KeyError as exc:
                    raise CheckpointError(f"{bases_path} lacks {exc.args[0]}; the bundle is incomplete.") from None
                attributes[attribute][module] = ModuleSubspace(
                    **fields, iterations=int(meta.get("iterations", 0)), converged=bool(meta.get("converged", True))
                )
        info = {k: v for k, v in config.items() if k not in {"attributes", "modules"}}
        return cls(attributes=attributes, info=info)

    def summary(self) -> Mapping[str, Any]:
        """Small, JSON-ready overview: per attribute the modules, total dimensions and convergence."""
        return {
            a: {
                "modules": len(subs),
                "total_dims": sum(s.d for s in subs.values()),
                "converged": sum(s.converged for s in subs.values()),
            }
            for a, subs in self.attributes.items()
        }
