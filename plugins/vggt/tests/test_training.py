"""VGGT through the training engine: the shipped small base loads by name, gradient checkpointing changes
nothing but memory, and a LoRA run on generated data writes a reloadable adapter."""

from __future__ import annotations

import pytest
import torch

import subspace_hub
from subspace_hub.pipelines.config import load_train_config
from subspace_hub.pipelines.train import read_metrics, train
from subspace_hub.plugins import get_backbone_spec
from subspace_hub.testing import tiny_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Texture datasets at 28 x 42 pixels: 2 x 3 patches of 14."""
    return tiny_dataset(tmp_path_factory.mktemp("vggt-data") / "texture", height=28, width=42)


def test_the_shipped_base_loads_by_name_and_strictly():
    spec = get_backbone_spec("vggt")
    model = subspace_hub.load_backbone("vggt", pretrained="vggt-tiny-synthetic")
    fresh = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    assert subspace_hub.backbones.build_info(model).pretrained == "vggt-tiny-synthetic"
    pairs = zip(model.state_dict().values(), fresh.state_dict().values(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)  # trained weights, not a fresh initialisation
    assert spec.weights["vggt-tiny-synthetic"].endswith("vggt-tiny-synthetic")


def test_gradient_checkpointing_gives_the_same_run(data, tmp_path):
    runs = []
    for checkpointing in (False, True):
        config = load_train_config(
            None,
            [],
            backbone="vggt",
            pretrained="vggt-tiny-synthetic",
            method="lora",
            method_options={"rank": 2, "targets": ["aggregator"]},
            data={"source": str(data), "min_views": 2, "max_views": 4, "max_images": 4},
            steps=3,
            gradient_checkpointing=checkpointing,
            tensorboard=False,
            optim={"lr": 1e-3},
        )
        result = train(config, tmp_path / f"run-{checkpointing}", progress=False)
        runs.append([row["loss"] for row in read_metrics(result.run)])
        assert set(result.evaluation["depth"]) >= {"abs_rel"}
    assert runs[0] == pytest.approx(runs[1], rel=1e-5, abs=1e-6)
    from subspace_hub.pipelines.train import _attach

    # the engine turned it on in the backbone under the PEFT wrapper (the same losses alone would not show it)
    flags = {
        name: m.gradient_checkpointing
        for name, m in _attach(config).named_modules()
        if hasattr(m, "gradient_checkpointing")
    }
    assert flags and all(flags.values()), flags
    reloaded = subspace_hub.load_adapter(tmp_path / "run-True" / "adapter")  # rebuilds the base by name
    assert sum(p.numel() for p in reloaded.parameters() if p.requires_grad) > 0
