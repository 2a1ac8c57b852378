"""The training recipe: one schema for ``subspace-hub train``/``finetune``, the LoRA ensembles of ``build`` and the
quickstart, read from YAML and flags through :func:`subspace_hub.configuration.from_dict`.

The defaults are the attribute-subspace paper's fine-tuning recipe (shared/reference/methods.md A.2): AdamW with
learning rate 1e-5 and weight decay 0.05, a linear warm-up from 1e-8 over the first 5 % of the steps, then a
cosine decay to 1e-8, gradients clipped at norm 1.0, 3-16 frames a sample under a cap on images a step, and the
backbone's own loss (VGGT: camera weight 5, depth weight 1 with the gradient term) with its frozen parts frozen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from subspace_hub.configuration import apply_overrides, from_dict, to_dict
from subspace_hub.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Where the training samples come from and how a step reads them."""

    source: str = ""
    """A folder written by ``subspace-hub data generate`` (or ``datasets``), a Hub dataset repo, or a registered
    dataset name."""
    config: str | None = None
    """The dataset config (e.g. ``texture-003``); ``all``: every config of the source, concatenated (how a base
    model is pretrained on a whole family); default: the only or first one."""
    test_config: str | None = None
    """The config the evaluation reads (default: ``config``); another dataset of the family holds out its geometry
    and cameras, where the test split of the same config shares them with the training scenes."""
    revision: str | None = None
    """Revision of a Hub dataset repo."""
    split: str = "train"
    test_split: str | None = "test"
    """Split the end-of-run evaluation reads; ``None`` or a missing split: no evaluation."""
    min_views: int = 3
    max_views: int = 16
    max_images: int = 48
    """Cap on images a step (per process): a batch holds ``max(1, max_images // views)`` samples."""
    workers: int = 0
    """Data-loader processes that decode batches ahead of the training step (0: in the training process)."""
    allow_incomplete: bool = False
    """Read a generated folder whose generation has not finished (normally refused: scenes would be missing)."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_views <= self.max_views:
            raise ConfigError(f"data: need 1 <= min_views <= max_views, got {self.min_views} and {self.max_views}.")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the warm-up + cosine schedule."""

    lr: float = 1e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: float = 0.05
    """Share of the steps with a linear warm-up from ``start_lr`` to ``lr``."""
    start_lr: float = 1e-8
    end_lr: float = 1e-8
    """The cosine decay ends here at the last step."""
    clip: float | None = 1.0
    """Gradient-norm clipping; ``None`` turns it off."""

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}.")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"optim.warmup must be a share of the steps in [0, 1), got {self.warmup}.")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; ``config.yaml`` of a run folder holds it resolved."""

    backbone: str = ""
    """A registered backbone (``subspace-hub plugins``)."""
    backbone_config: str | dict[str, Any] | None = None
    """Preset name, file or dict; default: the checkpoint's ``config.json`` or the backbone's default preset."""
    pretrained: str | None = None
    """Weights to start from: a folder or a Hub repo."""
    revision: str | None = None
    method: str = "lora"
    """Adapter method (``full`` trains the whole backbone, which is how a base model is pretrained)."""
    method_options: dict[str, Any] = field(default_factory=dict)
    """Options of the method, e.g. ``{"rank": 16, "targets": ["aggregator"]}``; ``subspace`` takes ``bundle``."""
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 1000
    """Optimizer steps."""
    accumulation: int = 1
    """Micro-batches a step (gradient accumulation)."""
    seed: int = 0
    """Seeds the adapter's initialisation, the data order and the views drawn: runs with equal seeds are equal."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """``auto``: bf16 autocast on GPUs that support it, fp32 on the CPU."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (backbones with ``gradient_checkpointing_enable``)."""
    checkpoint_every: int = 500
    """Steps between checkpoints (one is also written at the end and on SIGTERM/SIGINT)."""
    keep_checkpoints: int = 2
    log_every: int = 1
    """Steps between rows of ``metrics.csv`` / TensorBoard scalars."""
    eval_every: int | None = None
    """Steps between evaluations on the test split; the end of the run always evaluates."""
    eval_limit: int | None = None
    """Evaluate on at most this many test scenes."""
    metrics: tuple[str, ...] = ("depth",)
    """Registered metrics of the evaluation."""
    tensorboard: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not self.backbone:
            problems.append("backbone is required")
        if not self.data.source:
            problems.append("data.source is required (a folder, a Hub dataset repo or a registered dataset)")
        for name in ("steps", "accumulation", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if problems:
            raise ConfigError("Invalid training config: " + "; ".join(problems) + ".")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_yaml(self) -> str:
        return yaml.safe_dump(to_dict(self), sort_keys=False)


def load_train_config(
    path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = (), **fields: Any
) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file (optional), then ``fields`` (flags that were given), then
    ``KEY=VALUE`` overrides with dotted keys (``optim.lr=1e-4``, ``data.max_views=8``)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read the training config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of training settings.")
        data = loaded
    for key, value in fields.items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        if name:
            data.setdefault(section, {})[name] = value
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}  # e.g. method options from flags on top of the file's
        else:
            data[key] = value
    return from_dict(TrainConfig, apply_overrides(data, overrides), what="training config")
