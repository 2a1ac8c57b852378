"""The plugin host: one pluggy manager, the builtin plugins and every entry point of group ``subspace_hub``.

Loading is lazy and happens once per process, on the first component lookup. Each plugin's hooks are called
on their own, so a third-party plugin that fails to import, has a malformed hook or raises inside a hook is
recorded (name, distribution, error) and skipped as a whole while everything else keeps working.

Environment switches, read when plugins are loaded:

``SUBSPACE_HUB_STRICT_PLUGINS=1``
    A failing plugin raises :class:`~subspace_hub.errors.PluginLoadError` instead of being skipped.
``SUBSPACE_HUB_DISABLE_PLUGIN_AUTOLOAD=1``
    Entry points are not loaded (builtins, ``SUBSPACE_HUB_PLUGINS`` and ``SUBSPACE_HUB_LOAD_PLUGINS`` still are).
``SUBSPACE_HUB_LOAD_PLUGINS=a,b``
    Load only these entry points, named by entry-point name or distribution name; an empty value loads none.
``SUBSPACE_HUB_PLUGINS=pkg.module,other``
    Import these modules as plugins without installing them (handy while writing a plugin).
``SUBSPACE_HUB_TRACE_PLUGINS=1``
    Log every plugin load and hook call, with timings, to stderr.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as importlib_metadata
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

import pluggy

from subspace_hub import hookspecs
from subspace_hub._version import __version__
from subspace_hub.errors import (
    PluginConflictError,
    PluginLoadError,
    PluginWarning,
    SpecError,
    UnknownComponentError,
)
from subspace_hub.specs import SPEC_TYPES, AdapterSpec, BackboneSpec, DatasetSpec, MetricSpec

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME

BUILTIN_PLUGINS: tuple[str, ...] = (
    "subspace_hub.builtin.backbones",
    "subspace_hub.builtin.adapters",
    "subspace_hub.builtin.metrics",
    "subspace_hub.builtin.datasets",
)
"""Modules registered as plugins in every process, before any third-party plugin; they cannot be disabled."""

HOOK_OF_KIND: Mapping[str, str] = MappingProxyType(
    {
        "backbone": "register_backbones",
        "adapter": "register_adapters",
        "dataset": "register_datasets",
        "metric": "register_metrics",
    }
)
"""Component kind -> the hook that registers it."""

FIRST_PARTY_DISTRIBUTIONS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "backbone": MappingProxyType(
            {"vggt": "subspace-hub-vggt", "lfm2d": "subspace-hub-lfm2d", "lim": "subspace-hub-lim"}
        )
    }
)
"""Components of first-party plugins that ship as separate distributions, for install hints on a miss."""

ENV_STRICT = "SUBSPACE_HUB_STRICT_PLUGINS"
ENV_DISABLE_AUTOLOAD = "SUBSPACE_HUB_DISABLE_PLUGIN_AUTOLOAD"
ENV_LOAD_PLUGINS = "SUBSPACE_HUB_LOAD_PLUGINS"
ENV_EXTRA_PLUGINS = "SUBSPACE_HUB_PLUGINS"
ENV_TRACE = "SUBSPACE_HUB_TRACE_PLUGINS"

_TRUE = {"1", "true", "yes", "on"}


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    """True if the environment variable ``name`` is set to 1/true/yes/on (any case)."""
    return environ.get(name, "").strip().lower() in _TRUE


def _normalize_dist(name: str) -> str:
    """PEP 503 normalisation, so ``Subspace_Hub.VGGT`` and ``subspace-hub-vggt`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as ``subspace-hub plugins`` shows it."""

    name: str
    """Plugin name: the entry-point name, or the module path for builtin and ``SUBSPACE_HUB_PLUGINS`` plugins."""

    module: str
    """What was imported: a module path or an entry-point value (``module:attr``)."""

    distribution: str | None
    """The installed distribution that provides it, ``None`` if unknown (e.g. a module on ``PYTHONPATH``)."""

    version: str | None
    """Version of that distribution."""

    source: str
    """``"builtin"``, ``"entry point"`` or ``"SUBSPACE_HUB_PLUGINS"``."""

    components: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Component kind -> names this plugin registered (empty for a failed plugin)."""

    hooks: tuple[str, ...] = ()
    """Hooks the plugin implements."""

    error: str | None = None
    """Why the plugin was skipped, ``None`` if it loaded."""

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def builtin(self) -> bool:
        return self.source == "builtin"

    def describe(self) -> str:
        """``name (distribution version)``, for error messages."""
        if self.distribution:
            return f"plugin {self.name!r} (distribution {self.distribution} {self.version or ''})".replace(" )", ")")
        return f"plugin {self.name!r} ({self.source}, no installed distribution)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "source": self.source,
            "components": {k: list(v) for k, v in self.components.items()},
            "hooks": list(self.hooks),
            "error": self.error,
        }


@dataclass(frozen=True)
class _Candidate:
    """A plugin found but not yet loaded."""

    name: str
    module: str
    load: Callable[[], object]
    distribution: str | None
    version: str | None
    source: str


class _PluginFailed(Exception):
    """Internal: carries the stage at which a plugin failed."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.cause = cause

    def describe(self) -> str:
        message = str(self.cause).strip().replace("\n", " ")
        return (
            f"{self.stage}: {type(self.cause).__name__}: {message}"
            if message
            else f"{self.stage}: {type(self.cause).__name__}"
        )


class PluginHost:
    """Owns the pluggy manager and every component the loaded plugins registered.

    Args:
        builtins: Module paths registered before anything else.
        environ: Where the ``SUBSPACE_HUB_*`` switches are read (default: ``os.environ`` at load time).
        specs: The module of hook specifications (default: :mod:`subspace_hub.hookspecs`).
        hook_arguments: Values of hook arguments other than ``register``, by name. Each hook implementation
            receives exactly the arguments it names, so a new argument added to a hook specification (and given
            here) reaches the plugins that ask for it and leaves the others unchanged.

    Most code uses the process-wide host through :func:`get_host` and the lookup functions below.
    """

    def __init__(
        self,
        *,
        builtins: tuple[str, ...] = BUILTIN_PLUGINS,
        environ: Mapping[str, str] | None = None,
        specs: ModuleType = hookspecs,
        hook_arguments: Mapping[str, Any] | None = None,
    ):
        self._builtins = builtins
        self._environ = environ
        self._specs = specs
        self._hook_arguments = dict(hook_arguments or {})
        self._lock = threading.RLock()
        self._loaded = False
        self._pm: pluggy.PluginManager | None = None
        self._plugins: list[PluginInfo] = []
        self._components: dict[str, dict[str, tuple[Any, PluginInfo]]] = {kind: {} for kind in HOOK_OF_KIND}

    # -- public ---------------------------------------------------------------------------------------------

    @property
    def pm(self) -> pluggy.PluginManager:
        """The underlying pluggy manager (plugins loaded)."""
        self.load()
        assert self._pm is not None  # set by load()
        return self._pm

    def load(self) -> None:
        """Discover and load all plugins, once. A plugin that fails, or claims a name another plugin already
        holds, is recorded and skipped; in strict mode that raises (:class:`PluginLoadError`,
        :class:`PluginConflictError`) and a later call tries again."""
        with self._lock:
            if self._loaded:
                return
            environ = os.environ if self._environ is None else self._environ
            _trace_logging(env_flag(environ, ENV_TRACE))
            self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            self._pm.add_hookspecs(self._specs)
            self._plugins = []
            self._components = {kind: {} for kind in HOOK_OF_KIND}
            strict = env_flag(environ, ENV_STRICT)
            for candidate in self._discover(environ):
                self._load_one(candidate, strict=strict)
            self._loaded = True

    def plugins(self) -> list[PluginInfo]:
        """Every plugin found, loaded or failed, in load order."""
        self.load()
        return list(self._plugins)

    def failures(self) -> list[PluginInfo]:
        """The plugins that were skipped because they failed."""
        return [p for p in self.plugins() if p.failed]

    def components(self, kind: str) -> Mapping[str, Any]:
        """Name -> spec of every registered component of ``kind`` (``"backbone"``, ``"adapter"``, ...)."""
        self._check_kind(kind)
        self.load()
        return MappingProxyType({name: spec for name, (spec, _) in sorted(self._components[kind].items())})

    def get(self, kind: str, name: str) -> Any:
        """The spec registered as ``name``; raises :class:`UnknownComponentError` with the known names."""
        self._check_kind(kind)
        self.load()
        entry = self._components[kind].get(name)
        if entry is None:
            raise UnknownComponentError(kind, name, self._components[kind], extra=self._miss_hint(kind, name))
        return entry[0]

    def provider(self, kind: str, name: str) -> PluginInfo:
        """The plugin that registered component ``name`` of ``kind``."""
        self.get(kind, name)
        return self._components[kind][name][1]

    # -- discovery ------------------------------------------------------------------------------------------

    def _discover(self, environ: Mapping[str, str]) -> Iterator[_Candidate]:
        for module in self._builtins:
            yield _Candidate(module, module, _importer(module), "subspace-hub", __version__, "builtin")
        for module in _split_list(environ.get(ENV_EXTRA_PLUGINS, "")):
            dist, version = _distribution_of_module(module)
            yield _Candidate(module, module, _importer(module), dist, version, ENV_EXTRA_PLUGINS)
        yield from self._entry_point_candidates(environ)

    def _entry_point_candidates(self, environ: Mapping[str, str]) -> Iterator[_Candidate]:
        allow: set[str] | None = None
        if ENV_LOAD_PLUGINS in environ:
            allow = set(_split_list(environ[ENV_LOAD_PLUGINS]))
        elif env_flag(environ, ENV_DISABLE_AUTOLOAD):
            logger.debug("%s is set: no entry points loaded", ENV_DISABLE_AUTOLOAD)
            return
        found: set[str] = set()
        eps = sorted(
            importlib_metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda ep: (_normalize_dist(ep.dist.name) if ep.dist else "", ep.name),
        )
        for ep in eps:
            dist_name = ep.dist.metadata["Name"] if ep.dist is not None else None
            if allow is not None:
                keys = {ep.name} | ({dist_name, _normalize_dist(dist_name)} if dist_name else set())
                hits = {a for a in allow if a in keys or _normalize_dist(a) in keys}
                if not hits:
                    logger.debug("skipping entry point %r: not in %s", ep.name, ENV_LOAD_PLUGINS)
                    continue
                found |= hits
            version = ep.dist.version if ep.dist is not None else None
            yield _Candidate(ep.name, ep.value, ep.load, dist_name, version, "entry point")
        for missing in sorted((allow or set()) - found):
            cause = LookupError(
                f"{ENV_LOAD_PLUGINS} names {missing!r}, but no installed distribution has a {ENTRY_POINT_GROUP!r} "
                "entry point of that name; check the spelling or pip install the plugin"
            )

            def _raise(cause: BaseException = cause) -> object:
                raise cause

            yield _Candidate(missing, missing, _raise, None, None, "entry point")

    # -- loading --------------------------------------------------------------------------------------------

    def _load_one(self, candidate: _Candidate, *, strict: bool) -> None:
        assert self._pm is not None
        started = time.perf_counter()
        logger.debug("loading %s from %s", candidate.name, candidate.module)
        plugin: object | None = None
        try:
            for other in self._plugins:
                if other.name == candidate.name and not other.failed:
                    raise _PluginFailed(
                        "name conflict",
                        PluginConflictError(
                            f"Two plugins are named {candidate.name!r}: {other.describe()} and "
                            f"{_describe_candidate(candidate)}; the second is skipped. Uninstall one of them, or "
                            f"load only one with {ENV_LOAD_PLUGINS}=<name or distribution>."
                        ),
                    )
            try:
                plugin = candidate.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a broken plugin must not take the host down, even with SystemExit
                raise _PluginFailed("import failed", exc) from exc
            if self._pm.is_registered(plugin):
                logger.debug("%s is already registered under another name; skipped", candidate.name)
                return
            hooks = self._register(plugin, candidate.name)
            staged = self._run_hooks(plugin, candidate)
            self._check_names(staged, candidate)
        except _PluginFailed as failure:
            if plugin is not None and self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            info = _info(candidate, error=failure.describe())
            self._plugins.append(info)
            if isinstance(failure.cause, PluginConflictError) and strict:
                raise failure.cause from None
            if candidate.source == "builtin" or strict:
                raise PluginLoadError(
                    f"{info.describe().capitalize()} failed to load ({info.error}). Fix or uninstall it"
                    + ("" if candidate.source == "builtin" else f", or unset {ENV_STRICT} to skip it")
                    + "."
                ) from failure.cause
            warnings.warn(
                f"skipped {info.describe()}: {info.error} (see `subspace-hub plugins`)", PluginWarning, stacklevel=2
            )
            logger.debug("%s failed: %s", candidate.name, info.error)
            return

        components = {kind: tuple(spec.name for spec in specs) for kind, specs in staged.items() if specs}
        info = _info(candidate, components=components, hooks=hooks)
        for kind, specs in staged.items():
            for spec in specs:
                self._components[kind][spec.name] = (spec, info)
        self._plugins.append(info)
        logger.debug("loaded %s in %.1f ms: %s", candidate.name, 1e3 * (time.perf_counter() - started), components)

    def _check_names(self, staged: dict[str, list[Any]], candidate: _Candidate) -> None:
        """A component name another plugin already registered fails this plugin (as a whole): a broken or
        careless plugin must not shadow, nor take down, what already works."""
        for kind, specs in staged.items():
            for spec in specs:
                previous = self._components[kind].get(spec.name)
                if previous is not None:
                    raise _PluginFailed(
                        "name conflict",
                        PluginConflictError(
                            f"The {kind} name {spec.name!r} is registered twice: by {previous[1].describe()} and by "
                            f"{_describe_candidate(candidate)}, which is skipped. Uninstall one of them, or load only "
                            f"one with {ENV_LOAD_PLUGINS}=<name or distribution>."
                        ),
                    )

    def _register(self, plugin: object, name: str) -> tuple[str, ...]:
        """Register ``plugin`` with pluggy after checking its hook names; returns the hooks it implements."""
        assert self._pm is not None
        known = list(HOOK_OF_KIND.values())
        hooks = []
        for attr in dir(plugin):
            opts = self._pm.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            hook_name = opts.get("specname") or attr
            if hook_name not in known:
                close = difflib.get_close_matches(hook_name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known hooks: {', '.join(known)}"
                raise _PluginFailed("invalid hook", LookupError(f"unknown hook {hook_name!r}{hint}"))
            if opts.get("wrapper") or opts.get("hookwrapper"):
                raise _PluginFailed("invalid hook", TypeError(f"{hook_name} cannot be a wrapper"))
            hooks.append(hook_name)
        try:
            self._pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise _PluginFailed("invalid hook", exc) from exc
        return tuple(sorted(set(hooks)))

    def _arguments(self, hook_name: str, register: Callable[[Any], None]) -> dict[str, Any]:
        """Every argument of ``hook_name``'s specification, by name (pluggy has checked that implementations
        name no other)."""
        assert self._pm is not None
        provided = {"register": register, **self._hook_arguments}
        names = getattr(self._pm.hook, hook_name).spec.argnames
        missing = [n for n in names if n not in provided]
        if missing:
            raise PluginLoadError(
                f"The hook specification {hook_name} has argument(s) {missing} that this plugin host does not "
                "provide; pass them as PluginHost(hook_arguments=...)."
            )
        return {n: provided[n] for n in names}

    def _run_hooks(self, plugin: object, candidate: _Candidate) -> dict[str, list[Any]]:
        """Call each registration hook of one plugin; returns kind -> specs, all or nothing."""
        assert self._pm is not None
        staged: dict[str, list[Any]] = {kind: [] for kind in HOOK_OF_KIND}
        for kind, hook_name in HOOK_OF_KIND.items():
            impls = [impl for impl in getattr(self._pm.hook, hook_name).get_hookimpls() if impl.plugin is plugin]
            for impl in impls:
                arguments = self._arguments(hook_name, _make_register(kind, hook_name, staged[kind]))
                started = time.perf_counter()
                try:
                    result = impl.function(**{name: arguments[name] for name in impl.argnames})
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    raise _PluginFailed(f"{hook_name} raised", exc) from exc
                if result is not None:
                    raise _PluginFailed(
                        f"{hook_name} returned a value",
                        TypeError(f"hooks must call register(spec) and return None, got {type(result).__name__}"),
                    )
                logger.debug(
                    "%s.%s registered %s in %.1f ms",
                    candidate.name,
                    hook_name,
                    [s.name for s in staged[kind]],
                    1e3 * (time.perf_counter() - started),
                )
        return staged

    def _miss_hint(self, kind: str, name: str) -> str:
        hints = []
        dist = FIRST_PARTY_DISTRIBUTIONS.get(kind, {}).get(name)
        if dist:
            hints.append(f"The {kind} {name!r} is provided by the distribution {dist}: pip install {dist}.")
        failed = [p.name for p in self._plugins if p.failed]
        if failed:
            hints.append(
                f"{len(failed)} plugin(s) failed to load ({', '.join(failed)}); run `subspace-hub plugins` to see why."
            )
        return " ".join(hints)

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in HOOK_OF_KIND:
            raise UnknownComponentError("component kind", kind, HOOK_OF_KIND)


def _make_register(kind: str, hook_name: str, sink: list[Any]) -> Callable[[Any], None]:
    spec_type = SPEC_TYPES[kind]

    def register(spec: Any) -> None:
        if not isinstance(spec, spec_type):
            other = next((k for k, t in SPEC_TYPES.items() if isinstance(spec, t)), None)
            where = f"; register it from {HOOK_OF_KIND[other]}" if other else ""
            raise SpecError(f"{hook_name} expects {spec_type.__name__} objects, got {type(spec).__name__}{where}.")
        if any(existing.name == spec.name for existing in sink):
            raise SpecError(f"{hook_name} registered the {kind} {spec.name!r} twice.")
        sink.append(spec)

    register.__doc__ = f"Register a {spec_type.__name__} (called from {hook_name})."
    return register


def _importer(module: str) -> Callable[[], object]:
    return lambda: importlib.import_module(module)


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _distribution_of_module(module: str) -> tuple[str | None, str | None]:
    top = module.split(".")[0]
    dists = importlib_metadata.packages_distributions().get(top) or []
    if not dists:
        return None, None
    try:
        return dists[0], importlib_metadata.version(dists[0])
    except importlib_metadata.PackageNotFoundError:
        return dists[0], None


def _info(candidate: _Candidate, **kwargs: Any) -> PluginInfo:
    return PluginInfo(
        name=candidate.name,
        module=candidate.module,
        distribution=candidate.distribution,
        version=candidate.version,
        source=candidate.source,
        **kwargs,
    )


def _describe_candidate(candidate: _Candidate) -> str:
    return _info(candidate).describe()


_trace_handler: logging.Handler | None = None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (it may be replaced after tracing starts)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _trace_logging(on: bool) -> None:
    """Log plugin loading and hook calls to stderr while ``SUBSPACE_HUB_TRACE_PLUGINS`` is set (read at each load)."""
    global _trace_handler
    if on and _trace_handler is None:
        _trace_handler = _StderrHandler()
        _trace_handler.setFormatter(logging.Formatter("[subspace-hub plugins] %(message)s"))
        logger.addHandler(_trace_handler)
        logger.setLevel(logging.DEBUG)
    elif not on and _trace_handler is not None:
        logger.removeHandler(_trace_handler)
        logger.setLevel(logging.NOTSET)
        _trace_handler = None


# -- the process-wide host ----------------------------------------------------------------------------------

_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide :class:`PluginHost`, created on first use (plugins load on the first lookup)."""
    global _host
    with _host_lock:
        if _host is None:
            _host = PluginHost()
        return _host


def reset_host() -> None:
    """Forget the loaded plugins so the next lookup discovers them again (after installing one, in tests)."""
    global _host
    with _host_lock:
        _host = None


def list_plugins() -> list[PluginInfo]:
    """Every plugin found, loaded or failed, in load order.

    >>> [p.name for p in list_plugins() if p.builtin]  # doctest: +SKIP
    ['subspace_hub.builtin.backbones', 'subspace_hub.builtin.adapters']
    """
    return get_host().plugins()


def list_components(kind: str) -> list[str]:
    """Sorted names of the registered components of ``kind``: ``"backbone"``, ``"adapter"``, ``"dataset"`` or
    ``"metric"``."""
    return list(get_host().components(kind))


def get_backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered as ``name``."""
    return get_host().get("backbone", name)


def get_adapter_spec(name: str) -> AdapterSpec:
    """The :class:`AdapterSpec` registered as ``name``."""
    return get_host().get("adapter", name)


def get_dataset(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` registered as ``name``; call ``spec.load(...)`` to get the data.

    Raises:
        UnknownComponentError: no loaded plugin registers ``name`` (the message lists the known names).
    """
    return get_host().get("dataset", name)


def get_metric(name: str) -> MetricSpec:
    """The :class:`MetricSpec` registered as ``name``; the spec is callable as ``metric(pred, gt, **options)``.

    Raises:
        UnknownComponentError: no loaded plugin registers ``name`` (the message lists the known names).

    >>> get_metric("mae")(pred, gt)  # doctest: +SKIP
    0.25
    """
    return get_host().get("metric", name)
