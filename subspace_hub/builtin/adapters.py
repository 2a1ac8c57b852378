"""Registers the core's adapter methods."""

from subspace_hub.hookspecs import hookimpl
from subspace_hub.specs import AdapterSpec


@hookimpl
def register_adapters(register):
    from subspace_hub.adapters.full import attach_full

    register(AdapterSpec("full", attach_full, description="full fine-tuning (all but the backbone's frozen parts)"))
