"""``subspace-hub evaluate``: a backbone (optionally with an adapter) over a dataset split -> a metrics table."""

from __future__ import annotations

import json
from pathlib import Path

import click

from subspace_hub.cli._output import echo_json
from subspace_hub.devices import check_device
from subspace_hub.errors import ConfigError

DEFAULT_METRICS = ("depth", "reconstruction")


def _metric_options(values: tuple[str, ...]) -> dict[str, dict]:
    from subspace_hub.configuration import apply_overrides

    for value in values:
        if "." not in value.partition("=")[0]:
            raise ConfigError(f"--option expects METRIC.KEY=VALUE (e.g. depth.align=scale), got {value!r}.")
    return apply_overrides({}, values)


@click.command("evaluate")
@click.argument("backbone")
@click.option(
    "--data", "data", required=True, help="Registered dataset, a folder saved with `datasets`, or a Hub dataset repo."
)
@click.option("--split", default=None, help="Dataset split (needed when there are several).")
@click.option("--data-config", default=None, help="Dataset config, e.g. texture-000 of a generated folder or repo.")
@click.option("-c", "--backbone-config", "--config", "config", default=None, help="Backbone preset or config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a backbone config field.")
@click.option("--pretrained", default=None, help="Backbone weights: a folder or a Hub repo.")
@click.option("--revision", default=None, help="Revision of a Hub repo given to --pretrained.")
@click.option(
    "--adapter",
    default=None,
    help="A saved adapter (save_adapter, SubspaceAdapter.save_pretrained, a PEFT folder) or its Hub repo.",
)
@click.option(
    "--metric", "metrics", multiple=True, help=f"Metric to compute (repeatable; default: {', '.join(DEFAULT_METRICS)})."
)
@click.option(
    "--option",
    "metric_options",
    multiple=True,
    metavar="METRIC.KEY=VALUE",
    help="A metric option, e.g. depth.align=scale_shift_lstsq.",
)
@click.option("--adapter-revision", default=None, help="Revision of an adapter given as a Hub repo.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score at most this many scenes.")
@click.option("--device", default="cpu", show_default=True, help="Where the backbone runs (cpu, cuda, cuda:1).")
@click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast when running on CUDA.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and per-scene scores as JSON.")
@click.option(
    "--output",
    "output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the summary and per-scene scores (JSON) to this file.",
)
@click.option("--allow-incomplete", is_flag=True, help="Score a generated folder whose generation has not finished.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate(
    backbone,
    data,
    split,
    data_config,
    config,
    overrides,
    pretrained,
    revision,
    adapter,
    adapter_revision,
    metrics,
    metric_options,
    limit,
    device,
    amp,
    as_json,
    output,
    allow_incomplete,
    quiet,
) -> None:
    """Run BACKBONE over a dataset split and print the metrics (averaged over scenes).

    \b
    Example (the paper's protocol on VGGT predictions):
      subspace-hub evaluate vggt --pretrained facebook/VGGT-1B --data data/texture --data-config texture-000 \\
          --split test --metric reconstruction --metric depth --option depth.align=scale_shift_l1
    """
    from subspace_hub.adapters import load_adapter
    from subspace_hub.backbones import load_backbone
    from subspace_hub.cli._backbone import backbone_config
    from subspace_hub.data import load_samples
    from subspace_hub.pipelines.evaluate import evaluate_backbone
    from subspace_hub.plugins import get_backbone_spec, get_metric
    from subspace_hub.tables import format_table

    check_device(device)
    spec = get_backbone_spec(backbone)
    specs = [get_metric(name) for name in (metrics or DEFAULT_METRICS)]
    options = _metric_options(metric_options)
    model = load_backbone(
        backbone, config=backbone_config(backbone, config, overrides), pretrained=pretrained, revision=revision
    )
    if adapter:
        model = load_adapter(adapter, model=model, revision=adapter_revision)
    samples = load_samples(data, split, data_config, allow_incomplete=allow_incomplete)
    report = evaluate_backbone(
        model,
        spec,
        samples,
        specs,
        options=options,
        device=device,
        autocast=amp,
        limit=limit,
        progress=not quiet,
    )
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(f"{backbone} on {data}{f' ({split})' if split else ''}: {len(report.scenes)} scene(s)")
        click.echo(format_table(("METRIC", "OUTPUT", "VALUE", "BETTER"), report.rows()))
    if output:
        Path(output).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        click.echo(f"Wrote {output}", err=as_json)
