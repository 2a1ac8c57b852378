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
def serve(root, host, port, anonymous_read, upload_mode, max_file_size, log_file) -> None:
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
        on_ready=lambda url: click.echo(f"Serving {root} at {url}", err=True),
    )


@registry.command("token")
@click.argument("user")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="The registry root.")
@click.option(
    "--write",
    "write",
    multiple=True,
    help="Namespace the token may write (repeatable; '*' for all). Its own user name is always writable.",
)
@click.option("--read", "read", multiple=True, help="Namespaces whose private repos it may read (default: all).")
def token(user, root, write, read) -> None:
    """Create a token for USER and print it (only its hash is stored)."""
    from subspace_hub.hub.server.auth import TokenBook

    click.echo(TokenBook.load(root).add(user, write=tuple(write), read=tuple(read) or ("*",)))


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
