"""The plugin passes the core's conformance checks on CPU with vggt-tiny."""

from __future__ import annotations

import subspace_hub
from subspace_hub.testing import AdapterTests, BackboneTests, PluginTests


class TestVGGTTinyConforms(BackboneTests):
    backbone = "vggt"
    config = "vggt-tiny"


class TestVGGTPluginIsInstalled(PluginTests):
    plugin = "vggt"

    def test_components_conform(self) -> None:
        # The registered default preset is vggt-1b; the tiny preset is checked by TestVGGTTinyConforms.
        assert subspace_hub.list_components("backbone").count("vggt") == 1


class TestFullFineTuningOnVGGTTiny(AdapterTests):
    adapter = "full"
    backbone = "vggt"
    config = "vggt-tiny"


def test_spec_declares_licence_and_frozen_dino():
    spec = subspace_hub.plugins.get_backbone_spec("vggt")
    assert spec.license == "cc-by-nc-4.0"
    assert spec.frozen == (r"aggregator\.patch_embed",)
    assert spec.default_targets == ("paper",)
    assert set(spec.presets) == {"vggt-1b", "vggt-tiny", "vggt-small"}


def test_small_preset_is_the_studys_base_size():
    """vggt-small: tens of millions of parameters, the paper's fine-tuning heads only (camera and depth)."""
    import torch

    with torch.device("meta"):
        model = subspace_hub.load_backbone("vggt", config="vggt-small")
    sizes = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    assert set(sizes) == {"aggregator", "camera_head", "depth_head"}
    assert 14e6 < sizes["aggregator"] < 16e6 and 20e6 < sum(sizes.values()) < 25e6
