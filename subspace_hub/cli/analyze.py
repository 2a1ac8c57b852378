"""``subspace-hub analyze``: figures and tables of a subspace bundle."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("analyze")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option(
    "--out", "out", type=click.Path(file_okay=False), default=None, help="Report folder (default: BUNDLE/analysis)."
)
def analyze(bundle, out) -> None:
    """Plot spectra, maximum singular values and orthogonality of a bundle, and write a JSON/Markdown summary."""
    from subspace_hub.subspaces import SubspaceBundle
    from subspace_hub.subspaces.report import write_report

    loaded = SubspaceBundle.load(bundle)
    folder = Path(out) if out else Path(bundle) / "analysis"
    summary = write_report(loaded, folder)
    click.echo(f"Wrote {len(summary['files'])} figures, summary.json and summary.md to {folder}")
