"""Typed configs from plain dicts: the one place that turns user JSON/YAML into dataclasses.

Backbones, adapters and pipelines keep their settings in dataclasses; users and ``config.json`` files speak
plain dicts. :func:`from_dict` converts with the checks a user needs: unknown keys are named with a
"did you mean", and values of the wrong type say which field and what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from subspace_hub.errors import ConfigError

T = TypeVar("T")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def from_dict(
    cls: type[T], data: Mapping[str, Any] | None, *, what: str | None = None, problems: list[str] | None = None
) -> T | None:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and mistyped values.

    Nested dataclass fields accept nested dicts; tuples accept lists (JSON has no tuples); ints are accepted
    where floats are expected.

    Args:
        problems: Collect every problem into this list (and return ``None`` if there were any) instead of raising
            at the first, so a user fixes a whole file in one go.

    Raises:
        ConfigError: an unknown key, a wrong type, or a missing required field; the message names the field.

    >>> @dataclasses.dataclass
    ... class Cfg:
    ...     dim: int = 8
    >>> from_dict(Cfg, {"dim": 16})
    Cfg(dim=16)
    """
    what = what or cls.__name__
    found: list[str] = []

    def fail(message: str) -> None:
        if problems is None:
            raise ConfigError(message)
        found.append(message)

    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = to_dict(data)
    if not isinstance(data, Mapping):
        fail(f"{what} must be a mapping of field names to values, got {type(data).__name__}.")
        problems.extend(found)  # type: ignore[union-attr]  (only reached when collecting)
        return None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        fail(f"Unknown {what} field(s): {', '.join(hints)}. Known fields: {', '.join(fields)}.")
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in missing:
        fail(f"{what}.{name} is required.")
    hints_by_name = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            continue
        try:
            kwargs[key] = _coerce(
                value, hints_by_name.get(key, Any), f"{what}.{key}", found if problems is not None else None
            )
        except ConfigError as exc:
            fail(str(exc))
    if problems is not None and found:
        problems.extend(found)
        # The dataclass's own validation still checks the fields that parsed, the others left at their defaults.
        failed = {k for k in data if k in fields and (k not in kwargs or (kwargs[k] is None and data[k] is not None))}
        defaults = all(
            fields[k].default is not dataclasses.MISSING or fields[k].default_factory is not dataclasses.MISSING
            for k in failed
        )
        if defaults and not missing:
            try:
                cls(**{k: v for k, v in kwargs.items() if k not in failed})
            except ConfigError as exc:
                problems.append(f"{what}: {exc}" if "." in what else str(exc))
        return None
    try:
        return cls(**kwargs)
    except (TypeError, ConfigError) as exc:  # a required field missing, or the dataclass's own validation
        message = str(exc) if isinstance(exc, ConfigError) else f"Invalid {what}: {exc}."
        if isinstance(exc, ConfigError) and "." in what:  # a nested section: say which one
            message = f"{what}: {message}"
        if problems is None:
            raise ConfigError(message) from None
        problems.append(message)
        return None


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of dataclass ``obj`` (tuples become lists)."""
    return _jsonable(dataclasses.asdict(obj))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, where: str, problems: list[str] | None = None) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {hint}.")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}.")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__} {value!r}.")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(v, args[0], f"{where}[{i}]", problems) for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}.")
            items = [_coerce(v, a, f"{where}[{i}]", problems) for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            inner = args[0] if args else Any
            items = [_coerce(v, inner, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}.")
        if len(args) == 2:
            return {k: _coerce(v, args[1], f"{where}.{k}", problems) for k, v in value.items()}
        return dict(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return from_dict(hint, value, what=where, problems=problems)
    if hint is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 (PyYAML) reads 1e-5, without a dot, as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {type(value).__name__} {value!r}.")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {type(value).__name__} {value!r}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {type(value).__name__} {value!r}.")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {type(value).__name__} {value!r}.")
        return value
    return value


def apply_overrides(config: Mapping[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """A copy of ``config`` with ``KEY=VALUE`` overrides applied, as the CLI's ``--set`` passes them.

    Dotted keys reach into nested dicts (``aggregator.depth=12``); values are read as YAML scalars or flow
    collections (``false``, ``12``, ``1e-4``, ``[1, 2]``, ``null``).

    >>> apply_overrides({"a": {"b": 1}}, ["a.b=2", "c=false"])
    {'a': {'b': 2}, 'c': False}
    """
    import yaml

    result = copy.deepcopy(dict(config))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"An override must look like KEY=VALUE (e.g. enable_track=false), got {item!r}.")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"Cannot read the value of override {item!r}: {exc}") from exc
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        node = result
        *parents, leaf = key.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Override {item!r}: {'.'.join(parents[: i + 1])} is {child!r}, not a section.")
            node = child
        node[leaf] = value
    return result
