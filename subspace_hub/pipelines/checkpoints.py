"""Training checkpoints that a killed run resumes from exactly.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` holding:

- ``model.safetensors``: the trainable parameters and every buffer (by their names in the unwrapped model);
- ``optimizer.pt``: the optimizer's state dict (tensors and numbers only; read with ``weights_only=True``);
- ``method.safetensors``: the adapter method's own training state, if it has one (AdaLoRA's importance scores);
- ``rng.safetensors``: the torch CPU and CUDA generator states;
- ``state.json``: the step, the number of batches read (the sampler position), the scheduler state, and the
  Python and NumPy generator states.

It is written into ``.step-NNNNNNNN.tmp`` and renamed into place once complete, so a kill during a write leaves
the previous checkpoints untouched; leftovers of such a kill are removed when the run resumes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subspace_hub.errors import CheckpointError
from subspace_hub.fileio import atomic_write, read_json_object

FOLDER = "checkpoints"
_PREFIX = "step-"


@dataclass(frozen=True)
class Progress:
    """Where a run stands: optimizer steps done and training batches read (per process)."""

    step: int
    batches: int


def checkpoint_path(run: Path, step: int) -> Path:
    return run / FOLDER / f"{_PREFIX}{step:08d}"


def list_checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints of ``run``, oldest first."""
    folder = run / FOLDER
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(_PREFIX)))


def remove_partial_writes(run: Path) -> None:
    """Delete what a kill during a checkpoint write left behind."""
    folder = run / FOLDER
    if folder.is_dir():
        for leftover in folder.glob(".*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)


def _named_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    tensors = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    tensors.update({name: b.detach() for name, b in model.named_buffers()})
    return {name: t.cpu().contiguous() for name, t in tensors.items()}


def save_checkpoint(
    run: Path,
    progress: Progress,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    method_state: dict[str, torch.Tensor] | None = None,
    *,
    keep: int,
) -> Path:
    """Write a checkpoint of ``progress`` (see the module docstring) and keep the newest ``keep``."""
    from safetensors.torch import save_file

    final = checkpoint_path(run, progress.step)
    temporary = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_file(_named_state(model), str(temporary / "model.safetensors"))
    torch.save(optimizer.state_dict(), temporary / "optimizer.pt")
    if method_state:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in method_state.items()}, str(temporary / "method.safetensors")
        )
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(temporary / "rng.safetensors"))
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    state = {
        "step": progress.step,
        "batches": progress.batches,
        "scheduler": scheduler.state_dict(),
        "python_random": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy_random": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
    }
    # state.json last: a folder with it is complete (list_checkpoints), and the rename publishes all at once.
    atomic_write(temporary / "state.json", lambda p: p.write_text(json.dumps(state)))
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    for old in list_checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[Progress, dict[str, torch.Tensor]]:
    """Restore what :func:`save_checkpoint` wrote into ``model``, ``optimizer``, ``scheduler`` and the global
    random generators; returns the progress and the method's state (empty if it had none).

    Raises:
        CheckpointError: the checkpoint is damaged or does not fit the model (another config or method).
    """
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(folder / "model.safetensors"))
        optimizer_state = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
        rng = load_file(str(folder / "rng.safetensors"))
        method_file = folder / "method.safetensors"
        method_state = load_file(str(method_file)) if method_file.is_file() else {}
    except Exception as exc:  # safetensors and torch raise several types for damaged files
        raise CheckpointError(
            f"Cannot read the checkpoint {folder}: {exc}. Delete it to resume from an older one."
        ) from exc
    state = read_json_object(folder / "state.json")
    expected = _named_state(model)
    if set(tensors) != set(expected):
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise CheckpointError(
            f"The checkpoint {folder} does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "was the run's config changed?"
        )
    with torch.no_grad():
        named = dict(model.named_parameters()) | dict(model.named_buffers())
        for name, value in tensors.items():
            named[name].copy_(value)
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(rng["torch"])
    cuda_states = [rng[f"cuda.{i}"] for i in range(len([k for k in rng if k.startswith("cuda.")]))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    version, internal, gauss = state["python_random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy_random"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    return Progress(int(state["step"]), int(state["batches"])), method_state
