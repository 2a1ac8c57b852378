"""Tokens of the registry: who may read and write which namespaces.

``tokens.json`` in the registry root maps the sha256 of each token (tokens themselves are never stored) to a
user name and the namespaces the token may write (``"*"``: all) and read. Reading public repos needs no token
unless anonymous reading is switched off.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from subspace_hub.errors import ConfigError
from subspace_hub.hub.repo_id import validate_namespace

TOKENS_FILE = "tokens.json"


@dataclass(frozen=True)
class User:
    name: str
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ("*",)

    def can_write(self, namespace: str) -> bool:
        return "*" in self.write or namespace in self.write or namespace == self.name

    def can_read(self, namespace: str) -> bool:
        return "*" in self.read or namespace in self.read or self.can_write(namespace)


@dataclass
class TokenBook:
    """The tokens of one registry root."""

    path: Path
    users: dict[str, User] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> TokenBook:
        path = Path(root) / TOKENS_FILE
        book = cls(path)
        if path.is_file():
            for digest, entry in json.loads(path.read_text()).items():
                book.users[digest] = User(
                    entry["name"], tuple(entry.get("write", ())), tuple(entry.get("read", ("*",)))
                )
        return book

    def user(self, token: str | None) -> User | None:
        if not token:
            return None
        return self.users.get(hashlib.sha256(token.encode()).hexdigest())

    def add(
        self, name: str, *, write: tuple[str, ...] = (), read: tuple[str, ...] = ("*",), token: str | None = None
    ) -> str:
        """Register a new token (generated unless given) and save; returns the token (shown once)."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"Invalid user name {name!r}: letters, digits, '-' and '_'.")
        for namespace in (*write, *read):
            if namespace != "*":
                validate_namespace(namespace)
        token = token or "shub_" + secrets.token_urlsafe(32)
        self.users[hashlib.sha256(token.encode()).hexdigest()] = User(name, write, read)
        self.save()
        return token

    def save(self) -> None:
        from subspace_hub.fileio import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {d: {"name": u.name, "write": list(u.write), "read": list(u.read)} for d, u in self.users.items()}
        atomic_write(self.path, lambda p: p.write_text(json.dumps(data, indent=1)), mode=0o600)  # secrets: owner only
