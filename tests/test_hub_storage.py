"""The registry's storage on its own: what names it accepts, how a blob is written, verified and removed, and how
the upload folders of dead processes are swept. (The server tests drive the same code through HTTP.)"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import time

import pytest
from filelock import FileLock

from subspace_hub.hub.server import storage
from subspace_hub.hub.server.storage import (
    ApiError,
    BlobStore,
    Conflict,
    CorruptBlob,
    EntryNotFound,
    FileEntry,
    Operation,
    RepoNotFound,
    RepoStore,
    RevisionNotFound,
    git_blob_sha1,
    lfs_pointer,
    sweep_temporary,
    validate_path,
    validate_ref_name,
    validate_repo_id,
)


def refusal(call, *args) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


# -- names ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["a.txt", "dir/sub/file.bin", "é.txt", ".gitignore", "x.git/a", "a" * 1000, "a..b/c", "-dash"]
)
def test_valid_paths_come_back_unchanged(path):
    assert validate_path(path) == path


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("", "at most 1000 characters"),
        ("a" * 1001, "at most 1000 characters"),
        ("/etc/passwd", "relative"),
        ("a\\b", "'/'-separated"),
        ("a/../b", "no empty, '.', '..' or '.git' segments"),
        ("..", "no empty, '.', '..' or '.git' segments"),
        ("a/./b", "no empty, '.', '..' or '.git' segments"),
        ("a//b", "no empty, '.', '..' or '.git' segments"),
        ("a/", "no empty, '.', '..' or '.git' segments"),
        (".git/config", "no empty, '.', '..' or '.git' segments"),
        ("a/.git", "no empty, '.', '..' or '.git' segments"),
        ("e\u0301.txt", "not in Unicode NFC"),
        ("bell\x07", "(U+0007)"),
        ("tab\there", "(U+0009)"),
        ("soft\u00adhyphen", "(U+00AD)"),
        ("line\u2028sep", "(U+2028)"),
        ("para\u2029sep", "(U+2029)"),
        ("zero\u200bwidth\u202eoverride", "(U+200B, U+202E)"),
        ("iso\u2066late", "(U+2066)"),
        ("bom\ufeff", "(U+FEFF)"),
    ],
)
def test_invalid_paths_are_refused_with_the_reason(path, says):
    error = refusal(validate_path, path)
    assert (error.status, error.code) == (400, "InvalidPath")
    assert says in str(error) and repr(path) in str(error)


@pytest.mark.parametrize(
    "name", ["main", "v1.0.0", "release/2026", "a" * 200, "0" * 39, "f" * 41, "x-y_z", "Xfix", "X"]
)
def test_valid_ref_names_come_back_unchanged(name):
    assert validate_ref_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 201,
        "-x",
        "/x",
        "refs/heads/main",
        "a..b",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "a\x00b",
        "a\x1fb",
        "a\u200eb",
        "v1.",
        "v1/",
        "v1.lock",
    ],
)
def test_invalid_ref_names_are_refused(name):
    error = refusal(validate_ref_name, name)
    assert (error.status, error.code) == (400, "InvalidRef")
    assert str(error) == f"Invalid branch or tag name {name!r}."


def test_an_operation_is_one_of_three_kinds():
    assert [Operation(kind, "a").kind for kind in ("add", "delete_file", "delete_folder")] == [
        "add",
        "delete_file",
        "delete_folder",
    ]
    with pytest.raises(ValueError, match="^Unknown operation kind 'delete': add, delete_file or delete_folder.$"):
        Operation("delete", "a")


@pytest.mark.parametrize("name", ["a" * 40, "A" * 40, "0123456789" * 6 + "abcd", "F" * 64])
def test_names_that_read_as_commit_ids_are_refused(name):
    error = refusal(validate_ref_name, name)
    assert (error.status, error.code) == (400, "InvalidRef") and "reads as a commit id" in str(error)


def test_repo_ids_are_split_or_refused_as_400():
    assert validate_repo_id("org/name") == ("org", "name")
    error = refusal(validate_repo_id, "no-slash")
    assert (error.status, error.code) == (400, "InvalidRepoId") and "no-slash" in str(error)


def test_errors_carry_their_http_status_and_code():
    assert (ApiError("x").status, ApiError("x").code) == (400, None)
    assert (ApiError("x", 413, "TooLarge").status, ApiError("x", 413, "TooLarge").code) == (413, "TooLarge")
    assert (RepoNotFound("x").status, RepoNotFound("x").code) == (404, "RepoNotFound")
    assert (RevisionNotFound("x").status, RevisionNotFound("x").code) == (404, "RevisionNotFound")
    assert (EntryNotFound("x").status, EntryNotFound("x").code) == (404, "EntryNotFound")
    assert (Conflict("x").status, CorruptBlob("x").status) == (409, 500)
    assert str(ApiError("the message")) == "the message"


# -- git and LFS identities -----------------------------------------------------------------------------------------


def test_git_ids_and_lfs_pointers_are_gits():
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # `git hash-object /dev/null`
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert lfs_pointer("ab" * 32, 12) == (
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 12\n"
    )
    entry = FileEntry("c" * 64, "d" * 40, 7, True)
    assert entry.as_dict() == {"sha256": "c" * 64, "sha1": "d" * 40, "size": 7, "lfs": True}


def test_timestamps_are_utc_with_milliseconds(monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: a local time would be half a day or more off
    time.tzset()
    try:
        before = dt.datetime.now(dt.timezone.utc)
        stamp = storage.now()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    parsed = dt.datetime.strptime(stamp[:-1] + "000", "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
    assert abs((parsed - before).total_seconds()) < 5


# -- blobs ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def blobs(tmp_path):
    store = BlobStore(tmp_path / "root")
    yield store
    store.close()


def leftovers(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.tmp.iterdir() if p.name != ".lock")


def test_a_blob_is_named_by_its_sha256_with_its_git_id_in_the_meta(blobs):
    data = os.urandom(3 * storage._CHUNK + 17)  # several chunks, the last one partial
    digest, size = blobs.write(io.BytesIO(data), len(data))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert blobs.path(digest) == blobs.root / digest[:2] / digest
    assert blobs.path(digest).read_bytes() == data and blobs.exists(digest)
    assert blobs.meta(digest) == {"size": len(data), "sha1": git_blob_sha1(data)}
    assert blobs.git_sha1(digest) == git_blob_sha1(data)
    assert leftovers(blobs) == []


def test_the_store_keeps_the_documented_layout(tmp_path):
    repos = RepoStore(tmp_path / "registry", verify_interval=0)
    assert repos.blobs.verify_interval == 0
    digest = repos.blobs.put_bytes(b"content")[0]
    assert (tmp_path / "registry" / "blobs" / digest[:2] / digest).read_bytes() == b"content"
    assert json.loads((tmp_path / "registry" / "blobs" / digest[:2] / f"{digest}.json").read_text())["size"] == 7
    repos.create_repo("dataset", "org/a")
    directory = tmp_path / "registry" / "repos" / "dataset" / "org" / "a"
    assert (directory / "repo.json").is_file() and repos.exists("dataset", "org/a")
    assert json.loads((directory / "refs.json").read_text())["tags"] == {}
    assert len(list((directory / "commits").glob("*.json"))) == 1
    repos.record_possession("alice", digest)
    assert (tmp_path / "registry" / "possession" / "alice" / digest).is_file()
    repos.close()


def test_a_blob_of_known_size_is_never_read_back_for_its_git_id(blobs, monkeypatch):
    def no_rereads(*args):
        raise AssertionError("the file was read back to hash it")

    monkeypatch.setattr(storage, "_git_sha1_of_file", no_rereads)
    digest = blobs.put_bytes(b"known size")[0]
    assert blobs.meta(digest)["sha1"] == git_blob_sha1(b"known size")
    digest, _ = blobs.write(io.BytesIO(b"also known"), 10)
    assert blobs.git_sha1(digest) == git_blob_sha1(b"also known")  # from the meta


def test_a_stream_of_unknown_size_is_read_to_its_end(blobs):
    data = os.urandom(storage._CHUNK + 5)
    digest, size = blobs.write(io.BytesIO(data))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert blobs.meta(digest)["sha1"] == git_blob_sha1(data)


def test_a_stream_of_known_size_is_read_no_further(blobs):
    digest, size = blobs.write(io.BytesIO(b"0123456789"), 4)
    assert (size, blobs.path(digest).read_bytes()) == (4, b"0123")


def test_chunks_of_unknown_size_get_their_git_id_from_disk(blobs):
    digest, size = blobs.write([b"ab", b"", b"cd"])
    assert (size, blobs.path(digest).read_bytes()) == (4, b"abcd")
    assert blobs.meta(digest) == {"size": 4, "sha1": git_blob_sha1(b"abcd")}
    assert blobs.put_bytes(b"abcd") == (digest, 4)


def test_an_lfs_upload_leaves_the_git_id_out_until_it_is_asked(blobs):
    digest, _ = blobs.write(io.BytesIO(b"weights"), 7, git_sha1=False)
    assert blobs.meta(digest) == {"size": 7}
    assert blobs.git_sha1(digest) == git_blob_sha1(b"weights")
    assert blobs.meta(digest) == {"size": 7, "sha1": git_blob_sha1(b"weights")}  # recorded once computed


def test_the_size_limit_is_inclusive_and_a_refused_upload_stores_nothing(blobs):
    digest, _ = blobs.write(io.BytesIO(b"x" * 10), 10, max_size=10)
    assert blobs.exists(digest)
    error = refusal(blobs.write, io.BytesIO(b"y" * 11), 11, None, 10)
    assert (error.status, error.code) == (413, "TooLarge") and "limit of 10 bytes" in str(error)
    error = refusal(blobs.write, [b"y" * 6, b"y" * 5], None, None, 10)
    assert (error.status, error.code) == (413, "TooLarge")
    assert list(blobs.all()) == [digest] and leftovers(blobs) == []


def test_a_short_or_wrong_upload_is_refused_and_stores_nothing(blobs):
    error = refusal(blobs.write, io.BytesIO(b"abc"), 5)
    assert (error.status, error.code) == (400, "Truncated") and str(error) == "Upload ended after 3 of 5 bytes."
    right = hashlib.sha256(b"abc").hexdigest()
    error = refusal(blobs.write, io.BytesIO(b"abd"), 3, right)
    assert (error.status, error.code) == (400, "HashMismatch")
    assert str(error) == f"Upload hashes to {hashlib.sha256(b'abd').hexdigest()}, not {right}."
    assert list(blobs.all()) == [] and leftovers(blobs) == []
    assert blobs.write(io.BytesIO(b"abc"), 3, right) == (right, 3)


def test_uploading_known_bytes_again_restarts_their_grace_period(blobs):
    digest, _ = blobs.write(io.BytesIO(b"same"), 4)
    os.utime(blobs.path(digest), (1_000_000, 1_000_000))
    assert blobs.write(io.BytesIO(b"same"), 4) == (digest, 4)
    assert blobs.path(digest).stat().st_mtime > 1_000_000 + 1e6
    assert blobs.meta(digest) == {"size": 4, "sha1": git_blob_sha1(b"same")}


def test_verification_is_cached_until_the_file_changes_or_the_interval_passes(tmp_path, monkeypatch):
    hashed = []
    real = hashlib.sha256

    class Counting:
        def __call__(self, *args):
            hashed.append(1)
            return real(*args)

    monkeypatch.setattr(storage.hashlib, "sha256", Counting())
    store = BlobStore(tmp_path / "root", verify_interval=3600)
    digest, _ = store.write(io.BytesIO(b"payload"), 7)
    hashed.clear()
    assert store.verify(digest) == store.path(digest)  # written and hashed in one pass: no second hash
    assert hashed == []
    store.verify(digest, force=True)
    assert len(hashed) == 1
    store.verify(digest)
    assert len(hashed) == 1
    store.path(digest).write_bytes(b"PAYLOAD")  # same size
    os.utime(store.path(digest), ns=(10**18, 10**18))  # a stamp surely different, even within one clock tick
    with pytest.raises(CorruptBlob) as caught:
        store.verify(digest)
    assert caught.value.status == 500 and caught.value.code == "CorruptBlob"
    assert f"Blob {digest} is corrupted on disk" in str(caught.value) and "restore it from a backup" in str(
        caught.value
    )
    with pytest.raises(CorruptBlob):  # a corrupt blob is never remembered as verified
        store.verify(digest)
    store.path(digest).write_bytes(b"payload")
    os.utime(store.path(digest), ns=(2 * 10**18, 2 * 10**18))
    store.verify(digest)
    store.close()

    hashed.clear()
    expiring = BlobStore(tmp_path / "root", verify_interval=0)
    expiring.verify(digest)
    expiring.verify(digest)
    assert len(hashed) == 2  # a zero interval: every serve hashes again
    expiring.close()


def test_missing_blobs_and_metas_are_entry_not_found(blobs):
    with pytest.raises(EntryNotFound, match=f"Blob {'0' * 64} is missing from the store"):
        blobs.verify("0" * 64)
    with pytest.raises(EntryNotFound, match=f"No blob {'0' * 64}"):
        blobs.meta("0" * 64)
    assert not blobs.exists("0" * 64) and not blobs.exists("not-a-hash")


def test_all_lists_blobs_only_and_remove_deletes_content_and_meta(blobs):
    first, _ = blobs.write(io.BytesIO(b"one"), 3)
    second, _ = blobs.write(io.BytesIO(b"two"), 3)
    (blobs.root / first[:2] / "notes.txt").write_text("not a blob")
    (blobs.root / "loose-file").write_text("not a folder")
    assert list(blobs.all()) == sorted([first, second])
    blobs.remove(first)
    assert not blobs.path(first).exists() and not blobs.path(first).with_suffix(".json").exists()
    assert list(blobs.all()) == [second]
    with pytest.raises(EntryNotFound):
        blobs.verify(first)


def test_removing_a_half_removed_blob_finishes_the_job(blobs):
    first, _ = blobs.write(io.BytesIO(b"one"), 3)
    blobs.path(first).unlink()  # a crash between the content and the meta
    blobs.remove(first)
    assert not blobs.path(first).with_suffix(".json").exists()
    second, _ = blobs.write(io.BytesIO(b"two"), 3)
    blobs.path(second).with_suffix(".json").unlink()
    blobs.remove(second)
    assert not blobs.path(second).exists()
    third, _ = blobs.write(io.BytesIO(b"three"), 5)
    other = BlobStore(blobs.root.parent)  # another process: it never verified the blob
    other.remove(third)
    other.close()
    assert not blobs.exists(third)


def test_sweeping_removes_dead_sessions_and_loose_files_only(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "session-dead").mkdir()
    (tmp / "session-dead" / "upload-1").write_bytes(b"partial")
    (tmp / "session-live").mkdir()
    live = FileLock(tmp / "session-live" / ".lock")
    live.acquire()
    (tmp / "deleted-repo").mkdir()
    (tmp / "upload-old").write_bytes(b"x")
    (tmp / "meta-old").write_bytes(b"x")
    (tmp / "keep.txt").write_bytes(b"x")
    (tmp / "other-folder").mkdir()
    try:
        assert sweep_temporary(tmp) == 4
    finally:
        live.release()
    assert sorted(p.name for p in tmp.iterdir()) == ["keep.txt", "other-folder", "session-live"]
    assert sweep_temporary(tmp) == 1  # its process let go: now it is a dead session


def test_a_store_sweeps_on_opening_and_closing_gives_up_its_folder(tmp_path):
    first = BlobStore(tmp_path / "root")
    (first.tmp / "upload-x").write_bytes(b"partial")
    second = BlobStore(tmp_path / "root")
    assert first.tmp.is_dir() and second.tmp != first.tmp  # a live process's uploads are left alone
    first.close()
    assert not first.tmp.exists()
    second.close()
    third = BlobStore(tmp_path / "root")
    assert [p.name for p in (tmp_path / "root" / "tmp").iterdir()] == [third.tmp.name]
    third.close()


# -- repos, commits and refs ----------------------------------------------------------------------------------------


@pytest.fixture
def repos(tmp_path):
    store = RepoStore(tmp_path / "registry")
    yield store
    store.close()


def upload(store: RepoStore, data: bytes) -> str:
    return store.blobs.write(io.BytesIO(data), len(data))[0]


def add(path: str, sha256: str, lfs: bool = False) -> Operation:
    return Operation("add", path, sha256, lfs)


def test_a_new_repo_has_one_empty_commit_on_main(repos):
    head = repos.create_repo("model", "org/a", private=True, author="alice")
    assert re.fullmatch(r"[0-9a-f]{40}", head)
    assert repos.refs("model", "org/a") == {"branches": {"main": head}, "tags": {}}
    meta = repos.repo_meta("model", "org/a")
    assert meta["private"] is True and re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", meta["created"])
    first = repos.commit("model", "org/a", head)
    assert (first.id, first.parents, first.title, first.message, first.author, first.files) == (
        head,
        (),
        "initial commit",
        "",
        "alice",
        {},
    )
    assert repos.create_repo("dataset", "org/a") != head  # another type is another repo
    assert repos.repo_meta("dataset", "org/a")["private"] is False
    assert repos.commit("dataset", "org/a", repos.resolve("dataset", "org/a", None)).author == ""
    (repos.repo_dir("model", "org/half") / "commits").mkdir(parents=True)  # a creation a crash cut short
    repos.create_repo("model", "org/half")
    assert repos.exists("model", "org/half")
    with pytest.raises(Conflict, match=r"^Repository org/a already exists\.$"):
        repos.create_repo("model", "org/a")
    error = refusal(repos.create_repo, "weights", "org/b")
    assert error.status == 400 and str(error) == "Unknown repo type 'weights'; use model, dataset or space."


def test_repos_are_listed_sorted_and_deleted_whole(repos):
    for repo_id in ("org/zeta", "org/alpha", "bob/beta"):
        repos.create_repo("model", repo_id)
    (repos.root / "repos" / "model" / "org" / "half-made").mkdir()  # no repo.json: not a repo
    assert repos.list_repos("model") == ["bob/beta", "org/alpha", "org/zeta"]
    assert repos.list_repos("space") == []
    sha, only = upload(repos, b"data"), upload(repos, b"only alpha")
    assert repos.repos_referencing(sha) == set()  # the index is built now, before the commits: they must update it
    repos.create_commit("model", "org/alpha", "main", [add("f", sha), add("g", only)], title="add")
    repos.create_commit("model", "org/zeta", "main", [add("f", sha)], title="add")
    assert repos.repos_referencing(sha) == {"model/org/alpha", "model/org/zeta"}
    assert repos.referenced_by("model", "org/alpha", only) and not repos.referenced_by("model", "org/zeta", only)
    repos.delete_repo("model", "org/alpha")
    assert repos.list_repos("model") == ["bob/beta", "org/zeta"] and not repos.exists("model", "org/alpha")
    assert repos.repos_referencing(sha) == {"model/org/zeta"} and not repos.referenced_by("model", "org/alpha", sha)
    assert repos.repos_referencing(only) == set() and repos.index().get(only) is None
    assert not repos.referenced_by("model", "org/zeta", "0" * 64)
    with pytest.raises(RepoNotFound, match=r"^Repository org/alpha \(model\) not found\.$"):
        repos.refs("model", "org/alpha")
    assert [p for p in repos.blobs.tmp.iterdir() if p.name.startswith("deleted-")] == []


def test_a_commit_records_regular_and_lfs_files_and_moves_its_branch(repos):
    head = repos.create_repo("model", "org/a")
    small, big = upload(repos, b"config"), upload(repos, b"weights" * 100)
    commit = repos.create_commit(
        "model",
        "org/a",
        "main",
        [add("config.json", small), add("dir/model.bin", big, lfs=True)],
        title="add files",
        message="two files",
        author="alice",
        parent=head[:12],  # an abbreviated parent is enough
    )
    assert commit.parents == (head,) and (commit.title, commit.message, commit.author) == (
        "add files",
        "two files",
        "alice",
    )
    assert repos.refs("model", "org/a")["branches"]["main"] == commit.id
    files = repos.commit("model", "org/a", commit.id).files
    assert files["config.json"] == FileEntry(small, git_blob_sha1(b"config"), 6, False)
    assert files["dir/model.bin"] == FileEntry(big, git_blob_sha1(lfs_pointer(big, 700)), 700, True)
    assert [c.id for c in repos.history("model", "org/a", None)] == [commit.id, head]
    assert repos.repos_referencing(big) == {"model/org/a"}
    assert repos.commit("model", "org/a", commit.id).date == commit.date
    repos.set_ref("model", "org/a", "tag", "v1", "main")
    bare = repos.create_commit("model", "org/a", "main", [Operation("delete_file", "config.json")], title="rm")
    assert (bare.message, bare.author) == ("", "")
    assert [c.id for c in repos.history("model", "org/a", "v1")] == [commit.id, head]


def test_the_index_skips_damaged_commits_and_reads_the_rest(repos):
    repos.create_repo("model", "org/a")
    sha = upload(repos, b"x")
    repos.create_commit("model", "org/a", "main", [add("f", sha)], title="t")
    commits = repos.repo_dir("model", "org/a") / "commits"
    for name in ("0" * 40, "5" * 40, "a" * 40, "f" * 40):  # damaged commits around the good ones
        (commits / f"{name}.json").write_text("{damaged")
    assert RepoStore(repos.root).repos_referencing(sha) == {"model/org/a"}


def test_a_commit_is_refused_whole_when_any_part_is_wrong(repos):
    head = repos.create_repo("model", "org/a")
    sha = upload(repos, b"x")
    repos.create_commit("model", "org/a", "main", [add("dir/a", sha), add("dir/b", sha), add("dir2/c", sha)], title="t")
    head = repos.refs("model", "org/a")["branches"]["main"]

    def refused(operations, **options) -> ApiError:
        error = refusal(lambda: repos.create_commit("model", "org/a", "main", operations, title="t", **options))
        assert repos.refs("model", "org/a")["branches"]["main"] == head  # nothing moved
        return error

    error = refused([add("new", "f" * 64)])
    assert error.status == 400 and str(error) == f"new: its content ({'f' * 64}) was not uploaded first."
    assert refused([add("new", sha, lfs=True)], may_use=lambda s: False).status == 400
    error = refused([add("ok", sha)], parent="0" * 40)
    assert (error.status, error.code) == (412, "ParentMismatch")
    assert (
        str(error) == f"The branch main moved: its head is {head}, the commit was based on {'0' * 40}. Pull and retry."
    )
    error = refusal(lambda: repos.create_commit("model", "org/a", "dev", [add("ok", sha)], title="t"))
    assert isinstance(error, RevisionNotFound) and str(error) == "No branch 'dev' in org/a."
    assert str(refused([Operation("delete_file", "nope")])) == "Cannot delete nope: no such file in main."
    assert str(refused([Operation("delete_folder", "di/")])) == "Cannot delete folder di/: it is empty or missing."
    error = refused([add("dir", sha)])
    assert error.status == 409 and str(error) == (
        "'dir/a' would put a file inside 'dir', which is a file: a file and a folder cannot share a name (delete "
        "one first)."
    )
    assert refused([add("dir/a/deeper", sha)]).status == 409  # 'dir/a' is a file two levels up
    assert refused([add("a/../b", sha)]).code == "InvalidPath"
    assert refused([add("dir/", sha)]).code == "InvalidPath"  # only a folder deletion may end in '/'
    error = refused([Operation("delete_file", "dir/a"), add("new", "e" * 64)])  # every add is checked
    assert str(error) == f"new: its content ({'e' * 64}) was not uploaded first."
    assert refused([Operation("delete_folder", "../x/")]).code == "InvalidPath"
    # a regular file the committer may not otherwise use is still theirs to commit: may_use guards LFS names only
    repos.create_commit("model", "org/a", "main", [add("plain", sha)], title="t", may_use=lambda s: False)
    asked = []
    repos.create_commit(
        "model", "org/a", "main", [add("lfs", sha, lfs=True)], title="t", may_use=lambda s: asked.append(s) or s == sha
    )
    assert asked == [sha]


def test_deleting_a_folder_takes_what_is_under_it_and_nothing_else(repos):
    repos.create_repo("model", "org/a")
    sha = upload(repos, b"x")
    paths = ["dir/a", "dir/sub/b", "dir2/c", "dirt", "..X/f"]
    repos.create_commit("model", "org/a", "main", [add(p, sha) for p in paths], title="t")
    commit = repos.create_commit("model", "org/a", "main", [Operation("delete_folder", "..X/")], title="t")
    assert "..X/f" not in commit.files
    commit = repos.create_commit("model", "org/a", "main", [Operation("delete_folder", "dir/")], title="t")
    assert sorted(commit.files) == ["dir2/c", "dirt"]
    commit = repos.create_commit("model", "org/a", "main", [Operation("delete_folder", "dir2")], title="t")
    assert sorted(commit.files) == ["dirt"]
    commit = repos.create_commit("model", "org/a", "main", [Operation("delete_file", "dirt")], title="t")
    assert commit.files == {}


def test_revisions_resolve_to_commits(repos):
    head = repos.create_repo("model", "org/a")
    repos.set_ref("model", "org/a", "tag", "v1", "main")
    repos.set_ref("model", "org/a", "branch", "dev", head)
    sha = upload(repos, b"x")
    second = repos.create_commit("model", "org/a", "main", [add("f", sha)], title="t").id
    resolve = lambda revision: repos.resolve("model", "org/a", revision)  # noqa: E731
    assert resolve(None) == resolve("main") == resolve("refs/heads/main") == second
    assert resolve("v1") == resolve("refs/tags/v1") == resolve("dev") == resolve(head) == head
    assert resolve(second[:7]) == resolve(second[:39]) == second
    shouted = "A" + second[1:7] if second[0] != "a" else "B" + second[1:7]  # hex, but not lower case: no prefix
    for missing in ("refs/heads/v1", "refs/tags/main", "refs/tags/dev", second[:6], shouted, "f" * 40):
        with pytest.raises(RevisionNotFound) as caught:
            resolve(missing)
        assert str(caught.value) == f"Invalid rev id: {missing} (no branch, tag or commit of org/a has that name)."
    commits = repos.repo_dir("model", "org/a") / "commits"
    for twin in ("abcdef1" + "0" * 33, "abcdef1" + "1" * 33):  # two commits sharing a prefix: it names neither
        (commits / f"{twin}.json").write_text("{}")
    with pytest.raises(RevisionNotFound):
        resolve("abcdef1")
    assert resolve("abcdef1" + "0" * 33) == "abcdef1" + "0" * 33
    with pytest.raises(RevisionNotFound, match=r"^No commit 0{40} in org/a\.$"):
        repos.commit("model", "org/a", "0" * 40)


def test_tags_are_immutable_branches_move_by_commits_and_main_stays(repos):
    head = repos.create_repo("model", "org/a")
    repos.set_ref("model", "org/a", "tag", "v1", "main")
    with pytest.raises(Conflict, match=rf"^Tag 'v1' already exists in org/a \(at {head[:12]}\)\.$"):
        repos.set_ref("model", "org/a", "tag", "v1", "main")
    with pytest.raises(Conflict):  # exist_ok is for branches only
        repos.set_ref("model", "org/a", "tag", "v1", "main", exist_ok=True)
    repos.set_ref("model", "org/a", "branch", "dev", "main")
    second = repos.create_commit("model", "org/a", "main", [add("f", upload(repos, b"x"))], title="t").id
    repos.set_ref("model", "org/a", "branch", "dev", second, exist_ok=True)  # left where it is
    assert repos.refs("model", "org/a")["branches"] == {"main": second, "dev": head}
    with pytest.raises(Conflict, match=r"^Branch 'dev' already exists"):
        repos.set_ref("model", "org/a", "branch", "dev", second)
    error = refusal(repos.set_ref, "model", "org/a", "tag", "v1", None)
    assert (error.status, error.code) == (403, "ProtectedTag") and str(error) == (
        "Tag 'v1' of org/a is protected: published tags are immutable on this registry (its administrator can start it "
        "with --allow-tag-deletion)."
    )
    error = refusal(repos.set_ref, "model", "org/a", "branch", "main", None)
    assert (error.status, error.code, str(error)) == (403, "Forbidden", "The main branch cannot be deleted.")
    with pytest.raises(RevisionNotFound, match=r"^No tag 'v2' in org/a\.$"):
        repos.set_ref("model", "org/a", "tag", "v2", None, allow_tag_deletion=True)
    with pytest.raises(RevisionNotFound):
        repos.set_ref("model", "org/a", "tag", "v2", "no-such-revision")
    assert refusal(repos.set_ref, "model", "org/a", "tag", "bad name", "main").code == "InvalidRef"
    repos.set_ref("model", "org/a", "tag", "v1", None, allow_tag_deletion=True)
    repos.set_ref("model", "org/a", "branch", "dev", None)
    assert repos.refs("model", "org/a") == {"branches": {"main": second}, "tags": {}}


def test_fsck_names_every_kind_of_damage(repos):
    repos.create_repo("model", "org/a")
    good, bad, gone = upload(repos, b"good"), upload(repos, b"bad"), upload(repos, b"gone")
    commit = repos.create_commit("model", "org/a", "main", [add("g", good), add("b", bad), add("x", gone)], title="t")
    repos.set_ref("model", "org/a", "tag", "v1", "main")
    seen = []
    assert repos.fsck(progress=seen.append) == [] and seen == sorted([good, bad, gone])
    repos.blobs.path(bad).write_bytes(b"BAD")
    meta = repos.blobs.path(good).with_suffix(".json")
    meta.write_text(meta.read_text().replace('"size": 4', '"size": 5'))
    repos.blobs.remove(gone)
    directory = repos.repo_dir("model", "org/a")
    refs = repos.refs("model", "org/a")
    refs["tags"]["v2"] = "e" * 40
    refs["branches"]["dev"] = "d" * 40
    (directory / "refs.json").write_text(json.dumps(refs))
    (directory / "commits" / ("0" * 40 + ".json")).write_text("not json")  # sorts first: the others are still read
    repos.create_repo("model", "org/0")  # listed before org/a: its broken refs do not end the check
    (repos.repo_dir("model", "org/0") / "refs.json").write_text("{")
    repos.create_repo("model", "org/z")
    (repos.repo_dir("model", "org/z") / "refs.json").write_text(json.dumps({"branches": {}}))  # no tags: fine
    problems = repos.fsck()
    assert f"blob {good}: 4 bytes, meta says 5" in problems
    assert any(p.startswith(f"blob {bad}: Blob {bad} is corrupted on disk") for p in problems)
    assert "model org/a: tag v2 -> missing commit " + "e" * 40 in problems
    assert "model org/a: branch dev -> missing commit " + "d" * 40 in problems
    assert any(p.startswith("model org/a: commit " + "0" * 40 + " unreadable (") for p in problems)
    assert f"model org/a@{commit.id[:12]}: x -> missing blob {gone}" in problems
    assert any(p.startswith("model org/0: refs.json unreadable (") for p in problems)
    assert len(problems) == 7, problems


def test_fsck_hashes_blobs_the_server_has_verified_before(repos, monkeypatch):
    monkeypatch.setattr(storage, "_stamp", lambda path: (0,))  # bit rot: the bytes change, the file's stamp does not
    sha = upload(repos, b"sound")
    repos.blobs.path(sha).write_bytes(b"SOUND")
    assert repos.blobs.verify(sha) == repos.blobs.path(sha)  # serving trusts its recent verification
    assert any(p.startswith(f"blob {sha}: Blob {sha} is corrupted") for p in repos.fsck())  # fsck does not
    with pytest.raises(CorruptBlob):  # and once found, the blob is no longer trusted
        repos.blobs.verify(sha)


def distinct_blobs(repos: RepoStore, count: int) -> list[str]:
    """``count`` uploaded blobs in the order of their hashes (gc walks the store in that order)."""
    return sorted(upload(repos, f"blob {i}".encode()) for i in range(count))


def test_gc_keeps_referenced_and_young_blobs_and_removes_the_rest(repos):
    repos.create_repo("model", "org/a")
    # in hash order: a referenced blob, a young one, an old one, again: each kind before an old one
    kept, young, old, kept2, young2, old2 = distinct_blobs(repos, 6)
    repos.create_commit("model", "org/a", "main", [add("k", kept), add("k2", kept2)], title="t")
    repos.create_commit("model", "org/a", "main", [Operation("delete_file", "k")], title="t")  # still in history
    past = time.time() - 7200
    for sha in (kept, kept2, old, old2):
        os.utime(repos.blobs.path(sha), (past, past))
        os.utime(repos.blobs.path(sha).with_suffix(".json"), (past, past))  # old metas of stored blobs stay
    repos.record_possession("alice", old)
    repos.record_possession("alice", young)
    stray = repos.blobs.root / "ab" / ("ab" + "0" * 62 + ".json")  # a meta whose content a crash removed
    fresh_stray = repos.blobs.root / "ab" / ("ab" + "1" * 62 + ".json")  # the same, moments ago
    stray.parent.mkdir(exist_ok=True)
    stray.write_text("{}")
    fresh_stray.write_text("{}")
    os.utime(stray, (past, past))
    assert repos.possesses("alice", old) and not repos.possesses("bob", old) and not repos.possesses("alice", "x")
    assert repos.gc(grace=3600, dry_run=True) == [old, old2] and repos.blobs.exists(old) and stray.exists()
    assert repos.gc(grace=3600) == [old, old2]
    assert not repos.blobs.exists(old) and not repos.blobs.exists(old2)
    for sha in (kept, kept2, young, young2):
        assert repos.blobs.exists(sha) and repos.blobs.meta(sha)["size"] == 6
    assert not stray.exists() and fresh_stray.exists()
    assert not repos.possesses("alice", old) and repos.possesses("alice", young)
    assert repos.gc(grace=0) == [young, young2]  # no grace: an uncommitted upload goes too
