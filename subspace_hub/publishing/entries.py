"""Registry entries: ``registry/<name>.yaml``, the recipe and publication record of one subspace bundle.

An entry is the recipe that ``subspace-hub build NAME`` runs and the record that ``subspace-hub push NAME``
publishes: where the bundle goes (``repo_id``, ``version``), under which licence, for which backbone (its weights
and revision), how each attribute's LoRA ensemble is made (its synthetic datasets, in the schema of ``subspace-hub
data generate``, and the LoRA training settings, in the schema of ``subspace-hub train``), how the subspaces are
extracted (:class:`~subspace_hub.subspaces.ExtractionSettings`), and which hand-written card (``cards/<name>.md``)
goes with it. ``subspace-hub registry validate`` checks every entry against this schema.

.. code-block:: yaml

    name: texture-geometry-microbaseline
    repo_id: subspace-hub/vggt-texture-geometry-microbaseline
    version: 1.0.0
    license: cc-by-nc-4.0
    backbone: {name: vggt, repo: facebook/VGGT-1B, revision: main, config: vggt-1b}
    attributes:
      texture:
        dataset: {family: texture, datasets: 8, scenes: 64, views: 24, height: 518, width: 518, camera_mode: micro}
        lora: {count: 8, rank: 16, alpha: 32, targets: [aggregator], steps: 2000, lr: 0.00001}
    extraction: {d: 16, allocation: uniform, alpha: 1.0, mode: mean}
    card: cards/texture-geometry-microbaseline.md
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subspace_hub.configuration import to_dict
from subspace_hub.data.export import GenerationSpec
from subspace_hub.errors import ConfigError
from subspace_hub.hub.repo_id import is_repo_id
from subspace_hub.specs import is_slug
from subspace_hub.subspaces.settings import ExtractionSettings

SEMVER = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")
REGISTRY_DIR = "registry"


@dataclass(frozen=True)
class BackboneRef:
    """The backbone the LoRAs adapt."""

    name: str
    """Registered backbone name, e.g. ``vggt``."""
    repo: str | None = None
    """Hub repo of the pretrained weights, e.g. ``facebook/VGGT-1B`` (the card's ``base_model``)."""
    revision: str = "main"
    config: str | None = None
    """Preset name; default: the checkpoint's ``config.json``."""
    weights: str | None = None
    """Weights to train from instead of ``repo``: a checkpoint folder relative to the registry's base folder, or
    weights the backbone names (``BackboneSpec.weights``, e.g. ``vggt-tiny-synthetic``)."""


@dataclass(frozen=True)
class LoraRecipe:
    """An attribute's LoRA ensemble: ``count`` LoRAs, LoRA ``i`` trained on dataset ``i`` of the attribute."""

    count: int = 8
    rank: int = 16
    alpha: float | None = None
    targets: tuple[str, ...] = ()
    """Backbone target groups or module regexes; empty: the backbone's default targets."""
    steps: int = 1000
    lr: float = 1e-5
    seed: int = 0
    """LoRA ``i`` of attribute number ``a`` (in entry order) trains with seed ``seed + 1000 a + i``: every LoRA
    starts from its own initialisation (shared ones would overlap their subspaces by construction)."""
    train: dict[str, Any] = field(default_factory=dict)
    """More settings of the training recipe (:class:`~subspace_hub.pipelines.config.TrainConfig` fields, e.g.
    ``{data: {max_views: 8}, optim: {warmup: 0.1}}``)."""


@dataclass(frozen=True)
class AttributeRecipe:
    dataset: GenerationSpec
    """The attribute's synthetic datasets, in the schema of ``subspace-hub data generate``."""
    lora: LoraRecipe = field(default_factory=LoraRecipe)
    dataset_repo: str | None = None
    """Dataset repo where the generated data is published, if it is (the card lists it)."""


@dataclass(frozen=True)
class EvalEntry:
    """A published evaluation result (becomes the card's model-index)."""

    task: str
    dataset: str
    metric: str
    value: float
    dataset_name: str | None = None


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    repo_id: str
    version: str
    license: str
    backbone: BackboneRef
    attributes: dict[str, AttributeRecipe]
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)
    card: str | None = None
    bundle: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    evaluation: tuple[EvalEntry, ...] = ()

    def card_path(self, base: Path) -> Path:
        return base / (self.card or f"cards/{self.name}.md")

    def build_path(self, base: Path) -> Path:
        """Where ``subspace-hub build`` works: ``build/<name>`` beside the registry folder."""
        return base / "build" / self.name

    def bundle_path(self, base: Path) -> Path:
        """The bundle to publish: ``bundle`` if the entry names one, else the one ``build`` made."""
        return base / self.bundle if self.bundle else self.build_path(base) / "bundle"

    def weights_path(self, base: Path) -> str | None:
        """The weights LoRAs train from: ``weights`` (a folder made absolute, or the backbone's name for them),
        else the Hub ``repo``."""
        weights = self.backbone.weights
        if weights is None:
            return self.backbone.repo
        return str((base / weights).resolve()) if (base / weights).exists() else weights


def _value_problems(data: dict[str, Any]) -> list[str]:
    """The rules of an entry beyond its types, checked on the raw mapping so they add to the type problems."""
    problems = []
    name, repo_id, version = data.get("name"), data.get("repo_id"), data.get("version")
    if isinstance(name, str) and not is_slug(name):
        problems.append(f"name {name!r} must be a lowercase slug (letters and digits joined by single '-' or '_')")
    if isinstance(repo_id, str) and not is_repo_id(repo_id):
        problems.append(f"repo_id {repo_id!r} must look like namespace/name")
    if not SEMVER.fullmatch(str(version or "")):
        problems.append(f"version {version!r} must be semantic, e.g. 1.0.0")
    if "license" in data and not data.get("license"):
        problems.append("license must not be empty (state the backbone weights' licence)")
    attributes = data.get("attributes")
    if isinstance(attributes, dict):
        if not attributes:
            problems.append("attributes must name at least one attribute")
        for attribute, recipe in attributes.items():
            if not is_slug(attribute):
                problems.append(f"attribute {attribute!r} must be a lowercase slug")
            lora = recipe.get("lora", {}) if isinstance(recipe, dict) else {}
            count, rank = (lora.get("count", 8), lora.get("rank", 16)) if isinstance(lora, dict) else (8, 16)
            if isinstance(count, int) and count < 2:
                problems.append(f"attributes.{attribute}.lora.count must be at least 2 (an ensemble), got {count}")
            if isinstance(rank, int) and rank < 1:
                problems.append(f"attributes.{attribute}.lora.rank must be at least 1, got {rank}")
    return problems


def parse_entry(data: Any, source: str = "registry entry") -> RegistryEntry:
    """A validated entry from a YAML-loaded mapping.

    Raises:
        ConfigError: naming the file and every problem found (all at once, not the first one only).
    """
    from subspace_hub.configuration import from_dict

    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a YAML mapping, got {type(data).__name__}.")
    if "version" in data:
        data = {**data, "version": str(data["version"])}  # YAML reads 1.0 as a float
    problems: list[str] = []
    entry = from_dict(RegistryEntry, data, what="entry", problems=problems)
    problems += _value_problems(data)
    if problems:
        raise ConfigError(f"{source} has these problems: " + "; ".join(p.rstrip(".") for p in problems) + ".")
    return entry


def load_entry(
    name_or_path: str | os.PathLike[str], registry: str | os.PathLike[str] = REGISTRY_DIR
) -> tuple[RegistryEntry, Path]:
    """The entry ``registry/<name>.yaml`` (or a YAML path) and the folder paths in it are relative to."""
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(registry) / f"{name_or_path}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in Path(registry).glob("*.yaml"))
        close = difflib.get_close_matches(str(name_or_path), names, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"No registry entry {name_or_path!r} ({path} does not exist).{hint} Entries in {registry}: "
            f"{', '.join(names) or 'none (run from the folder that holds registry/, or pass --registry)'}."
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    entry = parse_entry(data, str(path))
    if entry.name != path.stem:
        raise ConfigError(f"{path}: name {entry.name!r} must match the file name {path.stem!r}.")
    return entry, path.resolve().parent.parent


def inspect_entry(
    name_or_path: str | os.PathLike[str], registry: str | os.PathLike[str] = REGISTRY_DIR
) -> tuple[RegistryEntry | None, Path, str | None]:
    """(entry or None, its path, what is wrong or None): an entry is wrong when it does not parse or names a card
    that does not exist."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(registry) / f"{name_or_path}.yaml"
    try:
        entry, base = load_entry(path, registry)
    except ConfigError as exc:
        return None, path, str(exc)
    card = entry.card_path(base)
    return entry, path, None if card.is_file() else f"its card {card} does not exist"


def list_entries(
    registry: str | os.PathLike[str] = REGISTRY_DIR,
) -> list[tuple[RegistryEntry | None, Path, str | None]]:
    """:func:`inspect_entry` of every entry of a registry folder.

    Raises:
        ConfigError: ``registry`` is not a folder.
    """
    if not Path(registry).is_dir():
        raise ConfigError(
            f"No registry folder {registry}: create it, or point --registry at the folder of NAME.yaml entries."
        )
    return [inspect_entry(path, registry) for path in sorted(Path(registry).glob("*.yaml"))]


def check_bundle(entry: RegistryEntry, bundle: Any) -> list[str]:
    """Where a built :class:`~subspace_hub.subspaces.SubspaceBundle` disagrees with its entry (empty: it fits)."""
    problems = []
    if sorted(bundle.attribute_names) != sorted(entry.attributes):
        problems.append(f"the bundle has attributes {bundle.attribute_names}, the entry {sorted(entry.attributes)}")
    backbone = bundle.info.get("backbone")
    if backbone is not None and backbone != entry.backbone.name:
        problems.append(f"the bundle was extracted for backbone {backbone!r}, the entry says {entry.backbone.name!r}")
    extraction = bundle.info.get("extraction", {})
    for key, wanted in to_dict(entry.extraction).items():
        if key in extraction and extraction[key] != wanted:
            problems.append(f"the bundle was extracted with {key}={extraction[key]!r}, the entry says {wanted!r}")
    for attribute, recipe in entry.attributes.items():
        sources = bundle.info.get("sources", {}).get(attribute)
        if sources is not None and len(sources) != recipe.lora.count:
            problems.append(
                f"{attribute}: the bundle was extracted from {len(sources)} LoRAs, the entry says {recipe.lora.count}"
            )
    return problems
