"""Builtin plugins: thin hook implementations that register the core's own components.

They are ordinary plugins, registered by module path before any third-party plugin (see
:data:`subspace_hub.plugins.BUILTIN_PLUGINS`), so the core uses exactly the path a third party uses.
"""
