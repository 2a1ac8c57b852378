"""Whole-model extraction: N LoRA adapters per attribute -> one subspace per attribute and module.

For each attribute, every LoRA must adapt the same modules with the same shapes (they come from one training
recipe). Modules are processed independently, in parallel threads (the decompositions release the GIL), each
with :func:`shared_subspace`; non-uniform dimension allocations first compute every module's first-iteration
spectrum.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from subspace_hub.configuration import to_dict
from subspace_hub.errors import ConfigError, ShapeMismatchError
from subspace_hub.specs import validate_slug
from subspace_hub.subspaces.allocation import allocate_dims
from subspace_hub.subspaces.bundle import ModuleSubspace, SubspaceBundle
from subspace_hub.subspaces.extraction import reduce_factors, shared_subspace
from subspace_hub.subspaces.lora_io import LoraCheckpoint, LoraSource, expand_sources, load_lora
from subspace_hub.subspaces.settings import ExtractionSettings


@contextlib.contextmanager
def _threads_per_worker(workers: int) -> Iterator[None]:
    """Share the CPU threads among the workers, so parallel workers do not oversubscribe the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, previous // workers))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class _Ensemble:
    """The LoRAs of one attribute, module by module."""

    checkpoints: list[LoraCheckpoint]

    def factors(self, module: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [c.factors[module] for c in self.checkpoints]

    def span(self, module: str) -> int:
        """Dimensions the LoRAs of ``module`` span at most: min(sum of ranks, out, in)."""
        factors = self.factors(module)
        b, a = factors[0]
        return min(sum(f[0].shape[1] for f in factors), b.shape[0], a.shape[1])

    def first_spectrum(self, module: str) -> torch.Tensor:
        """The singular values of the mean update: what non-uniform allocations rank, as many as the LoRAs span."""
        return torch.linalg.svdvals(reduce_factors(self.factors(module)).K.mean(dim=0))

    def subspace(self, module: str, d: int, **options: Any) -> ModuleSubspace:
        """:func:`shared_subspace` of ``module`` with ``d`` dimensions, as a :class:`ModuleSubspace`."""
        result = shared_subspace(reduce_factors(self.factors(module)), d, **options)
        return ModuleSubspace(**{f.name: getattr(result, f.name) for f in dataclasses.fields(ModuleSubspace)})


def _load_attribute(attribute: str, sources: Sequence[LoraSource]) -> list[LoraCheckpoint]:
    expanded: list[LoraSource] = []
    for source in sources:
        expanded.extend(expand_sources(source) if isinstance(source, (str, os.PathLike)) else [source])
    if not expanded:
        raise ConfigError(f"Attribute {attribute!r} has no LoRA adapters.")
    checkpoints = [load_lora(source) for source in expanded]
    reference = checkpoints[0]
    for i, checkpoint in enumerate(checkpoints[1:], start=1):
        missing = sorted(set(reference.factors) - set(checkpoint.factors))
        extra = sorted(set(checkpoint.factors) - set(reference.factors))
        if missing or extra:
            raise ConfigError(
                f"Attribute {attribute!r}: LoRA {i} ({checkpoint.source.get('path') or 'state dict'}) adapts other "
                "modules "
                f"than LoRA 0 (missing {missing[:3]}, extra {extra[:3]}); train every LoRA of an attribute on the "
                "same targets."
            )
        for module, (b, a) in checkpoint.factors.items():
            b0, a0 = reference.factors[module]
            if (b.shape[0], a.shape[1]) != (b0.shape[0], a0.shape[1]):
                raise ShapeMismatchError(
                    f"Attribute {attribute!r}, module {module}: LoRA {i} updates a {b.shape[0]}x{a.shape[1]} matrix, "
                    f"LoRA 0 a {b0.shape[0]}x{a0.shape[1]} one."
                )
    return checkpoints


def extract_bundle(
    attributes: Mapping[str, Sequence[LoraSource]],
    settings: ExtractionSettings | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    info: Mapping[str, Any] | None = None,
    **fields: Any,
) -> SubspaceBundle:
    """Extract every attribute's subspaces from its LoRA ensemble.

    Args:
        attributes: Attribute name (e.g. ``"texture"``) -> LoRA sources: PEFT adapter folders, folders of
            adapter folders, safetensors files or state dicts.
        settings: How to extract (:class:`ExtractionSettings`); ``**fields`` set single fields of it, e.g.
            ``extract_bundle(loras, d=16, alpha=1.0)``.
        workers: Parallel threads (default: the number of CPU threads torch uses).
        progress: Show a progress bar per attribute.
        info: Extra provenance stored in the bundle (backbone, its revision, ...).

    Returns:
        A :class:`SubspaceBundle` whose ``info`` records the settings (``extraction``) and the sources.

    Raises:
        ConfigError: invalid settings, no attributes, or LoRAs of one attribute that adapt different modules.
    """
    if "targets" in fields and fields["targets"] is not None:
        fields["targets"] = tuple(fields["targets"])
    elif "targets" in fields:
        fields["targets"] = ()
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(ExtractionSettings)})
    if unknown:
        raise ConfigError(f"extract_bundle got unknown setting(s) {unknown}; see ExtractionSettings.")
    settings = dataclasses.replace(settings or ExtractionSettings(), **fields)
    if not attributes:
        raise ConfigError("No attributes given: pass e.g. {'texture': [lora_dir_1, lora_dir_2, ...]}.")
    for name in attributes:
        validate_slug(name, "attribute name")
    compiled = [re.compile(t) for t in settings.targets] or None
    workers = workers or max(1, torch.get_num_threads())
    bundle = SubspaceBundle(info={**dict(info or {}), "extraction": to_dict(settings), "sources": {}})
    d, allocation, targets = settings.d, settings.allocation, settings.targets
    for attribute, sources in attributes.items():
        ensemble = _Ensemble(_load_attribute(attribute, sources))
        modules = sorted(ensemble.checkpoints[0].factors)
        if compiled is not None:
            modules = [m for m in modules if any(c.fullmatch(m) for c in compiled)]
            if not modules:
                raise ConfigError(
                    f"Attribute {attribute!r}: no adapted module matches the targets {list(targets or [])}."
                )
        bundle.info["sources"][attribute] = [c.source for c in ensemble.checkpoints]
        with _threads_per_worker(workers), ThreadPoolExecutor(max_workers=workers) as pool:
            if allocation == "uniform":
                dims = {m: min(d, ensemble.span(m)) for m in modules}
                capped = sorted({dims[m] for m in modules if dims[m] < d})
                if capped:
                    ranks = [c.factors[modules[0]][0].shape[1] for c in ensemble.checkpoints]
                    warnings.warn(
                        f"{attribute}: d={d} is more than its {len(ranks)} LoRAs of rank {max(ranks)} span on "
                        f"{sum(dims[m] < d for m in modules)} of {len(modules)} modules, which get d="
                        f"{', '.join(map(str, capped))}: train more or higher-rank LoRAs for a larger d.",
                        stacklevel=2,
                    )
            else:
                spectra = dict(zip(modules, pool.map(ensemble.first_spectrum, modules), strict=True))
                dims = allocate_dims(
                    spectra, allocation, d, min_dim=settings.min_dim, max_dim=settings.max_dim, energy=settings.energy
                )
            todo = [m for m in modules if dims[m] > 0]
            solve = functools.partial(
                ensemble.subspace,
                alpha=settings.alpha,
                mode=settings.mode,
                max_iter=settings.max_iter,
                tol=settings.tol,
            )
            found = pool.map(solve, todo, [dims[m] for m in todo])
            if progress:
                found = tqdm(found, total=len(todo), desc=f"extract {attribute}", unit="module")
            # strict: zip then asks for one more result, which also runs the progress bar to its end
            bundle.attributes[attribute] = dict(zip(todo, found, strict=True))
    return bundle
