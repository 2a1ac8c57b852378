"""The registry server with the real huggingface_hub client: protocol details, concurrency, crash safety,
integrity, authentication and input validation."""

from __future__ import annotations

import hashlib
import json
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
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

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
    tokens = {"alice": book.add("alice", write=("org",)), "bob": book.add("bob")}  # bob: his own namespace
    server = RegistryServer(root, page_size=2)
    url = server.start()
    yield server, url, tokens
    server.stop()


def client(url: str, token: str | None) -> HfApi:
    return HfApi(endpoint=url, token=token)


def test_commits_regular_and_lfs_tags_branches_listing_and_downloads(registry, tmp_path):
    server, url, tokens = registry
    api = client(url, tokens["alice"])
    assert api.whoami()["name"] == "alice"
    api.create_repo("org/model")
    api.create_repo("org/model", exist_ok=True)  # the 409 path carries the url
    big = os.urandom(3 << 20)
    first = api.create_commit(
        "org/model",
        [
            CommitOperationAdd("README.md", b"# hello\n"),
            CommitOperationAdd("weights.safetensors", big),
            CommitOperationAdd("a/b/c.txt", b"deep"),
        ],
        commit_message="first",
    )
    api.create_tag("org/model", tag="v1", revision=first.oid)
    api.create_branch("org/model", branch="dev", revision=first.oid)
    second = api.create_commit("org/model", [CommitOperationAdd("a/b/c.txt", b"changed")], commit_message="second")
    assert len(first.oid) == len(second.oid) == 40
    refs = api.list_repo_refs("org/model")
    assert {t.name for t in refs.tags} == {"v1"} and {b.name for b in refs.branches} == {"main", "dev"}
    assert api.model_info("org/model", revision="v1").sha == first.oid
    assert sorted(api.list_repo_files("org/model")) == ["README.md", "a/b/c.txt", "weights.safetensors"]  # 3 pages of 2
    tree = list(api.list_repo_tree("org/model", recursive=True))
    assert {e.path for e in tree} == {"README.md", "a", "a/b", "a/b/c.txt", "weights.safetensors"}
    lfs = next(e for e in tree if e.path == "weights.safetensors")
    assert lfs.lfs is not None and lfs.size == len(big)
    info = api.get_paths_info("org/model", ["a/b/c.txt", "missing", "a"])
    assert {i.path for i in info} == {"a/b/c.txt", "a"}
    assert (
        Path(
            hf_hub_download("org/model", "a/b/c.txt", revision="v1", endpoint=url, cache_dir=tmp_path / "c")
        ).read_bytes()
        == b"deep"
    )
    assert (
        Path(hf_hub_download("org/model", "a/b/c.txt", endpoint=url, cache_dir=tmp_path / "c")).read_bytes()
        == b"changed"
    )
    snapshot = Path(snapshot_download("org/model", revision="v1", endpoint=url, cache_dir=tmp_path / "c"))
    assert (snapshot / "weights.safetensors").read_bytes() == big
    assert [c.title for c in api.list_repo_commits("org/model")] == ["second", "first", "initial commit"]
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/model", "nope.txt", endpoint=url, cache_dir=tmp_path / "c")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/model", "README.md", revision="v9", endpoint=url, cache_dir=tmp_path / "c")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/absent")
    assert api.file_exists("org/model", "README.md") and not api.file_exists("org/model", "x")
    # Range requests (datasets streaming uses them)
    request = urllib.request.Request(
        f"{url}/org/model/resolve/main/weights.safetensors", headers={"Range": "bytes=10-19"}
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 206 and response.read() == big[10:20]
        assert response.headers["Content-Range"] == f"bytes 10-19/{len(big)}"
    with pytest.raises(HfHubHTTPError, match="protected"):
        api.delete_tag("org/model", tag="v1")  # published tags are immutable (see test_hub_security)
    api.delete_repo("org/model")
    assert not api.repo_exists("org/model")


def test_git_ids_name_an_lfs_file_by_its_pointer_and_a_regular_file_by_its_content(registry, tmp_path):
    """As git does: an LFS file's blob id is that of its pointer (so the upload hashes its bytes once, sha256), a
    regular file's is that of its content; the same bytes committed both ways get both ids, the second computed
    from the stored blob when it is first needed, and huggingface_hub's skip of unchanged regular files works."""
    from huggingface_hub.utils.sha import git_hash

    server, url, tokens = registry
    api = client(url, tokens["alice"])
    api.create_repo("org/ids")
    data = os.urandom(3000)
    sha256 = hashlib.sha256(data).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
    api.create_commit("org/ids", [CommitOperationAdd("w.safetensors", data)], commit_message="lfs")
    meta = json.loads(server.store.blobs.path(sha256).with_suffix(".json").read_text())
    assert meta == {"size": len(data)}  # no second hash of the upload
    second = api.create_commit("org/ids", [CommitOperationAdd("w.txt", data)], commit_message="regular")
    files = {f.path: f for f in api.get_paths_info("org/ids", ["w.safetensors", "w.txt"])}
    assert files["w.safetensors"].blob_id == git_hash(pointer) and files["w.safetensors"].lfs.sha256 == sha256
    assert files["w.txt"].blob_id == git_hash(data) and files["w.txt"].lfs is None
    assert json.loads(server.store.blobs.path(sha256).with_suffix(".json").read_text())["sha1"] == git_hash(data)
    siblings = {s.rfilename: s.blob_id for s in api.model_info("org/ids", files_metadata=True).siblings}
    assert siblings == {"w.safetensors": git_hash(pointer), "w.txt": git_hash(data)}
    folder = Path(snapshot_download("org/ids", endpoint=url, cache_dir=tmp_path / "c"))
    assert (folder / "w.txt").read_bytes() == (folder / "w.safetensors").read_bytes() == data
    again = api.create_commit("org/ids", [CommitOperationAdd("w.txt", data)], commit_message="same")
    assert again.oid == second.oid  # the client saw the same regular file (by its git id) and committed nothing


def test_concurrent_commits_land_or_conflict_and_the_store_stays_consistent(registry):
    server, url, tokens = registry
    api = client(url, tokens["alice"])
    api.create_repo("org/busy")
    head = api.model_info("org/busy").sha
    results: list[str] = []

    def commit(i: int, parent: str | None) -> None:
        try:
            api.create_commit(
                "org/busy",
                [CommitOperationAdd(f"f{i}.txt", f"{i}".encode())],
                commit_message=f"c{i}",
                parent_commit=parent,
            )
            results.append("ok")
        except HfHubHTTPError as exc:
            results.append("conflict" if exc.response.status_code == 412 else f"error {exc.response.status_code}")

    threads = [threading.Thread(target=commit, args=(i, head)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count("ok") == 1 and results.count("conflict") == 7
    results.clear()
    threads = [threading.Thread(target=commit, args=(i + 10, None)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == ["ok"] * 8
    # consistent: a linear history, every commit readable, every file's blob present and intact
    store = RepoStore(server.root)
    history = store.history("model", "org/busy", "main")
    assert len(history) == 1 + 1 + 8
    assert len(store.commit("model", "org/busy", history[0].id).files) == 9
    for commit in history:
        for entry in commit.files.values():
            store.blobs.verify(entry.sha256)


def test_a_corrupted_blob_is_detected_on_read(registry, tmp_path):
    server, url, tokens = registry
    api = client(url, tokens["alice"])
    api.create_repo("org/fragile")
    api.create_commit("org/fragile", [CommitOperationAdd("data.bin", os.urandom(1 << 16))], commit_message="data")
    entry = RepoStore(server.root).commit("model", "org/fragile", api.model_info("org/fragile").sha).files["data.bin"]
    blob = server.store.blobs.path(entry.sha256)
    raw = bytearray(blob.read_bytes())
    raw[100] ^= 0xFF
    blob.write_bytes(bytes(raw))
    for method in ("HEAD", "GET"):  # what hf_hub_download sends (it would retry the 500 a few times first)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(urllib.request.Request(f"{url}/org/fragile/resolve/main/data.bin", method=method))
        assert caught.value.code == 500 and caught.value.headers["X-Error-Code"] == "CorruptBlob"
        assert "corrupted" in caught.value.headers["X-Error-Message"]


def test_writes_need_a_valid_token_with_rights(registry):
    server, url, tokens = registry
    with pytest.raises(HfHubHTTPError) as caught:
        client(url, None).create_repo("org/x")
    assert caught.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as caught:
        client(url, "shub_not-a-token").create_repo("org/x")
    assert caught.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as caught:
        client(url, tokens["bob"]).create_repo("org/x")  # bob may write only to "bob"
    assert caught.value.response.status_code == 403
    client(url, tokens["bob"]).create_repo("bob/own")
    alice = client(url, tokens["alice"])
    alice.create_repo("org/secret", private=True)
    alice.create_repo("org/public")
    with pytest.raises(HfHubHTTPError):
        client(url, tokens["bob"]).create_commit("org/public", [CommitOperationAdd("x", b"x")], commit_message="nope")
    assert client(url, None).model_info("org/public").id == "org/public"  # anonymous reads of public repos
    with pytest.raises(RepositoryNotFoundError):
        client(url, None).model_info("org/secret")
    server.anonymous_read = False
    with pytest.raises(RepositoryNotFoundError):
        client(url, None).model_info("org/public")


def test_traversal_paths_and_bad_names_are_refused(registry):
    server, url, tokens = registry
    api = client(url, tokens["alice"])
    for bad in ("org/..", "org/a b", "../x", "org/x/y", "org/-x", "org/" + "a" * 97):
        with pytest.raises((HfHubHTTPError, ValueError)):
            api.create_repo(bad)
    api.create_repo("org/ok")
    for path in ("../escape.txt", "a/../../b", "/abs.txt", ".git/config", "a//b", "a\\b"):
        body = json.dumps({"key": "file", "value": {"path": path, "content": "eA==", "encoding": "base64"}})
        request = urllib.request.Request(
            f"{url}/api/models/org/ok/commit/main",
            data=('{"key":"header","value":{"summary":"x"}}\n' + body).encode(),
            headers={"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "application/x-ndjson"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        assert caught.value.code == 400 and caught.value.headers["X-Error-Code"] == "InvalidPath", path
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{url}/org/ok/resolve/main/..%2F..%2Ftokens.json")
    assert caught.value.code == 400
    assert not any(p.name == "escape.txt" for p in server.root.rglob("*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killing_the_server_mid_upload_leaves_the_previous_commit_intact(tmp_path):
    root = tmp_path / "registry"
    token = TokenBook.load(root).add("alice", write=("org",))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "subspace_hub", "registry", "serve", "--root", str(root), "--port", str(port)]

    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/api/models/x/y")
            except urllib.error.HTTPError:
                return process
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    process = start()
    api = client(url, token)
    api.create_repo("org/safe")
    first = api.create_commit("org/safe", [CommitOperationAdd("model.safetensors", b"v1" * 1000)], commit_message="v1")
    # an upload that never finishes: a 64 MB LFS PUT of which only a part is sent, then the server dies
    payload = os.urandom(64 << 20)
    import hashlib

    oid = hashlib.sha256(payload).hexdigest()
    batch = json.dumps(
        {
            "operation": "upload",
            "transfers": ["basic"],
            "objects": [{"oid": oid, "size": len(payload)}],
            "hash_algo": "sha256",
        }
    ).encode()
    request = urllib.request.Request(
        f"{url}/org/safe.git/info/lfs/objects/batch",
        data=batch,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.git-lfs+json"},
        method="POST",
    )
    href = json.loads(urllib.request.urlopen(request).read())["objects"][0]["actions"]["upload"]["href"]
    connection = socket.create_connection(("127.0.0.1", port))
    path = href.split(str(port), 1)[1]
    connection.sendall(
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
    )
    connection.sendall(payload[: 20 << 20])
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    connection.close()
    process = start()
    try:
        store = RepoStore(root)
        assert store.resolve("model", "org/safe", "main") == first.oid
        assert not store.blobs.exists(oid)  # the partial upload never became a blob
        # and left nothing behind: the killed process's upload folder was swept when the server started again
        assert list((root / "tmp").rglob("upload-*")) == []
        out = hf_hub_download("org/safe", "model.safetensors", endpoint=url, cache_dir=tmp_path / "c")
        assert Path(out).read_bytes() == b"v1" * 1000
        api.create_commit(
            "org/safe", [CommitOperationAdd("after.txt", b"ok")], commit_message="after"
        )  # still writable
        assert len(api.list_repo_commits("org/safe")) == 3
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_structured_request_log(registry, caplog):
    server, url, tokens = registry
    import logging

    with caplog.at_level(logging.INFO, logger="subspace_hub.registry"):
        client(url, tokens["alice"]).create_repo("org/logged")
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "subspace_hub.registry"]
    created = next(r for r in records if r["path"] == "/api/repos/create")
    assert (
        created["status"] == 200 and created["user"] == "alice" and created["method"] == "POST" and created["ms"] >= 0
    )


def test_size_limits(tmp_path):
    root = tmp_path / "registry"
    token = TokenBook.load(root).add("alice", write=("org",))
    server = RegistryServer(root, max_file_size=1 << 20, max_commit_size=2 << 20)
    url = server.start()
    try:
        api = client(url, token)
        api.create_repo("org/limits")
        with pytest.raises(HfHubHTTPError) as caught:
            api.create_commit("org/limits", [CommitOperationAdd("big.txt", b"x" * (4 << 20))], commit_message="too big")
        assert caught.value.response.status_code == 413
        # an LFS file over the file limit: the batch answers a per-object 413, which huggingface_hub raises as this
        with pytest.raises(ValueError, match="object larger than the limit of 1048576 bytes"):
            api.create_commit(
                "org/limits",
                [CommitOperationAdd("big.safetensors", os.urandom((1 << 20) + 1))],
                commit_message="too big",
            )
        api.create_commit("org/limits", [CommitOperationAdd("small.txt", b"ok")], commit_message="fits")
        assert api.list_repo_files("org/limits") == ["small.txt"]
        # exactly at the file limit is allowed
        edge = os.urandom(1 << 20)
        api.create_commit("org/limits", [CommitOperationAdd("edge.safetensors", edge)], commit_message="at the limit")
        assert api.list_repo_files("org/limits") == ["edge.safetensors", "small.txt"]
    finally:
        server.stop()
