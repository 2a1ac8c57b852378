"""``subspace-hub build``: run a registry entry's recipe (data, LoRA ensembles, extraction, analysis, card)."""

from __future__ import annotations

import click

from subspace_hub.cli._options import registry_option


@click.command("build")
@click.argument("name")
@registry_option
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Build folder [default: build/NAME].")
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda for the GPU renderer and training.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def build(name, folder, out, device, quiet) -> None:
    """Build registry entry NAME into build/NAME: generate its datasets, train its LoRA ensembles, extract and
    analyse the subspaces and stage the repo with its model card. Finished steps are skipped, so an interrupted
    build continues; `subspace-hub push NAME` publishes the result.

    \b
    Example:
      subspace-hub build texture-geometry-microbaseline-tiny && subspace-hub push texture-geometry-microbaseline-tiny
    """
    from subspace_hub.pipelines.build import build as run

    result = run(name, registry=folder, out=out, device=device, progress=not quiet, log=click.echo)
    click.echo(f"Bundle: {result.bundle}; repo to push: {result.repo} (subspace-hub push {name})")
