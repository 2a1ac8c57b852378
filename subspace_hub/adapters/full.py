"""Full fine-tuning: every parameter trains except the backbone's frozen parts (the paper's upper baseline)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def attach_full(model: nn.Module, *, frozen: Sequence[str] | None = None) -> nn.Module:
    """Make all parameters trainable, then freeze the modules matched by ``frozen``.

    Args:
        model: The backbone; modified in place and returned.
        frozen: Module-name regexes to keep frozen; ``None`` takes the backbone spec's ``frozen`` (e.g. VGGT's
            DINO patch embedding), ``()`` trains everything.
    """
    from subspace_hub.adapters.targets import freeze_modules

    if frozen is None:
        from subspace_hub.backbones import spec_of

        spec = spec_of(model)
        frozen = spec.frozen if spec is not None else ()
    for param in model.parameters():
        param.requires_grad_(True)
    freeze_modules(model, frozen)
    return model


def save_full(model: nn.Module, folder: str | Path) -> None:
    """All weights in the backbone layout (``config.json`` + ``model.safetensors``)."""
    from subspace_hub.backbones import save_backbone

    save_backbone(model, folder)


def load_full(base_model: nn.Module, folder: str | Path) -> nn.Module:
    """Load the fine-tuned weights strictly into a fresh backbone and make it trainable as :func:`attach_full` does."""
    from subspace_hub.backbones.checkpoint import load_state_dict_strict, read_state_dict

    load_state_dict_strict(base_model, read_state_dict(folder), source=f"Fine-tuned weights in {folder}")
    return attach_full(base_model)


def merge_full(model: nn.Module) -> nn.Module:
    """Nothing to merge: the weights are the model."""
    return model
