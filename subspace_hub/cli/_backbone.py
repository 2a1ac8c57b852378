"""Backbone options shared by commands: a preset or file plus ``--set KEY=VALUE`` overrides."""

from __future__ import annotations

from typing import Any


def backbone_config(backbone: str, config: str | None, overrides: tuple[str, ...]) -> dict[str, Any] | str | None:
    """``config`` as given when there are no overrides, else the resolved config dict with them applied."""
    if not overrides:
        return config
    from subspace_hub.backbones.loading import resolve_config
    from subspace_hub.configuration import apply_overrides
    from subspace_hub.plugins import get_backbone_spec

    return apply_overrides(resolve_config(get_backbone_spec(backbone), config), overrides)
