"""The whole method on a laptop CPU in a few minutes, with every real component: ``subspace-hub quickstart``.

1. build: the quickstart's registry entry (:data:`RECIPE`) through ``subspace-hub build``: texture and geometry
   datasets with micro-baseline cameras, a LoRA ensemble per attribute on the small pretrained VGGT that the vggt
   plugin ships (``vggt-tiny-synthetic``), the shared subspaces and their analysis;
2. downstream data: a lighting dataset to fine-tune on and another to test on, whose room, objects, textures and
   cameras are drawn anew, so the test scenes are held out in geometry and cameras;
3. fine-tuning through the training engine, every method with the same data, steps and learning rate:
   the mined subspaces (cores on the aggregator, rank-2 LoRA on the heads), the same with random bases of the
   same modules and dimensions (the control that says whether the mining matters), the heads' LoRA alone (the
   part of the subspace method that is plain LoRA), LoRA and PiSSA of rank 4 on the paper's targets;
4. evaluation of each, and of the pretrained base unadapted, on the held-out scenes: depth metrics and the paper's
   reconstruction protocol;
5. publishing the bundle with its registry entry and model card to the configured registry, pulled back by
   ``SubspaceAdapter.from_pretrained``.

One seed, a few dozen steps: the table shows the machinery and the controls, not a result about the method
(the reproduction study is where seeds and scale are).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import subspace_hub
from subspace_hub.adapters.subspace import SubspaceAdapter, random_like
from subspace_hub.data.export import GenerationSpec, generate
from subspace_hub.data.sources import load_samples
from subspace_hub.errors import ConfigError
from subspace_hub.pipelines.build import build
from subspace_hub.pipelines.config import DataConfig, OptimConfig, TrainConfig
from subspace_hub.pipelines.evaluate import evaluate_backbone
from subspace_hub.pipelines.train import train
from subspace_hub.plugins import get_backbone_spec, get_metric
from subspace_hub.publishing.publish import push
from subspace_hub.subspaces.bundle import SubspaceBundle
from subspace_hub.tables import format_table

NAME = "quickstart-texture-geometry"
BASE = "vggt-tiny-synthetic"
"""The vggt plugin's small pretrained VGGT (``BackboneSpec.weights``)."""
SIZE = {"height": 56, "width": 84}  # 4 x 6 patches of 14 pixels
SCENE = {**SIZE, "camera_mode": "micro", "mesh_resolution": 6, "texture_size": 64, "texture_pool": 8}
HEADS = ["camera_head", "depth_head"]


def recipe(loras: int, scenes: int, views: int, steps: int, seed: int) -> dict[str, Any]:
    """The quickstart's registry entry: the tiny micro-baseline recipe at the quickstart's size."""
    train_settings = {"data": {"min_views": min(3, views), "max_views": views, "max_images": 2 * views}}
    return {
        "name": NAME,
        "repo_id": "quickstart/vggt-tiny-texture-geometry",
        "version": f"0.0.{int(time.time())}",  # a new version per run: published tags are immutable
        "license": "apache-2.0",
        "description": "Texture and geometry subspaces of the small pretrained VGGT, made by subspace-hub quickstart.",
        "backbone": {"name": "vggt", "weights": BASE},
        "attributes": {
            attribute: {
                "dataset": {
                    "family": attribute,
                    "datasets": loras,
                    "scenes": scenes,
                    "views": views,
                    "seed": seed + offset,
                    "test_fraction": 0.25,
                    **SCENE,
                },
                "lora": {
                    "count": loras,
                    "rank": 4,
                    "targets": ["aggregator"],
                    "steps": steps,
                    "lr": 3e-3,
                    "seed": seed,
                    "train": train_settings,
                },
            }
            for offset, attribute in enumerate(("texture", "geometry"))
        },
        "extraction": {"d": 2},
        "card": f"cards/{NAME}.md",
    }


CARD = """# Quickstart subspaces

Texture and geometry subspaces of `vggt-tiny-synthetic`, the small pretrained VGGT of subspace-hub's vggt plugin,
made by `subspace-hub quickstart` from 3 LoRAs per attribute trained a few dozen steps each. For trying the
workflow; the subspaces of a model this small and this briefly trained say nothing about VGGT-1B's.
"""


def methods(bundle: Path, random_bundle: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Row name -> (method, options) of the downstream comparison."""
    return {
        "subspace (mined)": ("subspace", {"bundle": str(bundle), "lora_rank": 2}),
        "subspace (random bases)": ("subspace", {"bundle": str(random_bundle), "lora_rank": 2}),
        "heads LoRA r2 only": ("lora", {"rank": 2, "targets": HEADS}),
        "LoRA r4": ("lora", {"rank": 4}),
        "PiSSA r4": ("pissa", {"rank": 4}),
    }


def run(
    out: str | os.PathLike[str],
    *,
    steps: int = 60,
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
    registry = out / "registry"
    (registry / "registry").mkdir(parents=True, exist_ok=True)
    (registry / "cards").mkdir(exist_ok=True)
    entry_path = registry / "registry" / f"{NAME}.yaml"
    # A rerun gets a new version (published tags are immutable); the build redoes only its stage step for it.
    entry_path.write_text(yaml.safe_dump(recipe(loras, scenes, views, steps, seed), sort_keys=False))
    (registry / "cards" / f"{NAME}.md").write_text(CARD)

    log("1/5 build: data, LoRA ensembles on the pretrained small VGGT, extraction, analysis")
    built = build(NAME, registry=registry / "registry", out=out / "build", progress=progress, log=lambda line: None)
    bundle = SubspaceBundle.load(built.bundle)
    summary: dict[str, Any] = {"subspaces": dict(bundle.summary()), "build": {"ran": built.ran}}

    log("2/5 downstream data: a lighting dataset to fine-tune on, another (new geometry and cameras) to test on")
    downstream = GenerationSpec("lighting", datasets=2, scenes=scenes, views=views, seed=seed + 7, **SCENE)
    data = generate(downstream, out / "data" / "lighting", workers=1, progress=progress)
    base = subspace_hub.load_backbone("vggt", pretrained=BASE)
    random_bundle = out / "random-bundle"
    random_like(bundle, seed=seed).save(random_bundle)

    log("3/5 fine-tuning: mined vs random subspaces, the heads' LoRA alone, LoRA, PiSSA")
    scores: dict[str, Any] = {"pretrained (no adaptation)": {}}
    for name, (method, options) in methods(built.bundle, random_bundle).items():
        run_folder = out / "finetune" / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        config = TrainConfig(
            backbone="vggt",
            pretrained=BASE,
            method=method,
            method_options=options,
            data=DataConfig(
                source=str(data),
                config="lighting-000",
                test_split=None,
                min_views=views,
                max_views=views,
                max_images=2 * views,
            ),
            steps=steps,
            seed=seed,
            optim=OptimConfig(lr=3e-3, warmup=0.1),
            checkpoint_every=steps,
            keep_checkpoints=1,
            tensorboard=False,
            metrics=(),
        )
        if not (run_folder / "result.json").is_file():
            train(config, run_folder, resume=(run_folder / "config.yaml").is_file(), progress=progress)
        # what trained, as the engine counted it (a reloaded PiSSA is the portable rank-2r LoRA it was saved as)
        scores[name] = {**json.loads((run_folder / "result.json").read_text()), "run": str(run_folder)}

    log("4/5 evaluation on the held-out scenes (lighting-001: other geometry and cameras)")
    test = load_samples(str(data), "test", "lighting-001")
    metrics = [get_metric("depth"), get_metric("reconstruction")]
    spec = get_backbone_spec("vggt")
    for row in scores.values():
        model = subspace_hub.load_adapter(Path(row["run"]) / "adapter") if "run" in row else base
        groups = row.get("trainable_by_group", {})
        row.setdefault("trainable_parameters", 0)
        row["heads_parameters"] = sum(t for g, t in groups.items() if g.startswith(("camera_head", "depth_head")))
        report = evaluate_backbone(model, spec, test, metrics, options={"reconstruction": {"k": 8}}, progress=False)
        row["metrics"] = report.summary()
    summary["fine_tuning"] = scores

    log("5/5 publishing the bundle with its registry entry and card")
    pushed = push(NAME, registry=registry / "registry", bundle=built.bundle)
    pulled = SubspaceAdapter.from_pretrained(pushed.repo_id, revision=pushed.tag)
    if pulled.bundle.dims() != bundle.dims():
        raise ConfigError(f"The bundle pulled back from {pushed.describe()} differs from the one pushed.")
    summary["published"] = pushed.describe()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The comparison as a table, with what each row trains."""
    rows = []
    for name, row in summary["fine_tuning"].items():
        depth, recon = row["metrics"]["depth"], row["metrics"]["reconstruction"]
        loss = f"{row['loss_first']:.3f} -> {row['loss_last']:.3f}" if "loss_first" in row else "-"
        rows.append(
            (
                name,
                f"{row['trainable_parameters']:,}",
                f"{row['heads_parameters']:,}",
                loss,
                f"{depth['abs_rel']:.4f}",
                f"{depth['delta_1']:.3f}",
                f"{recon['acc']:.4f}",
                f"{recon['comp']:.4f}",
                f"{recon['nc']:.3f}",
            )
        )
    headers = ("MODEL", "TRAINABLE", "OF WHICH HEADS", "TRAIN LOSS", "ABSREL", "DELTA1", "ACC", "COMP", "NC")
    dims = ", ".join(f"{a}: {s['modules']} modules, {s['total_dims']} dims" for a, s in summary["subspaces"].items())
    note = (
        "One seed and a few dozen steps on a 0.65 M-parameter VGGT: compare the subspace rows with the random-bases "
        "and heads-only rows before reading anything into them."
    )
    return f"{format_table(headers, rows)}\nsubspaces: {dims}\n{note}\npublished: {summary['published']}"
