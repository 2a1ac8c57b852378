"""``subspace-hub registry``: serve a Hub-compatible registry, manage its tokens, inspect registry entries."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import click

from subspace_hub.cli._options import registry_option
from subspace_hub.cli._output import echo_json
from subspace_hub.tables import format_table


@click.group("registry")
def registry() -> None:
    """The Hub-compatible registry server and the registry/ entries of published bundles."""


@registry.command("serve")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="Where repos, blobs and tokens live.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="TCP port to listen on.")
@click.option(
    "--anonymous-read/--no-anonymous-read",
    default=True,
    show_default=True,
    help="Let requests without a token read public repos.",
)
@click.option(
    "--upload-mode",
    type=click.Choice(["auto", "regular", "lfs"]),
    default="auto",
    show_default=True,
    help="What preupload answers; 'regular' suits clients that cannot disable Xet.",
)
@click.option("--max-file-size", default=50 << 30, show_default=True, help="Largest file accepted, in bytes.")
@click.option(
    "--log-file", type=click.Path(dir_okay=False), default=None, help="JSON-lines request log (default: stderr)."
)
@click.option(
    "--workers", type=click.IntRange(1, 4096), default=64, show_default=True, help="Connections served at once."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a connection may stall on a read or write before it is closed.",
)
@click.option(
    "--allow-tag-deletion", is_flag=True, help="Let writers delete tags (published tags are immutable by default)."
)
def serve(
    root, host, port, anonymous_read, upload_mode, max_file_size, log_file, workers, timeout, allow_tag_deletion
) -> None:
    """Serve the registry under --root until interrupted.

    \b
    Clients: HF_ENDPOINT=http://HOST:PORT for huggingface_hub/datasets/transformers (with HF_HUB_DISABLE_XET=1),
    SUBSPACE_HUB_ENDPOINT=http://HOST:PORT for subspace-hub.
    """
    from subspace_hub.hub.server import serve as run

    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("subspace_hub.registry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    run(
        root,
        host,
        port,
        anonymous_read=anonymous_read,
        upload_mode=upload_mode,
        max_file_size=max_file_size,
        workers=workers,
        timeout=timeout,
        allow_tag_deletion=allow_tag_deletion,
        on_ready=lambda url: click.echo(f"Serving {root} at {url}", err=True),
    )


@registry.group("token")
def token() -> None:
    """Tokens of a registry root: add, list, revoke (a running server sees the change at its next request)."""


@token.command("add")
@click.argument("user")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="The registry root.")
@click.option(
    "--write",
    "write",
    multiple=True,
    help="Namespace the token may write (repeatable; '*' for all). Default: the user's own namespace.",
)
@click.option("--read-only", is_flag=True, help="A token that writes nothing.")
@click.option(
    "--read",
    "read",
    multiple=True,
    help="Namespace whose private repos it may read besides those it writes (repeatable; '*' for all).",
)
def token_add(user, root, write, read_only, read) -> None:
    """Create a token for USER and print it (shown once; only its hash is stored)."""
    from subspace_hub.errors import ConfigError
    from subspace_hub.hub.server.auth import TokenBook

    if read_only and write:
        raise ConfigError("--read-only and --write contradict each other: choose one.")
    rights = () if read_only else (tuple(write) or None)
    click.echo(TokenBook.load(root).add(user, write=rights, read=tuple(read)))


@token.command("list")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="The registry root.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_list(root, as_json) -> None:
    """The tokens of --root: user, rights, creation date and the start of the token's hash (never the token)."""
    from subspace_hub.hub.server.auth import TokenBook

    book = TokenBook.load(root)
    rows = [
        {"user": u.name, "write": list(u.write), "read": list(u.read), "created": u.created, "id": d[:12]}
        for d, u in sorted(book.users.items(), key=lambda item: (item[1].name, item[0]))
    ]
    if as_json:
        echo_json(rows)
        return
    table = [
        (r["user"], ", ".join(r["write"]) or "-", ", ".join(r["read"]) or "-", r["created"] or "-", r["id"])
        for r in rows
    ]
    click.echo(format_table(("USER", "WRITES", "READS (PRIVATE)", "CREATED", "ID"), table))


@token.command("revoke")
@click.argument("user_or_id")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="The registry root.")
def token_revoke(user_or_id, root) -> None:
    """Revoke every token of a user, or one token by the ID `token list` shows."""
    from subspace_hub.errors import ConfigError
    from subspace_hub.hub.server.auth import TokenBook

    removed = TokenBook.load(root).revoke(user_or_id)
    if not removed:
        raise ConfigError(
            f"No token of user or with ID {user_or_id!r} in {root}: see `subspace-hub registry token list`."
        )
    click.echo(f"Revoked {removed} token(s).")


@registry.command("fsck")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="The registry root.")
def fsck(root) -> None:
    """Hash every blob and check every repo's refs and commits; exit 1 if anything is wrong."""
    from subspace_hub.hub.server.storage import RepoStore

    store = RepoStore(root)
    try:
        problems = store.fsck()
    finally:
        store.close()
    for problem in problems:
        click.echo(problem)
    blobs = sum(1 for _ in store.blobs.all())
    click.echo(f"{len(problems)} problem(s) in {root} ({blobs} blobs checked).", err=True)
    if problems:
        raise SystemExit(1)


@registry.command("gc")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="The registry root.")
@click.option(
    "--grace-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Keep unreferenced blobs younger than this (uploads whose commit has not come yet).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
def gc(root, grace_hours, dry_run) -> None:
    """Delete the blobs that no commit of any repo references (safe while the server runs)."""
    from subspace_hub.hub.server.storage import RepoStore

    store = RepoStore(root)
    try:
        doomed = store.gc(grace=grace_hours * 3600, dry_run=dry_run)
    finally:
        store.close()
    for sha256 in doomed:
        click.echo(sha256)
    click.echo(f"{'Would delete' if dry_run else 'Deleted'} {len(doomed)} unreferenced blob(s).", err=True)


@registry.command("list")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_(folder, as_json) -> None:
    """The entries of the registry folder."""
    from subspace_hub.publishing.entries import list_entries

    entries = list_entries(folder)
    if as_json:
        echo_json(
            [
                {"name": p.stem, "repo_id": e.repo_id if e else None, "version": e.version if e else None, "error": err}
                for e, p, err in entries
            ]
        )
        return
    rows = [
        (p.stem, e.repo_id, e.version, ", ".join(e.attributes), e.backbone.name)
        if e
        else (p.stem, "-", "-", "-", f"invalid: {err}")
        for e, p, err in entries
    ]
    click.echo(format_table(("NAME", "REPO", "VERSION", "ATTRIBUTES", "BACKBONE"), rows))


@registry.command("show")
@click.argument("name")
@registry_option
def show(name, folder) -> None:
    """One entry, resolved with its defaults."""
    import yaml

    from subspace_hub.publishing.entries import load_entry

    entry, base = load_entry(name, folder)
    data = dataclasses.asdict(entry)
    data["card"] = str(entry.card_path(base))
    data["bundle"] = str(entry.bundle_path(base))
    click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@registry.command("validate")
@click.argument("names", nargs=-1)
@registry_option
@click.option("--bundles", is_flag=True, help="Also check each built bundle against its entry.")
def validate(names, folder, bundles) -> None:
    """Check entries (all by default) against the schema; exit 1 if any is invalid."""
    from subspace_hub.errors import ConfigError
    from subspace_hub.publishing.entries import check_bundle, inspect_entry, list_entries

    if names:
        if not Path(folder).is_dir():
            raise ConfigError(f"No registry folder {folder}: point --registry at the folder of NAME.yaml entries.")
        results = [inspect_entry(name, folder) for name in names]
    else:
        results = list_entries(folder)
    failed = 0
    for entry, path, error in results:
        if error is None and bundles and entry is not None:
            from subspace_hub.subspaces import SubspaceBundle

            built = entry.bundle_path(Path(path).resolve().parent.parent)
            problems = (
                check_bundle(entry, SubspaceBundle.load(built)) if built.is_dir() else [f"no built bundle at {built}"]
            )
            error = "; ".join(problems) or None
        click.echo(f"{path.stem}: {'ok' if error is None else error}")
        failed += error is not None
    if not results:
        click.echo(f"No entries in {folder}.")
    if failed:
        raise ConfigError(
            f"{failed} registry entr{'y is' if failed == 1 else 'ies are'} invalid (every problem is listed above); "
            "fix them and run `subspace-hub registry validate` again."
        )
