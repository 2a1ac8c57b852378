"""The registry's storage: content-addressed blobs, immutable commits, atomically updated refs.

Layout under the root::

    blobs/ab/<sha256>            file contents, named by their sha256 (shared by every repo)
    blobs/ab/<sha256>.json       {"size", "sha1"}: the git-blob id, the ETag of regular files (LFS uploads leave
                                 "sha1" out until the bytes are committed as a regular file)
    repos/<type>/<ns>/<name>/
        repo.json                {"created", "private"}
        commits/<id>.json        one immutable manifest per commit: parents, message, author, date, files
        refs.json                {"branches": {...}, "tags": {...}}, replaced atomically
    possession/<user>/<sha256>   markers: this user uploaded these bytes (may commit them by hash)
    tmp/<session>/               uploads in progress of one server process (swept once that process is gone)

A write goes to ``tmp`` first, is hashed while it streams, verified against the expected hash, and renamed into
place (and counts as verified until the file changes); a commit is written in full before the ref moves to it,
under the repo's lock, and only if the branch still points where the writer expected (optimistic concurrency).
A crash at any point therefore leaves the previous commit intact. A blob is hashed again before it is served
whenever its size, mtime, ctime or inode differ from when it was last verified (a write that restores the mtime
still moves the ctime), when the last verification is older than ``verify_interval``, and at least once per server
process, so a corrupted blob is an error, never silently served; :meth:`RepoStore.fsck` hashes everything.

Blobs are shared by every repo, so who may name a blob in a commit is checked: its bytes were uploaded by the
committer (the possession markers) or the blob is reachable from a repo the committer may read. :meth:`RepoStore.gc`
removes blobs no commit of any repo references (after a grace period for uploads not yet committed).
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
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
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
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Unicode categories a path may not hold: controls (Cc); format characters (Cf: bidirectional overrides and isolates,
# zero-width characters, the byte-order mark), which make a name look like another; line and paragraph separators.
_FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


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
    status, code = 500, "CorruptBlob"


def validate_repo_id(repo_id: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name) by :func:`subspace_hub.hub.repo_id.parse_repo_id`; a refusal is a 400."""
    try:
        return parse_repo_id(repo_id)
    except InvalidRepoIdError as exc:
        raise ApiError(str(exc), code="InvalidRepoId") from None


def validate_path(path: str) -> str:
    """A file path inside a repo: relative, ``/``-separated, no ``..``, ``.`` or empty segments, no ``.git``; Unicode
    in NFC without control, bidirectional-override or zero-width characters (names that look alike are alike)."""
    if not path or len(path) > 1000 or path.startswith("/") or "\\" in path:
        raise ApiError(
            f"Invalid path {path!r}: paths are relative, '/'-separated and at most 1000 characters.", code="InvalidPath"
        )
    bad = sorted({f"U+{ord(c):04X}" for c in path if unicodedata.category(c) in _FORBIDDEN_CATEGORIES})
    if bad:
        raise ApiError(
            f"Invalid path {path!r}: control or invisible characters ({', '.join(bad)}) are not allowed.",
            code="InvalidPath",
        )
    if unicodedata.normalize("NFC", path) != path:
        raise ApiError(
            f"Invalid path {path!r}: not in Unicode NFC; normalise it (unicodedata.normalize('NFC', path)).",
            code="InvalidPath",
        )
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments) or ".git" in segments:
        raise ApiError(f"Invalid path {path!r}: no empty, '.', '..' or '.git' segments.", code="InvalidPath")
    return path


def validate_ref_name(name: str) -> str:
    """A branch or tag name git would accept that cannot be mistaken for something else: not a full commit id
    (40 hex digits) or sha256, not ``refs/...``."""
    if (
        not name
        or len(name) > 200
        or name.startswith(("-", "/", "refs/"))
        or ".." in name
        or any(c in name for c in " ~^:?*[\\\x00")
        or any(unicodedata.category(c) in ("Cc", "Cf") for c in name)
        or name.endswith((".", "/", ".lock"))
    ):
        raise ApiError(f"Invalid branch or tag name {name!r}.", code="InvalidRef")
    if re.fullmatch(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}", name):
        raise ApiError(
            f"Invalid branch or tag name {name!r}: it reads as a commit id, and would shadow one.", code="InvalidRef"
        )
    return name


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git stores in place of an LFS file (its git-blob id is the LFS file's ``blobId``)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


@dataclass(frozen=True)
class FileEntry:
    """One file of a commit."""

    sha256: str
    sha1: str
    """The git-blob id: of the content for a regular file, of its :func:`lfs_pointer` for an LFS file."""
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

    def __post_init__(self) -> None:
        if self.kind not in ("add", "delete_file", "delete_folder"):
            raise ValueError(f"Unknown operation kind {self.kind!r}: add, delete_file or delete_folder.")


class BlobStore:
    """Content-addressed, verified file storage. Each process writes its uploads in progress to its own
    ``tmp/<session>/`` folder, held by a lock for the process's life; opening a store removes the folders whose
    process is gone (a killed upload leaves nothing behind across restarts)."""

    def __init__(self, root: Path, *, verify_interval: float = 24 * 3600) -> None:
        self.root = root / "blobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.verify_interval = verify_interval
        self._verified: dict[str, tuple[tuple[int, ...], float]] = {}
        self._lock = threading.Lock()
        tmp_root = root / "tmp"
        tmp_root.mkdir(exist_ok=True)  # root exists: it holds blobs/
        sweep_temporary(tmp_root)
        self.tmp = tmp_root / f"session-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self._session_lock = FileLock(self.tmp / ".lock")
        self._session_lock.acquire()

    def close(self) -> None:
        """Give up this process's upload folder (what is in it is abandoned)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._session_lock.release()

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return bool(_SHA256.fullmatch(sha256)) and self.path(sha256).is_file()

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
        *,
        git_sha1: bool = True,
    ) -> tuple[str, int]:
        """Store bytes from a file-like ``stream`` (``size`` bytes) or an iterable of chunks; returns (sha256, size).
        ``git_sha1=False`` (LFS uploads, which git names by their pointer) skips the content's git-blob id, a second
        hash of every byte; :meth:`git_sha1` computes it if the bytes are ever committed as a regular file.

        Raises:
            ApiError: the content does not hash to ``expected_sha256``, is shorter than ``size`` or larger than
                ``max_size``. Nothing is stored then.
        """
        sha256 = hashlib.sha256()
        # The git-blob sha1 hashes a header with the size first: in the same pass when the size is known.
        sha1 = hashlib.sha1(b"blob %d\x00" % size) if size is not None and git_sha1 else None
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
                raise ApiError(f"Upload ended after {written} of {size} bytes.", code="Truncated")
            digest = sha256.hexdigest()
            if expected_sha256 is not None and digest != expected_sha256:
                raise ApiError(f"Upload hashes to {digest}, not {expected_sha256}.", code="HashMismatch")
            final = self.path(digest)
            final.parent.mkdir(exist_ok=True)
            if not final.is_file():
                meta: dict[str, Any] = {"size": written}
                if sha1 is not None:
                    meta["sha1"] = sha1.hexdigest()
                elif git_sha1:  # size unknown up front: hash the body again from disk
                    meta["sha1"] = _git_sha1_of_file(temporary, written)
                self._write_meta(final, meta)  # the meta first: a blob file without its meta never exists
                os.replace(temporary, final)
                fsync_dir(final.parent)
                with self._lock:  # hashed as it was written: no need to hash it again until the file changes
                    self._verified[digest] = (_stamp(final), time.time())
            else:
                os.utime(final)  # a fresh upload of known bytes: the grace period of gc starts again
            return digest, written
        finally:
            temporary.unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.write([data], len(data))

    def _write_meta(self, blob: Path, meta: dict[str, Any]) -> None:
        tmp_meta = self.tmp / f"meta-{uuid.uuid4().hex}"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, blob.with_suffix(".json"))

    def git_sha1(self, sha256: str) -> str:
        """The git-blob id of a stored blob's content: from its meta, or hashed from disk once and recorded there
        (a blob uploaded through LFS has none until it is committed as a regular file)."""
        meta = self.meta(sha256)
        if "sha1" not in meta:
            meta["sha1"] = _git_sha1_of_file(self.verify(sha256), meta["size"])
            self._write_meta(self.path(sha256), meta)
        return meta["sha1"]

    def verify(self, sha256: str, *, force: bool = False) -> Path:
        """The blob's path after checking its content hashes to its name (cached while the file's size, mtime,
        ctime and inode are unchanged, for at most ``verify_interval`` seconds; ``force``: hash it now)."""
        path = self.path(sha256)
        try:
            stamp = _stamp(path)
        except FileNotFoundError:
            raise EntryNotFound(f"Blob {sha256} is missing from the store.") from None
        with self._lock:
            cached = self._verified.get(sha256)
        if not force and cached is not None and cached[0] == stamp and time.time() - cached[1] < self.verify_interval:
            return path
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            with self._lock:
                self._verified.pop(sha256, None)
            raise CorruptBlob(
                f"Blob {sha256} is corrupted on disk (its content hashes to {digest.hexdigest()}); restore it from a "
                "backup."
            )
        with self._lock:
            self._verified[sha256] = (stamp, time.time())
        return path

    def all(self) -> Iterator[str]:
        """Every stored blob's sha256."""
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if _SHA256.fullmatch(path.name):
                        yield path.name

    def remove(self, sha256: str) -> None:
        """Delete a blob: the content first, then its meta (a crash in between leaves a meta without content, which
        :meth:`RepoStore.gc` removes next time; never content without meta)."""
        path = self.path(sha256)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        fsync_dir(path.parent)
        with self._lock:
            self._verified.pop(sha256, None)


def _stamp(path: Path) -> tuple[int, ...]:
    stat = path.stat()
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sweep_temporary(tmp_root: Path) -> int:
    """Remove the ``tmp`` folders of processes that are gone (their lock can be taken) and loose files left by
    older versions; returns how many entries were removed."""
    from filelock import Timeout

    removed = 0
    for entry in tmp_root.iterdir():
        if entry.is_dir() and entry.name.startswith("session-"):
            lock = FileLock(entry / ".lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # a live process's uploads
            try:
                shutil.rmtree(entry, ignore_errors=True)
            finally:
                lock.release()
            removed += 1
        elif entry.is_dir() and entry.name.startswith("deleted-"):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        elif entry.is_file() and entry.name.startswith(("upload-", "meta-")):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _git_sha1_of_file(path: Path, size: int) -> str:
    sha1 = hashlib.sha1(b"blob %d\x00" % size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha1.update(chunk)
    return sha1.hexdigest()


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
    """Repos of every type over one :class:`BlobStore`, with the index of which repos reference which blobs."""

    def __init__(self, root: str | os.PathLike[str], *, verify_interval: float = 24 * 3600) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root, verify_interval=verify_interval)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._index: dict[str, set[str]] | None = None  # sha256 -> repo keys ("type/ns/name") referencing it
        self._index_lock = threading.Lock()

    def close(self) -> None:
        self.blobs.close()

    # -- which repos reference a blob ---------------------------------------------------------------------------

    def _repo_key(self, repo_type: str, repo_id: str) -> str:
        return f"{repo_type}/{repo_id}"

    def _build_index(self) -> dict[str, set[str]]:
        index: dict[str, set[str]] = {}
        for repo_type in REPO_TYPES:
            for repo_id in self.list_repos(repo_type):
                for sha256 in self._repo_blobs(repo_type, repo_id):
                    index.setdefault(sha256, set()).add(self._repo_key(repo_type, repo_id))
        return index

    def _repo_blobs(self, repo_type: str, repo_id: str) -> set[str]:
        """Every blob any commit of the repo references (history included: old revisions stay downloadable)."""
        out: set[str] = set()
        for path in (self.repo_dir(repo_type, repo_id) / "commits").glob("*.json"):
            try:
                files = json.loads(path.read_text())["files"]
            except (OSError, ValueError, KeyError):
                continue  # fsck reports it
            out.update(entry["sha256"] for entry in files.values())
        return out

    def index(self) -> dict[str, set[str]]:
        with self._index_lock:
            if self._index is None:
                self._index = self._build_index()
            return self._index

    def repos_referencing(self, sha256: str) -> set[str]:
        """Repo keys (``type/namespace/name``) with a commit that references the blob."""
        return set(self.index().get(sha256, ()))

    def referenced_by(self, repo_type: str, repo_id: str, sha256: str) -> bool:
        return self._repo_key(repo_type, repo_id) in self.index().get(sha256, ())

    def _index_add(self, repo_type: str, repo_id: str, blobs: Iterable[str]) -> None:
        key = self._repo_key(repo_type, repo_id)
        index = self.index()
        with self._index_lock:
            for sha256 in blobs:
                index.setdefault(sha256, set()).add(key)

    def _index_drop_repo(self, repo_type: str, repo_id: str) -> None:
        key = self._repo_key(repo_type, repo_id)
        index = self.index()
        with self._index_lock:
            for sha256 in [s for s, keys in index.items() if key in keys]:
                index[sha256].discard(key)
                if not index[sha256]:
                    del index[sha256]

    # -- possession: who uploaded which bytes ---------------------------------------------------------------

    def record_possession(self, user: str, sha256: str) -> None:
        """``user`` uploaded these bytes (an LFS PUT that hashed to ``sha256``): they may commit them by hash."""
        marker = self.root / "possession" / user / sha256
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    def possesses(self, user: str, sha256: str) -> bool:
        return bool(_SHA256.fullmatch(sha256)) and (self.root / "possession" / user / sha256).is_file()

    def gc_lock(self) -> FileLock:
        """Held by a commit while it checks and records its blobs, and by :meth:`gc` while it deletes: a blob is
        never collected between a commit's check and the commit becoming visible."""
        return FileLock(self.root / "gc.lock")

    # -- repos ------------------------------------------------------------------------------------------------

    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        if repo_type not in REPO_TYPES:
            raise ApiError(f"Unknown repo type {repo_type!r}; use model, dataset or space.")
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
            (directory / "commits").mkdir(exist_ok=True)  # a creation a crash cut short may have made it
            commit = self._write_commit(directory, (), "initial commit", "", author, {})
            _atomic_json(directory / "refs.json", {"branches": {"main": commit.id}, "tags": {}})
            _atomic_json(directory / "repo.json", {"created": now(), "private": private})
            return commit.id

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        directory = self._require(repo_type, repo_id)
        with self.locked(directory):
            graveyard = self.blobs.tmp / f"deleted-{uuid.uuid4().hex}"
            os.replace(directory, graveyard)  # atomic disappearance, then cleanup
            fsync_dir(directory.parent)
        shutil.rmtree(graveyard, ignore_errors=True)
        self._index_drop_repo(repo_type, repo_id)

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
        # a full commit id is that commit, whatever a ref is called (ref names of 40 hex digits are refused)
        if _HEX40.fullmatch(revision) and (directory / "commits" / f"{revision}.json").is_file():
            return revision
        refs = json.loads((directory / "refs.json").read_text())
        for prefix in ("", "refs/heads/", "refs/tags/"):
            name = revision.removeprefix(prefix)
            if prefix and not revision.startswith(prefix):
                continue
            if prefix != "refs/tags/" and name in refs["branches"]:
                return refs["branches"][name]
            if prefix != "refs/heads/" and name in refs["tags"]:
                return refs["tags"][name]
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
        may_use: Callable[[str], bool] | None = None,
    ) -> Commit:
        """Apply ``operations`` on top of ``branch`` in a new commit and move the branch to it.

        ``may_use(sha256)`` says whether the committer may name an existing blob it did not send in this commit
        (LFS files); default: any blob.

        Raises:
            Conflict (412): ``parent`` is given and the branch has moved past it.
            Conflict (409): a file and a folder of the same name would coexist.
            EntryNotFound: an added blob was never uploaded (or may not be used), or a deleted path does not exist.
        """
        directory = self._require(repo_type, repo_id)
        for op in operations:
            validate_path(op.path.rstrip("/") if op.kind == "delete_folder" else op.path)
        with self.gc_lock(), self.locked(directory):
            for op in operations:
                if op.kind != "add":
                    continue
                usable = self.blobs.exists(op.sha256 or "") and (
                    may_use is None or not op.lfs or may_use(op.sha256 or "")
                )
                if not usable:
                    raise EntryNotFound(f"{op.path}: its content ({op.sha256}) was not uploaded first.", 400)
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
                    sha256 = op.sha256 or ""
                    size = self.blobs.meta(sha256)["size"]
                    sha1 = git_blob_sha1(lfs_pointer(sha256, size)) if op.lfs else self.blobs.git_sha1(sha256)
                    files[op.path] = FileEntry(sha256, sha1, size, op.lfs)
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
            _refuse_file_folder_clash(files)
            commit = self._write_commit(directory, (head,), title, message, author, files)
            refs["branches"][branch] = commit.id
            _atomic_json(directory / "refs.json", refs)  # the moment the commit becomes visible
            self._index_add(repo_type, repo_id, (entry.sha256 for entry in files.values()))
            return commit

    def set_ref(
        self,
        repo_type: str,
        repo_id: str,
        kind: str,
        name: str,
        target: str | None,
        *,
        exist_ok: bool = False,
        allow_tag_deletion: bool = False,
    ) -> None:
        """Create (``target`` a revision) or delete (``target`` None) a branch or tag. Tags are immutable: one that
        exists is never moved, and deleting one needs ``allow_tag_deletion`` (the server's admin switch). A branch
        that exists is left where it is, also with ``exist_ok`` (branches move by commits, which check their
        parent)."""
        directory = self._require(repo_type, repo_id)
        validate_ref_name(name)
        with self.locked(directory):
            refs = json.loads((directory / "refs.json").read_text())
            table = refs["branches" if kind == "branch" else "tags"]
            if target is None:
                if name not in table:
                    raise RevisionNotFound(f"No {kind} {name!r} in {repo_id}.")
                if kind == "branch" and name == "main":
                    raise ApiError("The main branch cannot be deleted.", 403, "Forbidden")
                if kind == "tag" and not allow_tag_deletion:
                    raise ApiError(
                        f"Tag {name!r} of {repo_id} is protected: published tags are immutable on this registry (its "
                        "administrator can start it with --allow-tag-deletion).",
                        403,
                        "ProtectedTag",
                    )
                del table[name]
            else:
                commit_id = self.resolve(repo_type, repo_id, target)
                if name in table:
                    if kind == "branch" and exist_ok:
                        return
                    raise Conflict(f"{kind.capitalize()} {name!r} already exists in {repo_id} (at {table[name][:12]}).")
                table[name] = commit_id
            _atomic_json(directory / "refs.json", refs)

    # -- maintenance ----------------------------------------------------------------------------------------------

    def fsck(self, *, progress: Callable[[str], None] | None = None) -> list[str]:
        """Hash every blob and check every repo (refs point to commits, commits parse and name stored blobs of the
        recorded sizes); returns the problems found (empty: healthy)."""
        problems: list[str] = []
        for sha256 in self.blobs.all():
            try:
                self.blobs.verify(sha256, force=True)
                meta = self.blobs.meta(sha256)
                if meta["size"] != self.blobs.path(sha256).stat().st_size:
                    problems.append(
                        f"blob {sha256}: {self.blobs.path(sha256).stat().st_size} bytes, meta says {meta['size']}"
                    )
            except ApiError as error:
                problems.append(f"blob {sha256}: {error}")
            if progress:
                progress(sha256)
        for repo_type in REPO_TYPES:
            for repo_id in self.list_repos(repo_type):
                directory = self.repo_dir(repo_type, repo_id)
                try:
                    refs = json.loads((directory / "refs.json").read_text())
                except (OSError, ValueError) as error:
                    problems.append(f"{repo_type} {repo_id}: refs.json unreadable ({error})")
                    continue
                for kind in ("branches", "tags"):
                    for name, commit_id in refs.get(kind, {}).items():
                        if not (directory / "commits" / f"{commit_id}.json").is_file():
                            problems.append(
                                f"{repo_type} {repo_id}: {'tag' if kind == 'tags' else 'branch'} {name} -> missing "
                                f"commit {commit_id}"
                            )
                for path in sorted((directory / "commits").glob("*.json")):
                    try:
                        data = json.loads(path.read_text())
                        files = data["files"]
                    except (OSError, ValueError, KeyError) as error:
                        problems.append(f"{repo_type} {repo_id}: commit {path.stem} unreadable ({error})")
                        continue
                    for file_path, entry in files.items():
                        if not self.blobs.exists(entry["sha256"]):
                            problems.append(
                                f"{repo_type} {repo_id}@{path.stem[:12]}: {file_path} -> missing blob {entry['sha256']}"
                            )
        return problems

    def gc(self, *, grace: float = 24 * 3600, dry_run: bool = False) -> list[str]:
        """Delete the blobs no commit of any repo references and that are older than ``grace`` seconds (uploads
        not committed yet are younger), with their possession markers and stray metas; returns what was (or, with
        ``dry_run``, would be) deleted. Crash-safe: each blob goes content first, then meta."""
        with self.gc_lock():
            with self._index_lock:
                self._index = None
            referenced = self.index()
            now_ = time.time()
            doomed = []
            for sha256 in self.blobs.all():
                if sha256 in referenced:
                    continue
                try:
                    if now_ - self.blobs.path(sha256).stat().st_mtime < grace:
                        continue
                except FileNotFoundError:
                    continue
                doomed.append(sha256)
            if not dry_run:
                for sha256 in doomed:
                    self.blobs.remove(sha256)
                for folder in self.blobs.root.iterdir():  # metas whose content a crash already removed
                    if folder.is_dir():
                        for meta in folder.glob("*.json"):
                            if not meta.with_suffix("").is_file() and now_ - meta.stat().st_mtime >= grace:
                                meta.unlink(missing_ok=True)
                possession = self.root / "possession"
                if possession.is_dir():
                    for marker in possession.glob("*/*"):
                        if not self.blobs.exists(marker.name):
                            marker.unlink(missing_ok=True)
            return doomed


def _refuse_file_folder_clash(files: dict[str, Any]) -> None:
    """A path that is a file may not also be a folder of another file (``x`` and ``x/y``)."""
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise Conflict(
                    f"{path!r} would put a file inside {folder!r}, which is a file: a file and a folder cannot share a "
                    "name (delete one first)."
                )


def _atomic_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=1)))
