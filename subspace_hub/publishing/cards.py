"""Model cards of published subspace bundles, rendered from :data:`subspace_hub.templates.MODEL_CARD`: the
hand-written ``cards/<name>.md`` with generated metadata (library, base model, tags, datasets, licence,
model-index results), an attribute table, the recipe and the bundle's spectra and orthogonality figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from subspace_hub._version import __version__
from subspace_hub.configuration import to_dict
from subspace_hub.publishing.entries import RegistryEntry
from subspace_hub.templates import MODEL_CARD


def attribute_rows(bundle: Any, entry: RegistryEntry) -> list[dict[str, Any]]:
    """One row per attribute of the bundle: modules, dimensions, source LoRAs and the data they came from."""
    rows = []
    for attribute in bundle.attribute_names:
        subspaces = bundle.attributes[attribute]
        dims = [s.d for s in subspaces.values()]
        recipe = entry.attributes.get(attribute)
        sources = len(bundle.info.get("sources", {}).get(attribute, [])) or (recipe.lora.count if recipe else 0)
        data = "-"
        if recipe:
            dataset = recipe.dataset
            data = f"{dataset.family} x {dataset.datasets} datasets, `{dataset.camera_mode}` cameras"
        rows.append(
            {
                "attribute": attribute,
                "modules": len(subspaces),
                "d_min": min(dims),
                "d_max": max(dims),
                "total": sum(dims),
                "sources": sources,
                "rank": recipe.lora.rank if recipe else "?",
                "data": data,
            }
        )
    return rows


def card_data(entry: RegistryEntry) -> Any:
    """The card's YAML metadata: a ``huggingface_hub.ModelCardData`` with the entry's evaluation as model-index."""
    from huggingface_hub import EvalResult, ModelCardData

    results = [
        EvalResult(
            task_type=e.task,
            dataset_type=e.dataset,
            dataset_name=e.dataset_name or e.dataset,
            metric_type=e.metric,
            metric_value=e.value,
        )
        for e in entry.evaluation
    ]
    datasets = [r.dataset_repo for r in entry.attributes.values() if r.dataset_repo]
    attribute_tags = [f"attribute-{a}" for a in entry.attributes]
    return ModelCardData(
        library_name="subspace-hub",
        base_model=entry.backbone.repo,
        license=entry.license,
        tags=["subspace-hub", "attribute-subspaces", entry.backbone.name, *attribute_tags, *entry.tags],
        datasets=datasets or None,
        model_name=entry.name,
        eval_results=results or None,
        subspace_attributes=list(entry.attributes),
        subspace_d=entry.extraction.d,
        subspace_hub_version=__version__,
    )


def render_card(entry: RegistryEntry, bundle: Any, hand_written: str, figures: list[str]) -> str:
    """The README.md of the published repo; it parses with ``huggingface_hub.ModelCard`` (checked here).

    Args:
        entry: The registry entry being published.
        bundle: Its built :class:`~subspace_hub.subspaces.SubspaceBundle`.
        hand_written: The entry's ``cards/<name>.md``.
        figures: Figure paths relative to the repo root (``figures/...png``).
    """
    from huggingface_hub import ModelCard

    recipe = {
        "backbone": dataclasses.asdict(entry.backbone),
        "attributes": {a: to_dict(r) for a, r in entry.attributes.items()},
        "extraction": dataclasses.asdict(entry.extraction),
    }
    pretrained = f', pretrained="{entry.backbone.repo}"' if entry.backbone.repo else ""
    card = ModelCard.from_template(
        card_data(entry),
        template_path=str(MODEL_CARD),
        hand_written=hand_written.strip(),
        attribute_rows=attribute_rows(bundle, entry),
        repo_id=entry.repo_id,
        version=entry.version,
        load_backbone=f'subspace_hub.load_backbone("{entry.backbone.name}"{pretrained})',
        recipe=yaml.safe_dump(recipe, sort_keys=False).strip(),
        figures=[{"title": Path(f).stem, "path": f} for f in figures],
        subspace_hub_version=__version__,
    )
    text = str(card)
    ModelCard(text)  # raises if the metadata (model-index included) does not parse
    return text
