"""Fine-tuning inside attribute subspaces: frozen bases, a trainable core per module (:class:`SubspaceAdapter`).

For every module with bases, the attributes' output-side bases (columns of U) are combined into one orthonormal
U (out x k_out) and their input-side bases into V (in x k_in), by rank-revealing QR in attribute order (or
Loewdin); the update is ``dW = s * U @ M @ V^T`` with a trainable core M (k_out x k_in) initialised to zero, so the
adapted model starts exactly at the pretrained one; ``s`` is 2 by default, as the paper's code. With d dimensions
per attribute and k attributes, M is (k d) x (k d), less where dependent columns were dropped (reported).
Convolutions use the flattened kernel: V lives in in * kh * kw dimensions. Modules without bases can get plain
LoRA through PEFT (the paper's runs adapt the heads that way).

On disk a :class:`SubspaceAdapter` is a bundle folder (``subspaces.safetensors`` + ``subspace_config.json``) plus,
once attached, :mod:`.config`'s ``subspace_adapter.json`` and ``subspace_adapter.safetensors`` (the combined
bases, the cores and any LoRA weights), so a trained adapter reloads with exactly the bases it was trained in.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subspace_hub.adapters import write_adapter_card, write_marker
from subspace_hub.adapters.subspace.config import (
    WEIGHTS_FILE,
    Combine,
    LoraSettings,
    ModuleCore,
    SubspaceAdapterConfig,
    read_config,
    write_config,
)
from subspace_hub.adapters.subspace.layer import SubspaceLayer, set_module
from subspace_hub.adapters.targets import resolve_targets
from subspace_hub.errors import CheckpointNotFoundError, ConfigError
from subspace_hub.fileio import atomic_write, read_tensors
from subspace_hub.hub import Pushed, default_client, is_repo_id
from subspace_hub.provenance import build_info, forget_adapter, own_record, record_of
from subspace_hub.subspaces.bundle import SubspaceBundle
from subspace_hub.subspaces.combine import combine_bases


@dataclass
class ModuleBases:
    """Combined bases of one module and how they were built."""

    U: torch.Tensor
    """[out, k_out], orthonormal columns."""
    V: torch.Tensor
    """[in, k_in], orthonormal columns."""
    attributes: list[str]
    dropped_out: int = 0
    dropped_in: int = 0


class SubspaceAdapter:
    """Attribute subspaces and the state of fine-tuning inside them.

    Args:
        bundle: The attributes' bases.
        config: Settings (scale, combination) and, for a trained adapter, what it adapted.
        scale, combine, tol: Shortcuts that override the same fields of ``config``.
        trained: A trained adapter's tensors (``subspace_adapter.safetensors``).

    >>> adapter = SubspaceAdapter.from_pretrained("bundles/texture-geometry")  # doctest: +SKIP
    >>> model = adapter.attach(subspace_hub.load_backbone("vggt"), attributes=["texture"])  # doctest: +SKIP
    >>> adapter.save_pretrained("runs/finetuned")  # doctest: +SKIP
    """

    def __init__(
        self,
        bundle: SubspaceBundle,
        config: SubspaceAdapterConfig | None = None,
        *,
        scale: float | None = None,
        combine: Combine | None = None,
        tol: float | None = None,
        trained: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if not bundle.attributes:
            raise ConfigError("The subspace bundle holds no attributes.")
        overrides = {k: v for k, v in {"scale": scale, "combine": combine, "tol": tol}.items() if v is not None}
        self.bundle = bundle
        self.config = dataclasses.replace(config or SubspaceAdapterConfig(), **overrides)
        self._trained = dict(trained or {})
        # The attached state, filled by attach().
        self.model: nn.Module | None = None
        self.layers: dict[str, SubspaceLayer] = {}
        self.bases: dict[str, ModuleBases] = {}
        self.attributes: list[str] = []
        self.lora: LoraSettings | None = None
        self._lora_tuner: Any = None

    @property
    def scale(self) -> float:
        return self.config.scale

    @property
    def combine(self) -> Combine:
        return self.config.combine

    @property
    def trained(self) -> bool:
        """Whether this adapter holds trained cores (it was loaded from a saved fine-tune)."""
        return bool(self._trained)

    # -- loading ------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike[str], revision: str | None = None) -> SubspaceAdapter:
        """Load a bundle folder or a Hub repo (extracted bases, optionally a trained adapter)."""
        folder = Path(path_or_repo).expanduser()
        if not folder.exists():
            if not is_repo_id(os.fspath(path_or_repo)):
                raise CheckpointNotFoundError(
                    f"No subspace bundle at {folder}, and {os.fspath(path_or_repo)!r} is not a Hub repo id."
                )
            folder = default_client().download(os.fspath(path_or_repo), revision)
        elif revision is not None:
            raise ConfigError(f"revision={revision!r} only applies to Hub repos, but {folder} is a local folder.")
        bundle = SubspaceBundle.load(folder)
        config = read_config(folder)
        if config is None:
            return cls(bundle)
        return cls(bundle, config, trained=read_tensors(folder / WEIGHTS_FILE))

    @classmethod
    def of(cls, model: nn.Module) -> SubspaceAdapter:
        """The adapter attached to ``model``.

        Raises:
            ConfigError: no subspace adapter is attached.
        """
        record = record_of(model)
        if record is None or not isinstance(record.state, cls):
            raise ConfigError("No SubspaceAdapter is attached to this model.")
        return record.state

    # -- bases --------------------------------------------------------------------------------------------------

    def _select(self, attributes: Sequence[str] | None) -> list[str]:
        if attributes is None:
            return list(self.config.attributes or self.bundle.attribute_names)
        unknown = [a for a in attributes if a not in self.bundle.attributes]
        if unknown:
            raise ConfigError(f"The bundle has no attribute(s) {unknown}; it has {self.bundle.attribute_names}.")
        return list(attributes)

    def combined_bases(self, attributes: Sequence[str] | None = None) -> dict[str, ModuleBases]:
        """Module -> orthonormal bases combining the selected attributes (in bundle order)."""
        attributes = self._select(attributes)
        out = {}
        for module in sorted({m for a in attributes for m in self.bundle.attributes[a]}):
            names = [a for a in attributes if module in self.bundle.attributes[a]]
            subspaces = [self.bundle.attributes[a][module] for a in names]
            u = combine_bases([s.U for s in subspaces], method=self.config.combine, tol=self.config.tol)
            v = combine_bases([s.V for s in subspaces], method=self.config.combine, tol=self.config.tol)
            out[module] = ModuleBases(u.Q.float(), v.Q.float(), names, dropped_out=u.dropped, dropped_in=v.dropped)
        return out

    # -- attaching ----------------------------------------------------------------------------------------------

    def attach(
        self,
        model: nn.Module,
        attributes: Sequence[str] | None = None,
        *,
        targets: str | Sequence[str] | None = None,
        layers: Iterable[int] | None = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
    ) -> nn.Module:
        """Wrap the modules with bases in :class:`SubspaceLayer` and freeze everything but the cores.

        A trained adapter (saved with :meth:`save_pretrained`) attached without ``attributes``, ``targets``,
        ``layers`` or ``lora_rank`` comes back exactly as saved: its modules, bases, cores and LoRA weights. With
        any of them it starts a new fine-tune from its bundle (zero cores).

        Args:
            model: The backbone (the layers are replaced in place; the model is returned).
            attributes: Attributes to combine (default: all of the bundle's, or those a trained adapter used).
            targets: Restrict to these target groups / regexes; with ``lora_rank``, targets without bases get LoRA.
                Default: every module with bases (and, for LoRA, the backbone's default targets).
            layers: Block indices to keep (see :func:`resolve_targets`).
            lora_rank: Plain LoRA (PEFT) of this rank on targeted modules without bases; ``None`` leaves them frozen.
            lora_alpha: LoRA scaling numerator (default ``2 * lora_rank``).

        Raises:
            ConfigError: unknown attributes or modules the model lacks.
            ShapeMismatchError: a module whose bases do not fit the model's layer (names both shapes).
        """
        if self.model is not None:
            raise ConfigError(
                "This SubspaceAdapter is already attached to a model; load it again to attach it to another."
            )
        if self.trained and attributes is None and targets is None and layers is None and lora_rank is None:
            return self._restore(model)
        return self._start(model, self._select(attributes), targets, layers, lora_rank, lora_alpha)

    def _start(
        self,
        model: nn.Module,
        attributes: list[str],
        targets: str | Sequence[str] | None,
        layers: Iterable[int] | None,
        lora_rank: int | None,
        lora_alpha: float | None,
    ) -> nn.Module:
        """A new fine-tune: the selected attributes' combined bases, zero cores, LoRA on the targets without bases."""
        bases = self.combined_bases(attributes)
        self._require_modules(model, bases)
        selected, lora_modules = set(bases), []
        if targets is not None or layers is not None:
            wanted = set(resolve_targets(model, targets, layers=layers, frozen=()))
            selected &= wanted
            lora_modules = sorted(wanted - set(bases))
        elif lora_rank is not None:
            lora_modules = sorted(set(resolve_targets(model)) - set(bases))
        if not selected:
            raise ConfigError("No targeted module has subspace bases; check targets= and the bundle's modules.")
        model.requires_grad_(False)
        if lora_rank is not None and lora_modules:
            alpha = 2 * lora_rank if lora_alpha is None else lora_alpha
            self._add_lora(model, LoraSettings(lora_rank, alpha, lora_modules))
        for name in sorted(selected):
            self._wrap(model, name, bases[name])
        return self._attached(model, attributes)

    def _restore(self, model: nn.Module) -> nn.Module:
        """A trained adapter, exactly as saved: its modules, bases, cores and LoRA weights."""
        config = self.config
        self._require_modules(model, config.modules)
        model.requires_grad_(False)
        if config.lora is not None:
            lora_state = {k.removeprefix("lora."): v for k, v in self._trained.items() if k.startswith("lora.")}
            self._add_lora(model, config.lora, lora_state)
        for name, module in config.modules.items():
            bases = ModuleBases(
                self._trained[f"{name}.U"],
                self._trained[f"{name}.V"],
                module.attributes,
                module.dropped_out,
                module.dropped_in,
            )
            layer = self._wrap(model, name, bases)
            with torch.no_grad():
                layer.core.copy_(self._trained[f"{name}.core"])
        return self._attached(model, list(config.attributes))

    def _require_modules(self, model: nn.Module, names: Iterable[str]) -> None:
        present = dict(model.named_modules())
        missing = [m for m in names if m not in present]
        if missing:
            backbone = self.bundle.info.get("backbone")
            raise ConfigError(
                f"The bundle has bases for {len(missing)} module(s) the model lacks (e.g. {missing[0]})"
                + (f"; it was extracted for backbone {backbone!r}" if backbone else "")
                + ". Load the backbone the bundle was made for."
            )

    def _add_lora(self, model: nn.Module, settings: LoraSettings, state: dict[str, torch.Tensor] | None = None) -> None:
        """Plain PEFT LoRA on ``settings.modules`` (in place; the tuner is kept for merging)."""
        from peft import LoraConfig, set_peft_model_state_dict
        from peft.tuners.lora import LoraModel

        config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.modules))
        self._lora_tuner = LoraModel(model, config, "default")
        self.lora = settings
        if state is not None:
            set_peft_model_state_dict(model, state, adapter_name="default")

    def _wrap(self, model: nn.Module, name: str, bases: ModuleBases) -> SubspaceLayer:
        layer = SubspaceLayer(model.get_submodule(name), bases.U, bases.V, self.config.scale, name)
        set_module(model, name, layer)
        self.layers[name] = layer
        self.bases[name] = bases
        return layer

    def _attached(self, model: nn.Module, attributes: list[str]) -> nn.Module:
        self.attributes = attributes
        self.model = model
        record = own_record(model)
        record.method, record.options, record.state = "subspace", {}, self
        return model

    # -- results ------------------------------------------------------------------------------------------------

    def report(self) -> str:
        """Per attached module: attributes, core shape, columns dropped as dependent."""
        lines = [
            f"Subspace adapter: attributes {', '.join(self.attributes)}, scale {self.scale}, combine {self.combine}"
        ]
        cores = Counter(tuple(layer.core.shape) for layer in self.layers.values())
        shapes = ", ".join(f"{a}x{b} on {n}" for (a, b), n in sorted(cores.items(), reverse=True))
        total = sum(layer.core.numel() for layer in self.layers.values())
        lines.append(f"cores: {shapes} module(s); {total:,} trainable core parameters")
        for module, b in self.bases.items():
            if b.dropped_out or b.dropped_in:
                lines.append(f"  {module}: dropped {b.dropped_out} output / {b.dropped_in} input columns as dependent")
        if self.lora:
            lines.append(f"LoRA rank {self.lora.rank} on {len(self.lora.modules)} modules without bases")
        return "\n".join(lines)

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write the bundle and, once attached, the settings with provenance plus bases, cores and LoRA weights."""
        from safetensors.torch import save_file

        folder = Path(folder)
        self.bundle.save(folder)
        if self.model is None:
            return folder
        tensors: dict[str, torch.Tensor] = {}
        for name, layer in self.layers.items():
            for field_name in ("U", "V", "core"):
                tensors[f"{name}.{field_name}"] = getattr(layer, field_name).detach().float().cpu().contiguous()
        if self._lora_tuner is not None:
            from peft import get_peft_model_state_dict

            for key, value in get_peft_model_state_dict(self.model, adapter_name="default").items():
                tensors[f"lora.{key}"] = value.detach().float().cpu().contiguous()
        build = build_info(self.model)
        config = dataclasses.replace(
            self.config,
            attributes=self.attributes,
            modules={
                name: ModuleCore(
                    attributes=b.attributes,
                    core=list(self.layers[name].core.shape),
                    d={a: self.bundle.attributes[a][name].d for a in b.attributes},
                    dropped_out=b.dropped_out,
                    dropped_in=b.dropped_in,
                )
                for name, b in self.bases.items()
            },
            lora=self.lora,
            backbone=None if build is None else build.to_dict(),
            sources=self.bundle.info.get("sources", {}),
        )
        atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
        write_config(config, folder)
        # the same marker and card as subspace_hub.save_adapter: load_adapter takes either folder
        write_marker(folder, "subspace", {}, build)
        write_adapter_card(folder, "subspace", {}, build, self.model)
        return folder

    def push_to_hub(
        self, repo_id: str, *, tag: str | None = None, private: bool = False, message: str | None = None
    ) -> Pushed:
        """Save (:meth:`save_pretrained`) and upload as one commit of ``repo_id`` on the configured endpoint
        (``SUBSPACE_HUB_ENDPOINT``, else the embedded registry), optionally tagged; returns where it landed.
        Registry entries publish with ``subspace-hub push NAME`` instead, which adds the model card."""
        with tempfile.TemporaryDirectory(prefix="subspace-adapter-") as scratch:
            self.save_pretrained(scratch)
            message = message or "Upload subspace adapter"
            return default_client().push_folder(scratch, repo_id, tag=tag, private=private, message=message)

    def merge_and_unload(self) -> nn.Module:
        """Fold every core (and LoRA) into the base weights, restore plain layers, and return the model."""
        if self.model is None:
            raise ConfigError("The adapter is not attached to a model.")
        model = self.model
        for name, layer in self.layers.items():
            set_module(model, name, layer.merge())
        if self._lora_tuner is not None:
            model = self._lora_tuner.merge_and_unload()
        forget_adapter(model)
        self.layers = {}
        self.model = None
        return model


# -- the ``subspace`` adapter method (registered by subspace_hub.builtin.adapters) -----------------------------------


def attach_subspace(
    model: nn.Module,
    *,
    bundle: SubspaceAdapter | SubspaceBundle | str | os.PathLike[str],
    attributes: Sequence[str] | None = None,
    targets: str | Sequence[str] | None = None,
    layers: Iterable[int] | None = None,
    lora_rank: int | None = None,
    lora_alpha: float | None = None,
    scale: float = 2.0,
    combine: Combine = "qr",
    tol: float = 1e-6,
    revision: str | None = None,
) -> nn.Module:
    """``attach_adapter(model, "subspace", bundle=...)``: see :meth:`SubspaceAdapter.attach`.

    ``bundle`` is a bundle folder, a Hub repo id (with ``revision``), a :class:`SubspaceBundle` or a
    :class:`SubspaceAdapter`. A trained adapter keeps the scale and combination it was trained with.
    """
    if isinstance(bundle, SubspaceAdapter):
        adapter = bundle
    elif isinstance(bundle, SubspaceBundle):
        adapter = SubspaceAdapter(bundle, scale=scale, combine=combine, tol=tol)
    else:
        adapter = SubspaceAdapter.from_pretrained(bundle, revision=revision)
        if not adapter.trained:
            adapter.config = dataclasses.replace(adapter.config, scale=scale, combine=combine, tol=tol)
    return adapter.attach(model, attributes, targets=targets, layers=layers, lora_rank=lora_rank, lora_alpha=lora_alpha)


def save_subspace(model: nn.Module, folder: str | os.PathLike[str]) -> None:
    SubspaceAdapter.of(model).save_pretrained(folder)


def load_subspace(base_model: nn.Module, folder: str | os.PathLike[str]) -> nn.Module:
    return SubspaceAdapter.from_pretrained(folder).attach(base_model)


def merge_subspace(model: nn.Module) -> nn.Module:
    return SubspaceAdapter.of(model).merge_and_unload()
