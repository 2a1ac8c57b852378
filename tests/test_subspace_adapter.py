"""SubspaceAdapter on bases extracted from real PEFT LoRAs: exact start, cores only, shapes, save/load, merge."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

import subspace_hub
from subspace_hub import SubspaceAdapter
from subspace_hub.adapters.report import parameter_report
from subspace_hub.adapters.subspace import CONFIG_FILE, SubspaceLayer
from subspace_hub.errors import CheckpointError, CheckpointNotFoundError, ConfigError, ShapeMismatchError
from subspace_hub.subspaces import SubspaceBundle, extract_bundle
from subspace_hub.testing import check_adapter_lifecycle

CONFIG = {"depth": 3}  # the LoRAs adapt a 3-block reference backbone (width 32, MLP 128)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, make_loras):
    root = tmp_path_factory.mktemp("loras")
    loras = {"texture": make_loras(root / "texture", 3, seed=0), "geometry": make_loras(root / "geometry", 3, seed=10)}
    return extract_bundle(loras, d=3, progress=False, info={"backbone": "reference"})


def pretrained():
    torch.manual_seed(0)
    return subspace_hub.load_backbone("reference", config=CONFIG)


IMAGES = torch.rand(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def depth(model):
    model.eval()
    with torch.no_grad():
        return model(IMAGES)["depth"].clone()


def test_starts_exactly_at_the_pretrained_outputs_and_trains_only_the_cores(bundle):
    expected = depth(pretrained())
    model = subspace_hub.attach_adapter(pretrained(), "subspace", bundle=bundle)
    assert torch.equal(depth(model), expected)  # bit-for-bit: the cores start at zero
    trainable = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    assert len(trainable) == 6 and all(n.endswith(".core") for n in trainable)
    assert set(trainable.values()) == {(6, 6)}  # k = 2 attributes x d = 3
    assert parameter_report(model).trainable == 6 * 36
    assert all(not b.requires_grad for n, b in model.named_buffers() if n.endswith((".U", ".V")))


def test_attribute_subset_gives_smaller_cores(bundle):
    model = SubspaceAdapter(bundle).attach(pretrained(), attributes=["geometry"])
    assert {tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad} == {(3, 3)}
    with pytest.raises(ConfigError, match=r"no attribute\(s\) \['lighting'\]; it has \['texture', 'geometry'\]"):
        SubspaceAdapter(bundle).attach(pretrained(), attributes=["lighting"])


def test_random_like_has_the_mined_sizes_in_the_same_modules_and_other_directions(bundle):
    from subspace_hub.adapters.subspace import random_like
    from subspace_hub.subspaces.analysis import orthogonality_eigenvalues

    random = random_like(bundle, seed=3)
    assert random.dims() == bundle.dims() and random.info["random_like"] is True
    for attribute, module, sub in random.items():
        mined = bundle.attributes[attribute][module]
        assert sub.U.shape == mined.U.shape and sub.V.shape == mined.V.shape
        assert torch.allclose(sub.U.T @ sub.U, torch.eye(sub.d), atol=1e-5)
        assert float(orthogonality_eigenvalues(sub.U, mined.U).min()) > 0.01  # not the mined directions
    assert all(
        torch.equal(a.U, b.U)
        for (_, _, a), (_, _, b) in zip(random.items(), random_like(bundle, seed=3).items(), strict=True)
    )
    model = subspace_hub.attach_adapter(pretrained(), "subspace", bundle=random)
    assert parameter_report(model).trainable == 6 * 36  # the same cores as the mined bundle's


def test_dependent_columns_are_dropped_and_reported(bundle, tmp_path):
    module = "blocks.1.attn.qkv"
    overlapping = SubspaceBundle(info=dict(bundle.info), attributes={a: dict(m) for a, m in bundle.attributes.items()})
    texture = bundle.attributes["texture"][module]
    # geometry shares two directions with texture on one module, on both sides
    U = torch.linalg.qr(torch.cat([texture.U[:, :2], bundle.attributes["geometry"][module].U[:, :1]], dim=1))[0]
    V = torch.linalg.qr(torch.cat([texture.V[:, :2], bundle.attributes["geometry"][module].V[:, :1]], dim=1))[0]
    overlapping.attributes["geometry"][module] = dataclasses.replace(bundle.attributes["geometry"][module], U=U, V=V)
    adapter = SubspaceAdapter(overlapping)
    model = adapter.attach(pretrained())
    cores = {n.removesuffix(".core"): tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    assert cores[module] == (4, 4) and cores["blocks.0.attn.qkv"] == (6, 6)
    assert f"{module}: dropped 2 output / 2 input columns as dependent" in adapter.report()
    assert "cores: 6x6 on 5, 4x4 on 1 module(s); 196 trainable core parameters" in adapter.report()
    assert any("dropped 2 output" in line for line in parameter_report(model).notes)
    adapter.save_pretrained(tmp_path / "run")
    config = json.loads((tmp_path / "run" / CONFIG_FILE).read_text())
    assert config["modules"][module] == {
        "attributes": ["texture", "geometry"],
        "core": [4, 4],
        "d": {"texture": 3, "geometry": 3},
        "dropped_out": 2,
        "dropped_in": 2,
    }


def test_combined_bases_are_orthonormal_and_span_every_attribute(bundle):
    for combine in ("qr", "loewdin"):
        bases = SubspaceAdapter(bundle, combine=combine).combined_bases()
        for module, b in bases.items():
            torch.testing.assert_close(b.U.T @ b.U, torch.eye(6), atol=1e-5, rtol=0)
            for attribute in ("texture", "geometry"):
                sub = bundle.attributes[attribute][module]
                torch.testing.assert_close(b.U @ (b.U.T @ sub.U.float()), sub.U.float(), atol=1e-5, rtol=0)
                torch.testing.assert_close(b.V @ (b.V.T @ sub.V.float()), sub.V.float(), atol=1e-5, rtol=0)


def test_shapes_that_do_not_fit_name_the_module_and_both_shapes(bundle):
    with pytest.raises(
        ShapeMismatchError,
        match=r"Module blocks.0.attn.qkv: the bundle.s bases fit a 96x32 weight, the model.s layer is 144x48",
    ):
        SubspaceAdapter(bundle).attach(subspace_hub.load_backbone("reference", config={"depth": 3, "dim": 48}))
    with pytest.raises(
        ConfigError,
        match=r"module\(s\) the model lacks \(e.g. blocks.2.attn.qkv\); it was extracted for backbone 'reference'",
    ):
        SubspaceAdapter(bundle).attach(subspace_hub.load_backbone("reference", config={"depth": 2}))
    adapter = SubspaceAdapter(bundle)
    adapter.attach(pretrained())
    with pytest.raises(ConfigError, match="already attached"):
        adapter.attach(pretrained())


def test_layers_match_the_merged_weight_for_linear_and_conv():
    torch.manual_seed(0)
    for base, x in (
        (torch.nn.Linear(10, 7), torch.randn(4, 10)),
        (torch.nn.Conv2d(5, 6, 3, stride=2, padding=1), torch.randn(2, 5, 9, 9)),
    ):
        in_dim = base.weight[0].numel()
        U, V = (
            torch.linalg.qr(torch.randn(6 if isinstance(base, torch.nn.Conv2d) else 7, 3))[0],
            torch.linalg.qr(torch.randn(in_dim, 4))[0],
        )
        layer = SubspaceLayer(base, U, V, scale=2.0, name="m")
        with torch.no_grad():
            layer.core.normal_()
        weight = base.weight + 2.0 * (U @ layer.core @ V.T).reshape(base.weight.shape)
        if isinstance(base, torch.nn.Conv2d):
            expected = F.conv2d(x, weight, base.bias, stride=2, padding=1)
        else:
            expected = F.linear(x, weight, base.bias)
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
        merged = layer.merge()
        assert type(merged) is type(base)
        torch.testing.assert_close(merged(x), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="support nn.Linear and nn.Conv2d, not Embedding"):
        SubspaceLayer(torch.nn.Embedding(4, 4), torch.zeros(4, 1), torch.zeros(4, 1), 2.0, "emb")


def test_trains_saves_reloads_and_merges_with_lora_on_the_rest(bundle, tmp_path):
    losses = check_adapter_lifecycle("subspace", "reference", CONFIG, bundle=bundle, lora_rank=2)
    assert losses["loss_after"] < losses["loss_before"]
    model = subspace_hub.attach_adapter(pretrained(), "subspace", bundle=bundle, lora_rank=2)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    cores = [n for n in trainable if n.endswith(".core")]
    lora = [n for n in trainable if ".lora_" in n]
    assert len(cores) == 6 and len(lora) == 2 * 6 and len(trainable) == 12 + 6  # proj and fc2 of 3 blocks get LoRA
    assert "LoRA rank 2 on 6 modules without bases" in SubspaceAdapter.of(model).report()


def test_save_pretrained_records_provenance_and_reloads_the_trained_state(bundle, tmp_path):
    adapter = SubspaceAdapter(bundle)
    model = adapter.attach(pretrained(), attributes=["texture", "geometry"])
    with torch.no_grad():
        for layer in adapter.layers.values():
            layer.core.normal_(std=0.1)
    expected = depth(model)
    folder = adapter.save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "subspace_adapter.json",
        "subspace_adapter.safetensors",
        "subspace_config.json",
        "subspace_hub_adapter.json",
        "subspaces.safetensors",
    ]
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["library_version"] == subspace_hub.__version__ and config["scale"] == 2.0
    assert config["backbone"]["name"] == "reference" and config["backbone"]["config"]["depth"] == 3
    assert config["attributes"] == ["texture", "geometry"]
    assert len(config["sources"]["texture"]) == 3 and config["sources"]["texture"][0]["path"].endswith("lora-0")
    reloaded = SubspaceAdapter.from_pretrained(folder)
    assert torch.equal(depth(reloaded.attach(pretrained())), expected)
    merged = reloaded.merge_and_unload()
    assert not any(isinstance(m, SubspaceLayer) for m in merged.modules())
    torch.testing.assert_close(depth(merged), expected, atol=1e-5, rtol=1e-5)
    (folder / "subspace_adapter.safetensors").write_bytes(b"\x00" * 5)  # a truncated download
    with pytest.raises(
        CheckpointError, match=r"subspace_adapter\.safetensors: .* corrupt or truncated; download or save"
    ):
        SubspaceAdapter.from_pretrained(folder)


def test_merged_model_is_the_plain_backbone(bundle):
    plain = pretrained()
    merged = subspace_hub.merge_adapter(subspace_hub.attach_adapter(pretrained(), "subspace", bundle=bundle))
    assert [type(m) for m in merged.modules()] == [type(m) for m in plain.modules()]
    assert {k: v.shape for k, v in merged.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}


def test_from_pretrained_errors(tmp_path, bundle):
    with pytest.raises(CheckpointNotFoundError, match="not a Hub repo id"):
        SubspaceAdapter.from_pretrained(tmp_path / "missing" / "deep")
    folder = bundle.save(tmp_path / "bundle")
    with pytest.raises(ConfigError, match="only applies to Hub repos"):
        SubspaceAdapter.from_pretrained(folder, revision="main")
    model = subspace_hub.attach_adapter(pretrained(), "subspace", bundle=str(folder), attributes=["texture"])
    assert {tuple(p.shape) for p in model.parameters() if p.requires_grad} == {(3, 3)}


def test_a_trained_adapter_restores_its_own_modules_and_lora(bundle, tmp_path):
    adapter = SubspaceAdapter(bundle)
    model = adapter.attach(pretrained(), targets=["qkv", "proj"], lora_rank=2)  # LoRA on proj only, no fc1 cores
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.normal_(std=0.05)
    expected = depth(model)
    adapter.save_pretrained(tmp_path / "run")
    restored = SubspaceAdapter.from_pretrained(tmp_path / "run")
    again = restored.attach(pretrained())
    assert sorted(restored.layers) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv", "blocks.2.attn.qkv"]
    assert restored.lora.modules == ["blocks.0.attn.proj", "blocks.1.attn.proj", "blocks.2.attn.proj"]
    assert torch.equal(depth(again), expected)
    fresh = SubspaceAdapter.from_pretrained(tmp_path / "run").attach(pretrained(), attributes=["texture"])
    assert all(not layer.core.any() for layer in SubspaceAdapter.of(fresh).layers.values())  # a new start


def test_a_trained_adapter_reloads_with_the_scale_it_was_trained_with(bundle, tmp_path):
    model = subspace_hub.attach_adapter(pretrained(), "subspace", bundle=bundle, scale=0.5)
    with torch.no_grad():
        for layer in SubspaceAdapter.of(model).layers.values():
            layer.core.normal_(std=0.1)
    expected = depth(model)
    folder = subspace_hub.save_adapter(model, tmp_path / "run")
    assert json.loads((folder / CONFIG_FILE).read_text())["scale"] == 0.5
    # every way back in: the adapter class, load_adapter, and attach_adapter naming the folder (its scale argument's
    # default of 2 must not replace the trained scale)
    reloaded = [
        SubspaceAdapter.from_pretrained(folder).attach(pretrained()),
        subspace_hub.load_adapter(folder, model=pretrained()),
        subspace_hub.attach_adapter(pretrained(), "subspace", bundle=str(folder)),
    ]
    for again in reloaded:
        assert SubspaceAdapter.of(again).scale == 0.5
        assert all(layer.scale == 0.5 for layer in SubspaceAdapter.of(again).layers.values())
        torch.testing.assert_close(depth(again), expected, atol=1e-6, rtol=1e-6)


def test_the_subspace_layer_checks_its_base_and_bases_and_keeps_them_out_of_the_state_dict():
    torch.manual_seed(0)
    basis = lambda n, k: torch.linalg.qr(torch.randn(n, k, dtype=torch.float64))[0]  # noqa: E731
    with pytest.raises(
        ConfigError, match=r"^blk: subspace adapters support Conv2d with groups=1 and zero padding only\.$"
    ):
        SubspaceLayer(torch.nn.Conv2d(4, 4, 3, groups=2), basis(4, 2), basis(18, 2), 2.0, "blk")
    with pytest.raises(ConfigError, match="groups=1 and zero padding only"):
        SubspaceLayer(torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), basis(4, 2), basis(36, 2), 2.0)
    with pytest.raises(ShapeMismatchError, match=r"bases fit a 5x6 weight, the model's layer is 4x6"):
        SubspaceLayer(torch.nn.Linear(6, 4), basis(5, 2), basis(6, 2), 2.0)  # only U wrong
    with pytest.raises(ShapeMismatchError, match=r"bases fit a 4x7 weight, the model's layer is 4x6"):
        SubspaceLayer(torch.nn.Linear(6, 4), basis(4, 2), basis(7, 2), 2.0)  # only V wrong
    # a non-square kernel with padding and dilation, in float64: the unmerged layer equals the merged one
    conv = torch.nn.Conv2d(3, 5, (3, 1), padding=(2, 1), dilation=(2, 1)).double()
    layer = SubspaceLayer(conv, basis(5, 2).float(), basis(3 * 3 * 1, 3).float(), 1.5, "conv")  # bases follow the layer
    assert layer.U.dtype == layer.V.dtype == layer.core.dtype == torch.float64
    assert set(layer.state_dict()) == {"core", "base_layer.weight", "base_layer.bias"}  # bases are not saved
    assert layer.merged is False
    with torch.no_grad():
        layer.core.normal_()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    unmerged = layer(x)
    merged_layer = layer.merge()
    assert layer.merged is True and merged_layer is conv
    torch.testing.assert_close(layer(x), unmerged)  # merged: no second update on top
    torch.testing.assert_close(conv(x), unmerged)


def test_subspace_adapter_config_bounds_and_errors_that_name_the_file(tmp_path):
    from subspace_hub.adapters.subspace.config import FORMAT_VERSION, SubspaceAdapterConfig, read_config

    for field, message in (("scale", "scale must be positive, got 0"), ("tol", "tol must be positive, got 0")):
        with pytest.raises(ConfigError, match=rf"^The subspace adapter's {message}\.$"):
            SubspaceAdapterConfig(**{field: 0})
    path = tmp_path / CONFIG_FILE
    path.write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(Exception, match=rf"^{path} uses subspace adapter format {FORMAT_VERSION + 1}; "):
        read_config(tmp_path)
    path.write_text(json.dumps({"format_version": FORMAT_VERSION, "scale": "big"}))
    with pytest.raises(ConfigError, match=rf"^{path}\.scale must be a number"):
        read_config(tmp_path)
