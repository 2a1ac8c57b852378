"""A plain adapter training loop: the backbone spec's loss, AdamW, gradient clipping, and the attached method's
own hooks (e.g. AdaLoRA's orthogonality regulariser and rank allocation)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from subspace_hub.errors import ConfigError
from subspace_hub.plugins import get_adapter_spec
from subspace_hub.provenance import record_of
from subspace_hub.specs import BackboneSpec


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    """Task loss per step (without the method's regulariser)."""
    seconds: float = 0.0


def _forever(batches: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Iterate ``batches`` again and again (a DataLoader reshuffles and redraws views each pass)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ConfigError("The training data yielded no batch.")


def _to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def fit(
    model: torch.nn.Module,
    backbone: BackboneSpec,
    batches: Iterable[Mapping[str, Any]],
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    clip: float | None = 1.0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train the trainable parameters of ``model`` for ``steps`` steps over ``batches`` (cycled), e.g. a
    ``DataLoader`` of :class:`subspace_hub.data.ViewGroups`. The method attached with
    :func:`subspace_hub.attach_adapter` contributes its regulariser and after-step hook."""
    if backbone.loss is None:
        raise ConfigError(f"Backbone {backbone.name!r} declares no loss, so it cannot be trained with fit().")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("No parameter of the model is trainable; attach an adapter first.")
    record = record_of(model)
    method = get_adapter_spec(record.method) if record is not None and record.method is not None else None
    regularizer = method.regularizer if method is not None else None
    after_step = method.after_step if method is not None else None
    device = torch.device(device)
    model.to(device).train()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    result = TrainResult()
    start = time.perf_counter()
    source = _forever(batches)
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress) as bar:
        for step in range(steps):
            batch = _to(next(source), device)
            task = backbone.task_loss(backbone.run(model, batch), batch)
            total = task + regularizer(model) if regularizer is not None else task
            total.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            if after_step is not None:
                after_step(model, step)
            optimizer.zero_grad(set_to_none=True)
            result.losses.append(float(task.detach()))
            bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
            bar.update(1)
    result.seconds = time.perf_counter() - start
    return result
