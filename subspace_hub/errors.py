"""The one exception family of subspace-hub.

Every failure a user can cause raises a :class:`SubspaceHubError` subclass whose message says what was wrong
and what to do about it. The CLI prints that message on one line and exits non-zero
(``SUBSPACE_HUB_DEBUG=1`` shows the traceback). Subclasses also derive from the matching builtin exception
(``ValueError``, ``LookupError``, ...) so that generic ``except`` clauses keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SubspaceHubError(Exception):
    """Base class of every error subspace-hub raises on purpose."""


class ConfigError(SubspaceHubError, ValueError):
    """A configuration, option or argument is invalid."""


class SpecError(SubspaceHubError, ValueError):
    """A component spec (BackboneSpec, MetricSpec, ...) is malformed."""


class PluginError(SubspaceHubError):
    """Base class of plugin-system errors."""


class PluginLoadError(PluginError):
    """A plugin failed to import, register or run its hooks (raised in strict mode)."""


class PluginConflictError(PluginError):
    """Two plugins claim the same plugin name or component name."""


class UnknownComponentError(SubspaceHubError, LookupError):
    """A backbone, adapter, dataset or metric name that no loaded plugin registers."""

    def __init__(self, kind: str, name: str, known: Iterable[str], *, extra: str = "") -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        parts = [f"Unknown {kind} {name!r}."]
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.6)
        if close:
            parts.append("Did you mean " + " or ".join(repr(c) for c in close) + "?")
        if self.known:
            parts.append(f"Known {kind}s: {', '.join(self.known)}.")
        else:
            parts.append(f"No {kind}s are registered.")
        if extra:
            parts.append(extra)
        super().__init__(" ".join(parts))


class CheckpointError(SubspaceHubError):
    """A checkpoint cannot be found, read or loaded."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint exists at the given local path or Hub repository."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A state dict does not fit the model: missing, unexpected or mis-shaped keys."""


class ShapeMismatchError(SubspaceHubError, ValueError):
    """Tensors that must agree in shape do not (for example a subspace bundle and a backbone)."""


class MetricInputError(SubspaceHubError, ValueError):
    """Inputs a metric cannot score: empty or non-finite point clouds, mismatched shapes, no valid pixel."""


class HubError(SubspaceHubError):
    """A call to a Hub endpoint (the embedded registry, a registry server or the public Hub) failed."""


class HubUnavailableError(HubError):
    """The Hub endpoint cannot be reached, or refused the request."""


class InvalidRepoIdError(HubError, ValueError):
    """A repo id is not of the ``namespace/name`` form the Hub accepts."""


class PublishError(HubError):
    """A publication would break a rule of the Hub side, e.g. rewrite an existing version tag."""


class ConformanceError(SubspaceHubError, AssertionError):
    """A plugin component violates the contract checked by :mod:`subspace_hub.testing`."""


class PluginWarning(UserWarning):
    """A third-party plugin was skipped because it failed; see ``subspace-hub plugins``."""
