"""``subspace-hub extract``: LoRA ensembles per attribute -> a subspace bundle folder."""

from __future__ import annotations

import click

from subspace_hub.errors import ConfigError
from subspace_hub.subspaces.settings import MODES, STRATEGIES, ExtractionSettings


def _parse_attribute(value: str) -> tuple[str, list[str]]:
    name, sep, paths = value.partition("=")
    if not sep or not name or not paths:
        raise ConfigError(f"--attribute expects NAME=PATH[,PATH...], got {value!r}.")
    return name.strip(), [p for p in paths.split(",") if p]


@click.command("extract")
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    required=True,
    metavar="NAME=PATH[,PATH...]",
    help="An attribute and its LoRAs: PEFT adapter folders, or one folder holding them. Repeat per attribute.",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Bundle folder to write.")
@click.option(
    "--d",
    "d",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Subspace dimension (uniform) or budget (importance).",
)
@click.option(
    "--allocation",
    type=click.Choice(STRATEGIES),
    default="uniform",
    show_default=True,
    help="How d is chosen per module.",
)
@click.option(
    "--alpha",
    default=1.0,
    show_default=True,
    help="Robustness exponent: 2 = least squares, 1 = down-weight outlier LoRAs.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="mean",
    show_default=True,
    help="Weighted-mean SVD (paper) or stacked Gram.",
)
@click.option("--max-iter", default=20, show_default=True, help="Maximum IRLS iterations.")
@click.option("--tol", default=1e-6, show_default=True, help="Relative objective change that ends IRLS.")
@click.option(
    "--target", "targets", multiple=True, metavar="REGEX", help="Only modules whose name fully matches (repeatable)."
)
@click.option("--min-dim", default=1, show_default=True, help="Smallest d a module gets (importance, gap).")
@click.option("--max-dim", type=click.IntRange(min=1), default=None, help="Largest d a module gets.")
@click.option("--energy", default=0.95, show_default=True, help="Energy fraction for --allocation energy.")
@click.option("--backbone", default=None, help="Backbone the LoRAs adapt (recorded in the bundle).")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Parallel threads (default: torch's thread count)."
)
def extract(
    attributes, out, d, allocation, alpha, mode, max_iter, tol, targets, min_dim, max_dim, energy, backbone, workers
) -> None:
    """Extract each attribute's shared LoRA subspaces and write them as a bundle.

    \b
    Example:
      subspace-hub extract --attribute texture=runs/texture --attribute geometry=runs/geometry \\
          --d 16 --out bundles/texture-geometry
    """
    from subspace_hub.subspaces import extract_bundle

    parsed = dict(_parse_attribute(value) for value in attributes)
    settings = ExtractionSettings(
        d=d,
        allocation=allocation,
        alpha=alpha,
        mode=mode,
        max_iter=max_iter,
        tol=tol,
        targets=tuple(targets),
        min_dim=min_dim,
        max_dim=max_dim,
        energy=energy,
    )
    bundle = extract_bundle(parsed, settings, workers=workers, info={"backbone": backbone} if backbone else None)
    folder = bundle.save(out)
    for name, stats in bundle.summary().items():
        click.echo(
            f"{name}: {stats['modules']} modules, {stats['total_dims']} dimensions, {stats['converged']} converged"
        )
    click.echo(f"Wrote {folder}")
