"""``subspace-hub push`` and ``subspace-hub pull``: publish registry entries, fetch repos."""

from __future__ import annotations

import click

from subspace_hub.cli._options import registry_option


@click.command("push")
@click.argument("name")
@click.option("--version", default=None, help="Version to tag (default: the entry's); an existing tag is refused.")
@click.option(
    "--bundle",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="The built bundle (default: the entry's bundle path).",
)
@registry_option
@click.option("--repo", "repo_id", default=None, help="Publish under another repo id than the entry's.")
def push(name, version, bundle, folder, repo_id) -> None:
    """Publish the bundle of registry entry NAME with its model card, tagged v<version>."""
    from subspace_hub.publishing.publish import push as run

    pushed = run(name, version=version, registry=folder, bundle=bundle, repo_id=repo_id)
    click.echo(f"Pushed {pushed.describe()}")


def pull_options(command):
    """``--revision``, ``--local-dir`` (and ``--repo-type`` for ``pull``), as ``hf download`` names them."""
    command = click.option(
        "--local-dir",
        default=None,
        type=click.Path(file_okay=False),
        help="Copy into this folder (default: the cache).",
    )(command)
    return click.option("--revision", default=None, help="Branch, tag (e.g. v1.0.0) or commit.")(command)


def pull_repo(repo_id: str, revision: str | None, repo_type: str, local_dir: str | None) -> None:
    from subspace_hub.hub import endpoint
    from subspace_hub.publishing.publish import pull as run

    folder = run(repo_id, revision=revision, repo_type=repo_type, out=local_dir)
    click.echo(f"Pulled {repo_id}{'@' + revision if revision else ''} from {endpoint().describe()} to {folder}")


@click.command("pull")
@click.argument("repo_id")
@click.option(
    "--repo-type", type=click.Choice(["model", "dataset"]), default="model", show_default=True, help="The repo's kind."
)
@pull_options
def pull(repo_id, repo_type, revision, local_dir) -> None:
    """Download REPO_ID from the configured endpoint and print where it lies."""
    pull_repo(repo_id, revision, repo_type, local_dir)
