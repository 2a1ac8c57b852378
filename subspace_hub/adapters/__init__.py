"""Adapter methods: attach by name through the plugin registry."""

from __future__ import annotations

from typing import Any

from subspace_hub.plugins import get_adapter_spec


def attach_adapter(model: Any, method: str, **options: Any) -> Any:
    """Prepare ``model`` for fine-tuning with the adapter ``method`` and return the model to train.

    Args:
        model: A backbone, typically from :func:`subspace_hub.load_backbone`.
        method: A registered adapter method (``subspace-hub plugins`` lists them), e.g. ``"full"``.
        **options: Method options, e.g. ``targets=["qkv", "fc1"]`` (target groups of the backbone or
            module-name regexes) or ``frozen=()``.

    Raises:
        UnknownComponentError: no plugin registers ``method``.
        ConfigError: the options do not fit the method or the model.

    >>> model = attach_adapter(load_backbone("reference"), "full")  # doctest: +SKIP
    """
    import inspect

    from subspace_hub.errors import ConfigError

    spec = get_adapter_spec(method)
    signature = inspect.signature(spec.attach)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    if not takes_any:
        accepted = [n for n, p in signature.parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL][1:]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"Adapter {method!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(accepted) or 'none'}."
            )
    return spec.attach(model, **options)


__all__ = ["attach_adapter"]
