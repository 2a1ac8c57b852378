"""Trainable and total parameters of an adapted model, per module group, as a table."""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from subspace_hub.adapters import attach_adapter
from subspace_hub.adapters.subspace import SubspaceAdapter
from subspace_hub.backbones import load_backbone
from subspace_hub.provenance import record_of
from subspace_hub.tables import format_table

# What wrappers add to parameter names; stripped so groups read like the backbone's own modules.
_WRAPPER_PARTS = re.compile(
    r"^(base_model\.model\.)|\.base_layer(?=\.)|\.(lora_[A-Za-z]+|psoft_[A-Za-z]+|ranknum)\.[^.]+(?=\.)"
)


@dataclass
class ParameterReport:
    """Per group: (trainable, total); groups are the first two components of the module path."""

    groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    method: str | None = None
    notes: list[str] = field(default_factory=list)
    """What the method reports about itself (e.g. a subspace adapter's core sizes and dropped columns)."""

    @property
    def trainable(self) -> int:
        return sum(t for t, _ in self.groups.values())

    @property
    def total(self) -> int:
        return sum(n for _, n in self.groups.values())

    def format(self) -> str:
        rows = [
            (g, f"{t:,}", f"{n:,}", f"{100 * t / n:.2f}%" if n else "-") for g, (t, n) in sorted(self.groups.items())
        ]
        rows.append(
            ("total", f"{self.trainable:,}", f"{self.total:,}", f"{100 * self.trainable / max(self.total, 1):.3f}%")
        )
        title = f"method: {self.method}\n" if self.method else ""
        notes = "".join(f"\n{line}" for line in self.notes)
        return title + format_table(("GROUP", "TRAINABLE", "TOTAL", "SHARE"), rows) + notes


def group_of(parameter: str) -> str:
    """``base_model.model.blocks.0.attn.qkv.lora_A.default.weight`` -> ``blocks.0``."""
    name = _WRAPPER_PARTS.sub("", parameter)
    return ".".join(name.split(".")[:2]) if name.count(".") >= 2 else name.rsplit(".", 1)[0]


def parameter_report(model: nn.Module) -> ParameterReport:
    """Count trainable and total parameters per module group (adapter tensors count in the group they adapt)."""
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, param in model.named_parameters():  # a tied parameter is listed once, under its first name
        entry = groups[group_of(name)]
        entry[1] += param.numel()
        if param.requires_grad:
            entry[0] += param.numel()
    record = record_of(model)
    method = record.method if record is not None else None
    notes = (
        record.state.report().splitlines() if record is not None and isinstance(record.state, SubspaceAdapter) else []
    )
    return ParameterReport({g: (t, n) for g, (t, n) in groups.items()}, method=method, notes=notes)


def count_parameters(
    backbone: str,
    method: str | None = None,
    *,
    config: Any = None,
    options: Mapping[str, Any] | Callable[[nn.Module], Mapping[str, Any]] | None = None,
) -> ParameterReport:
    """Trainable and total parameters of ``method`` on ``backbone``, built on the meta device: no weights are
    allocated, so VGGT-1B counts in seconds on a laptop.

    Args:
        backbone: A registered backbone name.
        method: An adapter method; ``None`` counts the plain backbone (everything trainable).
        config: Backbone preset, file or dict (see :func:`subspace_hub.load_backbone`).
        options: Adapter options, or a function of the built model returning them (e.g. a bundle made for it).
    """
    model = load_backbone(backbone, config=config, device="meta")
    if method is None:
        return parameter_report(model)
    resolved = options(model) if callable(options) else dict(options or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a count is not the place for "targets left frozen" notes
        adapted = attach_adapter(model, method, **resolved)
    return parameter_report(adapted)
