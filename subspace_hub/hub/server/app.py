"""A registry server that speaks the Hugging Face Hub API (shared/reference/hub_protocol.md), so huggingface_hub,
datasets, transformers and PEFT work against it unchanged.

Model, dataset and space repos; commits with inline ("regular") and LFS uploads (Xet is never offered);
branches and tags; paginated tree and paths-info listings; resolve with the headers the clients check and Range
requests; repo info, refs and commit history. Storage is :mod:`.storage`; access is :mod:`.auth`. Built on the
standard library's threading HTTP server: no dependency, one thread per connection, keep-alive.

    subspace-hub registry serve --root /srv/registry --host 0.0.0.0 --port 8080

Clients of huggingface_hub >= 1.20 with ``hf_xet`` installed switch LFS uploads to Xet on their own; they need
``HF_HUB_DISABLE_XET=1`` (subspace-hub sets it for its own calls), or a server started with
``--upload-mode regular``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    ) -> None:
        if upload_mode not in ("auto", "regular", "lfs"):
            raise ValueError("upload_mode must be auto, regular or lfs")
        self.root = Path(root)
        self.store = RepoStore(self.root)
        self.tokens = TokenBook.load(self.root)
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
        handler = type("Handler", (_Handler,), {"registry": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="subspace-hub-registry", daemon=True)
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        log.info(json.dumps({"event": "serve", "url": self.url, "root": str(self.root)}))
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- upload signatures: LFS PUTs carry their own authorisation ----------------------------------------------

    def sign(self, oid: str, size: int, expires: int) -> str:
        return hmac.new(self.secret, f"{oid}:{size}:{expires}".encode(), hashlib.sha256).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    registry: RegistryServer
    protocol_version = "HTTP/1.1"
    server_version = "subspace-hub-registry"
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
            "path": self.path,
            "status": self._status,
            "bytes": self._sent,
            "ms": round(1000 * (time.perf_counter() - self._t0), 1),
            "user": getattr(self._user, "name", None),
            "client": self.client_address[0],
        }
        log.info(json.dumps(record))

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)
        self._body_read = True

    def _body(self, limit: int) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise ApiError(f"Request body of {length} bytes exceeds the limit of {limit}.", 413, "TooLarge")
        self._body_read = True
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Any:
        raw = self._body(16 << 20)
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(f"Request body is not JSON: {exc}", 400) from None

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
            self.send_header(key, value)
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
        extra["X-Error-Message"] = str(error).encode("ascii", "replace").decode()[:300]
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

    def _require_write(self, namespace: str) -> User:
        user = self._authenticate()
        if user is None:
            raise ApiError("Writing needs a token (Authorization: Bearer ...).", 401, "Unauthorized")
        if not user.can_write(namespace):
            raise ApiError(f"User {user.name!r} may not write to namespace {namespace!r}.", 403, "Forbidden")
        return user

    def _require_read(self, repo_type: str, repo_id: str) -> None:
        user = self._authenticate()
        namespace = repo_id.split("/")[0]
        private = self.registry.store.exists(repo_type, repo_id) and self.registry.store.repo_meta(
            repo_type, repo_id
        ).get("private")
        if user is None and (private or not self.registry.anonymous_read):
            # Like the Hub: a repo one cannot see does not exist.
            raise ApiError(f"Repository {repo_id} not found (or it needs a token).", 401, "RepoNotFound")
        if user is not None and private and not user.can_read(namespace):
            raise ApiError(f"Repository {repo_id} not found.", 404, "RepoNotFound")

    # -- routing ----------------------------------------------------------------------------------------------------

    def _route(self) -> None:
        parts, method = self._raw_parts, self.command
        if parts[:1] == ["api"]:
            return self._route_api(parts[1:], method)
        if parts[:1] == ["lfs-upload"] and method == "PUT":
            return self._lfs_put(parts[1:])
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
        body = self._json_body()
        repo_type = body.get("type") or "model"
        name, namespace = body.get("name", ""), body.get("organization")
        if namespace is None:
            user = self._authenticate()
            namespace = user.name if user else ""
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
        body = self._json_body()
        repo_id = f"{body.get('organization') or ''}/{body.get('name', '')}"
        validate_repo_id(repo_id)
        self._require_write(repo_id.split("/")[0])
        self.registry.store.delete_repo(body.get("type") or "model", repo_id)
        self._json({})

    def _validate_yaml(self) -> None:
        import yaml

        body = self._json_body()
        content = body.get("content", "")
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
            "private": meta.get("private", False),
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
            store.set_ref(repo_type, repo_id, kind, name, None)
            return self._json({})
        body = self._json_body()
        if kind == "tag":  # POST /tag/{revision} {"tag": name}
            store.set_ref(repo_type, repo_id, "tag", body.get("tag", ""), name)
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
        for item in body.get("files", []):
            path = validate_path(item["path"])
            mode = self._mode(path, int(item.get("size", 0)))
            current = files.get(path)
            oid = None if current is None else (current.sha256 if mode == "lfs" else current.sha1)
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json({"files": answers, "commitOid": None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        validate_repo_id(repo_id)
        body = self._json_body()
        operation = body.get("operation")
        if operation == "upload":
            self._require_write(repo_id.split("/")[0])
        else:
            self._require_read(repo_type, repo_id)
        base_url = self._base_url()
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid", "")), int(obj.get("size", 0))
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                entry["error"] = {"code": 422, "message": "oid must be a sha256 hex digest"}
            elif size > self.registry.max_file_size:
                entry["error"] = {
                    "code": 413,
                    "message": f"object larger than the limit of {self.registry.max_file_size} bytes",
                }
            elif operation == "upload" and not self.registry.store.blobs.exists(oid):
                expires = int(time.time()) + 3600
                signature = self.registry.sign(oid, size, expires)
                entry["actions"] = {
                    "upload": {
                        "href": f"{base_url}/lfs-upload/{oid}?size={size}&expires={expires}&sig={signature}",
                        "header": {},
                        "expires_in": 3600,
                    }
                }
            elif operation == "download" and not self.registry.store.blobs.exists(oid):
                entry["error"] = {"code": 404, "message": "object not found"}
            objects.append(entry)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_put(self, parts: list[str]) -> None:
        oid = parts[0] if parts else ""
        try:
            size, expires, signature = (
                int(self._query["size"][0]),
                int(self._query["expires"][0]),
                self._query["sig"][0],
            )
        except (KeyError, ValueError, IndexError):
            raise ApiError("Upload URL lacks its signature.", 403, "Forbidden") from None
        if expires < time.time() or not hmac.compare_digest(signature, self.registry.sign(oid, size, expires)):
            raise ApiError("Upload URL signature is invalid or expired.", 403, "Forbidden")
        length = int(self.headers.get("Content-Length") or -1)
        if length != size:
            raise ApiError(f"Upload of {oid} must be {size} bytes, the request carries {length}.", 400)
        self._body_read = True  # the store reads it
        self.registry.store.blobs.write(self.rfile, size, expected_sha256=oid, max_size=self.registry.max_file_size)
        self._json({})

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        user = self._require_write(repo_id.split("/")[0])
        if self._query.get("create_pr", ["0"])[0] not in ("0", "false", "False", ""):
            raise ApiError("Pull requests are not supported by this registry; commit to a branch.", 400)
        raw = self._body(self.registry.max_commit_size)
        header: dict[str, Any] = {}
        operations: list[Operation] = []
        blobs = self.registry.store.blobs
        for line in raw.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                data = (
                    base64.b64decode(value["content"])
                    if value.get("encoding", "base64") == "base64"
                    else value["content"].encode()
                )
                if len(data) > self.registry.max_file_size:
                    raise ApiError(f"{value['path']} exceeds the size limit.", 413, "TooLarge")
                digest, _ = blobs.put_bytes(data)
                operations.append(Operation("add", validate_path(value["path"]), digest, False))
            elif key == "lfsFile":
                operations.append(Operation("add", validate_path(value["path"]), value["oid"], True))
            elif key == "deletedFile":
                operations.append(Operation("delete_file", value["path"]))
            elif key == "deletedFolder":
                operations.append(Operation("delete_folder", value["path"]))
            else:
                raise ApiError(f"Unsupported commit operation {key!r}.", 400)
        parent = header.get("parentCommit")
        if parent is not None and not re.fullmatch(r"[0-9a-fA-F]{5,40}", parent):
            raise ApiError(f"Invalid parentCommit {parent!r}.", 400)
        commit = self.registry.store.create_commit(
            repo_type,
            repo_id,
            revision,
            operations,
            title=header.get("summary") or "update",
            message=header.get("description") or "",
            author=user.name,
            parent=parent.lower() if parent else None,
        )
        url = self._repo_url(repo_type, repo_id)
        self._json({"commitOid": commit.id, "commitUrl": f"{url}/commit/{commit.id}", "pullRequestUrl": None})

    # -- reading ------------------------------------------------------------------------------------------------

    def _entries(self, files: dict, path: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = path.rstrip("/") + "/" if path else ""
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
            if not any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                raise EntryNotFound(f"{path} does not exist at {revision}.")
        recursive = self._query.get("recursive", ["false"])[0].lower() == "true"
        entries = self._entries(commit.files, path, recursive)
        start = int(self._query.get("cursor", ["0"])[0] or 0)
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
        raw = self._body(16 << 20).decode()
        form = (
            parse_qs(raw)
            if "application/json" not in (self.headers.get("Content-Type") or "")
            else {"paths": json.loads(raw or "{}").get("paths", [])}
        )
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
        length = end - start + 1 if entry.size else 0
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
