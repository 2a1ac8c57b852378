"""The registry's storage: content-addressed blobs, immutable commits, atomically updated refs.

Layout under the root::

    blobs/ab/<sha256>            file contents, named by their sha256 (shared by every repo)
    blobs/ab/<sha256>.json       {"size", "sha1"}: the git-blob id, the ETag of regular files
    repos/<type>/<ns>/<name>/
        repo.json                {"created", "private"}
        commits/<id>.json        one immutable manifest per commit: parents, message, author, date, files
        refs.json                {"branches": {...}, "tags": {...}}, replaced atomically
    tmp/                         uploads in progress (never read)

A write goes to ``tmp`` first, is hashed while it streams, verified against the expected hash, and renamed into
place (and counts as verified until the file changes); a commit is written in full before the ref moves to it,
under the repo's lock, and only if the branch still points where the writer expected (optimistic concurrency).
A crash at any point therefore leaves the previous commit intact. A blob is hashed again before it is served
whenever its size or mtime differ from when it was last verified (and at least once per server process), so a
corrupted blob is an error, never silently served.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock

from subspace_hub.errors import InvalidRepoIdError, SubspaceHubError
from subspace_hub.fileio import atomic_write
from subspace_hub.hub.repo_id import parse_repo_id

REPO_TYPES = ("model", "dataset", "space")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20


class ApiError(SubspaceHubError):
    """A request the registry server refuses; ``status`` and ``code`` become the HTTP answer (never raised to a
    client: :mod:`subspace_hub.hub.client` turns HTTP errors into :class:`subspace_hub.errors.HubError`)."""

    status = 400
    code: str | None = None

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class RepoNotFound(ApiError):
    status, code = 404, "RepoNotFound"


class RevisionNotFound(ApiError):
    status, code = 404, "RevisionNotFound"


class EntryNotFound(ApiError):
    status, code = 404, "EntryNotFound"


class Conflict(ApiError):
    status = 409


class CorruptBlob(ApiError):
    status = 500


def validate_repo_id(repo_id: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name) by :func:`subspace_hub.hub.repo_id.parse_repo_id`; a refusal is a 400."""
    try:
        return parse_repo_id(repo_id)
    except InvalidRepoIdError as exc:
        raise ApiError(str(exc), 400, "InvalidRepoId") from None


def validate_path(path: str) -> str:
    """A file path inside a repo: relative, ``/``-separated, no ``..``, ``.`` or empty segments, no ``.git``."""
    if not path or len(path) > 1000 or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ApiError(
            f"Invalid path {path!r}: paths are relative, '/'-separated and at most 1000 characters.", 400, "InvalidPath"
        )
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments) or ".git" in segments:
        raise ApiError(f"Invalid path {path!r}: no empty, '.', '..' or '.git' segments.", 400, "InvalidPath")
    return path


def validate_ref_name(name: str) -> str:
    if (
        not name
        or len(name) > 200
        or name.startswith(("-", "/"))
        or ".." in name
        or any(c in name for c in " ~^:?*[\\\x00")
        or name.endswith((".", "/", ".lock"))
    ):
        raise ApiError(f"Invalid branch or tag name {name!r}.", 400, "InvalidRef")
    return name


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


@dataclass(frozen=True)
class FileEntry:
    """One file of a commit."""

    sha256: str
    sha1: str
    size: int
    lfs: bool

    def as_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "sha1": self.sha1, "size": self.size, "lfs": self.lfs}


@dataclass(frozen=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    title: str
    message: str
    author: str
    date: str
    files: dict[str, FileEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """A change in a commit: add ``path`` with blob ``sha256`` (``lfs`` as uploaded), or delete a file/folder."""

    kind: str  # "add" | "delete_file" | "delete_folder"
    path: str
    sha256: str | None = None
    lfs: bool = False


class BlobStore:
    """Content-addressed, verified file storage."""

    def __init__(self, root: Path) -> None:
        self.root = root / "blobs"
        self.tmp = root / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._verified: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{64}", sha256)) and self.path(sha256).is_file()

    def meta(self, sha256: str) -> dict[str, Any]:
        meta_path = self.path(sha256).with_suffix(".json")
        if not meta_path.is_file():
            raise EntryNotFound(f"No blob {sha256}.")
        return json.loads(meta_path.read_text())

    def write(
        self,
        stream: BinaryIO | Iterable[bytes],
        size: int | None = None,
        expected_sha256: str | None = None,
        max_size: int | None = None,
    ) -> tuple[str, int]:
        """Store bytes from a file-like ``stream`` (``size`` bytes) or an iterable of chunks; returns (sha256, size).

        Raises:
            ApiError: the content does not hash to ``expected_sha256``, is shorter than ``size`` or larger than
                ``max_size``. Nothing is stored then.
        """
        sha256 = hashlib.sha256()
        # The git-blob sha1 hashes a header with the size first: in the same pass when the size is known.
        sha1 = hashlib.sha1(b"blob %d\x00" % size) if size is not None else None
        temporary = self.tmp / f"upload-{uuid.uuid4().hex}"
        written = 0
        try:
            with open(temporary, "wb") as out:
                for chunk in _chunks(stream, size):
                    written += len(chunk)
                    if max_size is not None and written > max_size:
                        raise ApiError(f"Upload larger than the limit of {max_size} bytes.", 413, "TooLarge")
                    sha256.update(chunk)
                    if sha1 is not None:
                        sha1.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size is not None and written != size:
                raise ApiError(f"Upload ended after {written} of {size} bytes.", 400, "Truncated")
            digest = sha256.hexdigest()
            if expected_sha256 is not None and digest != expected_sha256:
                raise ApiError(f"Upload hashes to {digest}, not {expected_sha256}.", 400, "HashMismatch")
            final = self.path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            if not final.is_file():
                if sha1 is None:  # size unknown up front: hash the body again from disk
                    sha1 = hashlib.sha1(b"blob %d\x00" % written)
                    with open(temporary, "rb") as f:
                        for chunk in iter(lambda: f.read(_CHUNK), b""):
                            sha1.update(chunk)
                meta = final.with_suffix(".json")
                tmp_meta = self.tmp / f"meta-{uuid.uuid4().hex}"
                tmp_meta.write_text(json.dumps({"size": written, "sha1": sha1.hexdigest()}))
                os.replace(tmp_meta, meta)
                os.replace(temporary, final)
                stat = final.stat()
                with self._lock:  # hashed as it was written: no need to hash it again until the file changes
                    self._verified[digest] = (stat.st_size, stat.st_mtime_ns)
            return digest, written
        finally:
            temporary.unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.write([data], len(data))

    def verify(self, sha256: str) -> Path:
        """The blob's path after checking its content hashes to its name (cached until the file changes)."""
        path = self.path(sha256)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise EntryNotFound(f"Blob {sha256} is missing from the store.") from None
        key = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if self._verified.get(sha256) == key:
                return path
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise CorruptBlob(
                f"Blob {sha256} is corrupted on disk (its content hashes to {digest.hexdigest()}); restore it from a "
                "backup.",
                500,
                "CorruptBlob",
            )
        with self._lock:
            self._verified[sha256] = key
        return path


def _chunks(stream: BinaryIO | Iterable[bytes], size: int | None) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        remaining = size
        while remaining is None or remaining > 0:
            chunk = stream.read(_CHUNK if remaining is None else min(_CHUNK, remaining))  # type: ignore[union-attr]
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    else:
        yield from stream  # type: ignore[misc]


class RepoStore:
    """Repos of every type over one :class:`BlobStore`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- repos ------------------------------------------------------------------------------------------------

    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        if repo_type not in REPO_TYPES:
            raise ApiError(f"Unknown repo type {repo_type!r}; use model, dataset or space.", 400)
        namespace, name = validate_repo_id(repo_id)
        return self.root / "repos" / repo_type / namespace / name

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.repo_dir(repo_type, repo_id) / "repo.json").is_file()

    def _require(self, repo_type: str, repo_id: str) -> Path:
        directory = self.repo_dir(repo_type, repo_id)
        if not (directory / "repo.json").is_file():
            raise RepoNotFound(f"Repository {repo_id} ({repo_type}) not found.")
        return directory

    @contextlib.contextmanager
    def locked(self, directory: Path) -> Iterator[None]:
        """Exclusive access to one repo: a thread lock in this process plus a file lock across processes
        (``filelock``: flock on POSIX, LockFileEx on Windows)."""
        with self._locks_guard:
            lock = self._locks.setdefault(directory, threading.Lock())
        with lock:
            directory.mkdir(parents=True, exist_ok=True)
            with FileLock(directory / ".lock"):
                yield

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool = False, author: str = "") -> str:
        """Create with an initial empty commit on ``main``; returns its id. :class:`Conflict` if it exists."""
        directory = self.repo_dir(repo_type, repo_id)
        with self.locked(directory):
            if (directory / "repo.json").is_file():
                raise Conflict(f"Repository {repo_id} already exists.")
            (directory / "commits").mkdir(parents=True, exist_ok=True)
            commit = self._write_commit(directory, (), "initial commit", "", author, {})
            _atomic_json(directory / "refs.json", {"branches": {"main": commit.id}, "tags": {}})
            _atomic_json(directory / "repo.json", {"created": now(), "private": private})
            return commit.id

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        directory = self._require(repo_type, repo_id)
        with self.locked(directory):
            graveyard = self.root / "tmp" / f"deleted-{uuid.uuid4().hex}"
            os.replace(directory, graveyard)  # atomic disappearance, then cleanup
        shutil.rmtree(graveyard, ignore_errors=True)

    def repo_meta(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        return json.loads((self._require(repo_type, repo_id) / "repo.json").read_text())

    def list_repos(self, repo_type: str) -> list[str]:
        base = self.root / "repos" / repo_type
        if not base.is_dir():
            return []
        return sorted(
            f"{ns.name}/{r.name}"
            for ns in base.iterdir()
            if ns.is_dir()
            for r in ns.iterdir()
            if (r / "repo.json").is_file()
        )

    # -- refs and commits -------------------------------------------------------------------------------------

    def refs(self, repo_type: str, repo_id: str) -> dict[str, dict[str, str]]:
        return json.loads((self._require(repo_type, repo_id) / "refs.json").read_text())

    def resolve(self, repo_type: str, repo_id: str, revision: str | None) -> str:
        """A branch, tag, full commit id (or an unambiguous prefix of 7+ hex) -> commit id."""
        directory = self._require(repo_type, repo_id)
        revision = revision or "main"
        refs = json.loads((directory / "refs.json").read_text())
        for prefix in ("", "refs/heads/", "refs/tags/"):
            name = revision.removeprefix(prefix) if prefix else revision
            if prefix != "refs/tags/" and name in refs["branches"]:
                return refs["branches"][name]
            if prefix != "refs/heads/" and name in refs["tags"]:
                return refs["tags"][name]
        if _HEX40.fullmatch(revision) and (directory / "commits" / f"{revision}.json").is_file():
            return revision
        if re.fullmatch(r"[0-9a-f]{7,39}", revision):
            matches = [p.stem for p in (directory / "commits").glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise RevisionNotFound(f"Invalid rev id: {revision} (no branch, tag or commit of {repo_id} has that name).")

    def commit(self, repo_type: str, repo_id: str, commit_id: str) -> Commit:
        path = self._require(repo_type, repo_id) / "commits" / f"{commit_id}.json"
        if not path.is_file():
            raise RevisionNotFound(f"No commit {commit_id} in {repo_id}.")
        data = json.loads(path.read_text())
        return Commit(
            data["id"],
            tuple(data["parents"]),
            data["title"],
            data["message"],
            data["author"],
            data["date"],
            {p: FileEntry(**e) for p, e in data["files"].items()},
        )

    def history(self, repo_type: str, repo_id: str, revision: str | None) -> list[Commit]:
        commits, current = [], self.resolve(repo_type, repo_id, revision)
        while current:
            commit = self.commit(repo_type, repo_id, current)
            commits.append(commit)
            current = commit.parents[0] if commit.parents else ""
        return commits

    def _write_commit(
        self,
        directory: Path,
        parents: tuple[str, ...],
        title: str,
        message: str,
        author: str,
        files: dict[str, FileEntry],
    ) -> Commit:
        body = {
            "parents": list(parents),
            "title": title,
            "message": message,
            "author": author,
            "date": now(),
            "files": {p: e.as_dict() for p, e in sorted(files.items())},
            "nonce": uuid.uuid4().hex,
        }
        commit_id = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        _atomic_json(directory / "commits" / f"{commit_id}.json", {"id": commit_id, **body})
        return Commit(commit_id, parents, title, message, author, body["date"], files)

    def create_commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        operations: list[Operation],
        *,
        title: str,
        message: str = "",
        author: str = "",
        parent: str | None = None,
    ) -> Commit:
        """Apply ``operations`` on top of ``branch`` in a new commit and move the branch to it.

        Raises:
            Conflict (412): ``parent`` is given and the branch has moved past it.
            EntryNotFound: an added blob was never uploaded, or a deleted path does not exist.
        """
        directory = self._require(repo_type, repo_id)
        for op in operations:
            validate_path(op.path.rstrip("/") if op.kind == "delete_folder" else op.path)
            if op.kind == "add" and not self.blobs.exists(op.sha256 or ""):
                raise EntryNotFound(f"{op.path}: its content ({op.sha256}) was not uploaded first.", 400)
        with self.locked(directory):
            refs = json.loads((directory / "refs.json").read_text())
            if branch not in refs["branches"]:
                raise RevisionNotFound(f"No branch {branch!r} in {repo_id}.")
            head = refs["branches"][branch]
            if parent is not None and not head.startswith(parent):
                raise ApiError(
                    f"The branch {branch} moved: its head is {head}, the commit was based on {parent}. Pull and retry.",
                    412,
                    "ParentMismatch",
                )
            files = dict(self.commit(repo_type, repo_id, head).files)
            for op in operations:
                if op.kind == "add":
                    meta = self.blobs.meta(op.sha256 or "")
                    files[op.path] = FileEntry(op.sha256 or "", meta["sha1"], meta["size"], op.lfs)
                elif op.kind == "delete_file":
                    if files.pop(op.path, None) is None:
                        raise EntryNotFound(f"Cannot delete {op.path}: no such file in {branch}.")
                else:
                    folder = op.path.rstrip("/") + "/"
                    doomed = [p for p in files if p.startswith(folder)]
                    if not doomed:
                        raise EntryNotFound(f"Cannot delete folder {op.path}: it is empty or missing.")
                    for p in doomed:
                        del files[p]
            commit = self._write_commit(directory, (head,), title, message, author, files)
            refs["branches"][branch] = commit.id
            _atomic_json(directory / "refs.json", refs)  # the moment the commit becomes visible
            return commit

    def set_ref(
        self, repo_type: str, repo_id: str, kind: str, name: str, target: str | None, *, exist_ok: bool = False
    ) -> None:
        """Create (``target`` a revision) or delete (``target`` None) a branch or tag."""
        directory = self._require(repo_type, repo_id)
        validate_ref_name(name)
        with self.locked(directory):
            refs = json.loads((directory / "refs.json").read_text())
            table = refs["branches" if kind == "branch" else "tags"]
            if target is None:
                if name not in table:
                    raise RevisionNotFound(f"No {kind} {name!r} in {repo_id}.")
                if kind == "branch" and name == "main":
                    raise ApiError("The main branch cannot be deleted.", 403)
                del table[name]
            else:
                commit_id = self.resolve(repo_type, repo_id, target)
                if name in table and not exist_ok:
                    raise Conflict(f"{kind.capitalize()} {name!r} already exists in {repo_id} (at {table[name][:12]}).")
                table[name] = commit_id
            _atomic_json(directory / "refs.json", refs)


def _atomic_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=1)))
