"""Registers the core's metrics (see :mod:`subspace_hub.metrics.registry`)."""

from subspace_hub.hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    from subspace_hub.metrics.registry import builtin_metrics

    for spec in builtin_metrics():
        register(spec)
