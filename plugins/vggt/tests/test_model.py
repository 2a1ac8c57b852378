"""Checkpoint exactness: VGGT-1B's keys, shapes and parameter counts, strict round trips, official parity."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import subspace_hub
from subspace_hub.adapters.targets import resolve_targets
from subspace_hub.backbones.checkpoint import load_state_dict_strict
from subspace_hub.errors import CheckpointMismatchError, ConfigError, ShapeMismatchError
from subspace_hub_vggt import VGGT, VGGTConfig
from subspace_hub_vggt.plugin import example_batch

from .conftest import DATA


def test_vggt_1b_on_meta_matches_the_reference_state_dict(reference_1b):
    model = subspace_hub.load_backbone("vggt", device="meta")
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == reference_1b["total_parameters"] == 1_256_537_516
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == 1797
    assert shapes == reference_1b["keys"]


def test_official_config_json_is_vggt_1b():
    config = VGGTConfig.from_dict({"img_size": 518, "patch_size": 14, "embed_dim": 1024})
    assert config == VGGTConfig()
    assert VGGTConfig.from_dict(config.to_dict()) == config


def _vggt_1b_for_fine_tuning():
    return subspace_hub.load_backbone("vggt", config={"enable_point": False, "enable_track": False}, device="meta")


def test_full_fine_tuning_trains_853_6m_parameters(reference_1b):
    model = subspace_hub.attach_adapter(_vggt_1b_for_fine_tuning(), "full")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == reference_1b["full_ft_trainable_dino_frozen_no_point_track"] == 853_568_756
    assert f"{trainable / 1e6:.1f}M" == reference_1b["paper_counts"]["full_ft"]


@pytest.mark.parametrize("rank", [16, 32, 64, 128, 256])
def test_lora_on_the_paper_targets_matches_the_paper_counts(rank, reference_1b):
    from peft import LoraConfig, get_peft_model

    model = _vggt_1b_for_fine_tuning()
    targets = resolve_targets(model)  # the default "paper" group: aggregator + camera head + depth head
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable == rank * reference_1b["lora_per_rank_paper_targets"] == rank * 1_021_012
    paper = dict(zip([16, 32, 64, 128, 256], reference_1b["paper_counts"]["lora_r16_32_64_128_256"], strict=True))
    assert f"{trainable / 1e6:.1f}M" == paper[rank]


def test_paper_targets_are_the_documented_modules():
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    targets = resolve_targets(model)
    assert "aggregator.frame_blocks.0.attn.qkv" in targets and "aggregator.global_blocks.3.mlp.fc2" in targets
    assert "camera_head.poseLN_modulation.1" in targets and "depth_head.scratch.output_conv2.2" in targets
    assert not any(t.startswith(("aggregator.patch_embed", "point_head", "track_head")) for t in targets)
    assert "depth_head.resize_layers.0" not in targets  # transposed convolutions are not adapted
    assert resolve_targets(model, "frame.qkv", layers=[2, 3]) == [
        "aggregator.frame_blocks.2.attn.qkv",
        "aggregator.frame_blocks.3.attn.qkv",
    ]


def _outputs(model, batch, query=None):
    model.eval()
    with torch.no_grad():
        return model(batch["images"], query)


def test_official_format_state_dict_round_trips_strictly(tmp_path):
    torch.manual_seed(0)
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    loaded = subspace_hub.load_backbone("vggt", pretrained=tmp_path)
    batch = example_batch(model)
    query = torch.tensor([[[3.0, 4.0], [10.0, 20.0]]])
    for key, value in _outputs(model, batch, query).items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, _outputs(loaded, batch, query)[key]), key
    fresh = VGGT(model.config)
    fresh.load_state_dict(state, strict=True)


def test_save_backbone_writes_the_hub_layout(tmp_path):
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    folder = subspace_hub.save_backbone(model, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert VGGTConfig.from_dict(json.loads((folder / "config.json").read_text())) == model.config


def test_legacy_model_pt(tmp_path):
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = subspace_hub.load_backbone("vggt", config="vggt-tiny", pretrained=tmp_path)
    batch = example_batch(model)
    assert torch.equal(_outputs(model, batch)["depth"], _outputs(loaded, batch)["depth"])


def test_a_checkpoint_of_another_size_lists_the_mismatch(tmp_path):
    subspace_hub.save_backbone(subspace_hub.load_backbone("vggt", config="vggt-tiny"), tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped key\(s\)") as info:
        subspace_hub.load_backbone("vggt", config="vggt-1b", pretrained=tmp_path, device="meta")
    assert "missing key(s)" in str(info.value)  # the 1B model has 24 frame blocks, the tiny one 4
    with pytest.raises(CheckpointMismatchError, match="unexpected key"):
        subspace_hub.load_backbone(
            "vggt",
            config={
                **VGGTConfig.from_dict(json.loads((tmp_path / "config.json").read_text())).to_dict(),
                "enable_track": False,
            },
            pretrained=tmp_path,
        )


def test_bad_configs_and_inputs():
    with pytest.raises(ConfigError, match=r"embed_dim \(30\) must be divisible by aggregator.num_heads \(4\)"):
        VGGTConfig.from_dict({"embed_dim": 30, "aggregator": {"num_heads": 4, "patch_embed": "conv"}})
    with pytest.raises(ConfigError, match="dinov2_vitl14_reg has width 1024, but embed_dim is 64"):
        VGGTConfig.from_dict({"embed_dim": 64})
    with pytest.raises(ConfigError, match="intermediate_layer_idx"):
        VGGTConfig.from_dict({"aggregator": {"depth": 4}})
    with pytest.raises(
        ConfigError, match=r"Unknown VGGT config field\(s\): 'embed_dims' \(did you mean 'embed_dim'\?\)"
    ):
        VGGTConfig.from_dict({"embed_dims": 3})
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    with pytest.raises(ShapeMismatchError, match="not a multiple of the patch size 14"):
        model(torch.rand(1, 2, 3, 30, 28))


def test_unbatched_input_and_single_frame():
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny").eval()
    images = torch.rand(1, 3, 28, 28)
    with torch.no_grad():
        out = model(images)
    assert out["depth"].shape == (1, 1, 28, 28, 1) and out["pose_enc"].shape == (1, 1, 9)


def _fixture(name):
    with safe_open(str(DATA / f"official_parity_{name}.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        meta = f.metadata()
    return tensors, json.loads(meta["config"])


OUTPUTS = ["pose_enc", "depth", "depth_conf", "world_points", "world_points_conf", "track", "vis", "conf"]


@pytest.mark.parametrize(
    ("fixture", "case"),
    [
        ("conv", "batch2_frames3_nonsquare"),
        ("conv", "single_frame"),
        ("dino", "dino_interpolated_pos_embed"),
        ("dino", "dino_native_grid"),
    ],
)
def test_outputs_match_the_official_implementation(fixture, case):
    """Fixtures hold random weights (fp16-representable, stored exactly), inputs and the outputs of the
    official implementation (facebookresearch/vggt at e569633, September 2025) for small configurations
    built with its own modules: a conv patch embed and a 2-block DINOv2-with-registers patch embed whose
    position embedding is interpolated (non-square 42x56 input) or used on its native grid."""
    tensors, config = _fixture(fixture)
    model = subspace_hub.load_backbone("vggt", config=config).eval()
    weights = {k.removeprefix("weights."): v.float() for k, v in tensors.items() if k.startswith("weights.")}
    load_state_dict_strict(model, weights, source=f"{fixture} fixture")
    with torch.no_grad():
        out = model(tensors[f"{case}.inputs.images"], tensors[f"{case}.inputs.query_points"])
    for key in OUTPUTS:
        tol = 5e-4 if key in ("track", "vis", "conf") else 1e-4
        torch.testing.assert_close(out[key], tensors[f"{case}.expected.{key}"], atol=tol, rtol=tol, msg=key)
    for i, step in enumerate(out["pose_enc_list"]):
        torch.testing.assert_close(step, tensors[f"{case}.expected.pose_enc_list.{i}"], atol=1e-4, rtol=1e-4)
