"""The one rule for Hub repo ids, shared by the client, the registry server and registry entries."""

from __future__ import annotations

import re

from subspace_hub.errors import InvalidRepoIdError

_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
"""One half of a repo id: 1-96 letters, digits, ``.``, ``_`` and ``-``, starting and ending with a letter or digit."""


def parse_repo_id(text: str) -> tuple[str, str]:
    """``namespace/name`` -> ``(namespace, name)``.

    Raises:
        InvalidRepoIdError: ``text`` is not two valid parts joined by one ``/`` (``..`` is never valid).

    >>> parse_repo_id("subspace-hub/vggt-texture")
    ('subspace-hub', 'vggt-texture')
    """
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) != 2 or not all(_PART.fullmatch(p) and ".." not in p for p in parts):
        raise InvalidRepoIdError(
            f"Invalid repo id {text!r}: use namespace/name, each part 1-96 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit (e.g. my-lab/vggt-texture)."
        )
    return parts[0], parts[1]


def validate_namespace(text: str) -> str:
    """``text`` if it is a valid namespace (a user or organisation name: one half of a repo id), else raise
    :class:`InvalidRepoIdError`."""
    if not isinstance(text, str) or not _PART.fullmatch(text) or ".." in text:
        raise InvalidRepoIdError(
            f"Invalid namespace {text!r}: 1-96 letters, digits, '.', '_' or '-', starting and ending with a letter "
            "or digit (e.g. my-lab)."
        )
    return text


def is_repo_id(text: str) -> bool:
    """Whether ``text`` is a valid ``namespace/name`` repo id (see :func:`parse_repo_id`)."""
    try:
        parse_repo_id(text)
    except InvalidRepoIdError:
        return False
    return True
