"""``subspace-hub train`` and ``subspace-hub finetune``: the training engine (:mod:`subspace_hub.pipelines.train`).

Settings come from a YAML file (``--config``), then the flags given, then ``--set KEY=VALUE`` (any field of the
training config, dotted: ``optim.lr=1e-4``). ``--num-processes N`` starts N processes through accelerate (one a
GPU); ``accelerate launch -m subspace_hub train ...`` does the same with accelerate's own settings.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from subspace_hub.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def _common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``train`` and ``finetune`` share (flags left out keep the config file's or default value)."""
    options = [
        click.option("--out", required=True, type=click.Path(file_okay=False), help="The run folder."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), help="A training YAML."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override any config field."),
        click.option("--backbone-config", "-c", default=None, help="Backbone preset or config file."),
        click.option("--pretrained", default=None, help="Backbone weights: a folder or a Hub repo."),
        click.option("--revision", default=None, help="Revision of --pretrained on the Hub."),
        click.option("--data", "data_source", default=None, help="Generated folder, Hub dataset repo or dataset name."),
        click.option("--data-config", default=None, help="Dataset config, e.g. texture-003."),
        click.option("--data-revision", default=None, help="Revision of a Hub dataset repo."),
        click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimizer steps [default: 1000]."),
        click.option("--lr", type=float, default=None, help="Peak learning rate [default: 1e-5]."),
        click.option("--seed", type=int, default=None, help="Seed of the initialisation and the data order."),
        click.option("--accumulation", type=click.IntRange(min=1), default=None, help="Micro-batches per step."),
        click.option(
            "--max-images",
            type=click.IntRange(min=1),
            default=None,
            help="Cap on images per step and process [default: 48].",
        ),
        click.option("--views", default=None, metavar="MIN-MAX", help="Frames per sample [default: 3-16]."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="[default: auto]"),
        click.option(
            "--gradient-checkpointing/--no-gradient-checkpointing", default=None, help="Recompute activations."
        ),
        click.option(
            "--checkpoint-every",
            type=click.IntRange(min=1),
            default=None,
            help="Steps between checkpoints [default: 500].",
        ),
        click.option(
            "--eval-every", type=click.IntRange(min=1), default=None, help="Steps between test-split evaluations."
        ),
        click.option(
            "--metric", "metrics", multiple=True, help="Metric of the evaluation (repeatable) [default: depth]."
        ),
        click.option("--tensorboard/--no-tensorboard", default=None, help="Also log TensorBoard scalars."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its newest checkpoint."),
        click.option(
            "--allow-incomplete",
            is_flag=True,
            default=None,
            help="Train on a generated folder whose generation has not finished.",
        ),
        click.option(
            "--num-processes",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Processes (GPUs), via accelerate.",
        ),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _views(text: str | None) -> dict[str, int]:
    if text is None:
        return {}
    low, sep, high = text.partition("-")
    try:
        return {"data.min_views": int(low), "data.max_views": int(high if sep else low)}
    except ValueError:
        raise ConfigError(f"--views expects MIN-MAX or N (e.g. 3-16), got {text!r}.") from None


def _relaunch(num_processes: int) -> None:
    """Run this very command again in ``num_processes`` processes under ``accelerate launch``."""
    argv = [a for a in sys.argv[1:] if not a.startswith("--num-processes")]
    if "--num-processes" in sys.argv:  # "--num-processes N" as two words
        index = sys.argv.index("--num-processes")
        argv = sys.argv[1:index] + sys.argv[index + 2 :]
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("--num-processes above 1 runs one process a GPU, and this machine has no GPU.")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes)]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "subspace_hub"]
    completed = subprocess.run([*command, *argv], check=False)
    raise SystemExit(completed.returncode)


def _run(method: str | None, method_options: dict[str, Any], backbone: str | None, kw: dict[str, Any]) -> None:
    from subspace_hub.pipelines.config import load_train_config
    from subspace_hub.pipelines.train import CONFIG_FILE, train

    if kw["num_processes"] > 1:
        _relaunch(kw["num_processes"])
    fields = {
        "backbone": backbone,
        "method": method,
        "backbone_config": kw["backbone_config"],
        "pretrained": kw["pretrained"],
        "revision": kw["revision"],
        "data.source": kw["data_source"],
        "data.config": kw["data_config"],
        "data.revision": kw["data_revision"],
        "data.max_images": kw["max_images"],
        "steps": kw["steps"],
        "optim.lr": kw["lr"],
        "seed": kw["seed"],
        "accumulation": kw["accumulation"],
        "precision": kw["precision"],
        "gradient_checkpointing": kw["gradient_checkpointing"],
        "checkpoint_every": kw["checkpoint_every"],
        "eval_every": kw["eval_every"],
        "metrics": list(kw["metrics"]) or None,
        "tensorboard": kw["tensorboard"],
        "data.allow_incomplete": kw["allow_incomplete"] or None,
        **_views(kw["views"]),
    }
    if method_options:
        fields["method_options"] = method_options
    config_file = kw["config_file"]
    if kw["resume"] and not (Path(kw["out"]) / CONFIG_FILE).is_file():
        raise ConfigError(
            f"Nothing to resume in {kw['out']}: it holds no training run ({CONFIG_FILE} is missing). "
            "Start the run without --resume, or give the --out of an earlier run."
        )
    if kw["resume"] and config_file is None:
        config_file = Path(kw["out"]) / CONFIG_FILE  # resume a run with its own recorded config
    config = load_train_config(config_file, kw["overrides"], **fields)
    result = train(config, kw["out"], resume=kw["resume"], progress=not kw["quiet"])
    if result.adapter is None:  # not the main process
        return
    losses = f"{result.losses[0]:.4f} -> {result.losses[-1]:.4f}" if result.losses else "-"
    click.echo(
        f"Trained {config.method} on {config.backbone}: {result.steps} steps, loss {losses}, "
        f"{result.trainable_parameters:,} trainable parameters."
    )
    for metric, outputs in (result.evaluation or {}).items():
        click.echo(f"  {metric}: " + ", ".join(f"{k} {v:.4g}" for k, v in outputs.items()))
    click.echo(f"Wrote {result.run} (adapter in {result.adapter}, metrics.csv, loss.png, README.md).")


def _method_options(values: tuple[str, ...]) -> dict[str, Any]:
    from subspace_hub.configuration import apply_overrides

    return apply_overrides({}, values)


@click.command("train")
@click.argument("backbone", required=False)
@click.option(
    "--method", default=None, help="Adapter method: lora, pissa, adalora, psv, subspace, full [default: lora]."
)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A method option, e.g. rank=16.")
@_common_options
def train(backbone, method, options, **kw) -> None:
    """Train an adapter (or, with --method full, the whole backbone) on a dataset; resumable with --resume.

    \b
    Examples:
      subspace-hub train vggt --pretrained facebook/VGGT-1B --method lora --option rank=16 \\
          --data data/texture --data-config texture-000 --steps 2000 --out runs/texture-000
      subspace-hub train --resume --out runs/texture-000
    """
    _run(method, _method_options(options), backbone, kw)


@click.command("finetune")
@click.argument("backbone", required=False)
@click.option("--bundle", default=None, help="Subspace bundle: a folder or a Hub repo.")
@click.option("--bundle-revision", default=None, help="Revision of a Hub bundle repo.")
@click.option("--attributes", default=None, help="Attributes to combine, comma-separated [default: all].")
@click.option(
    "--lora-rank",
    type=click.IntRange(min=1),
    default=None,
    help="LoRA rank on the targets without bases (e.g. the heads).",
)
@_common_options
def finetune(backbone, bundle, bundle_revision, attributes, lora_rank, **kw) -> None:
    """Fine-tune inside attribute subspaces: the ``subspace`` method with a bundle; options as ``train``.

    \b
    Example:
      subspace-hub finetune vggt --pretrained facebook/VGGT-1B --bundle org/vggt-attr-subspaces \\
          --attributes texture,geometry --lora-rank 16 --data data/faces --steps 1000 --out runs/faces
    """
    options: dict[str, Any] = {}
    if bundle is not None:
        options["bundle"] = bundle
    if bundle_revision is not None:
        options["revision"] = bundle_revision
    if attributes is not None:
        options["attributes"] = [a.strip() for a in attributes.split(",") if a.strip()]
    if lora_rank is not None:
        options["lora_rank"] = lora_rank
    if not options.get("bundle") and not kw["resume"] and not kw["config_file"]:
        raise ConfigError("finetune needs --bundle (a subspace bundle folder or Hub repo).")
    _run("subspace", options, backbone, kw)
