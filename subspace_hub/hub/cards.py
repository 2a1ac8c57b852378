"""Model cards of published subspace bundles: the hand-written ``cards/<name>.md`` merged with generated
metadata (library, base model, tags, datasets, licence, model-index results), an attribute table and the
spectra and orthogonality figures of the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from subspace_hub._version import __version__
from subspace_hub.hub.registry import RegistryEntry


def attribute_rows(bundle: Any, entry: RegistryEntry) -> list[str]:
    rows = []
    for attribute in bundle.attribute_names:
        subs = bundle.attributes[attribute]
        dims = [s.d for s in subs.values()]
        recipe = entry.attributes.get(attribute)
        sources = len(bundle.info.get("sources", {}).get(attribute, [])) or (recipe.lora.count if recipe else 0)
        data = (
            f"{recipe.dataset.family} x {recipe.dataset.datasets} datasets, `{recipe.dataset.camera}` cameras"
            if recipe
            else "-"
        )
        rows.append(
            f"| {attribute} | {len(subs)} | {min(dims)}-{max(dims)} | {sum(dims)} | {sources} (rank "
            f"{recipe.lora.rank if recipe else '?'}) | {data} |"
        )
    return rows


def render_card(entry: RegistryEntry, bundle: Any, hand_written: str, figures: list[str]) -> str:
    """The README.md of the published repo (parses with ``huggingface_hub.ModelCard``)."""
    from huggingface_hub import EvalResult, ModelCardData

    datasets = [r.dataset.repo for r in entry.attributes.values() if r.dataset.repo]
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
    data = ModelCardData(
        library_name="subspace-hub",
        base_model=entry.backbone.repo,
        license=entry.license,
        tags=[
            "subspace-hub",
            "attribute-subspaces",
            entry.backbone.name,
            *[f"attribute-{a}" for a in entry.attributes],
            *entry.tags,
        ],
        datasets=datasets or None,
        model_name=entry.name,
        eval_results=results or None,
        subspace_attributes=list(entry.attributes),
        subspace_d=entry.extraction.d,
        subspace_hub_version=__version__,
    )
    recipe = yaml.safe_dump(
        {
            "backbone": entry.backbone.__dict__,
            "attributes": {
                a: {"dataset": r.dataset.__dict__, "lora": {**r.lora.__dict__, "targets": list(r.lora.targets)}}
                for a, r in entry.attributes.items()
            },
            "extraction": entry.extraction.__dict__,
        },
        sort_keys=False,
    ).strip()
    figure_lines = "\n".join(f"![{Path(f).stem}]({f})" for f in figures)
    body = f"""
{hand_written.strip()}

## Attribute subspaces

| attribute | modules | d per module | total dimensions | source LoRAs | synthetic data |
|---|---|---|---|---|---|
{chr(10).join(attribute_rows(bundle, entry))}

## Use

```python
import subspace_hub
from subspace_hub import SubspaceAdapter

adapter = SubspaceAdapter.from_pretrained("{entry.repo_id}", revision="v{entry.version}")
model = adapter.attach(subspace_hub.load_backbone("{entry.backbone.name}"{f', pretrained="{entry.backbone.repo}"' if entry.backbone.repo else ""}), lora_rank=16)
```

## Recipe

```yaml
{recipe}
```

## Figures

{figure_lines or "(none)"}

Published with subspace-hub {__version__}.
"""
    from huggingface_hub import ModelCard

    text = f"---\n{data.to_yaml()}\n---\n{body}"
    ModelCard(text)  # raises if the metadata (model-index included) does not parse
    return text
