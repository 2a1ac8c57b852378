"""The registry's JSON API answered exactly, request by request over raw HTTP: tree listings (nested, recursive,
paged), paths-info in both body forms, refs and their changes, commit history, YAML validation and repo deletion,
each with its refusals. (test_hub_server.py drives the same server through huggingface_hub.)"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import socket
import time
from urllib.parse import urlencode, urlsplit

import pytest

from subspace_hub.hub.server import RegistryServer
from subspace_hub.hub.server.app import header_safe
from subspace_hub.hub.server.auth import TokenBook
from subspace_hub.hub.server.storage import Conflict, Operation

FILES = {"README.md": b"# hi\n", "a/x.txt": b"x", "a/b/y.txt": b"yy", "a/b/c/z.txt": b"zzz", "w.bin": b"w" * 5}


class Api:
    """Raw requests to one server: ``(status, headers, decoded JSON or None)``."""

    def __init__(self, url: str) -> None:
        self.host = urlsplit(url).netloc
        self.url = url

    def __call__(self, method, path, *, token=None, body=None, form=None, headers=None):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection(self.host, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
        finally:
            connection.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A server with page size 3 over one repo ``org/files``: commit 1 adds README.md, commit 2 the rest (w.bin as
    LFS); branch main, tag ``v1`` at commit 1. Yields (api, server, writer token, reader token, [commit ids])."""
    root = tmp_path_factory.mktemp("registry")
    book = TokenBook.load(root)
    writer = book.add("alice", write=("org",))
    reader = book.add("bob", write=())
    server = RegistryServer(root, page_size=3)
    store = server.store
    store.create_repo("model", "org/files", author="alice")
    ids = []
    for paths in (["README.md"], [p for p in FILES if p != "README.md"]):
        operations = []
        for path in paths:
            sha256, _ = store.blobs.put_bytes(FILES[path])
            operations.append(Operation("add", path, sha256, lfs=path.endswith(".bin")))
        title = "first" if not ids else "second"
        ids.append(store.create_commit("model", "org/files", "main", operations, title=title, author="alice").id)
    store.set_ref("model", "org/files", "tag", "v1", ids[0])
    url = server.start()
    try:
        yield Api(url), server, writer, reader, ids
    finally:
        server.stop()


def directory(path):
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}


def file(hub, path):
    entry = hub[1].store.commit("model", "org/files", hub[4][1]).files[path]
    out = {"type": "file", "oid": entry.sha1, "size": len(FILES[path]), "path": path}
    if path.endswith(".bin"):
        out["lfs"] = {"oid": hashlib.sha256(FILES[path]).hexdigest(), "size": 5, "pointerSize": 134}
    return out


def test_tree_lists_one_level_or_everything_in_pages_of_the_servers_size(hub):
    api = hub[0]
    status, headers, page = api("GET", "/api/models/org/files/tree/main")
    assert status == 200 and page == [file(hub, "README.md"), directory("a"), file(hub, "w.bin")]
    assert headers["Link"] is None
    status, headers, page = api("GET", "/api/models/org/files/tree/main/a")
    assert page == [directory("a/b"), file(hub, "a/x.txt")]
    assert api("GET", "/api/models/org/files/tree/main/a/")[2] == page  # a trailing slash names the same folder
    assert api("GET", "/api/models/org/files/tree/main/a/b")[2] == [directory("a/b/c"), file(hub, "a/b/y.txt")]
    status, headers, first = api("GET", "/api/models/org/files/tree/main?recursive=true&expand=false")
    everything = [
        file(hub, "README.md"),
        directory("a"),
        directory("a/b"),
        directory("a/b/c"),
        file(hub, "a/b/c/z.txt"),
        file(hub, "a/b/y.txt"),
        file(hub, "a/x.txt"),
        file(hub, "w.bin"),
    ]
    assert first == everything[:3]
    # the next page's link keeps the query and sets the cursor
    assert (
        headers["Link"]
        == f'<{api.url}/api/models/org/files/tree/main?recursive=true&expand=false&cursor=3>; rel="next"'
    )
    status, headers, second = api("GET", "/api/models/org/files/tree/main?recursive=true&expand=false&cursor=3")
    assert second == everything[3:6] and "cursor=6" in headers["Link"]
    status, headers, last = api("GET", "/api/models/org/files/tree/main?recursive=true&cursor=6")
    assert last == everything[6:] and headers["Link"] is None
    assert api("GET", "/api/models/org/files/tree/main/a/b?recursive=true")[2] == [
        directory("a/b/c"),
        file(hub, "a/b/c/z.txt"),
        file(hub, "a/b/y.txt"),
    ]


def test_tree_of_a_file_a_missing_path_an_old_revision_and_bad_cursors(hub):
    api = hub[0]
    assert api("GET", "/api/models/org/files/tree/main/a/x.txt")[2] == [file(hub, "a/x.txt")]
    status, headers, body = api("GET", "/api/models/org/files/tree/main/nope")
    assert (status, headers["X-Error-Code"], body) == (404, "EntryNotFound", {"error": "nope does not exist at main."})
    assert api("GET", "/api/models/org/files/tree/main/a/x")[0] == 404  # a prefix of a name is not a folder
    assert api("GET", "/api/models/org/files/tree/v1")[2] == [file(hub, "README.md")]
    assert api("GET", "/api/models/org/files/tree")[2] == api("GET", "/api/models/org/files/tree/main")[2]
    for cursor in ("-1", "x"):
        status, headers, body = api("GET", f"/api/models/org/files/tree/main?cursor={cursor}")
        assert (status, headers["X-Error-Code"]) == (400, "BadRequest")
        assert body == {"error": f"cursor must be a non-negative integer, got '{cursor}'."}


def test_paths_info_answers_files_and_folders_in_either_body_form(hub):
    api = hub[0]
    wanted = ["a/x.txt", "/a/b/", "w.bin", "missing", "a/b/c/z"]
    expected = [file(hub, "a/x.txt"), directory("a/b"), file(hub, "w.bin")]
    status, _, body = api("POST", "/api/models/org/files/paths-info/main", form={"paths": wanted, "expand": "false"})
    assert (status, body) == (200, expected)
    assert api("POST", "/api/models/org/files/paths-info/main", body={"paths": wanted})[2] == expected
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert api("POST", "/api/models/org/files/paths-info/main", body={"paths": wanted}, headers=charset)[2] == expected
    assert api("POST", "/api/models/org/files/paths-info/main", body={"expand": True})[2] == []
    assert api("POST", "/api/models/org/files/paths-info/main", form={"expand": "true"})[2] == []
    assert (
        api("POST", "/api/models/org/files/paths-info/main", body=b"", headers={"Content-Type": "application/json"})[2]
        == []
    )
    assert api("POST", "/api/models/org/files/paths-info/v1", form={"paths": wanted})[2] == []  # README.md only
    assert api("POST", "/api/models/org/files/paths-info", form={"paths": ["w.bin"]})[2] == [file(hub, "w.bin")]


def test_paths_info_refuses_bodies_it_cannot_read(hub):
    api = hub[0]
    for body, says in (
        (b"{not json", "paths-info takes paths=...: Expecting property name enclosed in double quotes"),
        (b"[1, 2]", "paths-info takes paths=...: 'list' object has no attribute 'get'"),
        (b'{"paths": "a/x.txt"}', "paths-info takes a list of paths."),
    ):
        status, headers, answer = api(
            "POST", "/api/models/org/files/paths-info/main", body=body, headers={"Content-Type": "application/json"}
        )
        assert (status, headers["X-Error-Code"]) == (400, "BadRequest"), body
        assert answer["error"].startswith(says), answer
    status, headers, _ = api("POST", "/api/models/org/files/paths-info/main", body=b"paths=\xff\xfe")
    assert (status, headers["X-Error-Code"]) == (400, "BadRequest")


def test_refs_and_commit_history(hub):
    api, _, _, _, ids = hub
    status, _, refs = api("GET", "/api/models/org/files/refs")
    assert (status, refs) == (
        200,
        {
            "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": ids[1]}],
            "tags": [{"name": "v1", "ref": "refs/tags/v1", "targetCommit": ids[0]}],
            "converts": [],
        },
    )
    assert api("GET", "/api/models/org/files/refs?include_prs=1")[2] == {**refs, "pullRequests": []}
    history = api("GET", "/api/models/org/files/commits/main")[2]
    store = hub[1].store
    assert history == [
        {"id": c.id, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": "alice"}]}
        for c in store.history("model", "org/files", "main")
    ]
    assert [c["title"] for c in history] == ["second", "first", "initial commit"]
    assert [c["id"] for c in api("GET", "/api/models/org/files/commits/v1")[2]][0] == ids[0]
    assert api("GET", "/api/models/org/files/commits")[2] == history
    store.create_repo("model", "org/anonymous")  # no author: the history names none
    assert [c["authors"] for c in api("GET", "/api/models/org/anonymous/commits/main")[2]] == [[]]


def test_branches_and_tags_change_only_as_the_protocol_says(hub):
    api, server, writer, reader, ids = hub
    base = "/api/models/org/files"
    assert api("POST", f"{base}/branch/dev", token=writer, body={})[0:3:2] == (200, {})
    assert server.store.refs("model", "org/files")["branches"]["dev"] == ids[1]  # from main by default
    assert api("POST", f"{base}/branch/old", token=writer, body={"startingPoint": "v1"})[0] == 200
    assert server.store.refs("model", "org/files")["branches"]["old"] == ids[0]
    status, headers, body = api("POST", f"{base}/branch/old", token=writer, body={"startingPoint": "main"})
    assert status == 409 and "Branch 'old' already exists" in body["error"]
    assert api("POST", f"{base}/branch/old", token=writer, body={"startingPoint": "main", "exist_ok": True})[0] == 200
    assert server.store.refs("model", "org/files")["branches"]["old"] == ids[0]  # exist_ok does not move it
    assert api("POST", f"{base}/tag/{ids[1]}", token=writer, body={"tag": "v2"})[0] == 200
    assert server.store.refs("model", "org/files")["tags"]["v2"] == ids[1]
    status, headers, body = api("DELETE", f"{base}/tag/v2", token=writer)
    assert (status, headers["X-Error-Code"]) == (403, "ProtectedTag")
    assert api("DELETE", f"{base}/branch/old", token=writer)[0:3:2] == (200, {})
    assert "old" not in server.store.refs("model", "org/files")["branches"]
    status, headers, body = api("DELETE", f"{base}/branch/old", token=writer)
    assert status == 404 and body == {"error": "No branch 'old' in org/files."}
    # writing refs needs a token with write rights on the namespace
    status, headers, body = api("POST", f"{base}/branch/x", body={})
    assert (status, headers["X-Error-Code"]) == (401, "Unauthorized")
    assert body == {"error": "Writing needs a token (Authorization: Bearer ...)."}
    status, headers, body = api("DELETE", f"{base}/branch/dev", token=reader)
    assert (status, headers["X-Error-Code"]) == (403, "Forbidden")
    assert body == {"error": "User 'bob' may not write to namespace 'org'."}
    status, headers, body = api("POST", f"{base}/branch/x", token="hf_not_a_token", body={})
    assert (status, headers["X-Error-Code"], body) == (401, "InvalidToken", {"error": "Invalid user token."})


def test_yaml_validation_needs_a_token_and_reports_bad_metadata(hub):
    api, _, writer, reader, _ = hub
    card = "---\nlicense: mit\ntags: [a, b]\n---\n# Card\n"
    assert api("POST", "/api/validate-yaml", token=reader, body={"content": card, "repoType": "model"})[0:3:2] == (
        200,
        {"errors": [], "warnings": []},
    )
    assert api("POST", "/api/validate-yaml", token=reader, body={"content": "# no metadata\n"})[2] == {
        "errors": [],
        "warnings": [],
    }
    status, _, answer = api("POST", "/api/validate-yaml", token=reader, body={"content": "---\nlicense: [mit\n---\n"})
    assert status == 200 and answer["warnings"] == [] and len(answer["errors"]) == 1
    assert answer["errors"][0]["message"].startswith("Invalid YAML metadata: while parsing a flow sequence")
    assert api("POST", "/api/validate-yaml", token=reader, body={})[2] == {"errors": [], "warnings": []}
    status, headers, body = api("POST", "/api/validate-yaml", token=reader, body={"content": 3})
    assert (status, headers["X-Error-Code"]) == (400, "BadRequest")
    assert body == {"error": 'validate-yaml takes {"content": <the card\'s text>}.'}
    status, headers, _ = api("POST", "/api/validate-yaml", body={"content": card})
    assert (status, headers["X-Error-Code"]) == (401, "Unauthorized")


def test_deleting_a_repo_takes_its_type_and_needs_write_rights(hub):
    api, server, writer, reader, _ = hub
    store = server.store
    for repo_type in ("model", "dataset"):
        store.create_repo(repo_type, "org/doomed", author="alice")
    status, headers, body = api(
        "DELETE", "/api/repos/delete", token=reader, body={"organization": "org", "name": "doomed"}
    )
    assert (status, headers["X-Error-Code"]) == (403, "Forbidden") and store.exists("model", "org/doomed")
    status, headers, body = api("DELETE", "/api/repos/delete", body={"organization": "org", "name": "doomed"})
    assert (status, headers["X-Error-Code"]) == (401, "Unauthorized")
    assert api(
        "DELETE", "/api/repos/delete", token=writer, body={"organization": "org", "name": "doomed", "type": "dataset"}
    )[0:3:2] == (200, {})
    assert store.exists("model", "org/doomed") and not store.exists("dataset", "org/doomed")
    assert api("DELETE", "/api/repos/delete", token=writer, body={"organization": "org", "name": "doomed"})[0] == 200
    assert not store.exists("model", "org/doomed")
    status, _, body = api("DELETE", "/api/repos/delete", token=writer, body={"name": "doomed"})
    assert status == 400 and "doomed" in body["error"]  # no namespace: "/doomed" is not a repo id


def test_a_private_repo_does_not_exist_for_those_who_may_not_read_it(hub):
    api, server, writer, reader, _ = hub
    server.store.create_repo("model", "org/secret", private=True, author="alice")
    assert api("GET", "/api/models/org/secret", token=writer)[0] == 200
    status, headers, body = api("GET", "/api/models/org/secret")
    assert (status, headers["X-Error-Code"]) == (401, "RepoNotFound")
    assert body == {"error": "Repository org/secret not found (or it needs a token)."}
    status, headers, body = api("GET", "/api/models/org/secret/refs", token=reader)
    assert (status, headers["X-Error-Code"], body) == (
        404,
        "RepoNotFound",
        {"error": "Repository org/secret not found."},
    )


def test_deleting_needs_a_whole_repo_id(hub):
    api, _, writer, _, _ = hub
    status, _, body = api("DELETE", "/api/repos/delete", token=writer, body={"organization": "org"})
    assert status == 400 and body["error"].startswith("Invalid repo id 'org/': use namespace/name")


def test_whoami_names_the_user_the_namespaces_they_write_and_their_role(hub):
    api, server, writer, reader, _ = hub
    admin = server.tokens.add("carol", write=("*", "carol", "lab"))
    assert api("GET", "/api/whoami-v2", token=writer)[0:3:2] == (
        200,
        {
            "type": "user",
            "name": "alice",
            "fullname": "alice",
            "orgs": [{"name": "org"}],
            "auth": {"type": "access_token", "accessToken": {"displayName": "alice", "role": "write"}},
        },
    )
    answer = api("GET", "/api/whoami-v2", token=reader)[2]
    assert answer["orgs"] == [] and answer["auth"]["accessToken"] == {"displayName": "bob", "role": "read"}
    assert api("GET", "/api/whoami-v2", token=admin)[2]["orgs"] == [{"name": "lab"}]  # not "*", not their own
    status, headers, body = api("GET", "/api/whoami-v2")
    assert (status, headers["X-Error-Code"], body) == (401, "Unauthorized", {"error": "Invalid user token."})


def test_repo_info_with_and_without_blobs(hub):
    api, server, writer, _, ids = hub
    store = server.store
    commit = store.commit("model", "org/files", ids[1])
    created = store.repo_meta("model", "org/files")["created"]
    status, _, info = api("GET", "/api/models/org/files")
    assert (status, info) == (
        200,
        {
            "_id": hashlib.sha1(b"org/files").hexdigest()[:24],
            "id": "org/files",
            "author": "org",
            "sha": ids[1],
            "lastModified": commit.date,
            "createdAt": created,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": p} for p in sorted(FILES)],
            "modelId": "org/files",
        },
    )
    blobs = api("GET", "/api/models/org/files?blobs=True")[2]["siblings"]
    assert blobs == [
        {"rfilename": p, "size": len(FILES[p]), "blobId": commit.files[p].sha1}
        | (
            {"lfs": {"sha256": hashlib.sha256(FILES[p]).hexdigest(), "size": len(FILES[p]), "pointerSize": 134}}
            if p.endswith(".bin")
            else {}
        )
        for p in sorted(FILES)
    ]
    assert api("GET", "/api/models/org/files?blobs=false")[2] == info
    old = api("GET", "/api/models/org/files/revision/v1")[2]
    assert (old["sha"], old["siblings"]) == (ids[0], [{"rfilename": "README.md"}])
    store.create_repo("dataset", "org/table", private=True, author="alice")
    table = api("GET", "/api/datasets/org/table", token=writer)[2]
    assert table["private"] is True and "modelId" not in table and table["id"] == "org/table"


def test_resolve_sends_the_bytes_with_the_headers_clients_check_and_honours_ranges(hub):
    api, server, _, _, ids = hub
    store = server.store
    lfs, regular = store.commit("model", "org/files", ids[1]).files["w.bin"], FILES["a/b/c/z.txt"]

    def get(path, range_=None, method="GET"):
        connection = http.client.HTTPConnection(api.host, timeout=10)
        try:
            connection.request(method, path, headers={"Range": range_} if range_ else {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    status, headers, body = get("/org/files/resolve/main/w.bin")
    assert (status, body) == (200, b"wwwww")
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{lfs.sha256}"' and headers["X-Linked-Size"] == "5"
    assert (headers["X-Repo-Commit"], headers["Accept-Ranges"], headers["Cache-Control"]) == (
        ids[1],
        "bytes",
        "private, max-age=0",
    )
    assert (headers["Content-Type"], headers["Content-Length"]) == ("application/octet-stream", "5")
    status, headers, body = get("/org/files/resolve/main/a/b/c/z.txt")
    assert (status, body, headers["X-Linked-Etag"]) == (200, regular, None)
    assert headers["ETag"] == f'"{store.commit("model", "org/files", ids[1]).files["a/b/c/z.txt"].sha1}"'
    status, headers, body = get("/org/files/resolve/main/w.bin", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, "5", b"")
    for range_, expected in (
        ("bytes=1-2", (206, b"ww", "bytes 1-2/5")),
        ("bytes=3-", (206, b"ww", "bytes 3-4/5")),
        ("bytes=1-99", (206, b"wwww", "bytes 1-4/5")),
        ("bytes=-2", (206, b"ww", "bytes 3-4/5")),
        ("bytes=-9", (206, b"wwwww", "bytes 0-4/5")),
        (" bytes=0-0 ", (206, b"w", "bytes 0-0/5")),
    ):
        status, headers, body = get("/org/files/resolve/main/w.bin", range_)
        assert (status, body, headers["Content-Range"]) == expected, range_
        assert headers["Content-Length"] == str(len(expected[1]))
    status, headers, body = get("/org/files/resolve/main/w.bin", "bytes=5-")
    assert (status, headers["Content-Range"], body) == (416, "bytes */5", b"")
    for bad in ("bytes=-", "bytes=a-b", "lines=1-2"):
        status, headers, _ = get("/org/files/resolve/main/w.bin", bad)
        assert (status, headers["X-Error-Message"]) == (416, f"Unsupported Range {bad!r}."), bad
    status, headers, body = get("/org/files/resolve/v1/w.bin")
    assert status == 404 and headers["X-Repo-Commit"] == ids[0] and headers["X-Error-Code"] == "EntryNotFound"
    assert json.loads(body) == {"error": "w.bin does not exist at v1 of org/files."}
    sha256, _ = store.blobs.put_bytes(b"")
    store.create_repo("model", "org/empty", author="alice")
    store.create_commit("model", "org/empty", "main", [Operation("add", "e.txt", sha256)], title="empty")
    for range_ in (None, "bytes=0-10"):
        status, headers, body = get("/org/empty/resolve/main/e.txt", range_)
        assert (status, headers["Content-Length"], body, headers["Content-Range"]) == (200, "0", b"", None)


# -- the upload half: repo creation, preupload, the LFS batch and its signed PUTs, NDJSON commits, body limits ------

LINE_LIMIT = (1 << 20) * 4 // 3 + (64 << 10)  # the commit line limit of a server whose regular limit is under 1 MiB


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """A server with small limits (regular files up to 64 bytes, files up to 1000, commits up to 3 MiB) and repo
    ``org/made`` holding ``a.txt`` (regular) and ``w.safetensors`` (LFS). Yields (api, server, tokens)."""
    root = tmp_path_factory.mktemp("uploads")
    book = TokenBook.load(root)
    tokens = {
        "alice": book.add("alice", write=("org",)),
        "bob": book.add("bob", write=()),
        "carol": book.add("carol", read=("org",)),  # writes her own namespace, reads org's private repos
    }
    server = RegistryServer(root, regular_limit=64, max_file_size=1000, max_commit_size=3 << 20)
    store = server.store
    store.create_repo("model", "org/made", author="alice")
    operations = []
    for path, data, lfs in (("a.txt", b"abc", False), ("w.safetensors", b"weights", True)):
        operations.append(Operation("add", path, store.blobs.put_bytes(data)[0], lfs=lfs))
    store.create_commit("model", "org/made", "main", operations, title="files", author="alice")
    url = server.start()
    try:
        yield Api(url), server, tokens
    finally:
        server.stop()


def refused(answer, status, code, error):
    """``answer`` is the refusal (status, X-Error-Code, JSON body and X-Error-Message) the protocol promises."""
    got_status, headers, body = answer
    assert (got_status, headers["X-Error-Code"], body) == (status, code, {"error": error})
    assert headers["X-Error-Message"] == error[:300]


def ndjson(*items) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def commit(api, token, lines, path="/api/models/org/made/commit/main"):
    return api("POST", path, token=token, body=lines, headers={"Content-Type": "application/x-ndjson"})


def exchange(api, request: bytes, *, body_sent: bytes = b"", close_write: bool = False, timeout: float = 5.0) -> bytes:
    """Send raw bytes on one connection and read until the server closes it (or ``timeout`` passes)."""
    host, port = api.host.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request + body_sent)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(1 << 16):
                received += chunk
        except TimeoutError:
            received += b"<still open>"
        return received


def test_creating_a_repo_answers_its_url_and_refuses_what_it_cannot_make(uploads):
    api, server, tokens = uploads
    store, alice = server.store, tokens["alice"]
    status, _, body = api("POST", "/api/repos/create", token=alice, body={"name": "made2", "organization": "org"})
    assert (status, body) == (200, {"url": f"{api.url}/org/made2", "name": "org/made2", "id": "org/made2"})
    assert store.repo_meta("model", "org/made2")["private"] is False
    assert [c.author for c in store.history("model", "org/made2", "main")] == ["alice"]
    dataset = {"name": "table", "organization": "org", "type": "dataset", "private": True}
    assert api("POST", "/api/repos/create", token=alice, body=dataset)[2]["url"] == f"{api.url}/datasets/org/table"
    assert store.repo_meta("dataset", "org/table")["private"] is True
    hidden = {"name": "hidden", "organization": "org", "visibility": "private"}
    assert api("POST", "/api/repos/create", token=alice, body=hidden)[0] == 200
    assert store.repo_meta("model", "org/hidden")["private"] is True
    # no organization: the token's own namespace
    assert api("POST", "/api/repos/create", token=tokens["carol"], body={"name": "mine"})[2]["id"] == "carol/mine"
    status, _, body = api("POST", "/api/repos/create", token=alice, body={"name": "made2", "organization": "org"})
    assert status == 409 and body == {
        "error": store_conflict(store, "model", "org/made2"),
        "url": f"{api.url}/org/made2",
    }
    status, headers, body = api("POST", "/api/repos/create", token=alice, body={"name": "x", "type": "bogus"})
    assert (status, headers["X-Error-Code"], body) == (
        400,
        None,
        {"error": "Unknown repo type 'bogus'; use model, dataset or space."},
    )
    for payload, says in (({"organization": "org"}, "Invalid repo id 'org/'"), (b"", "Invalid repo id 'alice/'")):
        status, _, body = api("POST", "/api/repos/create", token=alice, body=payload)
        assert status == 400 and body["error"].startswith(says), body
    refused(
        api("POST", "/api/repos/create", token=alice, body=b"{bad", headers={"Content-Type": "application/json"}),
        400,
        "BadRequest",
        "Request body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    )
    refused(
        api("POST", "/api/repos/create", token=tokens["bob"], body={"name": "x", "organization": "org"}),
        403,
        "Forbidden",
        "User 'bob' may not write to namespace 'org'.",
    )


def store_conflict(store, repo_type, repo_id):
    """The store's own words for a second creation: what the server passes on."""
    with pytest.raises(Conflict) as refused_again:
        store.create_repo(repo_type, repo_id)
    return str(refused_again.value)


def test_writes_are_refused_before_their_bodies_are_read_and_a_big_unread_body_closes_the_connection(uploads):
    api, _, tokens = uploads
    for path in (
        "/api/repos/create",
        "/api/validate-yaml",
        "/api/models/org/made/commit/main",
        "/api/models/org/made/preupload/main",
    ):
        # 1 MiB announced, not a byte sent: the answer comes at once and the connection closes
        answer = exchange(
            api, f"POST {path} HTTP/1.1\r\nHost: {api.host}\r\nContent-Length: {1 << 20}\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 401 ") and answer.endswith(b"}"), answer[-40:]


def test_unread_bodies_up_to_the_drain_limit_keep_the_connection_alive(uploads):
    api = uploads[0]
    second = f"GET /api/models/org/made HTTP/1.1\r\nHost: {api.host}\r\nConnection: close\r\n\r\n".encode()
    for size in (1, 64 << 10):
        first = f"POST /api/models/org/made/nothing HTTP/1.1\r\nHost: {api.host}\r\nContent-Length: {size}\r\n\r\n"
        answer = exchange(api, first.encode() + b"x" * size + second)
        assert re.findall(rb"HTTP/1.1 (\d+) ", answer) == [b"404", b"200"]
    # one byte more is not read: the answer, then the connection closes
    first = (
        f"POST /api/models/org/made/nothing HTTP/1.1\r\nHost: {api.host}\r\nContent-Length: {(64 << 10) + 1}\r\n\r\n"
    )
    answer = exchange(api, first.encode())
    assert answer.startswith(b"HTTP/1.1 404 ") and answer.count(b"HTTP/1.1") == 1 and not answer.endswith(b"open>")


def test_bodies_are_bounded_and_a_short_body_is_named(uploads):
    api, _, tokens = uploads
    auth = f"Authorization: Bearer {tokens['alice']}\r\n"
    # JSON bodies: at most 1 MiB (exactly 1 MiB is read)
    card = json.dumps({"content": "# card\n"}).encode()
    exact = card[:-1] + b" " * ((1 << 20) - len(card)) + b"}"
    assert api("POST", "/api/validate-yaml", token=tokens["alice"], body=exact)[0:3:2] == (
        200,
        {"errors": [], "warnings": []},
    )
    head = f"POST /api/validate-yaml HTTP/1.1\r\nHost: {api.host}\r\n{auth}Content-Length: {(1 << 20) + 1}\r\n\r\n"
    answer = exchange(api, head.encode())
    assert answer.startswith(b"HTTP/1.1 413 ") and b"X-Error-Code: TooLarge" in answer
    assert answer.endswith(b'{"error": "Request body of 1048577 bytes exceeds the limit of 1048576."}')
    # a commit: at most the server's max_commit_size (3 MiB here)
    head = f"POST /api/models/org/made/commit/main HTTP/1.1\r\nHost: {api.host}\r\n{auth}"
    answer = exchange(api, f"{head}Content-Length: {(3 << 20) + 1}\r\n\r\n".encode())
    assert answer.endswith(b'{"error": "Request body of 3145729 bytes exceeds the limit of 3145728."}')
    assert answer.startswith(b"HTTP/1.1 413 ") and b"X-Error-Code: TooLarge" in answer
    # bodies that end early
    answer = exchange(
        api,
        f"POST /api/repos/create HTTP/1.1\r\nHost: {api.host}\r\n{auth}Content-Length: 10\r\n\r\n".encode(),
        body_sent=b"{}  ",
        close_write=True,
    )
    assert answer.startswith(b"HTTP/1.1 400 ") and b"X-Error-Code: Truncated" in answer
    assert answer.endswith(b'{"error": "Request body ended after 4 of 10 bytes."}')
    line = ndjson({"key": "header", "value": {"summary": "short"}})
    answer = exchange(api, f"{head}Content-Length: {len(line) + 10}\r\n\r\n".encode(), body_sent=line, close_write=True)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"X-Error-Code: Truncated" in answer
    assert answer.endswith(b'{"error": "Request body ended before its Content-Length."}')


def test_a_commit_fills_its_limits_exactly(uploads):
    api, server, tokens = uploads
    alice = tokens["alice"]

    def header_line(size: int) -> bytes:  # a header line of ``size`` bytes, its newline included
        bare = ndjson({"key": "header", "value": {"summary": "padded", "description": ""}})
        return ndjson({"key": "header", "value": {"summary": "padded", "description": "d" * (size - len(bare))}})

    assert len(header_line(LINE_LIMIT)) == LINE_LIMIT
    assert commit(api, alice, header_line(LINE_LIMIT))[0] == 200
    written = json.loads(header_line(LINE_LIMIT))["value"]["description"]
    assert server.store.history("model", "org/made", "main")[0].message == written
    refused(
        commit(api, alice, header_line(LINE_LIMIT + 1)),
        413,
        "TooLarge",
        f"A commit line is longer than {LINE_LIMIT} bytes.",
    )
    # a body of exactly max_commit_size: three long header lines (the last one counts) and a blank line
    lines = header_line(LINE_LIMIT) * 2
    lines += header_line((3 << 20) - len(lines) - 1) + b"\n"
    assert len(lines) == 3 << 20 and commit(api, alice, lines)[0] == 200
    # files: at most max_file_size (1000) inline
    at_limit = {"path": "k.txt", "encoding": "base64", "content": base64.b64encode(b"k" * 1000).decode()}
    assert commit(api, alice, ndjson({"key": "header", "value": {}}, {"key": "file", "value": at_limit}))[0] == 200
    over = {"path": "big.txt", "encoding": "base64", "content": base64.b64encode(b"k" * 1001).decode()}
    refused(
        commit(api, alice, ndjson({"key": "file", "value": over})), 413, "TooLarge", "big.txt exceeds the size limit."
    )


def test_a_commit_applies_every_operation_kind_and_answers_its_urls(uploads):
    api, server, tokens = uploads
    store, alice = server.store, tokens["alice"]
    server.store.create_repo("model", "org/ops", author="alice")
    lfs_bytes = b"lfs bytes"
    lfs_oid, _ = store.blobs.put_bytes(lfs_bytes)
    store.record_possession("alice", lfs_oid)
    head = store.resolve("model", "org/ops", "main")
    lines = ndjson(
        {"key": "header", "value": {"summary": "add", "description": "three files", "parentCommit": head.upper()}},
        {"key": "file", "value": {"path": "d/b64.txt", "encoding": "base64", "content": "aGk="}},
    )
    lines += b"\n"  # blank lines are skipped, not the end
    lines += ndjson(
        {"key": "file", "value": {"path": "d/plain.txt", "encoding": "utf-8", "content": "h\u00e9"}},
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": lfs_oid}},
        {"key": "file", "value": {"path": "keep.txt", "content": "a2VlcA=="}},  # base64 is the default
    )
    status, _, body = commit(api, alice, lines, "/api/models/org/ops/commit")  # no revision: main
    latest = store.history("model", "org/ops", "main")[0]
    assert (status, body) == (
        200,
        {"commitOid": latest.id, "commitUrl": f"{api.url}/org/ops/commit/{latest.id}", "pullRequestUrl": None},
    )
    assert (latest.title, latest.message, latest.author) == ("add", "three files", "alice")
    files = store.commit("model", "org/ops", latest.id).files
    assert {p: (store.blobs.path(e.sha256).read_bytes(), e.lfs) for p, e in files.items()} == {
        "d/b64.txt": (b"hi", False),
        "d/plain.txt": ("h\u00e9".encode(), False),
        "w.bin": (lfs_bytes, True),
        "keep.txt": (b"keep", False),
    }
    # a header without a value, then deletions; no summary: the title is "update", the message empty
    lines = ndjson(
        {"key": "header"},
        {"key": "deletedFile", "value": {"path": "w.bin"}},
        {"key": "deletedFolder", "value": {"path": "d"}},
    )
    assert commit(api, alice, lines, "/api/models/org/ops/commit/main?create_pr=false")[0] == 200
    latest = store.history("model", "org/ops", "main")[0]
    assert (latest.title, latest.message) == ("update", "")
    assert sorted(store.commit("model", "org/ops", latest.id).files) == ["keep.txt"]
    # no header line at all: the defaults
    lines = ndjson({"key": "deletedFile", "value": {"path": "keep.txt"}})
    assert commit(api, alice, lines, "/api/models/org/ops/commit/main")[0] == 200
    latest = store.history("model", "org/ops", "main")[0]
    assert (latest.title, latest.message, latest.author) == ("update", "", "alice")
    for flag in ("0", "False", ""):
        assert (
            commit(api, alice, ndjson({"key": "header"}), f"/api/models/org/ops/commit/main?create_pr={flag}")[0] == 200
        )


def test_commit_refusals_name_what_was_wrong(uploads):
    api, _, tokens = uploads
    alice = tokens["alice"]
    header = ndjson({"key": "header", "value": {"summary": "s"}})
    for flag in ("1", "true"):
        status, headers, body = commit(api, alice, header, f"/api/models/org/made/commit/main?create_pr={flag}")
        assert (status, headers["X-Error-Code"]) == (400, None)
        assert body == {"error": "Pull requests are not supported by this registry; commit to a branch."}
    refused(
        commit(api, alice, header, "/api/models/org/ghost/commit/main"),
        404,
        "RepoNotFound",
        "Repository org/ghost not found.",
    )
    status, headers, body = commit(api, alice, header + ndjson({"key": "nope", "value": {}}))
    assert (status, headers["X-Error-Code"], body) == (400, None, {"error": "Unsupported commit operation 'nope'."})
    long_key = "k" * 400
    status, headers, body = commit(api, alice, ndjson({"key": long_key}))
    assert headers["X-Error-Message"] == body["error"][:300] and len(headers["X-Error-Message"]) == 300
    for lines, number, what in (
        (header + b"x\n", 2, "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        (header + b"\nx", 3, "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),  # a last byte counts
        (ndjson({"key": "file", "value": {"path": "a", "content": "###"}}), 1, "Error: Only base64 data is allowed"),
    ):
        status, headers, body = commit(api, alice, lines)
        assert (status, headers["X-Error-Code"]) == (400, "BadRequest"), body
        assert body["error"].startswith(f"Commit line {number} is not a valid operation ({what}"), body
    for parent in ("zz", 123, "abcd"):
        lines = ndjson({"key": "header", "value": {"summary": "s", "parentCommit": parent}})
        assert commit(api, alice, lines)[0:3:2] == (400, {"error": f"Invalid parentCommit {parent!r}."})


def test_preupload_answers_each_files_mode_and_current_oid(uploads):
    api, server, tokens = uploads
    alice = tokens["alice"]
    store = server.store
    current = store.commit("model", "org/made", store.resolve("model", "org/made", "main")).files
    asked = [
        {"path": "a.txt", "size": 3},
        {"path": "w.safetensors", "size": 7},
        {"path": "new.txt", "size": 64},  # at the regular limit: regular
        {"path": "big.txt", "size": 65},  # over it: LFS
        {"path": "nosize.txt"},
    ]
    expected = [
        ("a.txt", "regular", current["a.txt"].sha1),
        ("w.safetensors", "lfs", current["w.safetensors"].sha256),
        ("new.txt", "regular", None),
        ("big.txt", "lfs", None),
        ("nosize.txt", "regular", None),
    ]
    answer = {
        "files": [{"path": p, "uploadMode": m, "shouldIgnore": False, "oid": o} for p, m, o in expected],
        "commitOid": None,
    }
    for path in ("/api/models/org/made/preupload/main", "/api/models/org/made/preupload"):
        assert api("POST", path, token=alice, body={"files": asked})[0:3:2] == (200, answer)
    # a branch that does not exist (yet): nothing is current
    unborn = api("POST", "/api/models/org/made/preupload/unborn", token=alice, body={"files": asked})[2]
    assert [f["oid"] for f in unborn["files"]] == [None] * 5
    assert api("POST", "/api/models/org/made/preupload/main", token=alice, body={})[2] == {
        "files": [],
        "commitOid": None,
    }
    for bad in ({"files": "a.txt"}, {"files": [{"size": 1}]}, {"files": [1]}):
        refused(
            api("POST", "/api/models/org/made/preupload/main", token=alice, body=bad),
            400,
            "BadRequest",
            'preupload takes {"files": [{"path": ..., "size": ...}, ...]}.',
        )
    for size in ("x", -1):
        refused(
            api(
                "POST",
                "/api/models/org/made/preupload/main",
                token=alice,
                body={"files": [{"path": "a", "size": size}]},
            ),
            400,
            "BadRequest",
            f"size must be a non-negative integer, got {size!r}.",
        )


def test_the_lfs_batch_signs_uploads_for_bytes_the_writer_may_not_use_yet(uploads):
    api, server, tokens = uploads
    store = server.store
    data = b"new lfs bytes"
    oid = hashlib.sha256(data).hexdigest()

    def batch(token, objects, operation="upload", repo="org/made"):
        body = {"operation": operation, "transfers": ["basic"], "objects": objects}
        return api("POST", f"/{repo}.git/info/lfs/objects/batch", token=token, body=body)

    before = int(time.time())
    status, headers, body = batch(tokens["alice"], [{"oid": oid, "size": 13}])
    after = int(time.time())
    assert (status, headers["Content-Type"]) == (200, "application/vnd.git-lfs+json")
    href = body["objects"][0]["actions"]["upload"]["href"]
    expires = int(href.split("expires=")[1].split("&")[0])
    assert before + 3600 <= expires <= after + 3600
    signature = server.sign(oid, 13, expires, "alice")
    assert body == {
        "transfer": "basic",
        "objects": [
            {
                "oid": oid,
                "size": 13,
                "authenticated": True,
                "actions": {
                    "upload": {
                        "href": f"{api.url}/lfs-upload/{oid}?size=13&expires={expires}&user=alice&sig={signature}",
                        "header": {},
                        "expires_in": 3600,
                    }
                },
            }
        ],
        "hash_algo": "sha256",
    }
    # the signed PUT stores the bytes and records that alice has them: her next batch skips them
    connection = http.client.HTTPConnection(api.host, timeout=10)
    connection.request("PUT", urlsplit(href).path + "?" + urlsplit(href).query, body=data)
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (200, {})
    connection.close()
    assert store.possesses("alice", oid) and not store.possesses("carol", oid)
    assert batch(tokens["alice"], [{"oid": oid, "size": 13}])[2]["objects"] == [
        {"oid": oid, "size": 13, "authenticated": True}
    ]
    # carol must upload them herself, until they are in a private repo she may read
    assert "actions" in batch(tokens["carol"], [{"oid": oid, "size": 13}], repo="carol/mine")[2]["objects"][0]
    store.create_repo("model", "org/vault", private=True, author="alice")
    store.create_commit(
        "model", "org/vault", "main", [Operation("add", "v.bin", oid, lfs=True)], title="v", author="alice"
    )
    assert "actions" not in batch(tokens["carol"], [{"oid": oid, "size": 13}], repo="carol/mine")[2]["objects"][0]
    # per-object errors
    objects = batch(
        tokens["alice"],
        [{"oid": "abc", "size": 1}, {}, {"oid": "e" * 64, "size": 1001}, {"oid": "f" * 64, "size": 1000}],
    )[2]["objects"]
    assert objects[:3] == [
        {
            "oid": "abc",
            "size": 1,
            "authenticated": True,
            "error": {"code": 422, "message": "oid must be a sha256 hex digest"},
        },
        {
            "oid": "",
            "size": 0,
            "authenticated": True,
            "error": {"code": 422, "message": "oid must be a sha256 hex digest"},
        },
        {
            "oid": "e" * 64,
            "size": 1001,
            "authenticated": True,
            "error": {"code": 413, "message": "object larger than the limit of 1000 bytes"},
        },
    ]
    assert "actions" in objects[3]  # exactly at the file limit
    # downloads answer only for blobs of the repo asked about
    w = store.commit("model", "org/made", store.resolve("model", "org/made", "main")).files["w.safetensors"].sha256
    assert batch(None, [{"oid": w, "size": 7}, {"oid": oid, "size": 13}], operation="download")[2]["objects"] == [
        {"oid": w, "size": 7, "authenticated": True},
        {"oid": oid, "size": 13, "authenticated": True, "error": {"code": 404, "message": "object not found"}},
    ]


def test_lfs_batch_refusals(uploads):
    api, _, tokens = uploads
    alice = tokens["alice"]

    def batch(body, repo="org/made"):
        return api("POST", f"/{repo}.git/info/lfs/objects/batch", token=alice, body=body)

    refused(
        batch({"operation": "delete", "objects": []}), 400, "BadRequest", "operation must be 'upload' or 'download'."
    )
    refused(
        batch({"operation": "upload", "objects": []}, "org/ghost"),
        404,
        "RepoNotFound",
        "Repository org/ghost not found.",
    )
    for objects in ("x", [1]):
        refused(
            batch({"operation": "upload", "objects": objects}),
            400,
            "BadRequest",
            'The batch takes {"objects": [{"oid": ..., "size": ...}, ...]}.',
        )
    assert batch({"operation": "upload"})[2]["objects"] == []
    refused(
        batch({"operation": "upload", "objects": [{"oid": "a" * 64, "size": "x"}]}),
        400,
        "BadRequest",
        "size must be a non-negative integer, got 'x'.",
    )


def test_lfs_puts_take_only_what_their_signature_names(uploads):
    api, server, _ = uploads
    data = b"signed bytes"
    oid = hashlib.sha256(data).hexdigest()

    def put(query, body=data, path=f"/lfs-upload/{oid}"):
        return api("PUT", f"{path}?{query}" if query else path, body=body)

    refused(put(""), 403, "Forbidden", "Upload URL lacks its signature.")
    refused(put("size=12&expires=x&sig=s"), 403, "Forbidden", "Upload URL lacks its signature.")
    past = int(time.time()) - 10
    refused(
        put(f"size=12&expires={past}&user=alice&sig={server.sign(oid, 12, past, 'alice')}"),
        403,
        "Forbidden",
        "Upload URL signature is invalid or expired.",
    )
    later = int(time.time()) + 600
    refused(
        put(f"size=12&expires={later}&user=alice&sig={server.sign(oid, 12, later, 'bob')}"),
        403,
        "Forbidden",
        "Upload URL signature is invalid or expired.",
    )
    status, headers, body = put(f"size=13&expires={later}&user=alice&sig={server.sign(oid, 13, later, 'alice')}")
    assert (status, headers["X-Error-Code"], body) == (
        400,
        None,
        {"error": f"Upload of {oid} must be 13 bytes, the request carries 12."},
    )
    # a URL signed for no user stores the bytes and records nobody's possession
    assert put(f"size=12&expires={later}&sig={server.sign(oid, 12, later, '')}")[0:3:2] == (200, {})
    assert server.store.blobs.exists(oid) and not server.store.possesses("alice", oid)
    big = b"b" * 1001
    big_oid = hashlib.sha256(big).hexdigest()
    status, headers, body = put(
        f"size=1001&expires={later}&sig={server.sign(big_oid, 1001, later, '')}", big, f"/lfs-upload/{big_oid}"
    )
    assert (status, headers["X-Error-Code"]) == (413, "TooLarge") and not server.store.blobs.exists(big_oid)
    for path in ("/lfs-upload", f"/lfs-upload/{oid}/more"):
        assert api("PUT", path, body=data)[0:3:2] == (404, {"error": f"No route for PUT {path}."})


def test_unknown_routes_are_404_with_their_method_and_path(uploads):
    api = uploads[0]
    for method, path in (
        ("GET", "/api/unknown/a/b"),
        ("GET", "/api/models"),
        ("POST", "/api/models/org/made/nothing"),
        ("GET", "/api/models/org/made/nothing"),
        ("GET", "/org/made/blob/main/a.txt"),
    ):
        status, headers, body = api(method, path, body={} if method == "POST" else None)
        assert (status, headers["X-Error-Code"], body) == (404, None, {"error": f"No route for {method} {path}."})


def test_urls_in_answers_use_the_host_the_client_named(uploads):
    api, server, tokens = uploads
    token = tokens["alice"]
    for host, expected in (("example.test:99", "http://example.test:99"), (None, api.url)):
        body = json.dumps({"name": f"hosted{len(expected)}", "organization": "org"}).encode()
        request = "POST /api/repos/create HTTP/1.0\r\n" + (f"Host: {host}\r\n" if host else "")
        request += f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
        answer = exchange(api, request.encode() + body)
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["url"] == f"{expected}/org/hosted{len(expected)}"


def test_header_safe_replaces_control_characters_and_escapes_the_rest():
    assert header_safe("a\nb\x1fc\x7fd e\x80f~") == "a b c d e%C2%80f~"


def test_server_options_reach_the_parts_that_use_them(tmp_path):
    with pytest.raises(ValueError, match="^upload_mode must be auto, regular or lfs$"):
        RegistryServer(tmp_path / "bad", upload_mode="git")
    default = RegistryServer(tmp_path / "default")
    try:
        assert (default.httpd.RequestHandlerClass.timeout, default.httpd.pool._max_workers) == (30.0, 64)
        assert default.store.blobs.verify_interval == 24 * 3600
        secret = tmp_path / "default" / ".upload-secret"
        assert len(secret.read_bytes()) == 32 and secret.stat().st_mode & 0o777 == 0o600
        assert RegistryServer(tmp_path / "default").secret == default.secret  # kept across restarts
    finally:
        default.httpd.server_close()
    token = TokenBook.load(tmp_path / "r").add("alice", write=("org",))
    for mode, root in (("regular", "r"), ("lfs", "r")):
        server = RegistryServer(tmp_path / root, upload_mode=mode, timeout=7.0, workers=3, verify_interval=5.0)
        assert (server.httpd.RequestHandlerClass.timeout, server.httpd.pool._max_workers) == (7.0, 3)
        assert server.store.blobs.verify_interval == 5.0
        if not server.store.exists("model", "org/m"):
            server.store.create_repo("model", "org/m")
        api = Api(server.start())
        try:
            assert server._thread.daemon and server._thread.name == "subspace-hub-registry"
            asked = {"files": [{"path": "a.txt", "size": 1}, {"path": "b.safetensors", "size": 1}]}
            answer = api("POST", "/api/models/org/m/preupload/main", token=token, body=asked)[2]
            assert [f["uploadMode"] for f in answer["files"]] == [mode, mode]
        finally:
            server.stop()
    zero = RegistryServer(tmp_path / "r", regular_limit=0)
    api = Api(zero.start())
    try:  # a file without a size is taken as empty: regular even at a regular limit of 0
        answer = api("POST", "/api/models/org/m/preupload/main", token=token, body={"files": [{"path": "a.txt"}]})[2]
        assert answer["files"][0]["uploadMode"] == "regular"
    finally:
        zero.stop()


def test_keep_alive_survives_head_requests_and_ranges_and_the_log_counts_the_bytes(hub, caplog):
    api = hub[0]
    connection = http.client.HTTPConnection(api.host, timeout=10)
    try:
        answers = []
        # a file's record is written after its bytes are sent; the last request (served after the others on the
        # same connection) makes sure they are all in the log
        for method, headers in (("HEAD", {}), ("GET", {"Range": "bytes=1-2"}), ("GET", {}), ("HEAD", {})):
            with caplog.at_level(logging.INFO, logger="subspace_hub.registry"):
                connection.request(method, "/org/files/resolve/main/w.bin", headers=headers)
                response = connection.getresponse()
                answers.append((response.status, response.read()))
        assert answers == [(200, b""), (206, b"ww"), (200, b"wwwww"), (200, b"")]
    finally:
        connection.close()
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "subspace_hub.registry"]
    assert [(r["method"], r["status"], r["bytes"]) for r in records if "resolve" in r["path"]][:3] == [
        ("HEAD", 200, 0),
        ("GET", 206, 2),
        ("GET", 200, 5),
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="subspace_hub.registry"):
        status, _, body = api("GET", "/api/models/org/files/refs")
    record = [json.loads(r.getMessage()) for r in caplog.records if r.name == "subspace_hub.registry"][-1]
    assert (record["status"], record["bytes"], record["user"]) == (200, len(json.dumps(body)), None)


def test_a_tag_needs_a_name_and_paths_keep_their_own_characters(hub, uploads):
    api, server, writer, _, ids = hub
    refused(
        api("POST", f"/api/models/org/files/tag/{ids[1]}", token=writer, body={}),
        400,
        "InvalidRef",
        "Invalid branch or tag name ''.",
    )
    # only slashes are stripped from a path asked about
    uploads_api, uploads_server, tokens = uploads
    store = uploads_server.store
    store.create_repo("model", "org/xnames", author="alice")
    store.create_commit(
        "model", "org/xnames", "main", [Operation("add", "X/aX", store.blobs.put_bytes(b"x")[0])], title="x"
    )
    answer = uploads_api("POST", "/api/models/org/xnames/paths-info/main", form={"paths": ["/X/aX/", "X/"]})[2]
    assert [entry["path"] for entry in answer] == ["X/aX", "X"]
    # a query value left blank is kept in the next page's link, and a blank cursor is the first page
    status, headers, page = api("GET", "/api/models/org/files/tree/main?recursive=true&expand=")
    assert headers["Link"].endswith('/api/models/org/files/tree/main?recursive=true&expand=&cursor=3>; rel="next"')
    assert api("GET", "/api/models/org/files/tree/main?recursive=true&cursor=")[2] == page
