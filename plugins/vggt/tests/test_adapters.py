"""Every adapter method on vggt-tiny (train, save, reload, merge), subspaces mined from real LoRAs in the paper's
setting, and the paper's parameter counts on VGGT-1B (meta device) through the CLI."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from peft import LoraConfig, get_peft_model

import subspace_hub
from subspace_hub.adapters.subspace import SubspaceAdapter, SubspaceLayer
from subspace_hub.adapters.targets import resolve_targets
from subspace_hub.cli import main
from subspace_hub.subspaces import extract_bundle
from subspace_hub.testing import check_adapter_lifecycle
from subspace_hub_vggt.plugin import example_batch


@pytest.mark.parametrize("method", ["full", "lora", "pissa", "adalora", "psv", "subspace"])
def test_every_method_trains_saves_reloads_and_merges_on_vggt_tiny(method):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="psv adapts Linear layers only")  # the DPT head is convolutional
        losses = check_adapter_lifecycle(method, "vggt", "vggt-tiny")
    assert losses["loss_after"] < losses["loss_before"]


def tiny():
    torch.manual_seed(0)
    return subspace_hub.load_backbone("vggt", config="vggt-tiny")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Texture and geometry subspaces mined from real PEFT LoRAs on every paper target (convolutions included)."""
    root = tmp_path_factory.mktemp("vggt-loras")
    sources = {}
    for attribute, seed in (("texture", 0), ("geometry", 100)):
        sources[attribute] = []
        for i in range(2):
            torch.manual_seed(seed + i)
            model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
            config = LoraConfig(r=4, lora_alpha=8, target_modules=resolve_targets(model), init_lora_weights=False)
            path = root / attribute / f"lora-{i}"
            get_peft_model(model, config).save_pretrained(path)
            sources[attribute].append(path)
    return extract_bundle(
        sources, d=2, targets=[r"aggregator\..*", r"depth_head\.scratch\..*"], progress=False, info={"backbone": "vggt"}
    )


def test_subspace_in_the_paper_setting(bundle):
    """Bases on the aggregator blocks and the DPT convolutions, plain LoRA on the other targets."""
    batch = example_batch(tiny())
    with torch.no_grad():
        expected = tiny().eval()(batch["images"])
    model = subspace_hub.attach_adapter(tiny(), "subspace", bundle=bundle, lora_rank=2).eval()
    with torch.no_grad():
        outputs = model(batch["images"])
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(outputs[key], value), key  # the zero cores and zero LoRA B change nothing
    layers = {n: m for n, m in model.named_modules() if isinstance(m, SubspaceLayer)}
    assert any(isinstance(m.base_layer, torch.nn.Conv2d) for m in layers.values())
    # k = 2 attributes x d = 2, except the depth output conv: 2 output channels hold only 2 of the 4 columns
    assert {n: tuple(m.core.shape) for n, m in layers.items() if tuple(m.core.shape) != (4, 4)} == {
        "depth_head.scratch.output_conv2.2": (2, 4)
    }
    adapter = SubspaceAdapter.of(model)
    assert "depth_head.scratch.output_conv2.2: dropped 2 output / 0 input columns as dependent" in adapter.report()
    assert adapter.lora.modules and all(m.startswith(("camera_head", "depth_head")) for m in adapter.lora.modules)
    losses = check_adapter_lifecycle("subspace", "vggt", "vggt-tiny", bundle=bundle, lora_rank=2)
    assert losses["loss_after"] < losses["loss_before"]


def test_paper_parameter_counts_on_vggt_1b(capsys, reference_1b):
    """The CLI's counts for the paper's VGGT-1B setting (point and track heads off) against the paper's table."""
    args = ["params", "vggt", "--set", "enable_point=false", "--set", "enable_track=false", "--json"]
    args += ["--lora-rank", "16", "--lora-rank", "64", "--lora-rank", "256"]
    args += ["--subspace-dim", "16", "--subspace-targets", "aggregator", "--rest-lora-rank", "16"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    counts = {c["method"]: c["trainable"] for c in data["counts"]}
    paper = reference_1b["paper_counts"]
    assert f"{counts['full'] / 1e6:.1f}M" == paper["full_ft"] == "853.6M"
    lora_column = dict(zip([16, 32, 64, 128, 256], paper["lora_r16_32_64_128_256"], strict=True))
    for rank in (16, 64, 256):
        assert counts[f"lora / pissa r={rank}"] == rank * 1_021_012
        assert f"{counts[f'lora / pissa r={rank}'] / 1e6:.1f}M" == lora_column[rank]
    # texture + geometry at d = 16: 32x32 cores on the 192 block linears, LoRA r16 on the camera and depth heads
    ours = counts["subspace 2x16 + lora r=16 on the rest"]
    assert ours == 192 * 32 * 32 + 3_753_280 == 3_949_888
    assert f"{ours / 1e6:.2f}M" == "3.95M"  # the paper's "Ours d=16: 4.0M", rounded up from 3.95M


@pytest.mark.parametrize(
    "method, options",
    [("lora", {}), ("pissa", {}), ("adalora", {"total_step": 10}), ("psv", {})],
)
def test_every_method_takes_the_default_targets_at_a_rank_wider_than_the_narrowest_head_layer(method, options):
    """VGGT's default targets include layers narrower than 16 (the depth head's 2-channel output convolution, the
    camera head's 9-wide pose layers); a method adapts them (LoRA is defined at any rank) or leaves them frozen
    with a warning (PiSSA, PSV: their SVD needs rank <= min(in, out)), and training runs."""
    spec = subspace_hub.plugins.get_backbone_spec("vggt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = subspace_hub.attach_adapter(tiny(), method, rank=16, **options)
    if method in ("pissa", "psv"):
        assert any(f"{method} rank 16 exceeds min(in, out)" in str(w.message) for w in caught)
    batch = spec.example_batch(model)
    loss = spec.task_loss(spec.run(model, batch), batch)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_the_default_data_resolution_fits_vggt_and_a_mismatch_names_the_fix():
    from subspace_hub.data.export import GenerationSpec
    from subspace_hub.errors import ConfigError

    spec = subspace_hub.plugins.get_backbone_spec("vggt")
    generation = GenerationSpec("texture")
    spec.check_image_size(generation.height, generation.width)  # 518 x 518, the paper's
    with pytest.raises(ConfigError, match=r"multiples of 14.*126 or 140"):
        spec.check_image_size(128, 128)
