"""LoRA, PiSSA, AdaLoRA and PSV through PEFT: PEFT builds, trains, saves, loads and merges every one of them.

Targets are resolved by :func:`subspace_hub.adapters.targets.resolve_targets` (backbone target groups or
module-name regexes, ``layers=`` to select blocks) and handed to PEFT as exact module names.

- ``lora``: ``LoraConfig`` with ``lora_alpha = 2 * rank`` by default (scale 2, as the attribute-subspace paper).
- ``pissa``: LoRA initialised from the principal singular vectors of each weight (``init_lora_weights="pissa"``;
  ``niter`` selects PEFT's faster ``pissa_niter_<n>``). PiSSA rewrites the base weights, so :func:`save_peft`
  stores the portable form PEFT converts it to: a plain LoRA of rank 2r that applies to the untouched backbone.
- ``adalora``: AdaLoRA with a rank budget from ``init_rank`` down to ``rank``; it needs ``total_step``, its
  training loop must call :func:`adalora_after_step` after ``optimizer.step()`` (rank allocation reads the
  gradients), and :func:`adalora_regularizer` adds the orthogonality penalty PEFT only adds itself when the model
  output has a ``.loss`` (subspace-hub backbones return dicts).
- ``psv``: the paper's PSV ablation: frozen top-r singular vectors of W and a trainable r x r core, i.e. PEFT's
  PSOFT configured as LoRA-XS (``psoft_orth=False``, no magnitude vectors). PSOFT adapts Linear layers only;
  Conv2d targets are left out with a warning. The checkpoint holds only the cores; the singular vectors are
  recomputed from the base weights at load, so load onto the same backbone weights.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subspace_hub.adapters.targets import resolve_targets
from subspace_hub.errors import CheckpointError, ConfigError
from subspace_hub.fileio import atomic_write
from subspace_hub.provenance import own_record, record_of


def _targets(
    model: nn.Module,
    targets: Any,
    layers: Iterable[int] | None,
    method: str,
    linear_only: bool = False,
    stacklevel: int = 2,
) -> list[str]:
    names = resolve_targets(model, targets, layers=layers)
    if linear_only:
        modules = dict(model.named_modules())
        kept = [n for n in names if isinstance(modules[n], nn.Linear)]
        if len(kept) < len(names):
            warnings.warn(
                f"{method} adapts Linear layers only; {len(names) - len(kept)} Conv2d target(s) stay frozen "
                f"(e.g. {next(n for n in names if n not in kept)}).",
                stacklevel=stacklevel,
            )
        if not kept:
            raise ConfigError(f"{method} adapts Linear layers only, and none of the targets is one.")
        names = kept
    return names


def _check_rank(rank: int, what: str = "rank") -> None:
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ConfigError(f"{what} must be a positive integer, got {rank!r}.")


def _peft_model(
    model: nn.Module,
    method: str,
    config_class: str,
    *,
    targets: Any,
    layers: Iterable[int] | None,
    peft_options: dict[str, Any] | None,
    linear_only: bool = False,
    min_width: int | None = None,
    wrappers: int = 0,
    **config: Any,
) -> nn.Module:
    """The one way every method here attaches: resolve the targets (Linear layers only, or those at least
    ``min_width`` wide, where the method needs it), build PEFT's ``config_class`` with them and wrap the model.
    Warnings point at the caller of :func:`subspace_hub.attach_adapter` (``wrappers``: helpers between it and here).
    """
    import peft

    stacklevel = 5 + wrappers  # here's helpers (2), the attach function, attach_adapter, its caller
    names = _targets(model, targets, layers, method, linear_only=linear_only, stacklevel=stacklevel)
    if min_width is not None:
        names = _wide_enough(model, names, min_width, method, stacklevel=stacklevel)
    peft_config = getattr(peft, config_class)(target_modules=names, **config, **(peft_options or {}))
    return peft.get_peft_model(model, peft_config)


def attach_lora(
    model: nn.Module,
    *,
    targets: str | Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
    rank: int = 16,
    alpha: float | None = None,
    dropout: float = 0.0,
    use_rslora: bool = False,
    peft_options: dict[str, Any] | None = None,
) -> nn.Module:
    """LoRA on the targets: ``dW = (alpha / rank) * B @ A``, B zero-initialised. Returns a ``PeftModel``."""
    _check_rank(rank)
    return _lora(model, "lora", targets, layers, rank, alpha, peft_options, lora_dropout=dropout, use_rslora=use_rslora)


def _lora(
    model: nn.Module,
    method: str,
    targets: Any,
    layers: Iterable[int] | None,
    rank: int,
    alpha: float | None,
    peft_options: dict[str, Any] | None,
    **config: Any,
) -> nn.Module:
    """A PEFT ``LoraConfig`` of ``rank`` with ``lora_alpha = 2 * rank`` unless given (LoRA and PiSSA)."""
    lora_alpha = 2 * rank if alpha is None else alpha
    return _peft_model(
        model,
        method,
        "LoraConfig",
        targets=targets,
        layers=layers,
        peft_options=peft_options,
        r=rank,
        lora_alpha=lora_alpha,
        wrappers=1,
        **config,
    )


@dataclass(frozen=True)
class PissaInitial:
    """The adapter state right after PiSSA's initialisation (PEFT's state-dict keys, CPU tensors): what PEFT
    needs at save time to turn the trained adapter into a portable LoRA. Kept in the model's record."""

    tensors: dict[str, torch.Tensor]


def attach_pissa(
    model: nn.Module,
    *,
    targets: str | Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
    rank: int = 16,
    alpha: float | None = None,
    niter: int | None = None,
    peft_options: dict[str, Any] | None = None,
) -> nn.Module:
    """PiSSA on the targets (principal singular vectors initialise LoRA; the residual stays frozen).

    PEFT initialises Linear layers (``LoraLayer.pissa_init``); it has no PiSSA for convolutions, so Conv2d targets
    (VGGT's DPT head) get the same initialisation on the flattened kernel ``(out, in * kh * kw)``.
    """
    from peft import get_peft_model_state_dict
    from peft.tuners.lora import LoraLayer
    from peft.tuners.lora.layer import Conv2d as LoraConv2d

    _check_rank(rank)
    init = "pissa" if niter is None else f"pissa_niter_{int(niter)}"
    # Plain LoRA layers first (PEFT's default init), then every target is re-initialised from its SVD, which
    # needs rank <= min(out, in): narrower targets (a 2-channel output convolution, say) stay frozen.
    peft_model = _lora(model, "pissa", targets, layers, rank, alpha, peft_options, min_width=rank)
    with torch.no_grad():
        for module in peft_model.modules():
            if isinstance(module, LoraConv2d):
                _pissa_init_conv(module, "default", niter)
            elif isinstance(module, LoraLayer):
                module.pissa_init("default", init)
    # Keep the untouched initial adapter: PEFT converts the trained one against it into a portable LoRA.
    initial = get_peft_model_state_dict(peft_model, adapter_name="default")
    own_record(peft_model).state = PissaInitial({k: v.detach().cpu().clone() for k, v in initial.items()})
    peft_model.peft_config["default"].init_lora_weights = init
    return peft_model


def _pissa_init_conv(layer: Any, adapter: str, niter: int | None) -> None:
    """PiSSA for a PEFT LoRA Conv2d: ``W = U S V^T`` of the flattened kernel; ``B = U_r sqrt(S_r / s)``,
    ``A = sqrt(S_r / s) V_r^T`` and the frozen base keeps ``W - s B A`` (``s`` the LoRA scaling)."""
    base = layer.get_base_layer()
    r, scaling = layer.r[adapter], layer.scaling[adapter]
    weight = base.weight.float()
    flat = weight.reshape(weight.shape[0], -1)
    if niter is None:
        U, S, Vh = torch.linalg.svd(flat, full_matrices=False)
        U, S, Vh = U[:, :r], S[:r], Vh[:r]
    else:
        U, S, V = torch.svd_lowrank(flat, q=r, niter=niter)
        Vh = V.T
    root = torch.sqrt(S / scaling)
    A = root[:, None] * Vh  # [r, in * kh * kw]
    B = U * root[None, :]  # [out, r]
    lora_A, lora_B = layer.lora_A[adapter], layer.lora_B[adapter]
    lora_A.weight.copy_(A.reshape(lora_A.weight.shape))
    lora_B.weight.copy_(B.reshape(lora_B.weight.shape))
    base.weight.copy_((flat - scaling * B @ A).reshape(weight.shape).to(base.weight.dtype))


def attach_adalora(
    model: nn.Module,
    *,
    total_step: int | None = None,
    targets: str | Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
    rank: int = 8,
    init_rank: int = 12,
    alpha: float | None = None,
    tinit: int | None = None,
    tfinal: int | None = None,
    delta_t: int = 1,
    orth_reg_weight: float = 0.5,
    peft_options: dict[str, Any] | None = None,
) -> nn.Module:
    """AdaLoRA on the targets: SVD-form adapters starting at ``init_rank``, pruned to an average of ``rank``.

    ``total_step`` (the number of training steps) is required. By default rank allocation runs between the first
    10% (``tinit``) and the last 20% (``tfinal``) of the steps.
    """
    if total_step is None or total_step <= 0:
        raise ConfigError(
            "adalora needs total_step=<number of training steps>: it schedules its rank budget over them."
        )
    _check_rank(rank)
    _check_rank(init_rank, "init_rank")
    tinit = total_step // 10 if tinit is None else tinit
    tfinal = total_step // 5 if tfinal is None else tfinal
    if tinit >= total_step - tfinal:
        raise ConfigError(
            f"adalora needs tinit < total_step - tfinal, got tinit={tinit}, tfinal={tfinal}, total_step={total_step}."
        )
    return _peft_model(
        model,
        "adalora",
        "AdaLoraConfig",
        targets=targets,
        layers=layers,
        peft_options=peft_options,
        init_r=init_rank,
        target_r=rank,
        lora_alpha=2 * init_rank if alpha is None else alpha,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=delta_t,
        total_step=total_step,
        orth_reg_weight=orth_reg_weight,
    )


def attach_psv(
    model: nn.Module,
    *,
    targets: str | Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
    rank: int = 16,
    alpha: float | None = None,
    svd: str = "full",
    peft_options: dict[str, Any] | None = None,
) -> nn.Module:
    """PSV: frozen top-``rank`` singular vectors of each weight with a trainable ``rank x rank`` core."""
    _check_rank(rank)
    return _peft_model(
        model,
        "psv",
        "PsoftConfig",
        targets=targets,
        layers=layers,
        peft_options=peft_options,
        linear_only=True,
        min_width=rank,  # a rank-r singular basis needs r dimensions on both sides
        r=rank,
        psoft_alpha=2 * rank if alpha is None else alpha,
        psoft_orth=False,
        psoft_mag_a=False,
        psoft_mag_b=False,
        psoft_svd=svd,
    )


def _in_out(module: nn.Module) -> tuple[int, int]:
    """(inputs, outputs) of a Linear, or of a Conv2d's flattened kernel (in_channels * kh * kw)."""
    weight = module.weight
    return weight[0].numel(), weight.shape[0]


def _wide_enough(model: nn.Module, names: list[str], rank: int, method: str, stacklevel: int = 2) -> list[str]:
    """The targets with ``rank <= min(out, in)``; the others stay frozen, with a warning that names them."""
    sizes = {n: _in_out(model.get_submodule(n)) for n in names}
    small = [n for n in names if min(sizes[n]) < rank]
    if small:
        shapes = ", ".join(f"{n} ({sizes[n][0]} -> {sizes[n][1]})" for n in small[:3])
        warnings.warn(
            f"{method} rank {rank} exceeds min(in, out) of {len(small)} target(s), which stay frozen: {shapes}"
            + (f" (+{len(small) - 3} more)" if len(small) > 3 else ""),
            stacklevel=stacklevel,
        )
    kept = [n for n in names if n not in small]
    if not kept:
        raise ConfigError(f"{method} rank {rank} exceeds min(in, out) of every target; choose a smaller rank.")
    return kept


# Warnings PEFT raises from its own internals on paths where they do not apply; silenced only there.
_PEFT_NOISE = {
    # PEFT's PiSSA-to-LoRA conversion loads the initial adapter next to the PiSSA one and then warns about it.
    "pissa_save": r"PiSSA changes the base weights",
    # AdaLoRA may prune a module to rank 0; PEFT reads the empty tensors as unsharded ZeRO-3/FSDP weights.
    "adalora_save": r"Adapter .* LoRA tensor\(s\) have invalid shape",
    # AdaLoRA's saved rank_pattern names lora_E tensors, which PEFT resizes by but also checks as module names.
    "adalora_load": r"The following rank_pattern keys did not match any targeted module",
}


def _is_adalora(config: Any) -> bool:
    return type(config).__name__ == "AdaLoraConfig"


def save_peft(model: nn.Module, folder: str | Path) -> None:
    """``PeftModel.save_pretrained``; PiSSA adapters are converted to a portable LoRA of rank 2r.
    ``adapter_config.json`` names the base it adapts: its weights, or for random weights the registered backbone."""
    record = record_of(model)
    initial = record.state if record is not None and isinstance(record.state, PissaInitial) else None
    config = model.peft_config["default"]
    # PEFT looks a named base up on the Hub while saving (to check for resized token embeddings, which our
    # backbones do not have), a network call on every save; so the base is named only once the files are written.
    config.base_model_name_or_path = None
    with warnings.catch_warnings():
        if initial is not None:
            warnings.filterwarnings("ignore", message=_PEFT_NOISE["pissa_save"])
            with tempfile.TemporaryDirectory(prefix="subspace-hub-pissa-") as scratch:
                reference = _write_pissa_initial(model, initial, Path(scratch) / "initial")
                model.save_pretrained(
                    str(folder), path_initial_model_for_weight_conversion=str(reference), save_embedding_layers=False
                )
        else:
            if _is_adalora(config):
                warnings.filterwarnings("ignore", message=_PEFT_NOISE["adalora_save"])
            model.save_pretrained(str(folder), save_embedding_layers=False)
    if record is not None and record.build is not None:
        config.base_model_name_or_path = record.build.pretrained or record.build.backbone
        config.revision = record.build.revision
        path = Path(folder) / "adapter_config.json"
        saved = json.loads(path.read_text())
        saved.update(base_model_name_or_path=config.base_model_name_or_path, revision=config.revision)
        atomic_write(path, lambda p: p.write_text(json.dumps(saved, indent=2, sort_keys=True)))


def _write_pissa_initial(model: nn.Module, initial: PissaInitial, folder: Path) -> Path:
    """The initial PiSSA adapter as PEFT saves adapters (config with the plain-LoRA init + weights), for
    ``path_initial_model_for_weight_conversion``."""
    from safetensors.torch import save_file

    config = copy.copy(model.peft_config["default"])
    config.init_lora_weights = True  # the initial adapter is loaded as a plain LoRA next to the trained one
    config.save_pretrained(str(folder))
    save_file(initial.tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    return folder


def load_peft(base_model: nn.Module, folder: str | Path, *, trainable: bool = True) -> nn.Module:
    """``PeftModel.from_pretrained`` on a freshly built backbone.

    Raises:
        CheckpointError: the folder's ``adapter_config.json`` or weights are not a PEFT adapter of this backbone.
    """
    from peft import PeftModel
    from safetensors import SafetensorError

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PEFT_NOISE["adalora_load"])
        try:
            return PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable)
        # PEFT's errors for bad files, and safetensors' for a damaged weights file
        except (ValueError, TypeError, KeyError, RuntimeError, OSError, SafetensorError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise CheckpointError(
                f"Cannot load the PEFT adapter in {folder}: {type(exc).__name__}: {message}. Check its "
                "adapter_config.json, or save the adapter again."
            ) from exc


def merge_peft(model: nn.Module) -> nn.Module:
    """Fold the adapter into the base weights and return the plain backbone."""
    return model.merge_and_unload()


def adalora_regularizer(model: nn.Module) -> torch.Tensor:
    """AdaLoRA's orthogonality penalty: ``orth_reg_weight`` times the mean over adapter matrices of
    ``||P P^T - I||_F`` (A factors) and ``||Q^T Q - I||_F`` (B factors)."""
    config = model.peft_config["default"]
    terms = []
    for name, param in model.named_parameters():
        if param.numel() == 0 or not param.requires_grad:
            continue
        if ".lora_A." in name:
            gram = param @ param.T
        elif ".lora_B." in name:
            gram = param.T @ param
        else:
            continue
        terms.append(torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)))
    if not terms:
        return torch.zeros((), device=next(model.parameters()).device)
    return config.orth_reg_weight * torch.stack(terms).mean()


def adalora_training_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The rank allocator's importance averages and, after the final allocation, the rank pattern: what AdaLoRA
    keeps outside its parameters (names prefixed ``ipt.``, ``exp_avg_ipt.``, ``exp_avg_unc.``, ``rank_pattern.``)."""
    allocator = model.base_model.rankallocator
    state = {}
    for field_name in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
        for name, value in getattr(allocator, field_name).items():
            state[f"{field_name}.{name}"] = value
    for name, mask in (model.peft_config["default"].rank_pattern or {}).items():
        state[f"rank_pattern.{name}"] = torch.as_tensor(mask, dtype=torch.bool)
    return state


def adalora_load_training_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`adalora_training_state` returned."""
    allocator = model.base_model.rankallocator
    device = next(model.parameters()).device
    allocator.reset_ipt()
    rank_pattern = {}
    for key, value in state.items():
        field_name, _, name = key.partition(".")
        if field_name == "rank_pattern":
            rank_pattern[name] = value.tolist()
        else:
            getattr(allocator, field_name)[name] = value.to(device)
    if rank_pattern:
        model.peft_config["default"].rank_pattern = rank_pattern


def adalora_after_step(model: nn.Module, step: int) -> None:
    """AdaLoRA's rank allocation; call after ``optimizer.step()`` and before ``zero_grad()``."""
    model.base_model.update_and_allocate(step)
