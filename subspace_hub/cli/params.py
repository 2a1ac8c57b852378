"""``subspace-hub params``: trainable-parameter counts of every method on a backbone, built on the meta device."""

from __future__ import annotations

from typing import Any

import click

from subspace_hub.cli._backbone import backbone_config
from subspace_hub.cli._output import echo_json
from subspace_hub.errors import ConfigError
from subspace_hub.tables import format_table


def _rows(targets, lora_ranks, psv_ranks, subspace_dims, attributes, bundle, subspace_targets, rest_lora_rank):
    """(label, method, options) for every requested count; options may be a function of the built model."""
    from subspace_hub.adapters.subspace import synthetic_bundle

    common = {"targets": list(targets)} if targets else {}
    rows: list[tuple[str, str | None, Any]] = [("backbone", None, None), ("full", "full", {})]
    rows += [(f"lora / pissa r={r}", "lora", {**common, "rank": r}) for r in lora_ranks]
    rows += [(f"psv r={r}", "psv", {**common, "rank": r}) for r in psv_ranks]
    rest = f" + lora r={rest_lora_rank} on the rest" if rest_lora_rank else ""

    def subspace_options(d: int | None):
        def options(model):
            if d is None:
                source = bundle
            else:
                source = synthetic_bundle(model, attributes, d, targets=list(subspace_targets or targets) or None)
            # The LoRA "rest" is every target without bases: the --targets (default: the backbone's defaults).
            return {
                "bundle": source,
                "attributes": None if d is None else attributes,
                "targets": list(targets) or None,
                "lora_rank": rest_lora_rank,
            }

        return options

    k = len(attributes)
    rows += [(f"subspace {k}x{d}{rest}", "subspace", subspace_options(d)) for d in subspace_dims]
    if bundle:
        rows.append((f"subspace {bundle}{rest}", "subspace", subspace_options(None)))
    return rows


@click.command("params")
@click.argument("backbone")
@click.option(
    "-c",
    "--backbone-config",
    "--config",
    "config",
    default=None,
    help="Backbone preset or config file (default: the backbone's default preset).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field (dotted keys reach nested fields).",
)
@click.option(
    "--targets",
    "targets",
    multiple=True,
    metavar="GROUP|REGEX",
    help="Adapter targets (default: the backbone's default targets).",
)
@click.option(
    "--lora-rank",
    "lora_ranks",
    multiple=True,
    type=click.IntRange(min=1),
    metavar="R",
    help="Count LoRA (and PiSSA, the same shapes) of rank R.",
)
@click.option(
    "--psv-rank",
    "psv_ranks",
    multiple=True,
    type=click.IntRange(min=1),
    metavar="R",
    help="Count PSV with R x R cores.",
)
@click.option(
    "--subspace-dim",
    "subspace_dims",
    multiple=True,
    type=click.IntRange(min=1),
    metavar="D",
    help="Count subspace cores with D dimensions per attribute.",
)
@click.option(
    "--attributes",
    default="texture,geometry",
    show_default=True,
    help="Attributes combined per module, for --subspace-dim.",
)
@click.option(
    "--bundle", default=None, help="Count the cores of a real bundle (folder or Hub repo), with its dropped columns."
)
@click.option(
    "--subspace-targets",
    multiple=True,
    metavar="GROUP|REGEX",
    help="Modules with subspace bases, for --subspace-dim (default: --targets).",
)
@click.option(
    "--rest-lora-rank",
    type=click.IntRange(min=1),
    default=None,
    help="LoRA of this rank on the targets without subspace bases.",
)
@click.option("--groups", is_flag=True, help="Also print each count per module group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def params(
    backbone,
    config,
    overrides,
    targets,
    lora_ranks,
    psv_ranks,
    subspace_dims,
    attributes,
    bundle,
    subspace_targets,
    rest_lora_rank,
    groups,
    as_json,
) -> None:
    """Count trainable parameters of full fine-tuning, LoRA, PSV and subspace adapters on BACKBONE.

    The model is built on the meta device, so no memory is spent on weights. Without --lora-rank,
    --psv-rank, --subspace-dim or --bundle it counts LoRA r=16 and subspace d=16.

    \b
    The paper's VGGT setting (camera and depth heads on, point and track heads off):
      subspace-hub params vggt --set enable_point=false --set enable_track=false \\
          --lora-rank 16 --lora-rank 64 --subspace-dim 16 --subspace-targets aggregator --rest-lora-rank 16
    """
    from subspace_hub.adapters.report import count_parameters

    names = [a.strip() for a in attributes.split(",") if a.strip()]
    if not names:
        raise ConfigError("--attributes needs at least one attribute name.")
    if not (lora_ranks or psv_ranks or subspace_dims or bundle):
        lora_ranks, subspace_dims = (16,), (16,)
    resolved = backbone_config(backbone, config, overrides)
    results = []
    for label, method, options in _rows(
        targets, lora_ranks, psv_ranks, subspace_dims, names, bundle, subspace_targets, rest_lora_rank
    ):
        report = count_parameters(backbone, method, config=resolved, options=options)
        results.append((label, report))
    total = results[0][1].total
    if as_json:
        echo_json(
            {
                "backbone": backbone,
                "config": resolved,
                "total": total,
                "counts": [
                    {
                        "method": label,
                        "trainable": r.trainable,
                        "notes": r.notes,
                        **({"groups": {g: list(v) for g, v in r.groups.items()}} if groups else {}),
                    }
                    for label, r in results[1:]
                ],
            }
        )
        return
    click.echo(f"{backbone}: {total:,} parameters")
    rows = [
        (label, f"{r.trainable:,}", f"{r.trainable / 1e6:.1f}M", f"{100 * r.trainable / total:.3f}%")
        for label, r in results[1:]
    ]
    click.echo(format_table(("METHOD", "TRAINABLE", "MILLIONS", "SHARE"), rows))
    for label, report in results[1:]:
        if report.notes:
            click.echo(f"\n{label}:\n" + "\n".join(f"  {line}" for line in report.notes))
        if groups:
            click.echo(f"\n{label}:\n{report.format()}")
