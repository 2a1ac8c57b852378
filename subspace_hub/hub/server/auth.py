"""Tokens of the registry: who may read and write which namespaces.

``tokens.json`` in the registry root holds, per token, the sha256 of the token (tokens themselves are never
stored), a user name, the namespaces it may write and the namespaces whose private repos it may read (``"*"``:
all). Rights are exactly what the file says: a token reads public repos (unless anonymous reading is off), the
private repos of the namespaces in its ``read`` or ``write`` list, and writes only the namespaces in its ``write``
list. :meth:`TokenBook.user` reloads the file whenever it changed on disk, so ``subspace-hub registry token add``
and ``revoke`` take effect on a running server at its next request.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from subspace_hub.errors import ConfigError
from subspace_hub.hub.repo_id import validate_namespace

TOKENS_FILE = "tokens.json"
FORMAT_VERSION = 2


@dataclass(frozen=True)
class User:
    name: str
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    created: str = ""

    def can_write(self, namespace: str) -> bool:
        return "*" in self.write or namespace in self.write

    def can_read(self, namespace: str) -> bool:
        """May read the private repos of ``namespace`` (public repos need no right)."""
        return "*" in self.read or namespace in self.read or self.can_write(namespace)


@dataclass
class TokenBook:
    """The tokens of one registry root (reloaded from disk when the file changes)."""

    path: Path
    users: dict[str, User] = field(default_factory=dict)
    _stamp: tuple[int, int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> TokenBook:
        book = cls(Path(root) / TOKENS_FILE)
        book.reload()
        return book

    def reload(self) -> None:
        """Read the file again if it changed since the last read (size, mtime or inode)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            with self._lock:
                self.users, self._stamp = {}, None
            return
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if stamp == self._stamp:
            return
        data = json.loads(self.path.read_text())
        entries = data.get("tokens", {}) if data.get("version") == FORMAT_VERSION else data  # version 1: flat
        users = {
            digest: User(
                entry["name"],
                tuple(entry.get("write", ())),
                tuple(entry.get("read", ())),
                entry.get("created", ""),
            )
            for digest, entry in entries.items()
        }
        with self._lock:
            self.users, self._stamp = users, stamp

    def user(self, token: str | None) -> User | None:
        if not token:
            return None
        self.reload()
        return self.users.get(hashlib.sha256(token.encode()).hexdigest())

    def add(
        self,
        name: str,
        *,
        write: tuple[str, ...] | None = None,
        read: tuple[str, ...] = (),
        token: str | None = None,
    ) -> str:
        """Register a new token (generated unless given) and save; returns the token (shown once). ``write``
        defaults to the user's own namespace; ``()`` makes a read-only token."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"Invalid user name {name!r}: letters, digits, '-' and '_'.")
        write = (name,) if write is None else tuple(write)
        for namespace in (*write, *read):
            if namespace != "*":
                validate_namespace(namespace)
        token = token or "shub_" + secrets.token_urlsafe(32)
        self.reload()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.users[hashlib.sha256(token.encode()).hexdigest()] = User(name, write, tuple(read), created)
        self.save()
        return token

    def revoke(self, name: str) -> int:
        """Remove every token of user ``name`` (or the one token whose hash starts with ``name``, 8+ hex digits);
        returns how many were removed."""
        self.reload()
        doomed = [d for d, u in self.users.items() if u.name == name or (len(name) >= 8 and d.startswith(name))]
        for digest in doomed:
            del self.users[digest]
        if doomed:
            self.save()
        return len(doomed)

    def save(self) -> None:
        from subspace_hub.fileio import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tokens = {
            d: {"name": u.name, "write": list(u.write), "read": list(u.read), "created": u.created}
            for d, u in self.users.items()
        }
        data = {"version": FORMAT_VERSION, "tokens": tokens}
        # secrets (their hashes): owner only
        atomic_write(self.path, lambda p: p.write_text(json.dumps(data, indent=1)), mode=0o600)
        self._stamp = None  # the next user() reads what was written
