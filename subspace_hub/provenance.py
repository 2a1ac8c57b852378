"""Where a model came from: one :class:`ModelRecord` per model, kept in its ``__dict__``.

:func:`subspace_hub.load_backbone` records how the backbone was built (:class:`BuildInfo`); attaching an adapter
records the method, its options and the method's own runtime state (a :class:`~subspace_hub.SubspaceAdapter`,
PiSSA's initial factors). Saving reads the record to write provenance next to the weights, and loading rebuilds
the backbone from it. Wrappers such as ``PeftModel`` get a record of their own that carries the build of the model
they wrap, so the record is found from the outermost object a user holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECORD_ATTR = "subspace_hub_record"
"""The ``__dict__`` key of a model's :class:`ModelRecord` (set through ``__dict__`` so ``nn.Module`` does not
register it as a submodule)."""


@dataclass(frozen=True)
class BuildInfo:
    """How a backbone model was made; adapters read it to find target groups and record provenance."""

    backbone: str
    """The registered backbone name."""

    config: Mapping[str, Any] = field(default_factory=dict)
    """The config dict passed to ``build``."""

    pretrained: str | None = None
    """The local folder (absolute) or Hub repo the weights came from, ``None`` for random weights."""

    revision: str | None = None
    """The Hub revision asked for, if any."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written next to saved adapters (``name``, ``config``, ``pretrained``, ``revision``)."""
        return {
            "name": self.backbone,
            "config": dict(self.config),
            "pretrained": self.pretrained,
            "revision": self.revision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildInfo:
        """The inverse of :meth:`to_dict`."""
        return cls(data["name"], dict(data.get("config") or {}), data.get("pretrained"), data.get("revision"))


def pretrained_reference(pretrained: str | os.PathLike[str]) -> str:
    """What a record keeps of a ``pretrained=`` argument: an existing local path made absolute (so a saved adapter
    finds it from any working directory), anything else (a Hub repo id, the name of shipped weights) as given."""
    text = os.fspath(pretrained)
    expanded = os.path.expanduser(text)
    return os.path.abspath(expanded) if os.path.exists(expanded) else text


@dataclass
class ModelRecord:
    """The provenance and adapter state of one model object."""

    build: BuildInfo | None = None
    """How the backbone was built; ``None`` for a model not made by :func:`subspace_hub.load_backbone`."""

    method: str | None = None
    """The attached adapter method (``lora``, ``subspace``, ...), ``None`` before one is attached."""

    options: dict[str, Any] = field(default_factory=dict)
    """The method's options as given to :func:`subspace_hub.attach_adapter` (the JSON-serialisable ones)."""

    state: Any = None
    """The method's runtime state, private to the method (never serialised through the record)."""


def _wrapped(model: Any) -> Any:
    """The model a wrapper holds (``PeftModel.base_model``, a PEFT tuner's ``model``), else ``None``."""
    children = getattr(model, "_modules", None) or {}
    return children.get("base_model") or children.get("model")


def record_of(model: Any) -> ModelRecord | None:
    """The record of ``model``, looking through a few wrapper levels; ``None`` if there is none."""
    for _ in range(8):  # a few wrapper levels at most
        if model is None:
            return None
        record = getattr(model, "__dict__", {}).get(RECORD_ATTR)
        if record is not None:
            return record
        model = _wrapped(model)
    return None


def own_record(model: Any) -> ModelRecord:
    """The record stored on ``model`` itself, created if needed; a new record of a wrapper starts from the build
    of the model it wraps."""
    record = model.__dict__.get(RECORD_ATTR)
    if record is None:
        inner = record_of(_wrapped(model))
        record = ModelRecord(build=inner.build if inner is not None else None)
        model.__dict__[RECORD_ATTR] = record
    return record


def build_info(model: Any) -> BuildInfo | None:
    """The :class:`BuildInfo` of a model made by :func:`subspace_hub.load_backbone` (looking through wrappers),
    else ``None``."""
    record = record_of(model)
    return record.build if record is not None else None


def forget_adapter(model: Any) -> None:
    """Drop the adapter part of ``model``'s record (after merging), keeping its build."""
    record = getattr(model, "__dict__", {}).get(RECORD_ATTR)
    if record is not None:
        model.__dict__[RECORD_ATTR] = ModelRecord(build=record.build)
