"""Downloads from a Hub endpoint with huggingface_hub.

The endpoint is ``SUBSPACE_HUB_ENDPOINT`` when set (a registry server or the public Hub), otherwise
huggingface_hub's own default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from subspace_hub.errors import CheckpointNotFoundError

ENDPOINT_ENV = "SUBSPACE_HUB_ENDPOINT"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def endpoint() -> str | None:
    """The configured Hub endpoint URL, or ``None`` for huggingface_hub's default."""
    return os.environ.get(ENDPOINT_ENV) or None


def is_repo_id(text: str) -> bool:
    """Whether ``text`` has the ``namespace/name`` form of a Hub repo id."""
    return bool(_REPO_ID.fullmatch(text))


def download(
    repo_id: str,
    revision: str | None = None,
    *,
    allow_patterns: Sequence[str] | None = None,
    repo_type: str = "model",
) -> Path:
    """A local snapshot of ``repo_id`` at ``revision`` (only files matching ``allow_patterns``).

    Raises:
        CheckpointNotFoundError: the repo or revision does not exist, or cannot be reached.
    """
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(
            huggingface_hub.snapshot_download(
                repo_id,
                revision=revision,
                repo_type=repo_type,
                allow_patterns=list(allow_patterns) if allow_patterns else None,
                endpoint=endpoint(),
            )
        )
    except RevisionNotFoundError as exc:
        raise CheckpointNotFoundError(f"Hub repo {repo_id!r} has no revision {revision!r}.") from exc
    except RepositoryNotFoundError as exc:
        raise CheckpointNotFoundError(f"No Hub repo {repo_id!r} (or no access to it; check your token).") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise CheckpointNotFoundError(f"Cannot download {repo_id!r}: {exc}") from exc
