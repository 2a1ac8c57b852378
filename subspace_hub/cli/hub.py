"""``subspace-hub push`` and ``subspace-hub pull``: publish registry entries, fetch repos."""

from __future__ import annotations

import click


@click.command("push")
@click.argument("name")
@click.option("--version", default=None, help="Version to tag (default: the entry's); an existing tag is refused.")
@click.option(
    "--bundle",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="The built bundle (default: the entry's bundle path).",
)
@click.option("--registry", "folder", default="registry", show_default=True, type=click.Path(file_okay=False))
@click.option("--repo", "repo_id", default=None, help="Publish under another repo id than the entry's.")
def push(name, version, bundle, folder, repo_id) -> None:
    """Publish the bundle of registry entry NAME with its model card, tagged v<version>."""
    from subspace_hub.publishing.publish import push as run

    pushed = run(name, version=version, registry=folder, bundle=bundle, repo_id=repo_id)
    click.echo(f"Pushed {pushed.describe()}")


@click.command("pull")
@click.argument("repo_id")
@click.option("--revision", default=None, help="Branch, tag (e.g. v1.0.0) or commit.")
@click.option("--dataset", "is_dataset", is_flag=True, help="A dataset repo.")
@click.option(
    "--out", default=None, type=click.Path(file_okay=False), help="Copy into this folder (default: the cache)."
)
def pull(repo_id, revision, is_dataset, out) -> None:
    """Download REPO_ID from the configured endpoint and print where it lies."""
    from subspace_hub.hub import endpoint
    from subspace_hub.publishing.publish import pull as run

    folder = run(repo_id, revision=revision, repo_type="dataset" if is_dataset else "model", out=out)
    click.echo(f"Pulled {repo_id}{'@' + revision if revision else ''} from {endpoint().describe()} to {folder}")
