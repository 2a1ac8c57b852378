"""Full fine-tuning: every parameter trains except the backbone's frozen parts (the paper's upper baseline)."""

from __future__ import annotations

from collections.abc import Sequence
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
