"""Registers the core's dataset: ``synthetic``, folders written by ``subspace-hub data generate``."""

from subspace_hub.hookspecs import hookimpl
from subspace_hub.specs import DatasetSpec


def load_synthetic(path: str, config: str | None = None, split: str | None = None, **options):
    """``datasets.load_dataset(path, config, split=split)`` on a generated folder (or its Hub repo); the first
    config when ``config`` is not given."""
    import datasets

    if config is None:
        from pathlib import Path

        from subspace_hub.data.export import configs_of

        if Path(path).is_dir():
            config = configs_of(path)[0]
    return datasets.load_dataset(path, config, split=split, **options)


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
