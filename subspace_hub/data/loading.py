"""Finding samples: a registered dataset, a folder written by ``datasets`` or a Hub dataset repo."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from subspace_hub.errors import ConfigError


def _pick_split(loaded: Any, split: str | None, source: str) -> Any:
    if hasattr(loaded, "keys") and not hasattr(loaded, "features") and not isinstance(loaded, (list, tuple)):
        splits = list(loaded.keys())
        if split is None:
            if len(splits) != 1:
                raise ConfigError(f"{source} has splits {splits}; choose one with split=.")
            split = splits[0]
        if split not in splits:
            raise ConfigError(f"{source} has no split {split!r}; it has {splits}.")
        return loaded[split]
    return loaded


def load_samples(
    source: str, split: str | None = None, config: str | None = None, **options: Any
) -> Iterable[Mapping[str, Any]]:
    """Samples of ``source``: a registered dataset name (its ``load(**options)``), a folder saved with
    ``datasets`` (``save_to_disk``) or holding data files (``config``: one of its configs), or a dataset repo
    ``org/name`` on the configured Hub endpoint (see :mod:`subspace_hub.hub`)."""
    from subspace_hub.plugins import get_host

    host = get_host()
    if source in host.components("dataset"):
        return _pick_split(host.get("dataset", source).load(**options), split, f"dataset {source!r}")
    path = Path(source).expanduser()
    import datasets

    if path.is_dir():
        if (
            (path / "dataset_dict.json").is_file()
            or (path / "dataset_info.json").is_file()
            or (path / "state.json").is_file()
        ):
            return _pick_split(datasets.load_from_disk(str(path)), split, str(path))
        return _pick_split(datasets.load_dataset(str(path), config, **options), split, str(path))
    from subspace_hub.hub import is_repo_id

    if is_repo_id(source):
        from subspace_hub.hub import load_dataset

        return _pick_split(load_dataset(source, config, **options), split, source)
    known = ", ".join(host.components("dataset")) or "none registered"
    raise ConfigError(f"No dataset {source!r}: not a registered dataset ({known}), a folder, or a Hub repo id.")
