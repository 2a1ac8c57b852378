"""Export a registered dataset (any plugin's :class:`~subspace_hub.specs.DatasetSpec`) as a folder that
``datasets.load_dataset`` reads and the Hub shows: one parquet file per split under ``data/`` and a README.md card
with the ``configs:`` header, the licence, the columns and the load options that reproduce it
(``subspace-hub data export NAME OUT``)."""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from subspace_hub._version import __version__
from subspace_hub.errors import ConfigError


def _splits(loaded: Any) -> dict[str, Any]:
    """split -> ``datasets.Dataset`` of what ``DatasetSpec.load`` returned."""
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        return dict(loaded)
    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    if isinstance(loaded, Mapping):
        return {
            str(k): v if isinstance(v, datasets.Dataset) else datasets.Dataset.from_list(list(v))
            for k, v in loaded.items()
        }
    return {"train": datasets.Dataset.from_list(list(loaded))}


def _load(spec: Any, options: Mapping[str, Any]) -> Any:
    parameters = inspect.signature(spec.load).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(options) - set(parameters)) if not takes_any else []
    if unknown:
        known = ", ".join(n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL) or "none"
        raise ConfigError(f"Dataset {spec.name!r} has no load option {', '.join(unknown)}; its options: {known}.")
    return spec.load(**options)


def _effective(spec: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with every default the load function fills in: what reproduces the rows."""
    bound = inspect.signature(spec.load).bind_partial(**options)
    bound.apply_defaults()
    plain = (str, int, float, bool, type(None), list, tuple, dict)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in bound.arguments.items() if isinstance(v, plain)}


def _card(spec: Any, splits: Mapping[str, Any], options: Mapping[str, Any], files: Mapping[str, str]) -> str:
    import yaml
    from huggingface_hub import DatasetCard, DatasetCardData

    from subspace_hub.templates import REGISTERED_DATASET_CARD

    first = next(iter(splits.values()))
    data = DatasetCardData(
        license=spec.license,
        pretty_name=spec.name,
        tags=["subspace-hub", "synthetic"],
        configs=[{"config_name": "default", "data_files": [{"split": s, "path": path} for s, path in files.items()]}],
    )
    module = inspect.getmodule(spec.load)
    card = DatasetCard.from_template(
        data,
        template_path=str(REGISTERED_DATASET_CARD),
        name=spec.name,
        description=spec.description or "",
        plugin=module.__name__.split(".")[0] if module else None,
        splits={s: len(d) for s, d in splits.items()},
        columns={name: str(feature) for name, feature in first.features.items()},
        options=yaml.safe_dump(
            {"dataset": spec.name, "load_options": _effective(spec, options)}, sort_keys=False
        ).strip(),
        documentation=inspect.cleandoc(module.__doc__) if module and module.__doc__ else "",
        subspace_hub_version=__version__,
    )
    return str(card)


def export_registered(
    name: str, out: str | os.PathLike[str], options: Mapping[str, Any] | None = None, *, overwrite: bool = False
) -> Path:
    """Load the registered dataset ``name`` with ``options`` and write it to the folder ``out``.

    The folder is written beside ``out`` and renamed into place at the end, so a failure leaves ``out`` as it was
    (absent, or with ``overwrite`` the previous export).

    Raises:
        ConfigError: ``out`` exists and ``overwrite`` is false, or an option is not one the dataset's ``load``
            takes (the message lists those it takes).
        UnknownComponentError: no loaded plugin registers ``name``.
    """
    from subspace_hub.plugins import get_dataset

    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; choose another folder or pass overwrite=True (--overwrite) to replace it.")
    spec = get_dataset(name)
    options = dict(options or {})
    splits = _splits(_load(spec, options))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = {}
        for split, dataset in splits.items():
            files[split] = f"data/{split}-00000-of-00001.parquet"
            (staging / "data").mkdir(exist_ok=True)
            dataset.to_parquet(str(staging / files[split]))
        (staging / "README.md").write_text(_card(spec, splits, options, files))
        if out.exists():
            previous = out.with_name(f".{out.name}.previous")
            shutil.rmtree(previous, ignore_errors=True)
            out.rename(previous)
            staging.rename(out)
            shutil.rmtree(previous)
        else:
            staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
