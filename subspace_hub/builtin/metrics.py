"""Registers the core's metrics (see :mod:`subspace_hub.metrics.catalog`)."""

from subspace_hub.hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    from subspace_hub.metrics.catalog import builtin_metrics

    for spec in builtin_metrics():
        register(spec)
