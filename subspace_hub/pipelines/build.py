"""``subspace-hub build NAME``: run a registry entry's recipe into ``build/NAME/``, step by step, resumably.

Steps, each recorded in ``build/NAME/manifest.json`` with a fingerprint of everything it depends on (its recipe
and the digests of the outputs it reads) and a digest of its own outputs::

    data/<attribute>            subspace-hub data generate      -> data/<attribute>/
    lora/<attribute>/<i>        subspace-hub train (LoRA i)     -> loras/<attribute>/lora-<i>/ (adapter/ inside)
    extract                     subspace-hub extract            -> bundle/
    analyze                     subspace-hub analyze            -> bundle/analysis/
    stage                       the repo a push uploads         -> repo/ (bundle, model card, figures, entry)

A step whose fingerprint matches the manifest and whose outputs exist is skipped, so a build interrupted anywhere
continues where it stopped (generation resumes by shard, training from its newest checkpoint); a step whose
recipe changed is redone, and so is every step that reads an output that came out different.
``subspace-hub push NAME`` publishes the bundle (and stages the repo again, for the version it tags).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subspace_hub.configuration import from_dict, to_dict
from subspace_hub.data.export import generate
from subspace_hub.errors import ConfigError
from subspace_hub.fileio import atomic_write, read_json_object
from subspace_hub.pipelines.config import DataConfig, TrainConfig
from subspace_hub.pipelines.train import ADAPTER_FOLDER, CONFIG_FILE, train
from subspace_hub.publishing.entries import REGISTRY_DIR, RegistryEntry, load_entry
from subspace_hub.publishing.publish import stage
from subspace_hub.subspaces.bundle import SubspaceBundle
from subspace_hub.subspaces.mining import extract_bundle
from subspace_hub.subspaces.report import write_report

MANIFEST = "manifest.json"


def fingerprint(*parts: Any) -> str:
    """16 hex digits of the sha256 of the JSON of ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Manifest:
    """What has been built, step by step: ``{step: {"fingerprint", "outputs", "seconds"}}``."""

    path: Path
    entry: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, entry: str) -> Manifest:
        path = folder / MANIFEST
        if not path.is_file():
            return cls(path, entry)
        data = read_json_object(path)
        if data.get("entry") != entry:
            raise ConfigError(
                f"{folder} holds the build of {data.get('entry')!r}, not {entry!r}; choose another folder."
            )
        return cls(path, entry, dict(data.get("steps", {})))

    def done(self, step: str, print_: str) -> str | None:
        """The output digest of ``step`` if it is done for ``print_`` and its outputs exist, else ``None``."""
        record = self.steps.get(step)
        if (
            record is not None
            and record["fingerprint"] == print_
            and all((self.path.parent / output).exists() for output in record["outputs"])
        ):
            return record["digest"]
        return None

    def record(self, step: str, print_: str, outputs: list[str], digest: str, seconds: float) -> None:
        self.steps[step] = {"fingerprint": print_, "outputs": outputs, "digest": digest, "seconds": round(seconds, 3)}
        data = {"entry": self.entry, "steps": self.steps}
        atomic_write(self.path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


@dataclass
class BuildResult:
    """Where a build left things, and which steps it ran or skipped."""

    folder: Path
    bundle: Path
    repo: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def lora_config(entry: RegistryEntry, base: Path, attribute: str, index: int, data: Path) -> TrainConfig:
    """The training recipe of LoRA ``index`` of ``attribute``: the entry's LoRA settings on dataset ``index``."""
    recipe = entry.attributes[attribute]
    lora = recipe.lora
    options: dict[str, Any] = {"rank": lora.rank}
    if lora.alpha is not None:
        options["alpha"] = lora.alpha
    if lora.targets:
        options["targets"] = list(lora.targets)
    weights = entry.weights_path(base)
    settings: dict[str, Any] = {
        "backbone": entry.backbone.name,
        "backbone_config": entry.backbone.config,
        "pretrained": weights,
        "revision": entry.backbone.revision if entry.backbone.repo and not entry.backbone.weights else None,
        "method": "lora",
        "method_options": options,
        "steps": lora.steps,
        "seed": lora.seed + 1000 * list(entry.attributes).index(attribute) + index,
        "checkpoint_every": max(1, lora.steps // 4),
        "keep_checkpoints": 1,
        "tensorboard": False,
        "metrics": (),
        **{k: v for k, v in lora.train.items() if k not in ("data", "optim")},
        "data": {
            **to_dict(DataConfig()),
            "test_split": None,
            **lora.train.get("data", {}),
            "source": str(data),
            "config": recipe.dataset.dataset(index).name,
        },
        "optim": {"lr": lora.lr, **lora.train.get("optim", {})},
    }
    return from_dict(TrainConfig, settings, what=f"{entry.name}: attributes.{attribute}.lora")


def build(
    name: str,
    *,
    registry: str | Path = REGISTRY_DIR,
    out: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> BuildResult:
    """Build registry entry ``name`` (see the module docstring); returns where everything lies.

    Raises:
        ConfigError: the entry is invalid, or ``out`` holds the build of another entry.
    """
    entry, base = load_entry(name, registry)
    folder = Path(out) if out is not None else entry.build_path(base)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(folder, entry.name)
    result = BuildResult(folder, folder / "bundle", folder / "repo")

    def step(key: str, print_: str, outputs: list[str], work: Callable[[], None]) -> str:
        """Run ``work`` unless the manifest has it done for ``print_``; returns the digest of its outputs."""
        digest = manifest.done(key, print_)
        if digest is not None:
            result.skipped.append(key)
            log(f"  {key}: done (skipped)")
            return digest
        log(f"  {key}: running")
        started = time.perf_counter()
        work()
        digest = file_digest(*(folder / output for output in outputs))
        manifest.record(key, print_, outputs, digest, time.perf_counter() - started)
        result.ran.append(key)
        return digest

    log(f"build {entry.name} into {folder}")
    adapters: dict[str, list[str]] = {}
    lora_digests: list[str] = []
    for attribute, recipe in entry.attributes.items():
        data = folder / "data" / attribute
        # generation is byte-reproducible from its recipe, so the recipe's fingerprint stands for the data
        data_print = fingerprint(recipe.dataset.fingerprint())
        step(
            f"data/{attribute}",
            data_print,
            [f"data/{attribute}/recipe.json"],
            lambda recipe=recipe, data=data: _generate(recipe.dataset, data, device, progress),
        )
        adapters[attribute] = []
        for index in range(recipe.lora.count):
            run = folder / "loras" / attribute / f"lora-{index}"
            config = lora_config(entry, base, attribute, index, data)
            lora_digests.append(
                step(
                    f"lora/{attribute}/{index}",
                    fingerprint(data_print, to_dict(config)),
                    [f"loras/{attribute}/lora-{index}/{ADAPTER_FOLDER}/adapter_model.safetensors"],
                    lambda config=config, run=run: _train(config, run, progress),
                )
            )
            adapters[attribute].append(str(run / ADAPTER_FOLDER))
    bundle_digest = step(
        "extract",
        fingerprint(lora_digests, to_dict(entry.extraction), entry.backbone.name),
        ["bundle/subspaces.safetensors", "bundle/subspace_config.json"],
        lambda: _extract(entry, adapters, result.bundle, progress),
    )
    step(
        "analyze",
        fingerprint(bundle_digest),
        ["bundle/analysis/summary.json"],
        lambda: write_report(SubspaceBundle.load(result.bundle), result.bundle / "analysis", progress=progress),
    )
    card = entry.card_path(base)
    stage_print = fingerprint(bundle_digest, to_dict(entry), card.read_text() if card.is_file() else None)
    step("stage", stage_print, ["repo/README.md"], lambda: _stage(entry, registry, result))
    log(f"built {entry.name}: {len(result.ran)} step(s) run, {len(result.skipped)} skipped; bundle in {result.bundle}")
    return result


def file_digest(*paths: Path) -> str:
    """16 hex digits of the sha256 of the files' bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _generate(recipe: Any, data: Path, device: str, progress: bool) -> None:
    if data.is_dir() and (data / "recipe.json").is_file():
        recorded = {k: v for k, v in read_json_object(data / "recipe.json").items() if k != "library_version"}
        if recorded != {k: v for k, v in recipe.to_dict().items() if k != "library_version"}:
            shutil.rmtree(data)  # the entry's data recipe changed: regenerate
    generate(recipe, data, device=device, progress=progress)


def _train(config: TrainConfig, run: Path, progress: bool) -> None:
    resume = (run / CONFIG_FILE).is_file()
    if resume and (run / CONFIG_FILE).read_text() != config.to_yaml():
        shutil.rmtree(run)  # the recipe changed since this run started: train it anew
        resume = False
    if (run / ADAPTER_FOLDER).exists():
        shutil.rmtree(run / ADAPTER_FOLDER)
    train(config, run, resume=resume, progress=progress)


def _extract(entry: RegistryEntry, adapters: dict[str, list[str]], bundle: Path, progress: bool) -> None:
    extracted = extract_bundle(adapters, entry.extraction, progress=progress, info={"backbone": entry.backbone.name})
    if bundle.exists():
        shutil.rmtree(bundle)
    extracted.save(bundle)


def _stage(entry: RegistryEntry, registry: str | Path, result: BuildResult) -> None:
    if result.repo.exists():
        shutil.rmtree(result.repo)
    stage(entry.name, registry=registry, bundle=result.bundle, out=result.repo)
