"""A registry server that speaks the Hugging Face Hub API (shared/reference/hub_protocol.md), so huggingface_hub,
datasets, transformers and PEFT work against it unchanged.

Model, dataset and space repos; commits with inline ("regular") and LFS uploads (Xet is never offered);
branches and tags; paginated tree and paths-info listings; resolve with the headers the clients check and Range
requests; repo info, refs and commit history. Storage is :mod:`.storage`; access is :mod:`.auth`. Built on the
standard library's HTTP server with a bounded pool of worker threads, a listen backlog, socket timeouts and
TCP_NODELAY; keep-alive.

What it promises (the threat model is in the README): requests are authenticated before their bodies are read and
bodies are bounded (a commit is parsed as a stream, one line at a time), so memory stays bounded whatever a client
sends; private repos are readable only by tokens with rights on their namespace; a blob can be named in a commit only
by whoever uploaded its bytes or may read a repo that has it, and the LFS endpoints answer only for blobs of the repo
asked about; tags are immutable (``allow_tag_deletion`` is the administrator's switch) and branches move only by
commits; errors never echo control characters into headers; signed upload URLs never reach the log. TLS is a
reverse proxy's job.

    subspace-hub registry serve --root /srv/registry --host 0.0.0.0 --port 8080

Clients of huggingface_hub >= 1.20 with ``hf_xet`` installed switch LFS uploads to Xet on their own; they need
``HF_HUB_DISABLE_XET=1`` (subspace-hub sets it for its own calls), or a server started with
``--upload-mode regular``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from subspace_hub.hub.server.auth import TokenBook, User
from subspace_hub.hub.server.storage import (
    REPO_TYPES,
    ApiError,
    Conflict,
    EntryNotFound,
    Operation,
    RepoStore,
    validate_path,
    validate_repo_id,
)

log = logging.getLogger("subspace_hub.registry")

_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SUFFIXES = (
    ".parquet",
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".npy",
    ".npz",
    ".arrow",
    ".zip",
    ".tar",
    ".gz",
    ".onnx",
    ".msgpack",
)
PAGE_SIZE = 1000
JSON_LIMIT = 1 << 20
"""Largest JSON body (repo creation, preupload, LFS batch, paths-info, YAML validation), bytes."""
DRAIN_LIMIT = 64 << 10
"""An unread body up to this size is drained to keep the connection alive; a larger one closes it."""


class _PooledHTTPServer(HTTPServer):
    """An HTTP server whose connections are served by a bounded pool of threads (excess connections wait in the
    pool's queue and the listen backlog instead of each getting a thread)."""

    request_queue_size = 1024
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, workers: int) -> None:
        super().__init__(address, handler)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry")

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # a broken connection must not kill the worker
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def header_safe(value: str) -> str:
    """A header value that cannot split the header block: control characters become spaces, non-ASCII is
    percent-encoded."""
    cleaned = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    return quote(cleaned, safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~")


class RegistryServer:
    """The server over one registry root. ``start()`` serves on a background thread (tests, the embedded
    registry); ``serve_forever()`` blocks (``subspace-hub registry serve``)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        anonymous_read: bool = True,
        upload_mode: str = "auto",
        regular_limit: int = 10 << 20,
        max_file_size: int = 50 << 30,
        max_commit_size: int = 1 << 30,
        page_size: int = PAGE_SIZE,
        workers: int = 64,
        timeout: float = 30.0,
        allow_tag_deletion: bool = False,
        verify_interval: float = 24 * 3600,
    ) -> None:
        if upload_mode not in ("auto", "regular", "lfs"):
            raise ValueError("upload_mode must be auto, regular or lfs")
        self.root = Path(root)
        self.store = RepoStore(self.root, verify_interval=verify_interval)
        self.tokens = TokenBook.load(self.root)
        self.allow_tag_deletion = allow_tag_deletion
        self.anonymous_read = anonymous_read
        self.upload_mode = upload_mode
        self.regular_limit = regular_limit
        self.max_file_size = max_file_size
        self.max_commit_size = max_commit_size
        self.page_size = page_size
        secret_path = self.root / ".upload-secret"
        if not secret_path.is_file():
            from subspace_hub.fileio import atomic_write

            atomic_write(secret_path, lambda p: p.write_bytes(secrets.token_bytes(32)), mode=0o600)
        self.secret = secret_path.read_bytes()
        handler = type("Handler", (_Handler,), {"registry": self, "timeout": timeout})
        self.httpd = _PooledHTTPServer((host, port), handler, workers)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        # A short poll: stop() waits for the loop to notice, and the embedded registry stops at every CLI exit.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="subspace-hub-registry", daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        log.info(json.dumps({"event": "serve", "url": self.url, "root": str(self.root)}))
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.store.close()

    # -- upload signatures: LFS PUTs carry their own authorisation ----------------------------------------------

    def sign(self, oid: str, size: int, expires: int, user: str) -> str:
        message = f"{oid}:{size}:{expires}:{user}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    registry: RegistryServer
    protocol_version = "HTTP/1.1"
    server_version = "subspace-hub-registry"
    disable_nagle_algorithm = True  # small responses leave at once on keep-alive connections
    timeout = 30.0  # seconds a socket read or write may block (slow or stalled clients free their worker)
    # Responses are buffered and flushed by the base class after the handler returns: headers and a small body leave
    # in one write, and the request's log record (_finish) is written before the client can see the response.
    wbufsize = 1 << 16

    # -- plumbing -----------------------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        pass  # structured records come from _finish()

    def _start(self) -> None:
        self._t0 = time.perf_counter()
        self._status = 0
        self._sent = 0
        self._user: User | None = None
        self._body_read = False
        split = urlsplit(self.path)
        self._raw_parts = [p for p in split.path.split("/") if p != ""]
        self._query = parse_qs(split.query, keep_blank_values=True)

    def _finish(self) -> None:
        if not self._body_read:
            self._drain()  # keep-alive: an unread body would be parsed as the next request
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "method": self.command,
            "path": _redact(self.path),
            "status": self._status,
            "bytes": self._sent,
            "ms": round(1000 * (time.perf_counter() - self._t0), 1),
            "user": getattr(self._user, "name", None),
            "client": self.client_address[0],
        }
        log.info(json.dumps(record))

    def _length(self) -> int:
        """The request body's length: 0 without one. Chunked bodies and malformed lengths are refused (400/411)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError("Send the body with a Content-Length; chunked transfer is not accepted.", 411)
        raw = self.headers.get("Content-Length")
        if raw is None or raw.strip() == "":
            return 0
        if not raw.strip().isdigit():
            self.close_connection = True
            raise ApiError(f"Invalid Content-Length {raw!r}: a non-negative integer.", 400, "BadRequest")
        return int(raw)

    def _drain(self) -> None:
        try:
            length = self._length()
        except ApiError:
            return  # _length closed the connection
        if length > DRAIN_LIMIT:
            self.close_connection = True  # reading it would cost what the refusal was meant to save
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def _body(self, limit: int) -> bytes:
        length = self._length()
        if length > limit:
            self.close_connection = True
            raise ApiError(f"Request body of {length} bytes exceeds the limit of {limit}.", 413, "TooLarge")
        self._body_read = True
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            raise ApiError(f"Request body ended after {len(data)} of {length} bytes.", 400, "Truncated")
        return data

    def _json_body(self, limit: int = JSON_LIMIT) -> Any:
        raw = self._body(limit)
        try:
            return json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(f"Request body is not JSON: {exc}", 400, "BadRequest") from None

    def _lines(self, limit: int, line_limit: int) -> Iterator[bytes]:
        """The body's lines, read as a stream: at most ``limit`` bytes in all and ``line_limit`` a line (its newline
        included)."""
        remaining = self._length()
        if remaining > limit:
            self.close_connection = True
            raise ApiError(f"Request body of {remaining} bytes exceeds the limit of {limit}.", 413, "TooLarge")
        self._body_read = True
        while remaining > 0:
            line = self.rfile.readline(min(remaining, line_limit + 1))
            if not line:
                self.close_connection = True
                raise ApiError("Request body ended before its Content-Length.", 400, "Truncated")
            remaining -= len(line)
            if len(line) > line_limit:
                self.close_connection = True
                raise ApiError(f"A commit line is longer than {line_limit} bytes.", 413, "TooLarge")
            yield line

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, header_safe(str(value)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            self._sent += len(body)

    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _error(self, error: ApiError, headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        if error.code:
            extra["X-Error-Code"] = error.code
        extra["X-Error-Message"] = str(error)[:300]  # made header-safe by _send
        self._json({"error": str(error)}, error.status, extra)

    def _dispatch(self) -> None:
        self._start()
        try:
            self._route()
        except ApiError as error:
            self._error(error, getattr(error, "headers", None))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:
            log.exception("internal error")
            self._error(ApiError(f"Internal error: {type(error).__name__}: {error}", 500))
        finally:
            try:
                self._finish()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # -- access ---------------------------------------------------------------------------------------------------

    def _authenticate(self) -> User | None:
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        user = self.registry.tokens.user(token)
        if token and user is None:
            raise ApiError("Invalid user token.", 401, "InvalidToken")
        self._user = user
        return user

    def _require_user(self) -> User:
        user = self._authenticate()
        if user is None:
            raise ApiError("Writing needs a token (Authorization: Bearer ...).", 401, "Unauthorized")
        return user

    def _require_write(self, namespace: str) -> User:
        user = self._require_user()
        if not user.can_write(namespace):
            raise ApiError(f"User {user.name!r} may not write to namespace {namespace!r}.", 403, "Forbidden")
        return user

    def _may_read(self, user: User | None, repo_type: str, repo_id: str) -> bool:
        store = self.registry.store
        if not store.exists(repo_type, repo_id):
            return False
        if store.repo_meta(repo_type, repo_id).get("private"):
            return user is not None and user.can_read(repo_id.split("/")[0])
        return user is not None or self.registry.anonymous_read

    def _require_read(self, repo_type: str, repo_id: str) -> None:
        user = self._authenticate()
        if self._may_read(user, repo_type, repo_id) or not self.registry.store.exists(repo_type, repo_id):
            return  # a missing repo is reported by the handler (404)
        # Like the Hub: a repo one cannot see does not exist.
        if user is None:
            raise ApiError(f"Repository {repo_id} not found (or it needs a token).", 401, "RepoNotFound")
        raise ApiError(f"Repository {repo_id} not found.", 404, "RepoNotFound")

    def _may_use_blob(self, user: User, sha256: str) -> bool:
        """May ``user`` name this stored blob without sending its bytes: they uploaded it, or a repo they may read
        references it."""
        store = self.registry.store
        if store.possesses(user.name, sha256):
            return True
        for key in store.repos_referencing(sha256):
            repo_type, repo_id = key.split("/", 1)
            if self._may_read(user, repo_type, repo_id):
                return True
        return False

    # -- routing ----------------------------------------------------------------------------------------------------

    def _route(self) -> None:
        parts, method = self._raw_parts, self.command
        if parts[:1] == ["api"]:
            return self._route_api(parts[1:], method)
        if parts[:1] == ["lfs-upload"] and len(parts) == 2 and method == "PUT":
            return self._lfs_put(parts[1])
        # /{prefix}{ns}/{name}.git/info/lfs/objects/batch and /{prefix}{ns}/{name}/resolve/{rev}/{path}
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = _PLURAL[parts[0]], parts[1:]
        if (
            len(parts) >= 6
            and parts[1].endswith(".git")
            and parts[2:] == ["info", "lfs", "objects", "batch"]
            and method == "POST"
        ):
            return self._lfs_batch(repo_type, f"{unquote(parts[0])}/{unquote(parts[1][:-4])}")
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
            return self._resolve(repo_type, repo_id, unquote(parts[3]), "/".join(unquote(p) for p in parts[4:]))
        raise ApiError(f"No route for {method} {self.path}.", 404)

    def _route_api(self, parts: list[str], method: str) -> None:
        if parts == ["whoami-v2"] and method == "GET":
            return self._whoami()
        if parts == ["repos", "create"] and method == "POST":
            return self._create_repo()
        if parts == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo()
        if parts == ["validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if len(parts) >= 3 and parts[0] in _PLURAL:
            repo_type = _PLURAL[parts[0]]
            repo_id = f"{unquote(parts[1])}/{unquote(parts[2])}"
            validate_repo_id(repo_id)
            rest = parts[3:]
            action = rest[0] if rest else ""
            argument = unquote(rest[1]) if len(rest) > 1 else None
            if action == "" and method == "GET":
                return self._repo_info(repo_type, repo_id, None)
            if action == "revision" and method == "GET" and argument:
                return self._repo_info(repo_type, repo_id, argument)
            if action == "refs" and method == "GET":
                return self._refs(repo_type, repo_id)
            if action == "preupload" and method == "POST":
                return self._preupload(repo_type, repo_id, argument or "main")
            if action == "commit" and method == "POST":
                return self._commit(repo_type, repo_id, argument or "main")
            if action in ("tag", "branch") and method in ("POST", "DELETE") and argument:
                return self._ref_change(repo_type, repo_id, action, argument)
            if action == "tree" and method == "GET":
                path = "/".join(unquote(p) for p in rest[2:])
                return self._tree(repo_type, repo_id, argument or "main", path)
            if action == "paths-info" and method == "POST":
                return self._paths_info(repo_type, repo_id, argument or "main")
            if action == "commits" and method == "GET":
                return self._commits(repo_type, repo_id, argument or "main")
        raise ApiError(f"No route for {method} {self.path}.", 404)

    # -- account and repos ------------------------------------------------------------------------------------------

    def _whoami(self) -> None:
        user = self._authenticate()
        if user is None:
            raise ApiError("Invalid user token.", 401, "Unauthorized")
        role = "write" if user.write else "read"
        self._json(
            {
                "type": "user",
                "name": user.name,
                "fullname": user.name,
                "orgs": [{"name": n} for n in user.write if n not in ("*", user.name)],
                "auth": {"type": "access_token", "accessToken": {"displayName": user.name, "role": role}},
            }
        )

    def _base_url(self) -> str:
        """``http://host:port`` as the client addressed us (its Host header), for URLs we hand back."""
        host = self.headers.get("Host") or "{}:{}".format(*self.registry.httpd.server_address[:2])
        return f"http://{host}"

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self._base_url()}/{_PREFIX[repo_type]}{repo_id}"

    def _create_repo(self) -> None:
        user = self._require_user()  # before the body is read
        body = self._json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in _PREFIX:
            raise ApiError(f"Unknown repo type {repo_type!r}; use model, dataset or space.", 400)
        name, namespace = body.get("name", ""), body.get("organization") or user.name
        repo_id = f"{namespace}/{name}"
        validate_repo_id(repo_id)
        user = self._require_write(namespace)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        url = self._repo_url(repo_type, repo_id)
        try:
            self.registry.store.create_repo(repo_type, repo_id, private=private, author=user.name)
        except Conflict as error:
            return self._json({"error": str(error), "url": url}, 409)
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        self._require_user()
        body = self._json_body()
        repo_id = f"{body.get('organization') or ''}/{body.get('name', '')}"
        validate_repo_id(repo_id)
        self._require_write(repo_id.split("/")[0])
        self.registry.store.delete_repo(body.get("type") or "model", repo_id)
        self._json({})

    def _validate_yaml(self) -> None:
        import yaml

        self._require_user()
        body = self._json_body()
        content = body.get("content", "")
        if not isinstance(content, str):
            raise ApiError('validate-yaml takes {"content": <the card\'s text>}.', 400, "BadRequest")
        errors = []
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---")[1])
            except yaml.YAMLError as exc:
                errors.append({"message": f"Invalid YAML metadata: {exc}"})
        self._json({"errors": errors, "warnings": []})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str | None) -> None:
        self._require_read(repo_type, repo_id)
        store = self.registry.store
        commit = store.commit(repo_type, repo_id, store.resolve(repo_type, repo_id, revision))
        blobs = self._query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.sha1)
                if entry.lfs:
                    sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": 134}
            siblings.append(sibling)
        meta = store.repo_meta(repo_type, repo_id)
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.id,
            "lastModified": commit.date,
            "createdAt": meta["created"],
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        self._json(info)

    def _refs(self, repo_type: str, repo_id: str) -> None:
        self._require_read(repo_type, repo_id)
        refs = self.registry.store.refs(repo_type, repo_id)
        out = {
            "branches": [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(refs["branches"].items())
            ],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(refs["tags"].items())],
            "converts": [],
        }
        if self._query.get("include_prs"):
            out["pullRequests"] = []
        self._json(out)

    def _ref_change(self, repo_type: str, repo_id: str, kind: str, name: str) -> None:
        self._require_write(repo_id.split("/")[0])
        store = self.registry.store
        if self.command == "DELETE":
            store.set_ref(repo_type, repo_id, kind, name, None, allow_tag_deletion=self.registry.allow_tag_deletion)
            return self._json({})
        body = self._json_body()
        if kind == "tag":  # POST /tag/{revision} {"tag": name}
            store.set_ref(repo_type, repo_id, kind, body.get("tag", ""), name)
        else:  # POST /branch/{name} {"startingPoint": revision}
            store.set_ref(
                repo_type,
                repo_id,
                "branch",
                name,
                body.get("startingPoint") or "main",
                exist_ok=bool(body.get("exist_ok")),
            )
        self._json({})

    # -- uploads ------------------------------------------------------------------------------------------------------

    def _mode(self, path: str, size: int) -> str:
        if self.registry.upload_mode != "auto":
            return self.registry.upload_mode
        return "lfs" if size > self.registry.regular_limit or path.lower().endswith(LFS_SUFFIXES) else "regular"

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        self._require_write(repo_id.split("/")[0])
        body = self._json_body()
        store = self.registry.store
        try:
            files = store.commit(repo_type, repo_id, store.resolve(repo_type, repo_id, revision)).files
        except ApiError:
            files = {}
        answers = []
        items = body.get("files", [])
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("path"), str) for i in items
        ):
            raise ApiError('preupload takes {"files": [{"path": ..., "size": ...}, ...]}.', 400, "BadRequest")
        for item in items:
            path = validate_path(item["path"])
            mode = self._mode(path, _int(item.get("size", 0), "size"))
            current = files.get(path)
            oid = None if current is None else (current.sha256 if mode == "lfs" else current.sha1)
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json({"files": answers, "commitOid": None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        validate_repo_id(repo_id)
        body = self._json_body()
        operation = body.get("operation")
        if operation not in ("upload", "download"):
            raise ApiError("operation must be 'upload' or 'download'.", 400, "BadRequest")
        user = self._require_write(repo_id.split("/")[0]) if operation == "upload" else None
        if user is None:
            self._require_read(repo_type, repo_id)
        store = self.registry.store
        if not store.exists(repo_type, repo_id):
            raise ApiError(f"Repository {repo_id} not found.", 404, "RepoNotFound")
        objects_in = body.get("objects", [])
        if not isinstance(objects_in, list) or not all(isinstance(o, dict) for o in objects_in):
            raise ApiError('The batch takes {"objects": [{"oid": ..., "size": ...}, ...]}.', 400, "BadRequest")
        base_url = self._base_url()
        objects = []
        for obj in objects_in:
            oid, size = str(obj.get("oid", "")), _int(obj.get("size", 0), "size")
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                entry["error"] = {"code": 422, "message": "oid must be a sha256 hex digest"}
            elif size > self.registry.max_file_size:
                entry["error"] = {
                    "code": 413,
                    "message": f"object larger than the limit of {self.registry.max_file_size} bytes",
                }
            elif user is not None:  # an upload
                # Known bytes are skipped only for whoever may already use them; anyone else uploads them (and
                # so proves they have them): the answer says nothing about what other namespaces stored.
                if not (store.blobs.exists(oid) and self._may_use_blob(user, oid)):
                    expires = int(time.time()) + 3600
                    signature = self.registry.sign(oid, size, expires, user.name)
                    query = f"size={size}&expires={expires}&user={quote(user.name)}&sig={signature}"
                    entry["actions"] = {
                        "upload": {
                            "href": f"{base_url}/lfs-upload/{oid}?{query}",
                            "header": {},
                            "expires_in": 3600,
                        }
                    }
            elif not store.referenced_by(repo_type, repo_id, oid) or not store.blobs.exists(oid):
                entry["error"] = {"code": 404, "message": "object not found"}
            objects.append(entry)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_put(self, oid: str) -> None:
        try:
            size, expires, signature = (
                int(self._query["size"][0]),
                int(self._query["expires"][0]),
                self._query["sig"][0],
            )
            user = self._query.get("user", [""])[0]
        except (KeyError, ValueError, IndexError):
            raise ApiError("Upload URL lacks its signature.", 403, "Forbidden") from None
        if expires < time.time() or not hmac.compare_digest(signature, self.registry.sign(oid, size, expires, user)):
            raise ApiError("Upload URL signature is invalid or expired.", 403, "Forbidden")
        length = self._length()
        if length != size:
            raise ApiError(f"Upload of {oid} must be {size} bytes, the request carries {length}.", 400)
        self._body_read = True  # the store reads it
        self.registry.store.blobs.write(
            self.rfile, size, expected_sha256=oid, max_size=self.registry.max_file_size, git_sha1=False
        )
        if user:
            self.registry.store.record_possession(user, oid)
        self._json({})

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        user = self._require_write(repo_id.split("/")[0])  # before a byte of the body is read
        if self._query.get("create_pr", ["0"])[0] not in ("0", "false", "False", ""):
            raise ApiError("Pull requests are not supported by this registry; commit to a branch.", 400)
        if not self.registry.store.exists(repo_type, repo_id):
            raise ApiError(f"Repository {repo_id} not found.", 404, "RepoNotFound")
        header: dict[str, Any] = {}
        operations: list[Operation] = []
        blobs = self.registry.store.blobs
        # one line holds at most one inline file: base64 of the regular-file limit, plus its JSON
        line_limit = max(self.registry.regular_limit, 1 << 20) * 4 // 3 + (64 << 10)
        for number, line in enumerate(self._lines(self.registry.max_commit_size, line_limit), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item.get("key"), item.get("value", {})
                if key == "header":
                    header = dict(value)
                elif key == "file":
                    encoding = value.get("encoding", "base64")
                    data = (
                        base64.b64decode(value["content"], validate=True)
                        if encoding == "base64"
                        else value["content"].encode()
                    )
                    if len(data) > self.registry.max_file_size:
                        raise ApiError(f"{value['path']} exceeds the size limit.", 413, "TooLarge")
                    path = validate_path(value["path"])
                    digest, _ = blobs.put_bytes(data)
                    operations.append(Operation("add", path, digest, False))
                elif key == "lfsFile":
                    operations.append(Operation("add", validate_path(value["path"]), str(value["oid"]), True))
                elif key == "deletedFile":
                    operations.append(Operation("delete_file", str(value["path"])))
                elif key == "deletedFolder":
                    operations.append(Operation("delete_folder", str(value["path"])))
                else:
                    raise ApiError(f"Unsupported commit operation {key!r}.", 400)
            except ApiError:
                raise
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
                raise ApiError(
                    f"Commit line {number} is not a valid operation ({type(exc).__name__}: {exc}).", 400, "BadRequest"
                ) from None
        parent = header.get("parentCommit")
        if parent is not None and not (isinstance(parent, str) and re.fullmatch(r"[0-9a-fA-F]{5,40}", parent)):
            raise ApiError(f"Invalid parentCommit {parent!r}.", 400)
        commit = self.registry.store.create_commit(
            repo_type,
            repo_id,
            revision,
            operations,
            title=str(header.get("summary") or "update"),
            message=str(header.get("description") or ""),
            author=user.name,
            parent=parent.lower() if parent else None,
            may_use=lambda sha256: self._may_use_blob(user, sha256),
        )
        url = self._repo_url(repo_type, repo_id)
        self._json({"commitOid": commit.id, "commitUrl": f"{url}/commit/{commit.id}", "pullRequestUrl": None})

    # -- reading ------------------------------------------------------------------------------------------------

    def _entries(self, files: dict, path: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = path + "/" if path else ""  # the routes give paths without a trailing slash
        entries: dict[str, dict[str, Any]] = {}
        for file_path, entry in sorted(files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :]
            segments = rest.split("/")
            for depth in range(1, len(segments)):
                directory = prefix + "/".join(segments[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        directory,
                        {
                            "type": "directory",
                            "oid": hashlib.sha1(directory.encode()).hexdigest(),
                            "size": 0,
                            "path": directory,
                        },
                    )
                if not recursive:
                    break
            if recursive or len(segments) == 1:
                entries[file_path] = _file_entry(file_path, entry)
        return [entries[k] for k in sorted(entries)]

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        self._require_read(repo_type, repo_id)
        store = self.registry.store
        commit = store.commit(repo_type, repo_id, store.resolve(repo_type, repo_id, revision))
        if path:
            validate_path(path)
            if path in commit.files:
                return self._json([_file_entry(path, commit.files[path])])
            if not any(p.startswith(path + "/") for p in commit.files):
                raise EntryNotFound(f"{path} does not exist at {revision}.")
        recursive = self._query.get("recursive", ["false"])[0].lower() == "true"
        entries = self._entries(commit.files, path, recursive)
        start = _int(self._query.get("cursor", ["0"])[0] or 0, "cursor")
        limit = self.registry.page_size
        page = entries[start : start + limit]
        headers = {}
        if start + limit < len(entries):
            query = {k: v[0] for k, v in self._query.items()}
            query["cursor"] = str(start + limit)
            url = f"{self._base_url()}{urlsplit(self.path).path}?" + "&".join(
                f"{k}={quote(v)}" for k, v in query.items()
            )
            headers["Link"] = f'<{url}>; rel="next"'
        self._json(page, headers=headers)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        self._require_read(repo_type, repo_id)
        try:
            raw = self._body(JSON_LIMIT).decode()
            form = (
                parse_qs(raw)
                if "application/json" not in (self.headers.get("Content-Type") or "")
                else {"paths": json.loads(raw or "{}").get("paths", [])}
            )
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
            raise ApiError(f"paths-info takes paths=...: {exc}", 400, "BadRequest") from None
        if not isinstance(form.get("paths", []), list):
            raise ApiError("paths-info takes a list of paths.", 400, "BadRequest")
        store = self.registry.store
        commit = store.commit(repo_type, repo_id, store.resolve(repo_type, repo_id, revision))
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                out.append(_file_entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(
                    {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
                )
        self._json(out)

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        self._require_read(repo_type, repo_id)
        history = self.registry.store.history(repo_type, repo_id, revision)
        self._json(
            [
                {
                    "id": c.id,
                    "title": c.title,
                    "message": c.message,
                    "date": c.date,
                    "authors": [{"user": c.author}] if c.author else [],
                }
                for c in history
            ]
        )

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        self._require_read(repo_type, repo_id)
        validate_path(path)
        store = self.registry.store
        commit_id = store.resolve(repo_type, repo_id, revision)
        entry = store.commit(repo_type, repo_id, commit_id).files.get(path)
        if entry is None:
            error = EntryNotFound(f"{path} does not exist at {revision} of {repo_id}.")
            error.headers = {"X-Repo-Commit": commit_id}  # type: ignore[attr-defined]
            raise error
        blob = store.blobs.verify(entry.sha256)
        headers = {"X-Repo-Commit": commit_id, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0"}
        if entry.lfs:
            headers.update(
                {"ETag": f'"{entry.sha256}"', "X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)}
            )
        else:
            headers["ETag"] = f'"{entry.sha1}"'
        start, end = 0, entry.size - 1
        status = 200
        range_header = self.headers.get("Range")
        if range_header and entry.size:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not match or (not match[1] and not match[2]):
                raise ApiError(f"Unsupported Range {range_header!r}.", 416)
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), entry.size - 1) if match[2] else entry.size - 1
            else:
                start = max(entry.size - int(match[2]), 0)
            if start > end:
                self._send(416, b"", {"Content-Range": f"bytes */{entry.size}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        length = end - start + 1
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD" or not length:
            return
        self.wfile.flush()
        with open(blob, "rb") as f:  # zero-copy from the page cache to the socket where the OS allows it
            self._sent += self.connection.sendfile(f, offset=start, count=length)


def _int(value: Any, what: str) -> int:
    """A non-negative integer from a request, or a 400 naming ``what``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(f"{what} must be a non-negative integer, got {value!r}.", 400, "BadRequest") from None
    if number < 0:
        raise ApiError(f"{what} must be a non-negative integer, got {value!r}.", 400, "BadRequest")
    return number


def _redact(path: str) -> str:
    """A request path for the log: the signature of an upload URL replaced (it authorises the upload)."""
    return re.sub(r"([?&]sig=)[^&]*", r"\1<redacted>", path)


def _file_entry(path: str, entry: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "file", "oid": entry.sha1, "size": entry.size, "path": path}
    if entry.lfs:
        out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": 134}
    return out


def serve(
    root: str | os.PathLike[str], host: str, port: int, *, on_ready: Callable[[str], None] | None = None, **options: Any
) -> None:
    """Run a registry until interrupted."""
    server = RegistryServer(root, host, port, **options)
    if on_ready is not None:
        on_ready(server.url)
    try:
        server.serve_forever()
    finally:
        server.httpd.server_close()


__all__ = ["LFS_SUFFIXES", "REPO_TYPES", "RegistryServer", "serve"]
