"""The training engine behind ``subspace-hub train`` and ``finetune``: any adapter method on any backbone that
declares a loss, on accelerate (one code path for the CPU, one GPU and several), resumable exactly.

A run writes into its folder::

    run/
      config.yaml          the resolved TrainConfig (a resumed run must match it)
      metrics.csv          per logged step: loss and its terms, lr, grad norm, images/s, memory
      evaluation.csv       test-split metrics every ``eval_every`` steps
      tensorboard/         the same scalars for TensorBoard
      checkpoints/         see :mod:`.checkpoints`; the newest ``keep_checkpoints`` are kept
      adapter/             the trained adapter (subspace_hub.save_adapter: for ``full``, the whole checkpoint)
      evaluation.json      registered metrics on the test split
      result.json          steps, trainable parameters, first and last loss, seconds
      loss.png, README.md  the loss curve and the run card

With several processes (``accelerate launch`` or ``--num-processes``) each reads its own batches of the plan
(batch ``n`` goes to process ``n % processes``), gradients are averaged by DDP, and process 0 writes.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import random
import resource
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from subspace_hub.adapters import attach_adapter, save_adapter
from subspace_hub.adapters.report import parameter_report
from subspace_hub.backbones import load_backbone
from subspace_hub.configuration import to_dict
from subspace_hub.data.quiet import datasets_quiet
from subspace_hub.data.sources import load_samples
from subspace_hub.data.views import Batch, BatchPlan, LandmarkRecords, ViewGroups, collate
from subspace_hub.errors import ConfigError, SubspaceHubError
from subspace_hub.fileio import atomic_write
from subspace_hub.hub import download, is_repo_id
from subspace_hub.pipelines.checkpoints import (
    Progress,
    list_checkpoints,
    load_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from subspace_hub.pipelines.config import TrainConfig
from subspace_hub.pipelines.evaluate import evaluate_backbone
from subspace_hub.plugins import get_adapter_spec, get_backbone_spec, get_metric
from subspace_hub.provenance import build_info
from subspace_hub.tables import format_table
from subspace_hub.templates import RUN_CARD

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
EVALUATION_LOG = "evaluation.csv"
ADAPTER_FOLDER = "adapter"


class TrainingInterrupted(SubspaceHubError):
    """SIGTERM or SIGINT stopped a run after writing a checkpoint it resumes from."""


@dataclass
class RunResult:
    """What a finished (or stopped) run produced."""

    run: Path
    steps: int
    """Optimizer steps done."""
    losses: list[float] = field(default_factory=list)
    """Task loss of every step this process ran or resumed over (from ``metrics.csv``)."""
    seconds: float = 0.0
    trainable_parameters: int = 0
    evaluation: dict[str, dict[str, float]] | None = None
    adapter: Path | None = None


def lr_factor(step: int, config: TrainConfig) -> float:
    """The learning-rate multiplier of ``step`` (0-based): a linear warm-up from ``start_lr`` to ``lr`` over
    ``warmup * steps`` steps, then a cosine decay to ``end_lr`` at the last step."""
    optim = config.optim
    warm = int(round(optim.warmup * config.steps))
    if step < warm:
        start = optim.start_lr / optim.lr
        return start + (1.0 - start) * step / warm
    span = max(1, config.steps - 1 - warm)
    end = optim.end_lr / optim.lr
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / span)))


def _memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGTERM/SIGINT (the second one acts as usual), in the main thread only."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        for sig, old in previous.items():
            signal.signal(sig, old)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """The backbone's ``gradient_checkpointing_enable()`` (the transformers convention), found under the adapter's
    wrappers (PEFT's and ours define none)."""
    for module in model.modules():
        if hasattr(type(module), "gradient_checkpointing_enable"):
            module.gradient_checkpointing_enable()
            return
    raise ConfigError(
        "gradient_checkpointing is on, but the backbone has no gradient_checkpointing_enable(); turn it off."
    )


class _CsvLog:
    """One CSV file of scalars, appended row by row (flushed, so a killed run keeps every row it logged); a
    resumed run first drops the rows after the step it resumes from."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.rows: list[dict[str, float]] = read_rows(path) if path.is_file() else []
        self.rows = [row for row in self.rows if row["step"] <= resume_step]
        self.columns: list[str] | None = list(self.rows[0]) if self.rows else None
        buffer = io.StringIO()
        if self.columns:
            writer = csv.DictWriter(buffer, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows({k: str(int(v)) if k == "step" else repr(v) for k, v in row.items()} for row in self.rows)
        atomic_write(path, lambda p: p.write_text(buffer.getvalue()))
        self.file = open(path, "a", newline="")  # noqa: SIM115 (closed by close())

    def add(self, row: dict[str, float]) -> None:
        if self.columns is None:
            self.columns = list(row)
            csv.DictWriter(self.file, fieldnames=self.columns).writeheader()
        csv.DictWriter(self.file, fieldnames=self.columns).writerow(
            {k: str(int(v)) if k == "step" else repr(float(v)) for k, v in row.items()}
        )
        self.file.flush()
        self.rows.append(row)

    def close(self) -> None:
        self.file.close()


class _MetricsLog:
    """``metrics.csv`` (training scalars), ``evaluation.csv`` (test-split metrics during the run) and the same
    scalars for TensorBoard."""

    def __init__(self, run: Path, *, resume_step: int, tensorboard: bool) -> None:
        self.train = _CsvLog(run / METRICS_FILE, resume_step)
        self.evaluation = _CsvLog(run / EVALUATION_LOG, resume_step)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("TensorBoard is not installed: scalars go to metrics.csv only.", stacklevel=3)
            else:
                self.writer = SummaryWriter(str(run / "tensorboard"), purge_step=resume_step + 1)

    @property
    def rows(self) -> list[dict[str, float]]:
        return self.train.rows

    def add(self, row: dict[str, float], *, evaluation: bool = False) -> None:
        (self.evaluation if evaluation else self.train).add(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(key, value, int(row["step"]))
            self.writer.flush()

    def close(self) -> None:
        self.train.close()
        self.evaluation.close()
        if self.writer is not None:
            self.writer.close()


def _prepare_run(run: Path, config: TrainConfig, resume: bool) -> Path | None:
    """Check ``run`` against ``config``; returns the checkpoint to resume from (``None``: start afresh)."""
    recorded = run / CONFIG_FILE
    if recorded.is_file():
        if not resume:
            raise ConfigError(
                f"{run} already holds a training run; pass --resume to continue it, or choose another output folder."
            )
        previous, wanted = yaml.safe_load(recorded.read_text()), to_dict(config)
        changed = sorted(k for k in set(previous) | set(wanted) if previous.get(k) != wanted.get(k))
        if changed:
            raise ConfigError(
                f"--resume continues {run} with the config it started with; these settings differ: "
                f"{', '.join(changed)}. Resume without changing them, or start a new run."
            )
    elif resume:
        raise ConfigError(f"Nothing to resume in {run}: it holds no training run ({CONFIG_FILE} is missing).")
    remove_partial_writes(run)
    checkpoints = list_checkpoints(run)
    return checkpoints[-1] if resume and checkpoints else None


def _attach(config: TrainConfig) -> torch.nn.Module:
    """The backbone with the method attached, seeded so the adapter's initialisation follows ``config.seed``."""
    _seed_everything(config.seed)
    model = load_backbone(
        config.backbone, config=config.backbone_config, pretrained=config.pretrained, revision=config.revision
    )
    options = dict(config.method_options)
    if "total_step" in inspect.signature(get_adapter_spec(config.method).attach).parameters:
        options.setdefault("total_step", config.steps)  # methods that schedule over the run (AdaLoRA)
    model = attach_adapter(model, config.method, **options)
    if config.gradient_checkpointing:
        _enable_gradient_checkpointing(model)
    return model


def _samples(config: TrainConfig, split: str, dataset_config: str | None) -> Any:
    """``load_samples`` of the run's source; ``all`` concatenates every config its dataset card lists that has
    ``split`` (a dataset repo is read as the folder of its files at ``data.revision``)."""
    data = config.data
    if dataset_config != "all":
        return load_samples(
            data.source, split, dataset_config, revision=data.revision, allow_incomplete=data.allow_incomplete
        )
    import datasets
    from huggingface_hub import DatasetCard

    folder, revision = Path(data.source).expanduser(), data.revision
    if not folder.is_dir() and is_repo_id(data.source):  # one download: the card and the data of one commit
        folder, revision = download(data.source, data.revision, repo_type="dataset"), None
    card = folder / "README.md"
    configs = (DatasetCard.load(card).data.to_dict().get("configs") or []) if card.is_file() else []
    if not configs:
        raise ConfigError(
            f"data.config 'all' loads the configs a dataset card lists, and {data.source} has no card with a "
            "'configs' list; name one config instead."
        )
    names = [c["config_name"] for c in configs if any(f.get("split") == split for f in c.get("data_files", []))]
    if not names:
        raise ConfigError(f"{data.source} has no split {split!r} in any config.")
    parts = [
        load_samples(str(folder), split, name, revision=revision, allow_incomplete=data.allow_incomplete)
        for name in names
    ]
    return datasets.concatenate_datasets(parts)


def _training_data(config: TrainConfig) -> tuple[ViewGroups | LandmarkRecords, BatchPlan]:
    data = config.data
    rows = _samples(config, data.split, data.config)
    if not hasattr(rows, "with_format"):
        raise ConfigError(
            f"Training needs random access to the samples of {data.source!r} (a datasets.Dataset); it returned "
            f"{type(rows).__name__}."
        )
    if "landmarks2d" in (getattr(rows, "column_names", None) or []):
        # landmark records: one "view" each, batches of max_images samples
        records = LandmarkRecords(rows)
        return records, BatchPlan(len(records), 1, 1, data.max_images, config.seed)
    groups = ViewGroups(rows, views=data.max_views, seed=config.seed)
    plan = BatchPlan(len(groups), data.min_views, data.max_views, data.max_images, config.seed, groups.view_counts)
    return groups, plan


class _PlannedBatches(torch.utils.data.Dataset):
    """The batches of the plan this process reads, in order, collated; loader workers decode them ahead."""

    def __init__(self, groups: ViewGroups | LandmarkRecords, batches: list[Batch]) -> None:
        self.groups = groups
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, position: int) -> tuple[Batch, dict[str, Any]]:
        batch = self.batches[position]
        return batch, collate([self.groups[(index, batch.views)] for index in batch.items])


def held_out_samples(config: TrainConfig) -> Any:
    """The samples a run is evaluated on (its ``eval_every`` curve and ``evaluation.json`` take the first
    ``eval_limit``): the source's test split, or ``None`` when the source has none."""
    data = config.data
    if data.test_split is None:
        return None
    try:
        return _samples(config, data.test_split, data.test_config or data.config)
    except ConfigError:
        return None


def _evaluate(model: torch.nn.Module, config: TrainConfig, samples: Any, device: torch.device) -> dict[str, Any]:
    spec = get_backbone_spec(config.backbone)
    metrics = [get_metric(name) for name in config.metrics]
    was_training = model.training
    report = evaluate_backbone(model, spec, samples, metrics, device=device, limit=config.eval_limit, progress=False)
    model.train(was_training)
    return report.summary()


def train(config: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> RunResult:
    """Run (or, with ``resume``, continue) the training ``config`` describes into the folder ``out``.

    Raises:
        ConfigError: a bad setting, an occupied folder without ``resume``, or a resume with another config.
        TrainingInterrupted: SIGTERM/SIGINT stopped the run; its checkpoint is written.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list

    run = Path(out)
    spec = get_backbone_spec(config.backbone)
    if spec.loss is None:
        raise ConfigError(f"Backbone {config.backbone!r} declares no loss, so it cannot be trained.")
    cuda = torch.cuda.is_available()
    bf16 = config.precision == "bf16" or (config.precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    # accelerate keeps one AcceleratorState per process and refuses an Accelerator of another precision; a process
    # that trains twice (a notebook, a sweep) starts each run from a fresh one (the process group lives on apart).
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        mixed_precision="bf16" if bf16 else "no",
        cpu=not cuda,
        # A trainable parameter the loss never reaches (a head the loss ignores, under full fine-tuning) gets no
        # gradient; DDP must not wait for it. (Frozen ones are not DDP's concern: it only tracks trainable ones.)
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    main = accelerator.is_main_process
    shared = [str(_prepare_run(run, config, resume) or "") if main else ""]
    resume_from = broadcast_object_list(shared)[0]  # every process resumes from the checkpoint process 0 found
    model = _attach(config)
    method = get_adapter_spec(config.method)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"Method {config.method!r} left no parameter of {config.backbone!r} trainable.")
    trainable_by_group = {group: t for group, (t, _) in parameter_report(model).groups.items() if t}
    trainable = sum(trainable_by_group.values())
    with datasets_quiet(not progress):
        groups, plan = _training_data(config)
        first = groups[(0, plan.min_views)]
        if "images" in first:  # landmark records have no images to size
            height, width = first["images"].shape[-2:]
            spec.check_image_size(height, width, build_info(model).config)
        held_out = held_out_samples(config) if accelerator.is_main_process else None
    if main:  # only now that the model, the method and the data are known to work: bad input writes nothing
        run.mkdir(parents=True, exist_ok=True)
        atomic_write(run / CONFIG_FILE, lambda p: p.write_text(config.to_yaml()))
    optimizer = torch.optim.AdamW(
        params, lr=config.optim.lr, weight_decay=config.optim.weight_decay, betas=config.optim.betas
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    progress_state, method_state = Progress(0, 0), None
    if resume_from:
        progress_state, method_state = load_checkpoint(Path(resume_from), model, optimizer, scheduler)
    # The scheduler is stepped here once per optimizer step, not by accelerate (which steps it once per process).
    prepared, optimizer = accelerator.prepare(model, optimizer)
    if method_state and method.load_training_state is not None:
        # Only now: the method's state (AdaLoRA's importance averages) goes to the device prepare() moved the model to.
        method.load_training_state(accelerator.unwrap_model(prepared), method_state)
    device = accelerator.device
    log = _MetricsLog(run, resume_step=progress_state.step, tensorboard=config.tensorboard) if main else None

    world, rank = accelerator.num_processes, accelerator.process_index
    remaining = (config.steps - progress_state.step) * config.accumulation * world
    mine = [
        b
        for _, b in zip(range(remaining), plan.iterate(progress_state.batches), strict=False)
        if b.number % world == rank
    ]
    loader = iter(
        torch.utils.data.DataLoader(
            _PlannedBatches(groups, mine),
            batch_size=None,
            num_workers=config.data.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
    )

    def next_batch() -> tuple[Batch, dict[str, Any]]:
        batch, samples = next(loader)
        return batch, {
            k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in samples.items()
        }

    started = time.perf_counter()
    step, consumed = progress_state.step, progress_state.batches
    prepared.train()
    with (
        _stop_on_signals() as stop,
        tqdm(
            total=config.steps,
            initial=step,
            desc=f"train {config.method}",
            unit="step",
            disable=not (progress and main),
        ) as bar,
    ):
        while step < config.steps:
            step_started = time.perf_counter()
            images, terms_sum = 0, {}
            for micro in range(config.accumulation):
                batch, inputs = next_batch()
                images += len(batch.items) * batch.views
                sync = micro == config.accumulation - 1
                with nullcontext() if sync else accelerator.no_sync(prepared):
                    terms = spec.loss_terms(spec.run(prepared, inputs), inputs)
                    total = terms["loss"]
                    if method.regularizer is not None:
                        total = total + method.regularizer(accelerator.unwrap_model(prepared))
                    accelerator.backward(total / config.accumulation)
                for key, value in terms.items():  # kept on the device: one transfer per step, not one per term
                    share = torch.as_tensor(value, dtype=torch.float32, device=device).detach() / config.accumulation
                    terms_sum[key] = terms_sum[key] + share if key in terms_sum else share
            consumed += config.accumulation * world
            grad_norm = (
                accelerator.clip_grad_norm_(params, config.optim.clip)
                if config.optim.clip is not None
                else torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
            )
            optimizer.step()
            if method.after_step is not None:
                method.after_step(accelerator.unwrap_model(prepared), step)
            optimizer.zero_grad(set_to_none=True)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            # one device-to-host transfer a step: the terms (averaged over processes) and the gradient norm
            stacked = torch.stack(list(terms_sum.values()))
            if world > 1:
                stacked = accelerator.reduce(stacked, reduction="mean")
            norm = torch.as_tensor(grad_norm, dtype=torch.float32, device=device).detach().reshape(1)
            *values, grad_norm_value = torch.cat([stacked, norm]).tolist()
            reduced = dict(zip(terms_sum, values, strict=True))
            if main and (step % config.log_every == 0 or step == config.steps):
                seconds = time.perf_counter() - step_started
                log.add(
                    {
                        "step": step,
                        **reduced,
                        "lr": lr,
                        "grad_norm": grad_norm_value,
                        "images_per_s": images * world / seconds,
                        "memory_gib": _memory_gib(device),
                    }
                )
            bar.set_postfix(loss=f"{reduced['loss']:.4f}")
            bar.update(1)
            stopping = stop.is_set()
            if step % config.checkpoint_every == 0 or step == config.steps or stopping:
                accelerator.wait_for_everyone()
                if main:
                    unwrapped = accelerator.unwrap_model(prepared)
                    state = method.training_state(unwrapped) if method.training_state is not None else None
                    save_checkpoint(
                        run,
                        Progress(step, consumed),
                        unwrapped,
                        optimizer.optimizer,
                        scheduler,
                        state,
                        keep=config.keep_checkpoints,
                    )
            if main and config.eval_every and step % config.eval_every == 0 and held_out is not None:
                evaluation = _evaluate(accelerator.unwrap_model(prepared), config, held_out, device)
                scores = {f"{metric}/{key}": value for metric, out in evaluation.items() for key, value in out.items()}
                log.add({"step": step, **scores}, evaluation=True)
            if stopping and step < config.steps:
                if log is not None:
                    log.close()
                raise TrainingInterrupted(
                    f"Stopped at step {step} of {config.steps} by a signal; the checkpoint is written. Resume with "
                    f"`subspace-hub train --resume --out {run}` (or train(..., resume=True))."
                )

    accelerator.wait_for_everyone()
    result = RunResult(run, step, seconds=time.perf_counter() - started, trainable_parameters=trainable)
    if main:
        model = accelerator.unwrap_model(prepared)
        result.adapter = save_adapter(model, run / ADAPTER_FOLDER)
        if held_out is not None:
            result.evaluation = _evaluate(model, config, held_out, device)
            atomic_write(run / "evaluation.json", lambda p: p.write_text(json.dumps(result.evaluation, indent=2)))
        result.losses = [row["loss"] for row in log.rows if "loss" in row]
        log.close()
        summary = {
            "steps": result.steps,
            "trainable_parameters": result.trainable_parameters,
            "trainable_by_group": trainable_by_group,
            "loss_first": result.losses[0] if result.losses else None,
            "loss_last": result.losses[-1] if result.losses else None,
            "seconds": result.seconds,
        }
        atomic_write(run / "result.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
        write_run_card(run, config, log.rows, result)
    return result


def loss_figure(rows: list[dict[str, float]]) -> Any:
    """A matplotlib figure (6 x 3.5 in at 120 dpi) of the task loss and its terms (``loss_*``) against the step,
    on a log scale when every loss is positive; rows without a loss (evaluation rows) are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=120)
    logged = [row for row in rows if "loss" in row]
    keys = [k for k in dict.fromkeys(k for row in logged for k in row) if k == "loss" or k.startswith("loss_")]
    for key in keys:
        axis.plot([row["step"] for row in logged], [row.get(key, math.nan) for row in logged], label=key, lw=1)
    axis.set_xlabel("step")
    axis.set_ylabel("training loss")
    axis.set_yscale("log" if all(row["loss"] > 0 for row in logged) else "linear")
    if keys:  # a run that logged no step yet: an empty plot, without matplotlib's empty-legend warning
        axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_losses(rows: list[dict[str, float]], path: Path) -> Path:
    """``loss.png``: :func:`loss_figure` of ``rows``, 720 x 420 pixels."""
    from matplotlib import pyplot as plt

    figure = loss_figure(rows)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_run_card(run: Path, config: TrainConfig, rows: list[dict[str, float]], result: RunResult) -> Path:
    """The run's ``README.md`` (from :data:`subspace_hub.templates.RUN_CARD`) with ``loss.png``."""
    import jinja2

    losses = [row for row in rows if "loss" in row]
    plot_losses(rows, run / "loss.png")
    evaluation = [
        (metric, key, f"{value:.6g}")
        for metric, outputs in (result.evaluation or {}).items()
        for key, value in outputs.items()
    ]
    text = jinja2.Template(RUN_CARD.read_text(encoding="utf-8")).render(
        config=config,
        trainable=f"{result.trainable_parameters:,}",
        steps=result.steps,
        first_loss=f"{losses[0]['loss']:.4f}" if losses else "-",
        last_loss=f"{losses[-1]['loss']:.4f}" if losses else "-",
        evaluation=format_table(("METRIC", "OUTPUT", "VALUE"), evaluation) if evaluation else "",
        config_yaml=config.to_yaml().strip(),
        adapter=ADAPTER_FOLDER,
    )
    path = run / "README.md"
    atomic_write(path, lambda p: p.write_text(text))
    return path


def read_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a CSV log, as numbers."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def read_metrics(run: str | Path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv``."""
    return read_rows(Path(run) / METRICS_FILE)
