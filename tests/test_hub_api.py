"""The registry's JSON API answered exactly, request by request over raw HTTP: tree listings (nested, recursive,
paged), paths-info in both body forms, refs and their changes, commit history, YAML validation and repo deletion,
each with its refusals. (test_hub_server.py drives the same server through huggingface_hub.)"""

from __future__ import annotations

import hashlib
import http.client
import json
from urllib.parse import urlencode, urlsplit

import pytest

from subspace_hub.hub.server import RegistryServer
from subspace_hub.hub.server.auth import TokenBook
from subspace_hub.hub.server.storage import Operation

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
