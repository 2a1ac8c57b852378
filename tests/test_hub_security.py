"""The registry server attacked as an attacker and a careless client would: each class of finding of issue 16 is
driven through raw HTTP and, where a client can express it, through huggingface_hub, and must be refused with a
4xx, with nothing written, leaked or kept, and with the server's memory bounded."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from subspace_hub.errors import ConfigError, InvalidRepoIdError
from subspace_hub.hub.server import RegistryServer
from subspace_hub.hub.server.auth import TokenBook
from subspace_hub.hub.server.storage import RepoStore


@pytest.fixture(autouse=True)
def no_xet(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def registry(tmp_path):
    root = tmp_path / "registry"
    book = TokenBook.load(root)
    tokens = {
        "alice": book.add("alice", write=("org",)),
        "mallory": book.add("mallory"),  # writes her own namespace, reads no one's private repos
        "reader": book.add("reader", write=()),  # read-only
    }
    server = RegistryServer(root)
    url = server.start()
    yield server, url, tokens
    server.stop()


def api(url: str, token: str | None) -> HfApi:
    return HfApi(endpoint=url, token=token)


def raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request through http.client (no client-side checks)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    out = (response.status, dict(response.getheaders()), response.read())
    connection.close()
    return out


def raw_headers(url: str, request: bytes) -> str:
    """The raw header block the server answers ``request`` (bytes of a whole HTTP request) with."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n")[0].decode("latin-1")


def ndjson(*items: dict) -> bytes:
    return b"\n".join(json.dumps(item).encode() for item in items) + b"\n"


def commit_body(summary: str, *operations: dict) -> bytes:
    return ndjson({"key": "header", "value": {"summary": summary}}, *operations)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- bounded, authenticated-before-read request handling -----------------------------------------------------------


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """The registry in its own process (its memory is measured), with alice's token."""
    root = tmp_path / "registry"
    token = TokenBook.load(root).add("alice", write=("org",))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "subspace_hub", "registry", "serve", "--root", str(root), "--port", str(port)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(400):
        try:
            urllib.request.urlopen(f"{url}/api/models/x/y")
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.05)
    api(url, token).create_repo("org/target")
    yield process, url, token, root
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _stream(url: str, head: bytes, total: int, chunk: bytes = b"x" * (1 << 20)) -> str:
    """Send a request head, then up to ``total`` body bytes until the server answers or hangs up; returns the
    status line of the answer ("" if none)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sent = 0
        sock.setblocking(False)
        answer = b""
        while sent < total:
            try:
                answer += sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                break
            try:
                sent += sock.send(chunk[: min(len(chunk), total - sent)])
            except BlockingIOError:
                time.sleep(0.001)
            except (ConnectionResetError, BrokenPipeError):
                break
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while b"\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (ConnectionResetError, OSError):
            pass
    return answer.split(b"\r\n")[0].decode("latin-1")


def test_oversize_and_endless_bodies_are_refused_before_they_are_read_and_memory_stays_bounded(served):
    process, url, token, root = served
    before = _rss_mb(process.pid)
    host = url.removeprefix("http://")
    commit = "/api/models/org/target/commit/main"
    # anonymous, announcing 1 GiB: refused at once (401), the body never buffered (256 MB sent at it)
    status = _stream(
        url, f"POST {commit} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {1 << 30}\r\n\r\n".encode(), 256 << 20
    )
    assert " 401 " in status + " "
    # authenticated, announcing more than the commit limit: 413 before reading
    head = (
        f"POST {commit} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: {8 << 30}\r\n\r\n"
    )
    assert " 413 " in _stream(url, head.encode(), 64 << 20) + " "
    # authenticated, within the limit, one endless line of 300 MB: the line limit refuses it as it streams
    head = f"POST {commit} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
    head += f"Content-Length: {900 << 20}\r\n\r\n"
    assert " 413 " in _stream(url, head.encode(), 300 << 20) + " "
    # the other anonymous endpoints that take bodies
    for path in ("/api/validate-yaml", "/api/repos/create"):
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {1 << 30}\r\n\r\n"
        assert " 401 " in _stream(url, head.encode(), 64 << 20) + " "
    head = f"POST /org/target.git/info/lfs/objects/batch HTTP/1.1\r\nHost: {host}\r\nContent-Length: {1 << 30}\r\n\r\n"
    assert " 413 " in _stream(url, head.encode(), 64 << 20) + " "
    for length in ("-1", "abc", "1e9"):
        status, _, _ = raw(url, "POST", commit, headers={**bearer(token), "Content-Length": length})
        assert status == 400
    status, _, _ = raw(
        url, "POST", commit, body=iter([b"x"]), headers={**bearer(token), "Transfer-Encoding": "chunked"}
    )
    assert status == 411
    growth = _rss_mb(process.pid) - before
    assert growth < 80, f"server RSS grew by {growth:.0f} MB"
    # and it still serves
    assert api(url, token).list_repo_files("org/target") == []
    assert not list((root / "blobs").glob("*/*"))  # nothing of it was stored


# -- one header-safe error path ----------------------------------------------------------------------------------


def test_control_characters_never_reach_a_response_header(registry):
    server, url, tokens = registry
    api(url, tokens["alice"]).create_repo("org/headers")
    host = url.removeprefix("http://")
    for path in (
        "/api/models/org/headers/revision/main%0d%0aSet-Cookie:%20evil=1",
        "/org/headers/resolve/main%0d%0aSet-Cookie:%20evil=1/x",
        "/org/headers/resolve/main/a%0d%0aSet-Cookie:%20evil=1",
        "/api/models/org/headers/tree/main/%0aSet-Cookie:%20evil=1",
    ):
        block = raw_headers(url, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        lines = block.split("\r\n")
        assert lines[0].split()[1].startswith("4"), lines[0]
        assert not any(line.lower().startswith("set-cookie") for line in lines), block


# -- namespaces are isolated -------------------------------------------------------------------------------------


def test_a_writer_cannot_reach_another_namespaces_private_bytes(registry, tmp_path):
    server, url, tokens = registry
    alice, mallory = api(url, tokens["alice"]), api(url, tokens["mallory"])
    secret = os.urandom(1 << 20)
    oid = hashlib.sha256(secret).hexdigest()
    alice.create_repo("org/secret", private=True)
    alice.create_commit("org/secret", [CommitOperationAdd("weights.safetensors", secret)], commit_message="secret")
    mallory.create_repo("mallory/steal")
    pointer = {"key": "lfsFile", "value": {"path": "stolen.safetensors", "algo": "sha256", "oid": oid}}
    # 1. committing a pointer to bytes she never uploaded and may not read
    status, _, body = raw(
        url, "POST", "/api/models/mallory/steal/commit/main", commit_body("steal", pointer), bearer(tokens["mallory"])
    )
    assert status == 400 and b"not uploaded" in body
    assert mallory.list_repo_files("mallory/steal") == []

    # 2. the LFS batch is no existence oracle: her upload request for the secret's oid gets an upload action, as for
    # bytes nobody has; a download request for it on her repo is "not found"
    def batch(operation: str, digest: str, token: str | None, repo: str = "mallory/steal") -> dict:
        payload = {"operation": operation, "transfers": ["basic"], "objects": [{"oid": digest, "size": len(secret)}]}
        headers = {"Content-Type": "application/vnd.git-lfs+json", **(bearer(token) if token else {})}
        status, _, body = raw(url, "POST", f"/{repo}.git/info/lfs/objects/batch", json.dumps(payload).encode(), headers)
        assert status == 200
        return json.loads(body)["objects"][0]

    unknown = hashlib.sha256(b"nobody has this").hexdigest()
    assert "actions" in batch("upload", oid, tokens["mallory"]) and "actions" in batch(
        "upload", unknown, tokens["mallory"]
    )
    assert batch("download", oid, None)["error"]["code"] == 404
    assert batch("download", oid, tokens["mallory"])["error"]["code"] == 404
    # 3. private repos are readable by their namespace's readers only (a token no longer reads everything)
    with pytest.raises(RepositoryNotFoundError):
        mallory.model_info("org/secret")
    with pytest.raises(RepositoryNotFoundError):
        api(url, None).model_info("org/secret")
    status, _, _ = raw(url, "GET", "/org/secret/resolve/main/weights.safetensors", headers=bearer(tokens["mallory"]))
    assert status == 404
    # 4. after the owner deletes the repo, still nothing
    alice.delete_repo("org/secret")
    status, _, _ = raw(
        url, "POST", "/api/models/mallory/steal/commit/main", commit_body("steal", pointer), bearer(tokens["mallory"])
    )
    assert status == 400
    # 5. what stays allowed: uploading the bytes oneself (possession), and naming a blob of a repo one may read
    mallory.create_commit("mallory/steal", [CommitOperationAdd("mine.safetensors", secret)], commit_message="own bytes")
    assert mallory.list_repo_files("mallory/steal") == ["mine.safetensors"]
    alice.create_repo("org/public")
    alice.create_commit("org/public", [CommitOperationAdd("shared.safetensors", b"s" * 5000)], commit_message="pub")
    shared = hashlib.sha256(b"s" * 5000).hexdigest()
    reuse = {"key": "lfsFile", "value": {"path": "reused.safetensors", "algo": "sha256", "oid": shared}}
    status, _, _ = raw(
        url, "POST", "/api/models/mallory/steal/commit/main", commit_body("reuse", reuse), bearer(tokens["mallory"])
    )
    assert status == 200
    out = hf_hub_download("mallory/steal", "reused.safetensors", endpoint=url, cache_dir=tmp_path / "c")
    assert Path(out).read_bytes() == b"s" * 5000


def test_read_only_tokens_write_nothing_and_rights_are_per_namespace(registry):
    server, url, tokens = registry
    reader = api(url, tokens["reader"])
    for repo in ("reader/mine", "org/x"):
        with pytest.raises(HfHubHTTPError) as caught:
            reader.create_repo(repo)
        assert caught.value.response.status_code == 403
    api(url, tokens["alice"]).create_repo("org/private", private=True)
    with pytest.raises(RepositoryNotFoundError):
        reader.model_info("org/private")
    token = TokenBook.load(server.root).add("auditor", write=(), read=("org",))
    assert api(url, token).model_info("org/private").id == "org/private"  # read rights name the namespace
    with pytest.raises(HfHubHTTPError):
        api(url, token).create_commit("org/private", [CommitOperationAdd("x", b"x")], commit_message="no")


# -- history and tags are immutable on the server ------------------------------------------------------------------


def test_branches_move_only_by_commits_and_tags_are_protected(registry, tmp_path):
    server, url, tokens = registry
    alice = api(url, tokens["alice"])
    alice.create_repo("org/history")
    first = alice.create_commit("org/history", [CommitOperationAdd("a.txt", b"1")], commit_message="one")
    second = alice.create_commit("org/history", [CommitOperationAdd("a.txt", b"2")], commit_message="two")
    body = json.dumps({"startingPoint": first.oid, "exist_ok": True}).encode()
    status, _, _ = raw(url, "POST", "/api/models/org/history/branch/main", body, bearer(tokens["alice"]))
    assert status == 200  # exist_ok: the branch exists, and it stays where it is
    assert alice.model_info("org/history").sha == second.oid
    alice.create_tag("org/history", tag="v1", revision=first.oid)
    status, _, body = raw(url, "DELETE", "/api/models/org/history/tag/v1", headers=bearer(tokens["alice"]))
    assert status == 403 and b"immutable" in body
    with pytest.raises(HfHubHTTPError) as caught:
        alice.create_tag("org/history", tag="v1", revision=second.oid)
    assert caught.value.response.status_code == 409
    assert alice.model_info("org/history", revision="v1").sha == first.oid
    # the administrator's switch
    admin = RegistryServer(tmp_path / "registry-admin", allow_tag_deletion=True)
    admin_url = admin.start()
    try:
        token = TokenBook.load(admin.root).add("alice", write=("org",))
        api(admin_url, token).create_repo("org/r")
        api(admin_url, token).create_tag("org/r", tag="v1")
        api(admin_url, token).delete_tag("org/r", tag="v1")
        assert api(admin_url, token).list_repo_refs("org/r").tags == []
    finally:
        admin.stop()


def test_ref_names_cannot_shadow_commit_ids(registry, tmp_path):
    server, url, tokens = registry
    alice = api(url, tokens["alice"])
    alice.create_repo("org/refs")
    first = alice.create_commit("org/refs", [CommitOperationAdd("a.txt", b"1")], commit_message="one")
    second = alice.create_commit("org/refs", [CommitOperationAdd("a.txt", b"2")], commit_message="two")
    for name in (first.oid, "a" * 64, "refs/heads/main", "refs/tags/v1", "x\ny"):
        body = json.dumps({"startingPoint": second.oid}).encode()
        status, _, _ = raw(
            url,
            "POST",
            f"/api/models/org/refs/branch/{urllib.request.quote(name, safe='')}",
            body,
            bearer(tokens["alice"]),
        )
        assert status == 400, name
    # a store written before the rule: a branch named like a commit id still cannot shadow that commit
    refs_file = server.root / "repos" / "model" / "org" / "refs" / "refs.json"
    refs = json.loads(refs_file.read_text())
    refs["branches"][first.oid] = second.oid
    refs_file.write_text(json.dumps(refs))
    out = hf_hub_download("org/refs", "a.txt", revision=first.oid, endpoint=url, cache_dir=tmp_path / "c")
    assert Path(out).read_bytes() == b"1"


# -- integrity -------------------------------------------------------------------------------------------------


def test_a_flipped_byte_with_its_mtime_restored_is_caught_on_read_and_by_fsck(registry, tmp_path):
    server, url, tokens = registry
    alice = api(url, tokens["alice"])
    alice.create_repo("org/rot")
    payload = os.urandom(200_000)
    alice.create_commit("org/rot", [CommitOperationAdd("w.safetensors", payload)], commit_message="w")
    first = hf_hub_download("org/rot", "w.safetensors", endpoint=url, cache_dir=tmp_path / "a")
    assert Path(first).read_bytes() == payload  # verified and cached now
    blob = server.store.blobs.path(hashlib.sha256(payload).hexdigest())
    stat = blob.stat()
    with open(blob, "r+b") as f:
        f.seek(12345)
        byte = f.read(1)
        f.seek(12345)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert blob.stat().st_mtime_ns == stat.st_mtime_ns
    status, _, body = raw(url, "GET", "/org/rot/resolve/main/w.safetensors")
    assert status == 500 and b"corrupted" in body
    result = subprocess.run(
        [sys.executable, "-m", "subspace_hub", "registry", "fsck", "--root", str(server.root)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and hashlib.sha256(payload).hexdigest() in result.stdout


# -- bounded connections -----------------------------------------------------------------------------------------


def test_stalled_connections_time_out_and_do_not_pin_threads(tmp_path):
    root = tmp_path / "registry"
    token = TokenBook.load(root).add("alice", write=("org",))
    server = RegistryServer(root, workers=4, timeout=1.0)
    url = server.start()
    host, port = url.removeprefix("http://").split(":")
    threads_before = threading.active_count()
    stalled = []
    try:
        for _ in range(40):  # half-sent requests: a request line and no end of headers
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            stalled.append(sock)
        assert threading.active_count() <= threads_before + 4 + 1  # the pool, not a thread per connection
        # a client behind them is served once the stalled ones time out
        assert api(url, token).whoami()["name"] == "alice"
        for sock in stalled:  # each was closed by the server when its timeout passed
            sock.settimeout(10)
            assert sock.recv(100) == b""
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


# -- malformed input is a 400 -------------------------------------------------------------------------------------


def test_malformed_requests_are_400_not_500(registry):
    server, url, tokens = registry
    api(url, tokens["alice"]).create_repo("org/m")
    auth = bearer(tokens["alice"])
    cases = [
        ("POST", "/api/models/org/m/commit/main", b"{not json\n", auth),
        ("POST", "/api/models/org/m/commit/main", b'{"key": "file", "value": {"path": "a", "content": "!!"}}\n', auth),
        ("POST", "/api/models/org/m/commit/main", b'{"key": "file", "value": {}}\n', auth),
        ("POST", "/api/models/org/m/commit/main", b'["a list"]\n', auth),
        ("POST", "/api/repos/create", b"{oops", auth),
        ("POST", "/api/models/org/m/preupload/main", b'{"files": "nope"}', auth),
        ("POST", "/api/models/org/m/preupload/main", b'{"files": [{"path": "a", "size": "big"}]}', auth),
        ("POST", "/org/m.git/info/lfs/objects/batch", b'{"operation": "download", "objects": 3}', {}),
        ("POST", "/org/m.git/info/lfs/objects/batch", b'{"operation": "steal"}', {}),
        ("GET", "/api/models/org/m/tree/main?cursor=abc", None, {}),
        ("GET", "/api/models/org/m/tree/main?cursor=-5", None, {}),
        ("POST", "/api/models/org/m/paths-info/main", b"\xff\xfe", {"Content-Type": "application/json"}),
    ]
    for method, path, body, headers in cases:
        status, _, answer = raw(url, method, path, body, headers)
        assert status == 400, (path, body, status, answer)
    assert api(url, tokens["alice"]).list_repo_files("org/m") == []


# -- paths -------------------------------------------------------------------------------------------------------


def test_lookalike_paths_and_file_folder_clashes_are_refused(registry, tmp_path):
    server, url, tokens = registry
    alice = api(url, tokens["alice"])
    alice.create_repo("org/paths")
    for path in (
        "a\rb.txt",
        "line\nbreak.txt",
        "evil\u202etxt.exe",
        "zero\u200bwidth.txt",
        "cafe\u0301.txt",
        "bom\ufeff",
    ):
        operation = {
            "key": "file",
            "value": {"path": path, "content": base64.b64encode(b"x").decode(), "encoding": "base64"},
        }
        status, _, body = raw(
            url, "POST", "/api/models/org/paths/commit/main", commit_body("bad", operation), bearer(tokens["alice"])
        )
        assert status == 400 and (b"not allowed" in body or b"NFC" in body), (path, status, body)
    alice.create_commit("org/paths", [CommitOperationAdd("caf\u00e9.txt", b"nfc is fine")], commit_message="nfc")
    alice.create_commit("org/paths", [CommitOperationAdd("x", b"file")], commit_message="x")
    with pytest.raises(HfHubHTTPError) as caught:
        alice.create_commit("org/paths", [CommitOperationAdd("x/y", b"inside a file")], commit_message="clash")
    assert caught.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError):
        alice.create_commit(
            "org/paths", [CommitOperationAdd("d/e", b"1"), CommitOperationAdd("d", b"2")], commit_message="clash"
        )
    folder = Path(snapshot_download("org/paths", endpoint=url, cache_dir=tmp_path / "c"))
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["caf\u00e9.txt", "x"]


# -- storage leaks ----------------------------------------------------------------------------------------------


def test_blobs_of_refused_commits_are_collected_and_dead_uploads_swept(registry):
    server, url, tokens = registry
    alice = api(url, tokens["alice"])
    alice.create_repo("org/gc")
    alice.create_commit("org/gc", [CommitOperationAdd("keep.txt", b"keep me")], commit_message="keep")
    # a commit refused after its inline file was stored (the second line names a blob nobody uploaded)
    orphan = {"key": "file", "value": {"path": "orphan.txt", "content": base64.b64encode(b"orphan bytes").decode()}}
    missing = {"key": "lfsFile", "value": {"path": "m.bin", "algo": "sha256", "oid": "0" * 64}}
    status, _, _ = raw(
        url, "POST", "/api/models/org/gc/commit/main", commit_body("refused", orphan, missing), bearer(tokens["alice"])
    )
    assert status == 400
    orphan_sha = hashlib.sha256(b"orphan bytes").hexdigest()
    assert server.store.blobs.exists(orphan_sha)
    assert server.store.gc(grace=3600) == []  # within the grace period an upload may still be committed
    assert server.store.gc(grace=0, dry_run=True) == [orphan_sha]
    assert server.store.gc(grace=0) == [orphan_sha]
    assert not server.store.blobs.exists(orphan_sha) and server.store.fsck() == []
    assert alice.list_repo_files("org/gc") == ["keep.txt"]
    # the upload folder of a process that is gone is swept by the next store opened on the root
    dead = server.root / "tmp" / "session-999999-deadbeef"
    dead.mkdir()
    (dead / "upload-abc").write_bytes(b"x" * 1000)
    (server.root / "tmp" / "upload-legacy").write_bytes(b"x")
    other = RepoStore(server.root)
    try:
        assert not dead.exists() and not (server.root / "tmp" / "upload-legacy").exists()
        assert server.store.blobs.tmp.is_dir()  # a live server's folder is left alone
    finally:
        other.close()


def test_killing_gc_midway_loses_nothing_referenced(tmp_path):
    root = tmp_path / "registry"
    store = RepoStore(root)
    store.create_repo("model", "org/kept")
    keep = [store.blobs.put_bytes(f"kept {i}".encode())[0] for i in range(50)]
    from subspace_hub.hub.server.storage import Operation

    store.create_commit(
        "model", "org/kept", "main", [Operation("add", f"f{i}", s) for i, s in enumerate(keep)], title="k"
    )
    for i in range(3000):
        store.blobs.put_bytes(f"garbage {i}".encode())
    store.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "subspace_hub", "registry", "gc", "--root", str(root), "--grace-hours", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    store = RepoStore(root)
    try:
        assert store.fsck() == []
        store.gc(grace=0)
        assert sorted(store.blobs.all()) == sorted(keep)
        assert all(store.blobs.verify(s) for s in keep)
    finally:
        store.close()


# -- tokens and logs ------------------------------------------------------------------------------------------


def test_tokens_take_effect_without_restart_and_secrets_stay_out_of_the_log(registry, caplog, tmp_path):
    server, url, tokens = registry
    book = TokenBook.load(server.root)
    fresh = book.add("newcomer")
    assert api(url, fresh).whoami()["name"] == "newcomer"  # no restart
    from subspace_hub.cli import main

    assert main(["registry", "token", "revoke", "newcomer", "--root", str(server.root)]) == 0
    with pytest.raises(HfHubHTTPError) as caught:
        api(url, fresh).whoami()
    assert caught.value.response.status_code == 401
    with caplog.at_level(logging.INFO, logger="subspace_hub.registry"):
        alice = api(url, tokens["alice"])
        alice.create_repo("org/logged")
        alice.create_commit("org/logged", [CommitOperationAdd("w.safetensors", os.urandom(5000))], commit_message="w")
    paths = [json.loads(r.getMessage())["path"] for r in caplog.records if r.name == "subspace_hub.registry"]
    uploads = [p for p in paths if p.startswith("/lfs-upload/")]
    assert uploads and all("sig=<redacted>" in p for p in uploads)
    assert not any(tokens["alice"] in p for p in paths)
    listed = subprocess.run(
        [sys.executable, "-m", "subspace_hub", "registry", "token", "list", "--root", str(server.root), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    users = {row["user"] for row in json.loads(listed.stdout)}
    assert users == {"alice", "mallory", "reader"} and tokens["alice"] not in listed.stdout


# -- one test per guarded path (each fails if its guard is removed) --------------------------------------------------


def test_every_ref_endpoint_checks_write_rights(registry):
    server, url, tokens = registry
    alice = api(url, tokens["alice"])
    alice.create_repo("org/refs")
    alice.create_commit("org/refs", [CommitOperationAdd("a.txt", b"a")], commit_message="one")
    alice.create_tag("org/refs", tag="v1")
    alice.create_branch("org/refs", branch="dev")
    before = api(url, tokens["alice"]).list_repo_refs("org/refs")
    for token in (tokens["mallory"], tokens["reader"], None):
        headers = {"Content-Type": "application/json", **(bearer(token) if token else {})}
        attempts = [
            ("POST", "/api/models/org/refs/branch/evil", {"startingPoint": "main"}),
            ("DELETE", "/api/models/org/refs/branch/dev", None),
            ("POST", "/api/models/org/refs/tag/main", {"tag": "evil"}),
            ("DELETE", "/api/models/org/refs/tag/v1", None),
        ]
        for method, path, payload in attempts:
            status, _, _ = raw(url, method, path, None if payload is None else json.dumps(payload).encode(), headers)
            assert status in (401, 403), (method, path, token is None, status)
    after = api(url, tokens["alice"]).list_repo_refs("org/refs")
    assert sorted(b.name for b in after.branches) == sorted(b.name for b in before.branches) == ["dev", "main"]
    assert [t.name for t in after.tags] == [t.name for t in before.tags] == ["v1"]


def _upload_href(url: str, token: str, data: bytes, repo: str = "org/lfs") -> str:
    oid = hashlib.sha256(data).hexdigest()
    payload = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}
    headers = {"Content-Type": "application/vnd.git-lfs+json", **bearer(token)}
    status, _, body = raw(url, "POST", f"/{repo}.git/info/lfs/objects/batch", json.dumps(payload).encode(), headers)
    assert status == 200
    return json.loads(body)["objects"][0]["actions"]["upload"]["href"]


def test_lfs_uploads_must_hash_to_their_oid(registry):
    server, url, tokens = registry
    api(url, tokens["alice"]).create_repo("org/lfs")
    promised = os.urandom(4096)
    href = _upload_href(url, tokens["alice"], promised)
    path = href.removeprefix(url)
    forged = os.urandom(4096)  # the right size, other bytes
    status, _, body = raw(url, "PUT", path, forged, {"Content-Type": "application/octet-stream"})
    assert status == 400 and (b"HashMismatch" in body or b"hashes to" in body)
    assert not server.store.blobs.exists(hashlib.sha256(promised).hexdigest())
    status, _, _ = raw(url, "PUT", path, promised, {"Content-Type": "application/octet-stream"})
    assert status == 200 and server.store.blobs.exists(hashlib.sha256(promised).hexdigest())


def test_lfs_puts_need_the_signature_the_batch_gave(registry):
    server, url, tokens = registry
    api(url, tokens["alice"]).create_repo("org/lfs")
    data = os.urandom(2048)
    oid = hashlib.sha256(data).hexdigest()
    path = _upload_href(url, tokens["alice"], data).removeprefix(url)
    base, query = path.split("?")
    fields = dict(item.split("=", 1) for item in query.split("&"))
    tampered = [
        f"{base}?size={fields['size']}&expires={fields['expires']}&user={fields['user']}&sig={'0' * 64}",
        f"{base}?size={fields['size']}&expires={int(fields['expires']) + 10}&user={fields['user']}&sig={fields['sig']}",
        f"{base}?size={fields['size']}&expires={fields['expires']}&user=mallory&sig={fields['sig']}",
        f"{base}?size={fields['size']}&expires={int(time.time()) - 10}&user={fields['user']}&sig={fields['sig']}",
    ]
    for attempt in tampered:
        status, _, _ = raw(url, "PUT", attempt, data, {"Content-Type": "application/octet-stream"})
        assert status == 403, attempt
    assert not server.store.blobs.exists(oid)


def test_a_suffix_range_returns_exactly_the_last_bytes(registry, tmp_path):
    server, url, tokens = registry
    alice = api(url, tokens["alice"])
    alice.create_repo("org/ranges")
    data = bytes(range(256)) * 8
    alice.create_commit("org/ranges", [CommitOperationAdd("blob.bin", data)], commit_message="bytes")
    path = "/org/ranges/resolve/main/blob.bin"
    for header, expected, content_range in [
        ("bytes=-10", data[-10:], f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"),
        ("bytes=-1", data[-1:], f"bytes {len(data) - 1}-{len(data) - 1}/{len(data)}"),
        ("bytes=5-9", data[5:10], f"bytes 5-9/{len(data)}"),
        (f"bytes=-{len(data) + 5}", data, f"bytes 0-{len(data) - 1}/{len(data)}"),
    ]:
        status, headers, body = raw(url, "GET", path, headers={**bearer(tokens["alice"]), "Range": header})
        assert status == 206 and body == expected and headers["Content-Range"] == content_range, header


def test_the_token_book_keeps_secrets_private_and_rights_exact(tmp_path):
    """Unit checks of the token book (mutation testing found them untested): file mode, names, wildcards, revocation
    by hash prefix, the version-1 file, what a reload keeps."""
    import stat

    root = tmp_path / "deep" / "registry"  # parents are created
    book = TokenBook.load(root)
    token = book.add("alice", write=("org",), read=("lab",))
    assert token.startswith("shub_") and len(token) > 40
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600  # hashes of secrets: owner only
    for bad in ("", "a b", "a/b", "al.ice"):
        with pytest.raises(ConfigError, match="Invalid user name"):
            book.add(bad)
    with pytest.raises(InvalidRepoIdError, match="Invalid namespace 'bad namespace!'"):
        book.add("eve", write=("bad namespace!",))
    with pytest.raises(InvalidRepoIdError):
        book.add("eve", write=(), read=("*x",))
    admin = TokenBook.load(root).user(book.add("admin", write=("*",)))
    reader = TokenBook.load(root).user(book.add("auditor", write=(), read=("*",)))
    alice = TokenBook.load(root).user(token)
    assert (alice.name, alice.write, alice.read) == ("alice", ("org",), ("lab",)) and alice.created.endswith("Z")
    assert alice.can_write("org") and not alice.can_write("lab") and alice.can_read("lab") and alice.can_read("org")
    assert not alice.can_read("other") and admin.can_write("anything") and admin.can_read("anything")
    assert reader.can_read("anything") and not reader.can_write("anything")
    # revocation by an 8-hex-digit prefix of the token's hash removes that token only; 7 digits are not enough
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert book.revoke(digest[:7]) == 0 and book.revoke(digest[:8]) == 1
    assert TokenBook.load(root).user(token) is None
    # a version-1 file (a flat mapping of hashes) still loads
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    old = "shub_legacy-token"
    (legacy / book.path.name).write_text(
        json.dumps({hashlib.sha256(old.encode()).hexdigest(): {"name": "bob", "write": ["bob"]}})
    )
    bob = TokenBook.load(legacy).user(old)
    assert (bob.name, bob.write, bob.read, bob.created) == ("bob", ("bob",), (), "")


def test_the_token_book_reads_sparse_files_and_stamps_tokens_in_utc(tmp_path, monkeypatch):
    """A version-2 file with no tokens, or entries with only a name, loads (nothing granted); names may hold '-' and
    '_'; a generated token carries 32 random bytes; ``created`` is UTC whatever the local time zone."""
    import calendar
    import re

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "tokens.json").write_text(json.dumps({"version": 2}))
    assert TokenBook.load(empty).users == {}
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    secret = "shub_sparse-token"
    entries = {hashlib.sha256(secret.encode()).hexdigest(): {"name": "carol"}}
    (sparse / "tokens.json").write_text(json.dumps({"version": 2, "tokens": entries}))
    carol = TokenBook.load(sparse).user(secret)
    assert (carol.name, carol.write, carol.read, carol.created) == ("carol", (), (), "")
    assert not carol.can_write("carol") and not carol.can_read("carol")
    monkeypatch.setenv("TZ", "America/New_York")  # 4-5 hours behind UTC: a local stamp would differ
    time.tzset()
    try:
        book = TokenBook.load(tmp_path / "book")
        token = book.add("data-team_1")
        assert token.startswith("shub_") and len(token) == 5 + 43  # base64 of 32 bytes, unpadded
        created = TokenBook.load(tmp_path / "book").user(token).created
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", created)
        stamped = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
        assert abs(stamped - time.time()) < 120  # read back as UTC, it is now
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
