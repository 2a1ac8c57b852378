"""attach_adapter by name, target resolution and the builtin full fine-tuning method."""

from __future__ import annotations

import pytest
import torch

import subspace_hub
from subspace_hub.adapters.targets import freeze_modules, resolve_targets
from subspace_hub.errors import ConfigError, UnknownComponentError
from subspace_hub.testing import AdapterTests


class TestFullOnReference(AdapterTests):
    adapter = "full"


def test_full_keeps_the_spec_frozen_parts_frozen():
    model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "full")
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen == ["patch_embed.bias", "patch_embed.weight"]


def test_full_with_explicit_frozen_patterns():
    model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "full", frozen=())
    assert all(p.requires_grad for p in model.parameters())
    model = subspace_hub.attach_adapter(model, "full", frozen=[r"blocks\.0"])
    assert not model.blocks[0].attn.qkv.weight.requires_grad and model.blocks[1].attn.qkv.weight.requires_grad
    assert model.patch_embed.weight.requires_grad


def test_unknown_method_and_options():
    model = subspace_hub.load_backbone("reference")
    with pytest.raises(UnknownComponentError, match="Did you mean 'full'"):
        subspace_hub.attach_adapter(model, "ful")
    with pytest.raises(ConfigError, match="Adapter 'full' does not take option\\(s\\) rank; it takes: frozen"):
        subspace_hub.attach_adapter(model, "full", rank=4)


def test_targets_from_groups_patterns_and_defaults():
    model = subspace_hub.load_backbone("reference")
    assert resolve_targets(model, "qkv") == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert resolve_targets(model, ["fc2", r"blocks\.0\.attn\.proj"]) == [
        "blocks.0.attn.proj",
        "blocks.0.mlp.fc2",
        "blocks.1.mlp.fc2",
    ]
    defaults = resolve_targets(model)  # the spec's default_targets: ("blocks",)
    assert len(defaults) == 8 and all(n.startswith("blocks.") for n in defaults)


def test_layer_selection_uses_the_layer_group_of_the_pattern():
    model = subspace_hub.load_backbone("reference", config={"depth": 4})
    assert resolve_targets(model, ["qkv", "fc1"], layers=[1, 3]) == [
        "blocks.1.attn.qkv",
        "blocks.1.mlp.fc1",
        "blocks.3.attn.qkv",
        "blocks.3.mlp.fc1",
    ]
    assert resolve_targets(model, ["qkv", "head"], layers=range(3, 4)) == [
        "blocks.3.attn.qkv",
        "head",
    ]  # head has no layer
    with pytest.raises(ConfigError, match=r"matches no module of the model in layers \[7\]"):
        resolve_targets(model, "qkv", layers=[7])


def test_target_errors():
    model = subspace_hub.load_backbone("reference")
    with pytest.raises(ConfigError, match="matches no module of the model.*Known target groups: qkv"):
        resolve_targets(model, "decoder")
    with pytest.raises(ConfigError, match=r"not Linear or Conv2d: blocks.0.attn \(Attention\)"):
        resolve_targets(model, r"blocks\.0\.attn")
    with pytest.raises(ConfigError, match="neither a target group nor a valid regex"):
        resolve_targets(model, "blocks[")
    with pytest.raises(ConfigError, match="targets is empty"):
        resolve_targets(model, [])
    # the frozen patch embedding is excluded unless frozen=() says otherwise
    with pytest.raises(ConfigError, match="modules under frozen parts are excluded"):
        resolve_targets(model, "patch_embed")
    assert resolve_targets(model, "patch_embed", frozen=()) == ["patch_embed"]


def test_models_without_spec_need_explicit_targets():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    with pytest.raises(ConfigError, match="declares no default targets"):
        resolve_targets(model)
    assert resolve_targets(model, [r"[02]"]) == ["0", "2"]
    assert freeze_modules(model, ["0"]) == ["0.weight", "0.bias"]
