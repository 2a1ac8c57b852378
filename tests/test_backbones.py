"""load_backbone: configs, strict checkpoint loading in the config.json + model.safetensors layout, the meta device."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import subspace_hub
from subspace_hub.backbones import build_info
from subspace_hub.backbones.checkpoint import read_state_dict
from subspace_hub.backbones.reference import ReferenceConfig, example_batch
from subspace_hub.errors import CheckpointError, CheckpointMismatchError, CheckpointNotFoundError, ConfigError
from subspace_hub.testing import BackboneTests


class TestReferenceTiny(BackboneTests):
    backbone = "reference"


class TestReferenceSmall(BackboneTests):
    backbone = "reference"
    config = "small"


def _outputs(model, seed=0):
    model.eval()
    with torch.no_grad():
        return model(example_batch(model, seed=seed)["images"])


def test_config_forms(tmp_path):
    assert subspace_hub.load_backbone("reference").config == ReferenceConfig()  # default preset "tiny"
    assert subspace_hub.load_backbone("reference", config="small").config.depth == 4
    assert subspace_hub.load_backbone("reference", config={"dim": 16, "depth": 1}).config.dim == 16
    assert subspace_hub.load_backbone("reference", config=ReferenceConfig(dim=8, num_heads=1)).config.dim == 8
    (tmp_path / "c.json").write_text(json.dumps({"dim": 24, "num_heads": 3}))
    (tmp_path / "c.yaml").write_text("dim: 40\nnum_heads: 5\n")
    assert subspace_hub.load_backbone("reference", config=str(tmp_path / "c.json")).config.dim == 24
    assert subspace_hub.load_backbone("reference", config=str(tmp_path / "c.yaml")).config.dim == 40


def test_bad_configs_say_what_to_do():
    with pytest.raises(
        ConfigError, match=r"Unknown config 'huge' for backbone 'reference': not a preset \(tiny, small\)"
    ):
        subspace_hub.load_backbone("reference", config="huge")
    with pytest.raises(ConfigError, match="dim \\(30\\) must be divisible by num_heads \\(4\\)"):
        subspace_hub.load_backbone("reference", config={"dim": 30, "num_heads": 4})
    with pytest.raises(ConfigError, match="must be a preset name, a file path, a mapping or a dataclass"):
        subspace_hub.load_backbone("reference", config=42)


def test_pretrained_round_trip_reads_config_json(tmp_path):
    model = subspace_hub.load_backbone("reference", config={"dim": 16, "depth": 3, "num_heads": 2})
    folder = subspace_hub.save_backbone(model, tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["depth"] == 3
    loaded = subspace_hub.load_backbone("reference", pretrained=folder)
    assert loaded.config.depth == 3  # the config came from config.json
    for key, value in _outputs(model).items():
        assert torch.equal(value, _outputs(loaded)[key])
    info = build_info(loaded)
    assert (info.backbone, info.pretrained) == ("reference", str(folder))


def test_strict_loading_lists_every_mismatch(tmp_path):
    model = subspace_hub.load_backbone("reference")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del state["blocks.0.attn.qkv.weight"]
    state["blocks.0.extra.weight"] = torch.zeros(2)
    state["head.bias"] = torch.zeros(3)
    (tmp_path / "config.json").write_text(json.dumps({}))
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError) as info:
        subspace_hub.load_backbone("reference", pretrained=tmp_path)
    message = str(info.value)
    assert "1 missing key(s): blocks.0.attn.qkv.weight" in message
    assert "1 unexpected key(s): blocks.0.extra.weight" in message
    assert "1 mis-shaped key(s): head.bias: checkpoint [3] vs model [128]" in message
    assert "Check that the config matches the checkpoint" in message


def test_wrong_config_gives_mis_shaped_keys(tmp_path):
    subspace_hub.save_backbone(subspace_hub.load_backbone("reference"), tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped key\(s\): .*checkpoint \[32\] vs model \[64\]"):
        subspace_hub.load_backbone("reference", config="small", pretrained=tmp_path)


def test_legacy_pt_checkpoints_are_read_with_weights_only(tmp_path):
    model = subspace_hub.load_backbone("reference")
    torch.save({"model": model.state_dict(), "epoch": 3, "optimizer": {"lr": 1e-4}}, tmp_path / "model.pt")
    loaded = subspace_hub.load_backbone("reference", pretrained=tmp_path)
    assert torch.equal(_outputs(model)["depth"], _outputs(loaded)["depth"])


def test_legacy_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    import argparse

    torch.save({"weights": argparse.Namespace(code="runs at unpickling")}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"weights_only=True"):
        read_state_dict(tmp_path)


def test_sharded_safetensors(tmp_path):
    model = subspace_hub.load_backbone("reference")
    state = model.state_dict()
    keys = sorted(state)
    shards = {
        "model-00001-of-00002.safetensors": keys[: len(keys) // 2],
        "model-00002-of-00002.safetensors": keys[len(keys) // 2 :],
    }
    for shard, names in shards.items():
        save_file({k: state[k].contiguous() for k in names}, str(tmp_path / shard))
    index = {"metadata": {}, "weight_map": {k: shard for shard, names in shards.items() for k in names}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded = subspace_hub.load_backbone("reference", pretrained=tmp_path)
    assert torch.equal(_outputs(model)["depth"], _outputs(loaded)["depth"])


def test_corrupt_and_missing_checkpoints(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        subspace_hub.load_backbone("reference", pretrained=tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="No weights in"):
        subspace_hub.load_backbone("reference", pretrained=tmp_path / "..")
    with pytest.raises(CheckpointNotFoundError, match="not a Hub repo id"):
        subspace_hub.load_backbone("reference", pretrained=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="only applies to Hub repos"):
        subspace_hub.load_backbone("reference", pretrained=tmp_path, revision="v1")


def test_save_is_atomic_and_handles_tied_weights(tmp_path):
    model = subspace_hub.load_backbone("reference")
    model.blocks[1].attn.proj.weight = model.blocks[0].attn.proj.weight  # tied
    subspace_hub.save_backbone(model, tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    state = read_state_dict(tmp_path)
    assert torch.equal(state["blocks.1.attn.proj.weight"], state["blocks.0.attn.proj.weight"])


def test_meta_device_build_allocates_nothing():
    model = subspace_hub.load_backbone("reference", config="small", device="meta")
    assert all(p.is_meta for p in model.parameters())
    reference = subspace_hub.load_backbone("reference", config="small")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())


def test_meta_model_receives_checkpoint_tensors(tmp_path):
    model = subspace_hub.load_backbone("reference")
    subspace_hub.save_backbone(model, tmp_path)
    from subspace_hub.backbones.checkpoint import load_state_dict_strict

    meta = subspace_hub.load_backbone("reference", device="meta")
    load_state_dict_strict(meta, read_state_dict(tmp_path))
    assert not any(p.is_meta for p in meta.parameters())
    assert torch.equal(_outputs(model)["depth"], _outputs(meta)["depth"])


def test_dtype_cast():
    model = subspace_hub.load_backbone("reference", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}


def test_reference_model_rejects_bad_images():
    model = subspace_hub.load_backbone("reference")
    with pytest.raises(subspace_hub.SubspaceHubError, match=r"images must be \[B, S, 3, H, W\]"):
        model(torch.rand(2, 3, 16, 16))
    with pytest.raises(subspace_hub.SubspaceHubError, match="not a multiple of the patch size 8"):
        model(torch.rand(1, 2, 3, 20, 16))


def test_reference_model_learns():
    torch.manual_seed(0)
    model = subspace_hub.load_backbone("reference")
    spec = subspace_hub.plugins.get_backbone_spec("reference")
    batch = example_batch(model, batch_size=2, views=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = spec.loss(model(batch["images"]), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
