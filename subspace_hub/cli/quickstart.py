"""``subspace-hub quickstart``: the whole pipeline on a small VGGT, on the CPU, in minutes."""

from __future__ import annotations

import click


@click.command("quickstart")
@click.option(
    "--out",
    default="runs/quickstart",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where data, LoRAs, bundle and results go (reused if it exists).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Training steps per LoRA and per fine-tune.",
)
@click.option(
    "--loras", type=click.IntRange(min=1), default=3, show_default=True, help="LoRAs (datasets) per attribute."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the data, the LoRAs and the fine-tunes.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def quickstart(out, steps, loras, seed, quiet) -> None:
    """Build texture/geometry subspaces of a small pretrained VGGT (data, LoRA ensembles, extraction), fine-tune
    inside them against random bases, the heads alone, LoRA and PiSSA, evaluate on held-out scenes, and publish the
    bundle to the configured registry (by default the embedded one)."""
    from subspace_hub.pipelines.quickstart import format_summary, run

    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    summary = run(out, steps=steps, loras=loras, seed=seed, progress=not quiet, log=lambda m: click.echo(m, err=True))
    click.echo(format_summary(summary))
    click.echo(f"Everything is in {out} (summary.json, build/ with the bundle and its analysis, finetune/, data/).")
