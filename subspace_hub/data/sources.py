"""Finding samples: a registered dataset, a folder written by ``datasets`` or a Hub dataset repo."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from subspace_hub.errors import ConfigError
from subspace_hub.hub import is_repo_id, load_dataset
from subspace_hub.interchange import REQUIRED_KEYS
from subspace_hub.plugins import get_host


def pick_split(loaded: Any, split: str | None = None, *, source: str = "the dataset", first: bool = False) -> Any:
    """One split of what a loader returned: a ``DatasetDict``-like mapping of splits, or already samples.

    Args:
        loaded: A mapping of split name -> samples, or the samples themselves (returned as they are).
        split: The split to take; ``None`` takes the only one (or, with ``first``, the first one).
        source: How error messages name the data.
        first: Take the first split when several exist and none is named, instead of failing.

    Raises:
        ConfigError: ``split`` does not exist, or several exist and none was chosen.
    """
    is_split_mapping = hasattr(loaded, "keys") and not hasattr(loaded, "features")
    if isinstance(loaded, Mapping) and any(key in loaded for key in REQUIRED_KEYS):
        is_split_mapping = False  # one sample given as a dict, not a mapping of splits
    if not is_split_mapping:
        return loaded
    splits = list(loaded.keys())
    if split is None:
        if len(splits) != 1 and not first:
            raise ConfigError(f"{source} has splits {splits}; choose one (--split in the CLI, split= in Python).")
        split = splits[0]
    if split not in splits:
        raise ConfigError(f"{source} has no split {split!r}; it has {splits}.")
    return loaded[split]


def load_synthetic(path: str, config: str | None = None, split: str | None = None, **options: Any) -> Any:
    """``datasets.load_dataset(path, config, split=split)`` on a folder made by ``subspace-hub data generate`` (or
    its Hub repo); the first config when ``config`` is not given. The ``synthetic`` dataset's loader."""
    import datasets

    if Path(path).is_dir():
        from subspace_hub.data.export import check_complete, configs_of  # numpy and the scene code: only here

        check_complete(path)
        config = config or configs_of(path)[0]
    return datasets.load_dataset(path, config, split=split, **options)


def _finished_shards(root: Path, config: str) -> Any:
    """The finished shards of one config of an unfinished generation, by split (``datasets`` alone would read the
    folder without its card as one 'default' config mixing every dataset)."""
    import datasets

    from subspace_hub.data.export import plan, recipe_of, shard_done

    spec = recipe_of(root)
    files: dict[str, list[str]] = {}
    for shard in plan(spec):
        if shard.config == config and shard_done(spec, shard, root):
            files.setdefault(shard.split, []).append(str(shard.path(root)))
    if not files:
        raise ConfigError(
            f"{root} has no finished shard of {config} yet: run the same `subspace-hub data generate` command again."
        )
    return datasets.load_dataset("parquet", data_files=files)


def load_samples(
    source: str,
    split: str | None = None,
    config: str | None = None,
    *,
    revision: str | None = None,
    allow_incomplete: bool = False,
    **options: Any,
) -> Iterable[Mapping[str, Any]]:
    """Samples of ``source``: a registered dataset name (its ``load(**options)``), a folder saved with
    ``datasets`` (``save_to_disk``) or holding data files (``config``: one of its configs), or a dataset repo
    ``org/name`` on the configured Hub endpoint (see :mod:`subspace_hub.hub`) at ``revision``.

    Raises:
        ConfigError: ``source`` is none of these, ``split`` or ``config`` is missing, ``revision`` is given for a
            folder, or the folder is an unfinished generation (unless ``allow_incomplete``).
    """
    host = get_host()
    if source in host.components("dataset"):
        if revision is not None:
            options["revision"] = revision
        return pick_split(host.get("dataset", source).load(**options), split, source=f"dataset {source!r}")
    path = Path(source).expanduser()
    if path.is_dir():
        import datasets

        # numpy and the scene code, only for folders:
        from subspace_hub.data.export import RECIPE_FILE, check_complete, configs_of

        if revision is not None:
            raise ConfigError(
                f"A revision ({revision!r}) applies to Hub dataset repos, but {source} is a local folder."
            )
        saved = ("dataset_dict.json", "dataset_info.json", "state.json")
        if any((path / name).is_file() for name in saved):
            return pick_split(datasets.load_from_disk(str(path)), split, source=str(path))
        if (path / RECIPE_FILE).is_file():  # made by `subspace-hub data generate`
            try:
                check_complete(path)
                finished = True
            except ConfigError:
                if not allow_incomplete:
                    raise
                finished = False
            known = configs_of(path)
            if config is not None and config not in known:
                close = difflib.get_close_matches(config, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{source} has no dataset config {config!r}; it has {', '.join(known)}.{hint}")
            if not finished:
                return pick_split(_finished_shards(path, config or known[0]), split, source=str(path))
        return pick_split(datasets.load_dataset(str(path), config, **options), split, source=str(path))
    if is_repo_id(source):
        return pick_split(load_dataset(source, config, revision=revision, **options), split, source=source)
    known = ", ".join(host.components("dataset")) or "none registered"
    raise ConfigError(f"No dataset {source!r}: not a registered dataset ({known}), a folder, or a Hub repo id.")
