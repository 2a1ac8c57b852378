"""Registers the builtin reference backbone."""

from subspace_hub.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    from subspace_hub.backbones.reference import SPEC

    register(SPEC)
