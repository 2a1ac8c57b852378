"""Registers the core's dataset: ``synthetic``, folders written by ``subspace-hub data generate``."""

from subspace_hub.data.sources import load_synthetic
from subspace_hub.hookspecs import hookimpl
from subspace_hub.specs import DatasetSpec


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            "synthetic",
            load_synthetic,
            description="controlled-variation MegaSynth-style scenes (subspace-hub data generate)",
            configs=("texture-NNN", "geometry-NNN", "camera-NNN", "lighting-NNN"),
            license="cc0-1.0",
        )
    )
