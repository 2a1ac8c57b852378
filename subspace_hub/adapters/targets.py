r"""Which modules an adapter touches: backbone target groups and explicit patterns -> module names.

Patterns are regular expressions matched with :func:`re.fullmatch` against ``model.named_modules()`` names.
A target string that names one of the backbone's ``target_groups`` stands for that group's pattern. A pattern
may capture the block index in a named group ``(?P<layer>\d+)``; ``layers=`` then keeps only those blocks
(e.g. the last 8 of 24), the way PEFT's ``layers_to_transform`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from subspace_hub.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from subspace_hub.specs import BackboneSpec

ADAPTABLE_TYPES = ("Linear", "Conv2d")
"""Class names of the layers every adapter method supports (``torch.nn.Linear`` and ``torch.nn.Conv2d``)."""


def _adaptable(module: nn.Module) -> bool:
    from torch import nn

    return isinstance(module, (nn.Linear, nn.Conv2d))


def frozen_module_names(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Names of the modules matched by ``patterns`` (these and everything under them stay frozen)."""
    compiled = [re.compile(p) for p in patterns]
    return [name for name, _ in model.named_modules() if name and any(c.fullmatch(name) for c in compiled)]


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def resolve_targets(
    model: nn.Module,
    targets: str | Sequence[str] | None = None,
    *,
    spec: BackboneSpec | None = None,
    frozen: Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
) -> list[str]:
    """Module names to adapt, in model order.

    Args:
        model: The backbone.
        targets: Group names of ``spec.target_groups`` and/or module-name regexes; ``None`` takes
            ``spec.default_targets``.
        spec: The backbone spec (default: the one recorded by :func:`subspace_hub.load_backbone`).
        frozen: Module-name regexes to exclude (default: ``spec.frozen``); pass ``()`` to adapt frozen parts too.
        layers: Keep only modules whose pattern captures a ``layer`` index in this set; modules matched by a
            pattern without a ``(?P<layer>...)`` group are kept as they are.

    Raises:
        ConfigError: no targets and no default; a target that matches no module (after the ``layers``
            filter); a matched module that is not ``nn.Linear``/``nn.Conv2d``.
    """
    if spec is None:
        from subspace_hub.backbones import spec_of

        spec = spec_of(model)
    groups = dict(spec.target_groups) if spec is not None else {}
    if targets is None:
        if spec is None or not spec.default_targets:
            raise ConfigError(
                "No adapter targets given and the model declares no default targets; pass targets=[...] with "
                "module-name regexes" + (f" or groups ({', '.join(groups)})" if groups else "") + "."
            )
        targets = spec.default_targets
    if isinstance(targets, str):
        targets = [targets]
    if not targets:
        raise ConfigError("targets is empty: name at least one target group or module-name pattern.")
    frozen_patterns = spec.frozen if frozen is None and spec is not None else (frozen or ())
    frozen_prefixes = frozen_module_names(model, frozen_patterns)
    modules = dict(model.named_modules())
    wanted_layers = None if layers is None else {int(i) for i in layers}
    selected: set[str] = set()
    for target in targets:
        pattern = groups.get(target, target)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"Target {target!r} is neither a target group nor a valid regex ({exc}).") from None
        matched = []
        for name in modules:
            found = compiled.fullmatch(name) if name else None
            if found is None or _under(name, frozen_prefixes):
                continue
            layer = found.groupdict().get("layer")
            if wanted_layers is not None and layer is not None and int(layer) not in wanted_layers:
                continue
            matched.append(name)
        if not matched:
            known = f" Known target groups: {', '.join(groups)}." if groups else ""
            frozen_note = (
                " (modules under frozen parts are excluded; pass frozen=() to include them)" if frozen_prefixes else ""
            )
            layer_note = f" in layers {sorted(wanted_layers)}" if wanted_layers is not None else ""
            raise ConfigError(f"Target {target!r} matches no module of the model{layer_note}{frozen_note}.{known}")
        wrong = [f"{name} ({type(modules[name]).__name__})" for name in matched if not _adaptable(modules[name])]
        if wrong:
            raise ConfigError(
                f"Target {target!r} matches modules that are not {' or '.join(ADAPTABLE_TYPES)}: {', '.join(wrong[:5])}"
                + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
                + ". Narrow the pattern to the layers inside them."
            )
        selected.update(matched)
    return [name for name in modules if name in selected]


def freeze_modules(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Set ``requires_grad=False`` on every parameter under modules matched by ``patterns``; returns their names."""
    prefixes = frozen_module_names(model, patterns)
    frozen = []
    for name, param in model.named_parameters():
        if _under(name, prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen
