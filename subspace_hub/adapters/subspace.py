"""Fine-tuning inside attribute subspaces: frozen bases, a trainable core per module.

For every module with bases, the attributes' output-side bases (columns of U) are combined into one orthonormal
U (out x k_out) and their input-side bases into V (in x k_in), by rank-revealing QR in attribute order (or
Loewdin); the update is ``dW = s * U @ M @ V^T`` with a trainable core M (k_out x k_in) initialised to zero, so the
adapted model starts exactly at the pretrained one; ``s`` is 2 by default, as the paper's code. With d dimensions
per attribute and k attributes, M is (k d) x (k d), less where dependent columns were dropped (reported).
Convolutions use the flattened kernel: V lives in in * kh * kw dimensions. Modules without bases can get plain
LoRA through PEFT (the paper's runs adapt the heads that way).

On disk a :class:`SubspaceAdapter` is a bundle folder (``subspaces.safetensors`` + ``subspace_config.json``) plus,
once attached, ``subspace_adapter.json`` (settings and provenance) and ``subspace_adapter.safetensors`` (the
combined bases, the cores and any LoRA weights), so a trained adapter reloads with exactly the bases it was
trained in.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from subspace_hub._version import __version__
from subspace_hub.errors import CheckpointNotFoundError, ConfigError, ShapeMismatchError
from subspace_hub.fileio import atomic_write
from subspace_hub.subspaces.bundle import SubspaceBundle
from subspace_hub.subspaces.combine import combine_bases

ADAPTER_CONFIG = "subspace_adapter.json"
ADAPTER_WEIGHTS = "subspace_adapter.safetensors"
ATTACHED_ATTR = "subspace_hub_subspace_adapter"
"""Attribute of an adapted model that holds its :class:`SubspaceAdapter`."""


class SubspaceLayer(nn.Module):
    """A Linear or Conv2d plus ``s * U @ core @ V^T``; ``base_layer`` and the bases are frozen."""

    def __init__(self, base: nn.Module, U: torch.Tensor, V: torch.Tensor, scale: float, name: str = "") -> None:
        super().__init__()
        weight = base.weight
        if isinstance(base, nn.Conv2d):
            if base.groups != 1 or base.padding_mode != "zeros":
                raise ConfigError(f"{name}: subspace adapters support Conv2d with groups=1 and zero padding only.")
            in_dim = base.in_channels * base.kernel_size[0] * base.kernel_size[1]
        elif isinstance(base, nn.Linear):
            in_dim = base.in_features
        else:
            raise ConfigError(f"{name}: subspace adapters support nn.Linear and nn.Conv2d, not {type(base).__name__}.")
        out_dim = weight.shape[0]
        if U.shape[0] != out_dim or V.shape[0] != in_dim:
            raise ShapeMismatchError(
                f"Module {name}: the bundle's bases fit a {U.shape[0]}x{V.shape[0]} weight, the model's layer is "
                f"{out_dim}x{in_dim}. The bundle was extracted for another backbone or config."
            )
        self.base_layer = base
        self.register_buffer("U", U.to(device=weight.device, dtype=weight.dtype), persistent=False)
        self.register_buffer("V", V.to(device=weight.device, dtype=weight.dtype), persistent=False)
        self.core = nn.Parameter(torch.zeros(U.shape[1], V.shape[1], device=weight.device, dtype=weight.dtype))
        self.scale = float(scale)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """``s * U @ core @ V^T`` in the shape of the base weight."""
        return (self.scale * self.U @ self.core @ self.V.T).reshape(self.base_layer.weight.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.merged:
            return result
        down = self.core @ self.V.T  # [k_out, in]: project onto V and apply the core in one matrix
        base = self.base_layer
        if isinstance(base, nn.Conv2d):
            hidden = F.conv2d(
                x, down.reshape(-1, *base.weight.shape[1:]), None, base.stride, base.padding, base.dilation
            )
            return result + self.scale * F.conv2d(hidden, self.U[:, :, None, None])
        return result + self.scale * F.linear(F.linear(x, down), self.U)

    def merge(self) -> nn.Module:
        """Add the update to the base weight and return the base layer (no overhead left)."""
        with torch.no_grad():
            self.base_layer.weight += self.delta_weight().to(self.base_layer.weight.dtype)
        self.merged = True
        return self.base_layer


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


@dataclass
class ModuleBases:
    """Combined bases of one module and how they were built."""

    U: torch.Tensor
    V: torch.Tensor
    attributes: list[str]
    dropped_out: int = 0
    dropped_in: int = 0


class SubspaceAdapter:
    """Attribute subspaces and the state of fine-tuning inside them.

    >>> adapter = SubspaceAdapter.from_pretrained("bundles/texture-geometry")  # doctest: +SKIP
    >>> model = adapter.attach(subspace_hub.load_backbone("vggt"), attributes=["texture"])  # doctest: +SKIP
    >>> adapter.save_pretrained("runs/finetuned")  # doctest: +SKIP
    """

    def __init__(
        self,
        bundle: SubspaceBundle,
        *,
        scale: float = 2.0,
        combine: Literal["qr", "loewdin"] = "qr",
        tol: float = 1e-6,
        info: dict[str, Any] | None = None,
        trained: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if not bundle.attributes:
            raise ConfigError("The subspace bundle holds no attributes.")
        self.bundle = bundle
        self.scale = scale
        self.combine = combine
        self.tol = tol
        self.info = dict(info or {})
        self._trained = dict(trained or {})
        self.layers: dict[str, SubspaceLayer] = {}
        self.bases: dict[str, ModuleBases] = {}
        self.attributes: list[str] = []
        self.lora: dict[str, Any] | None = None
        self._lora_tuner: Any = None
        self.model: nn.Module | None = None

    # -- loading ------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike[str], revision: str | None = None) -> SubspaceAdapter:
        """Load a bundle folder or a Hub repo (extracted bases, optionally a trained adapter)."""
        folder = Path(path_or_repo).expanduser()
        if not folder.exists():
            from subspace_hub.hub import download, is_repo_id

            if not is_repo_id(os.fspath(path_or_repo)):
                raise CheckpointNotFoundError(
                    f"No subspace bundle at {folder}, and {os.fspath(path_or_repo)!r} is not a Hub repo id."
                )
            folder = download(os.fspath(path_or_repo), revision)
        elif revision is not None:
            raise ConfigError(f"revision={revision!r} only applies to Hub repos, but {folder} is a local folder.")
        bundle = SubspaceBundle.load(folder)
        config_path = folder / ADAPTER_CONFIG
        if not config_path.is_file():
            return cls(bundle)
        from safetensors.torch import load_file

        config = json.loads(config_path.read_text())
        trained = load_file(str(folder / ADAPTER_WEIGHTS))
        adapter = cls(
            bundle, scale=config["scale"], combine=config["combine"], tol=config["tol"], info=config, trained=trained
        )
        return adapter

    # -- bases ----------------------------------------------------------------------------------------------------

    def _select(self, attributes: Sequence[str] | None) -> list[str]:
        if attributes is None:
            return list(self.info.get("attributes") or self.bundle.attribute_names)
        unknown = [a for a in attributes if a not in self.bundle.attributes]
        if unknown:
            raise ConfigError(f"The bundle has no attribute(s) {unknown}; it has {self.bundle.attribute_names}.")
        return list(attributes)

    def combined_bases(self, attributes: Sequence[str] | None = None) -> dict[str, ModuleBases]:
        """Module -> orthonormal bases combining the selected attributes (in bundle order)."""
        attributes = self._select(attributes)
        modules = sorted({m for a in attributes for m in self.bundle.attributes[a]})
        out = {}
        for module in modules:
            names = [a for a in attributes if module in self.bundle.attributes[a]]
            subs = [self.bundle.attributes[a][module] for a in names]
            u = combine_bases([s.U for s in subs], names, method=self.combine, tol=self.tol)
            v = combine_bases([s.V for s in subs], names, method=self.combine, tol=self.tol)
            out[module] = ModuleBases(
                U=u.Q.float(), V=v.Q.float(), attributes=names, dropped_out=u.dropped, dropped_in=v.dropped
            )
        return out

    # -- attaching ------------------------------------------------------------------------------------------------

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
        from subspace_hub.adapters.targets import resolve_targets

        if self.model is not None:
            raise ConfigError(
                "This SubspaceAdapter is already attached to a model; load it again to attach it to another."
            )
        # A trained adapter attached without new choices comes back exactly as it was saved: same modules, same
        # LoRA modules, same bases.
        restoring = (
            bool(self._trained) and attributes is None and targets is None and layers is None and lora_rank is None
        )
        trained_lora = self.info.get("lora") if restoring else None
        if trained_lora:
            lora_rank, lora_alpha = trained_lora["rank"], trained_lora["alpha"]
        attributes = self._select(attributes)
        bases = self.combined_bases(attributes)
        modules = dict(model.named_modules())
        missing = [m for m in bases if m not in modules]
        if missing:
            backbone = self.bundle.info.get("backbone")
            raise ConfigError(
                f"The bundle has bases for {len(missing)} module(s) the model lacks (e.g. {missing[0]})"
                + (f"; it was extracted for backbone {backbone!r}" if backbone else "")
                + ". Load the backbone the bundle was made for."
            )
        selected = set(bases)
        lora_modules: list[str] = []
        if restoring:
            selected = {key.removesuffix(".core") for key in self._trained if key.endswith(".core")}
            lora_modules = list(trained_lora["modules"]) if trained_lora else []
        elif targets is not None or layers is not None:
            wanted = set(resolve_targets(model, targets, layers=layers, frozen=()))
            selected &= wanted
            lora_modules = sorted(wanted - set(bases))
        elif lora_rank is not None:
            lora_modules = sorted(set(resolve_targets(model)) - set(bases))
        if not selected:
            raise ConfigError("No targeted module has subspace bases; check targets= and the bundle's modules.")
        for param in model.parameters():
            param.requires_grad_(False)
        if lora_rank is not None and lora_modules:
            from peft import LoraConfig
            from peft.tuners.lora import LoraModel

            alpha = 2 * lora_rank if lora_alpha is None else lora_alpha
            self._lora_tuner = LoraModel(
                model, LoraConfig(r=lora_rank, lora_alpha=alpha, target_modules=lora_modules), "default"
            )
            self.lora = {"rank": lora_rank, "alpha": alpha, "modules": lora_modules}
            if restoring:
                from peft import set_peft_model_state_dict

                state = {k.removeprefix("lora."): v for k, v in self._trained.items() if k.startswith("lora.")}
                set_peft_model_state_dict(model, state, adapter_name="default")
        for name in sorted(selected):
            module_bases = bases[name]
            if restoring:  # a trained adapter reloads in exactly its own bases
                module_bases = ModuleBases(
                    U=self._trained[f"{name}.U"],
                    V=self._trained[f"{name}.V"],
                    attributes=module_bases.attributes,
                    dropped_out=module_bases.dropped_out,
                    dropped_in=module_bases.dropped_in,
                )
            layer = SubspaceLayer(modules[name], module_bases.U, module_bases.V, self.scale, name)
            if restoring:
                with torch.no_grad():
                    layer.core.copy_(self._trained[f"{name}.core"])
            _set_module(model, name, layer)
            self.layers[name] = layer
            self.bases[name] = module_bases
        self.attributes = attributes
        self.model = model
        model.__dict__[ATTACHED_ATTR] = self
        return model

    # -- results --------------------------------------------------------------------------------------------------

    def report(self) -> str:
        """Per attached module: attributes, core shape, columns dropped as dependent."""
        lines = [
            f"Subspace adapter: attributes {', '.join(self.attributes)}, scale {self.scale}, combine {self.combine}"
        ]
        dropped = [(m, b) for m, b in self.bases.items() if b.dropped_out or b.dropped_in]
        cores = Counter(tuple(layer.core.shape) for layer in self.layers.values())
        shapes = ", ".join(f"{a}x{b} on {n}" for (a, b), n in sorted(cores.items(), reverse=True))
        total = sum(layer.core.numel() for layer in self.layers.values())
        lines.append(f"cores: {shapes} module(s); {total:,} trainable core parameters")
        for module, b in dropped:
            lines.append(f"  {module}: dropped {b.dropped_out} output / {b.dropped_in} input columns as dependent")
        if self.lora:
            lines.append(f"LoRA rank {self.lora['rank']} on {len(self.lora['modules'])} modules without bases")
        return "\n".join(lines)

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write the bundle, the settings with provenance, and (once attached) bases, cores and LoRA weights."""
        from safetensors.torch import save_file

        folder = Path(folder)
        self.bundle.save(folder)
        if self.model is None:
            return folder
        tensors: dict[str, torch.Tensor] = {}
        for name, layer in self.layers.items():
            tensors[f"{name}.U"] = layer.U.detach().float().cpu().contiguous()
            tensors[f"{name}.V"] = layer.V.detach().float().cpu().contiguous()
            tensors[f"{name}.core"] = layer.core.detach().float().cpu().contiguous()
        if self._lora_tuner is not None:
            from peft import get_peft_model_state_dict

            for key, value in get_peft_model_state_dict(self.model, adapter_name="default").items():
                tensors[f"lora.{key}"] = value.detach().float().cpu().contiguous()
        from subspace_hub.backbones import build_info

        info = build_info(self.model)
        config = {
            "format_version": 1,
            "library": "subspace-hub",
            "library_version": __version__,
            "scale": self.scale,
            "combine": self.combine,
            "tol": self.tol,
            "attributes": self.attributes,
            "backbone": None
            if info is None
            else {
                "name": info.backbone,
                "config": dict(info.config),
                "pretrained": info.pretrained,
                "revision": info.revision,
            },
            "modules": {
                name: {
                    "attributes": b.attributes,
                    "core": list(self.layers[name].core.shape),
                    "d": {a: self.bundle.attributes[a][name].d for a in b.attributes},
                    "dropped_out": b.dropped_out,
                    "dropped_in": b.dropped_in,
                }
                for name, b in self.bases.items()
            },
            "lora": self.lora,
            "sources": self.bundle.info.get("sources", {}),
        }
        atomic_write(folder / ADAPTER_WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
        atomic_write(folder / ADAPTER_CONFIG, lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
        return folder

    def push_to_hub(
        self, repo_id: str, *, tag: str | None = None, private: bool = False, message: str | None = None
    ) -> Any:
        """Save (:meth:`save_pretrained`) and upload as one commit of ``repo_id`` on the configured endpoint
        (``SUBSPACE_HUB_ENDPOINT``, else the embedded registry), optionally tagged; returns where it landed
        (:class:`subspace_hub.hub.Pushed`). Registry entries publish with ``subspace-hub push NAME`` instead, which
        adds the model card."""
        import tempfile

        from subspace_hub.hub import push_folder

        with tempfile.TemporaryDirectory(prefix="subspace-adapter-") as scratch:
            self.save_pretrained(scratch)
            return push_folder(scratch, repo_id, tag=tag, private=private, message=message or "Upload subspace adapter")

    def merge_and_unload(self) -> nn.Module:
        """Fold every core (and LoRA) into the base weights, restore plain layers, and return the model."""
        if self.model is None:
            raise ConfigError("The adapter is not attached to a model.")
        model = self.model
        for name, layer in self.layers.items():
            _set_module(model, name, layer.merge())
        if self._lora_tuner is not None:
            model = self._lora_tuner.merge_and_unload()
        model.__dict__.pop(ATTACHED_ATTR, None)
        self.layers = {}
        self.model = None
        return model


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
    combine: Literal["qr", "loewdin"] = "qr",
    tol: float = 1e-6,
    revision: str | None = None,
) -> nn.Module:
    """``attach_adapter(model, "subspace", bundle=...)``: see :meth:`SubspaceAdapter.attach`.

    ``bundle`` is a bundle folder, a Hub repo id (with ``revision``), a :class:`SubspaceBundle` or a
    :class:`SubspaceAdapter` (whose own scale and combination settings then apply).
    """
    if isinstance(bundle, SubspaceAdapter):
        adapter = bundle
    elif isinstance(bundle, SubspaceBundle):
        adapter = SubspaceAdapter(bundle, scale=scale, combine=combine, tol=tol)
    else:
        adapter = SubspaceAdapter.from_pretrained(bundle, revision=revision)
        if not adapter.info:
            adapter.scale, adapter.combine, adapter.tol = scale, combine, tol
    return adapter.attach(model, attributes, targets=targets, layers=layers, lora_rank=lora_rank, lora_alpha=lora_alpha)


def _attached(model: nn.Module) -> SubspaceAdapter:
    adapter = model.__dict__.get(ATTACHED_ATTR)
    if adapter is None:
        raise ConfigError("No SubspaceAdapter is attached to this model.")
    return adapter


def save_subspace(model: nn.Module, folder: str | os.PathLike[str]) -> None:
    _attached(model).save_pretrained(folder)


def load_subspace(base_model: nn.Module, folder: str | os.PathLike[str]) -> nn.Module:
    return SubspaceAdapter.from_pretrained(folder).attach(base_model)


def merge_subspace(model: nn.Module) -> nn.Module:
    return _attached(model).merge_and_unload()


def synthetic_bundle(
    model: nn.Module,
    attributes: Sequence[str] = ("texture", "geometry"),
    d: int = 2,
    *,
    targets: str | Sequence[str] | None = None,
    seed: int = 0,
) -> SubspaceBundle:
    """A bundle of random orthonormal d-dimensional bases per attribute for the model's (default) target
    modules: for smoke tests, documentation and parameter counts, not for fine-tuning."""
    from subspace_hub.adapters.targets import resolve_targets
    from subspace_hub.subspaces.bundle import ModuleSubspace

    gen = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    bundle = SubspaceBundle(info={"synthetic": True})
    for attribute in attributes:
        bundle.attributes[attribute] = {}
        for name in resolve_targets(model, targets):
            weight = modules[name].weight
            out_dim, in_dim = weight.shape[0], weight[0].numel()
            k = min(d, out_dim, in_dim)
            U = torch.linalg.qr(torch.randn(out_dim, k, generator=gen))[0]
            V = torch.linalg.qr(torch.randn(in_dim, k, generator=gen))[0]
            empty = torch.zeros(0)
            bundle.attributes[attribute][name] = ModuleSubspace(
                U=U, V=V, S=torch.ones(k), spectrum=torch.ones(k), weights=empty, residuals=empty
            )
    return bundle
