"""The whole method on a laptop CPU in a few minutes, with every real component: ``subspace-hub quickstart``.

1. data: synthetic datasets in which only texture, or only geometry, varies (and a downstream dataset);
2. LoRA ensembles: one PEFT LoRA of a small VGGT per dataset, per attribute;
3. extraction: the shared texture and geometry subspaces of each ensemble, with the analysis figures;
4. fine-tuning: the subspace adapter (texture + geometry cores, LoRA on the heads) on the downstream data,
   against plain LoRA on the same data and steps;
5. evaluation: depth metrics and the paper's reconstruction protocol on the downstream test split;
6. publishing: the bundle with its registry entry and model card, pushed to the configured registry and pulled
   back by ``SubspaceAdapter.from_pretrained``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

import subspace_hub
from subspace_hub.adapters.subspace import SubspaceAdapter
from subspace_hub.configuration import to_dict
from subspace_hub.data.export import GenerationSpec, generate
from subspace_hub.errors import ConfigError
from subspace_hub.pipelines.config import DataConfig, OptimConfig, TrainConfig
from subspace_hub.pipelines.evaluate import evaluate_backbone
from subspace_hub.pipelines.train import train
from subspace_hub.plugins import get_backbone_spec, get_metric
from subspace_hub.publishing.publish import push
from subspace_hub.subspaces import extract_bundle
from subspace_hub.subspaces.report import write_report
from subspace_hub.tables import format_table

SIZE = (56, 84)  # 4 x 6 patches of 14 pixels


def _backbone(base: Path) -> Any:
    return subspace_hub.load_backbone("vggt", pretrained=base)


def _train(
    base: Path,
    folder: Path,
    config: str,
    out: Path,
    *,
    method: str,
    options: dict,
    steps: int,
    views: int,
    seed: int,
    progress: bool,
) -> Any:
    """One run of the training engine on one dataset config (no checkpoints between, no evaluation)."""
    recipe = TrainConfig(
        backbone="vggt",
        pretrained=str(base),
        method=method,
        method_options=options,
        data=DataConfig(
            source=str(folder), config=config, min_views=views, max_views=views, max_images=views, test_split=None
        ),
        steps=steps,
        seed=seed,
        optim=OptimConfig(lr=3e-3, warmup=0.0),
        checkpoint_every=steps,
        keep_checkpoints=1,
        tensorboard=False,
    )
    if (out / "adapter").is_dir():
        return None
    return train(recipe, out, resume=(out / "config.yaml").is_file(), progress=progress)


def run(
    out: str | os.PathLike[str],
    *,
    steps: int = 30,
    loras: int = 3,
    scenes: int = 6,
    views: int = 4,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the pipeline into ``out`` and return its figures (also written to ``out/summary.json``)."""

    if "vggt" not in subspace_hub.list_components("backbone"):
        raise ConfigError(
            "The quickstart fine-tunes VGGT: install the plugin (pip install -e plugins/vggt), as `make quickstart` "
            "does."
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = get_backbone_spec("vggt")
    summary: dict[str, Any] = {}

    log("1/6 data: texture and geometry families, and a downstream lighting dataset")
    common = {
        "scenes": scenes,
        "views": views,
        "height": SIZE[0],
        "width": SIZE[1],
        "mesh_resolution": 6,
        "texture_size": 64,
        "texture_pool": 8,
    }
    folders, recipes = {}, {}
    for family, count, family_seed in (
        ("texture", loras, seed),
        ("geometry", loras, seed + 1),
        ("lighting", 1, seed + 2),
    ):
        recipes[family] = GenerationSpec(family, datasets=count, seed=family_seed, test_fraction=0.34, **common)
        folders[family] = generate(
            recipes[family],
            out / "data" / family,
            workers=1,
            progress=progress,
        )

    log("2/6 LoRA ensembles on a small VGGT (one LoRA per dataset)")
    torch.manual_seed(seed)
    base = out / "vggt-small"
    if not (base / "model.safetensors").is_file():
        subspace_hub.save_backbone(subspace_hub.load_backbone("vggt", config="vggt-tiny"), base)
    ensembles: dict[str, list[Path]] = {}
    for attribute in ("texture", "geometry"):
        ensembles[attribute] = []
        for index in range(loras):
            run_folder = out / "loras" / attribute / f"lora-{index}"
            # distinct seeds across attributes too: LoRAs that share their A initialisation overlap by construction
            member_seed = seed + 1000 * (1 + ("texture", "geometry").index(attribute)) + index
            result = _train(
                base,
                folders[attribute],
                f"{attribute}-{index:03d}",
                run_folder,
                method="lora",
                options={"rank": 4, "targets": "aggregator"},
                steps=steps,
                views=views,
                seed=member_seed,
                progress=progress,
            )
            if result is not None:
                summary.setdefault("lora_losses", {}).setdefault(attribute, []).append(
                    [result.losses[0], result.losses[-1]]
                )
            ensembles[attribute].append(run_folder / "adapter")

    log("3/6 extraction of the shared subspaces")
    bundle = extract_bundle(ensembles, d=2, progress=progress, info={"backbone": "vggt"})
    bundle_dir = bundle.save(out / "bundles" / "quickstart-texture-geometry")
    write_report(bundle, out / "analysis", progress=progress)
    summary["subspaces"] = dict(bundle.summary())

    log("4/6 fine-tuning on the downstream data: subspace adapter vs LoRA")
    scores: dict[str, Any] = {}
    models: dict[str, Any] = {"pretrained": _backbone(base)}
    methods = {"subspace": ("subspace", {"bundle": str(bundle_dir), "lora_rank": 2}), "lora": ("lora", {"rank": 4})}
    for name, (method, options) in methods.items():
        run_folder = out / "finetune" / name
        result = _train(
            base,
            folders["lighting"],
            "lighting-000",
            run_folder,
            method=method,
            options=options,
            steps=steps,
            views=views,
            seed=seed,
            progress=progress,
        )
        models[name] = subspace_hub.load_adapter(run_folder / "adapter")
        trainable = sum(p.numel() for p in models[name].parameters() if p.requires_grad)
        scores[name] = {"trainable_parameters": trainable}
        if result is not None:
            scores[name].update(loss_first=result.losses[0], loss_last=result.losses[-1], seconds=result.seconds)

    log("5/6 evaluation on the downstream test split")
    import datasets

    test = datasets.load_dataset(str(folders["lighting"]), "lighting-000", split="test")
    metrics = [get_metric("depth"), get_metric("reconstruction")]
    for name, model in models.items():
        report = evaluate_backbone(model, spec, test, metrics, options={"reconstruction": {"k": 8}}, progress=False)
        scores.setdefault(name, {})["metrics"] = report.summary()
    summary["fine_tuning"] = scores

    log("6/6 publishing the bundle with its registry entry and card")

    registry = out / "registry"
    (registry / "registry").mkdir(parents=True, exist_ok=True)
    (registry / "cards").mkdir(exist_ok=True)
    entry = {
        "name": "quickstart-texture-geometry",
        "repo_id": "quickstart/vggt-small-texture-geometry",
        "version": f"0.0.{int(time.time())}",  # a new version per run: published tags are immutable
        "license": "cc0-1.0",
        "backbone": {"name": "vggt", "config": "vggt-tiny"},
        "attributes": {
            a: {
                "dataset": to_dict(recipes[a]),
                "lora": {"count": loras, "rank": 4, "targets": ["aggregator"], "steps": steps, "lr": 3e-3},
            }
            for a in ("texture", "geometry")
        },
        "extraction": {"d": 2},
        "bundle": str(bundle_dir.resolve()),
    }
    (registry / "registry" / "quickstart-texture-geometry.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    (registry / "cards" / "quickstart-texture-geometry.md").write_text(
        "# Quickstart subspaces\n\nTexture and geometry subspaces of a small random VGGT, made by `subspace-hub "
        "quickstart`.\n"
    )
    pushed = push("quickstart-texture-geometry", registry=registry / "registry")
    pulled = SubspaceAdapter.from_pretrained(pushed.repo_id, revision=pushed.tag)
    if pulled.bundle.dims() != bundle.dims():
        raise ConfigError(f"The bundle pulled back from {pushed.describe()} differs from the one pushed.")
    summary["published"] = pushed.describe()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def format_summary(summary: dict[str, Any]) -> str:

    rows = []
    for name, scores in summary["fine_tuning"].items():
        depth = scores["metrics"]["depth"]
        recon = scores["metrics"]["reconstruction"]
        params = f"{scores['trainable_parameters']:,}" if "trainable_parameters" in scores else "-"
        loss = f"{scores['loss_first']:.3f} -> {scores['loss_last']:.3f}" if "loss_first" in scores else "-"
        rows.append(
            (
                name,
                params,
                loss,
                f"{depth['abs_rel']:.4f}",
                f"{depth['delta_1']:.3f}",
                f"{recon['acc']:.4f}",
                f"{recon['comp']:.4f}",
                f"{recon['nc']:.3f}",
            )
        )
    table = format_table(("MODEL", "TRAINABLE", "TRAIN LOSS", "ABSREL", "DELTA1", "ACC", "COMP", "NC"), rows)
    dims = ", ".join(f"{a}: {s['modules']} modules, {s['total_dims']} dims" for a, s in summary["subspaces"].items())
    return f"{table}\nsubspaces: {dims}\npublished: {summary['published']}"
