"""The subspace adapter's options reaching where they act: random bundles (seed, d, targets, the flags that mark
them), ``attach_subspace`` with each kind of bundle, restriction to layers, LoRA beside the subspaces, and what a
saved adapter writes."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open

import subspace_hub
from subspace_hub import SubspaceAdapter
from subspace_hub.adapters.subspace import CONFIG_FILE, SubspaceLayer
from subspace_hub.adapters.subspace.config import WEIGHTS_FILE
from subspace_hub.adapters.subspace.model import attach_subspace
from subspace_hub.adapters.subspace.synthetic import random_like, synthetic_bundle
from subspace_hub.errors import ConfigError


def backbone():
    torch.manual_seed(0)
    return subspace_hub.load_backbone("reference", config={"depth": 3})


def bases(bundle):
    return {(a, m): (s.U, s.V) for a, m, s in bundle.items()}


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1]) for k in a)


def test_synthetic_bundles_are_seeded_shaped_by_the_model_and_marked():
    model = backbone()
    default = synthetic_bundle(model)
    assert same(bases(default), bases(synthetic_bundle(model, ("texture", "geometry"), 2, seed=0)))
    assert same(bases(default), bases(synthetic_bundle(model)))  # a seeded generator: the same bases every time
    assert not same(bases(default), bases(synthetic_bundle(model, seed=1)))
    assert default.info == {"synthetic": True}
    qkv = default.attributes["texture"]["blocks.0.attn.qkv"]
    assert qkv.U.shape == (96, 2) and qkv.V.shape == (32, 2)
    torch.testing.assert_close(qkv.U.T @ qkv.U, torch.eye(2), rtol=0, atol=1e-6)
    wide = synthetic_bundle(model, ("texture",), 40)  # d above a module's smaller side: capped at it
    assert wide.attributes["texture"]["blocks.0.attn.qkv"].U.shape == (96, 32)  # 96 x 32: its input width
    assert wide.attributes["texture"]["blocks.0.mlp.fc2"].V.shape == (128, 32)  # 32 x 128: its output width
    narrow = synthetic_bundle(model, ("texture",), targets=["blocks.1.mlp.fc1"])
    assert list(narrow.attributes["texture"]) == ["blocks.1.mlp.fc1"]


def test_random_like_keeps_sizes_and_marks_itself():
    model = backbone()
    mined = synthetic_bundle(model, d=3, seed=5)
    mined.info = {"backbone": "reference"}
    control = random_like(mined, seed=7)
    assert control.info == {"backbone": "reference", "synthetic": True, "random_like": True, "seed": 7}
    for (attribute, module, sub), (_, _, twin) in zip(mined.items(), control.items(), strict=True):
        assert (twin.U.shape, twin.V.shape) == (sub.U.shape, sub.V.shape), (attribute, module)
    assert same(bases(control), bases(random_like(mined, seed=7)))
    assert not same(bases(control), bases(random_like(mined, seed=8)))


def wrapped(model) -> dict[str, SubspaceLayer]:
    return {name: m for name, m in model.named_modules() if isinstance(m, SubspaceLayer)}


def test_attach_subspace_takes_a_bundle_an_adapter_or_a_folder_with_their_options(tmp_path):
    bundle = synthetic_bundle(backbone(), d=2)
    default = attach_subspace(backbone(), bundle=bundle)
    assert SubspaceAdapter.of(default).scale == 2.0 and SubspaceAdapter.of(default).config.combine == "qr"
    options = attach_subspace(backbone(), bundle=bundle, scale=0.5, combine="loewdin", tol=1e-3)
    config = SubspaceAdapter.of(options).config
    assert (config.scale, config.combine, config.tol) == (0.5, "loewdin", 1e-3)
    adapter = SubspaceAdapter(bundle, scale=3.0)
    assert SubspaceAdapter.of(attach_subspace(backbone(), bundle=adapter)) is adapter
    bundle.save(tmp_path / "bundle")
    loaded = SubspaceAdapter.of(attach_subspace(backbone(), bundle=tmp_path / "bundle", scale=0.25, tol=1e-4))
    assert (loaded.config.scale, loaded.config.combine, loaded.config.tol) == (0.25, "qr", 1e-4)
    stacked = SubspaceAdapter.of(attach_subspace(backbone(), bundle=tmp_path / "bundle", combine="loewdin"))
    assert stacked.config.combine == "loewdin"
    only = attach_subspace(backbone(), bundle=bundle, targets=["blocks.2.mlp.fc2"])
    assert list(wrapped(only)) == ["blocks.2.mlp.fc2"]
    first = attach_subspace(backbone(), bundle=bundle, layers=[0])
    assert sorted(wrapped(first)) == ["blocks.0.attn.proj", "blocks.0.attn.qkv", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]


def lora_alpha(model) -> float:
    from peft.tuners.lora import LoraLayer

    layer = next(m for m in model.modules() if isinstance(m, LoraLayer))
    return layer.lora_alpha["default"]


def test_lora_goes_on_the_targets_without_bases_with_alpha_twice_the_rank():
    model = backbone()
    bundle = synthetic_bundle(model, targets=["blocks.0.mlp.fc1", "blocks.0.mlp.fc2"])
    adapted = attach_subspace(backbone(), bundle=bundle, lora_rank=4)
    assert lora_alpha(adapted) == 8
    adapter = SubspaceAdapter.of(adapted)
    assert adapter.lora.rank == 4 and "blocks.0.mlp.fc1" not in adapter.lora.modules
    assert "blocks.1.attn.qkv" in adapter.lora.modules  # the backbone's default targets, less those with bases
    assert lora_alpha(attach_subspace(backbone(), bundle=bundle, lora_rank=4, lora_alpha=3.0)) == 3.0
    restricted = attach_subspace(backbone(), bundle=bundle, layers=[0], lora_rank=2)
    assert sorted(SubspaceAdapter.of(restricted).lora.modules) == ["blocks.0.attn.proj", "blocks.0.attn.qkv"]
    plain = attach_subspace(backbone(), bundle=bundle, layers=[0])  # no rank: no LoRA, whatever lacks bases
    assert SubspaceAdapter.of(plain).lora is None
    with pytest.raises(ConfigError) as caught:
        attach_subspace(backbone(), bundle=bundle, layers=[2])
    assert str(caught.value) == "No targeted module has subspace bases; check targets= and the bundle's modules."


def test_a_saved_adapter_writes_pt_metadata_its_marker_and_its_card(tmp_path):
    bundle = synthetic_bundle(backbone(), d=2, targets=["blocks.0.mlp.fc1"])
    model = attach_subspace(backbone(), bundle=bundle, lora_rank=2)
    SubspaceAdapter.of(model).save_pretrained(tmp_path / "adapter")
    weights = next(tmp_path.joinpath("adapter").glob("*.safetensors"))
    with safe_open(str(weights), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert any(key.startswith("lora.") for key in f.keys())  # noqa: SIM118  # the LoRA weights travel with the cores
    marker = json.loads((tmp_path / "adapter" / "subspace_hub_adapter.json").read_text())
    assert marker["method"] == "subspace" and marker["backbone"]["name"] == "reference"
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert "subspace" in card and "reference" in card


def test_combined_bases_use_the_configured_method_and_tolerance():
    from subspace_hub.subspaces.combine import combine_bases

    bundle = synthetic_bundle(backbone(), d=2, targets=["blocks.0.mlp.fc1"])
    same_u = bundle.attributes["texture"]["blocks.0.mlp.fc1"]
    bundle.attributes["geometry"]["blocks.0.mlp.fc1"].U = same_u.U.clone()  # geometry's output basis repeats texture's
    for method, tol in (("qr", 1e-6), ("loewdin", 1e-3)):
        adapter = SubspaceAdapter(bundle, combine=method, tol=tol)
        combined = adapter.combined_bases()["blocks.0.mlp.fc1"]
        u = combine_bases([same_u.U, same_u.U], ["texture", "geometry"], method=method, tol=tol)
        torch.testing.assert_close(combined.U, u.Q.float(), rtol=0, atol=0)
        assert combined.dropped_out == u.dropped and combined.dropped_out  # the repeat is dropped by name
        assert combined.attributes == ["texture", "geometry"]


def test_the_adapters_refusals_and_report():
    with pytest.raises(ConfigError, match=r"^The subspace bundle holds no attributes\.$"):
        SubspaceAdapter(type(synthetic_bundle(backbone()))())
    with pytest.raises(ConfigError, match=r"^No SubspaceAdapter is attached to this model\.$"):
        SubspaceAdapter.of(backbone())
    bundle = synthetic_bundle(backbone(), d=2)
    bundle.info = {"backbone": "reference"}
    adapter = SubspaceAdapter(bundle)
    adapter.attach(backbone())
    with pytest.raises(ConfigError) as caught:
        adapter.attach(backbone())
    assert str(caught.value) == (
        "This SubspaceAdapter is already attached to a model; load it again to attach it to another."
    )
    small = subspace_hub.load_backbone("reference", config={"depth": 1})
    with pytest.raises(ConfigError) as caught:
        SubspaceAdapter(bundle).attach(small)
    assert str(caught.value) == (
        "The bundle has bases for 8 module(s) the model lacks (e.g. blocks.1.attn.proj); it was extracted for "
        "backbone 'reference'. Load the backbone the bundle was made for."
    )
    bundle.info = {}
    with pytest.raises(ConfigError, match=r"model lacks \(e\.g\. blocks\.1\.attn\.proj\)\. Load the backbone"):
        SubspaceAdapter(bundle).attach(small)
    report = adapter.report().splitlines()
    assert report[0] == "Subspace adapter: attributes texture, geometry, scale 2.0, combine qr"
    assert report[1] == "cores: 4x4 on 12 module(s); 192 trainable core parameters" and len(report) == 2


def test_a_reloaded_adapter_is_frozen_but_its_cores_and_keeps_its_attributes(tmp_path):
    bundle = synthetic_bundle(backbone(), ("texture", "geometry", "lighting"), d=2)
    for module, sub in bundle.attributes["lighting"].items():  # lighting repeats geometry: columns get dropped
        sub.U, sub.V = bundle.attributes["geometry"][module].U.clone(), bundle.attributes["geometry"][module].V.clone()
    model = attach_subspace(backbone(), bundle=bundle, attributes=["geometry", "lighting"])
    for layer in wrapped(model).values():
        layer.core.data.normal_()
    saved = SubspaceAdapter.of(model)
    saved.save_pretrained(tmp_path / "trained")
    reloaded = attach_subspace(backbone(), bundle=tmp_path / "trained")
    adapter = SubspaceAdapter.of(reloaded)
    assert adapter.attributes == ["geometry", "lighting"] and adapter.trained
    trainable = {n for n, p in reloaded.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.core" for name in wrapped(reloaded)}
    for name, layer in wrapped(reloaded).items():
        bases, before = adapter.bases[name], saved.bases[name]
        assert bases.attributes == ["geometry", "lighting"], name
        assert (bases.dropped_out, bases.dropped_in) == (before.dropped_out, before.dropped_in) != ([], []), name
        torch.testing.assert_close(layer.core, wrapped(model)[name].core, rtol=0, atol=0)
    assert "dropped 2 output / 2 input columns as dependent" in adapter.report()


def test_merging_unloads_the_adapter_and_forgets_the_model():
    bundle = synthetic_bundle(backbone(), d=2)
    with pytest.raises(ConfigError, match=r"^The adapter is not attached to a model\.$"):
        SubspaceAdapter(bundle).merge_and_unload()
    model = attach_subspace(backbone(), bundle=bundle)
    adapter = SubspaceAdapter.of(model)
    merged = adapter.merge_and_unload()
    assert wrapped(merged) == {} and adapter.layers == {} and adapter.model is None
    with pytest.raises(ConfigError, match=r"^No SubspaceAdapter is attached to this model\.$"):
        SubspaceAdapter.of(merged)
    with pytest.raises(ConfigError, match=r"^The adapter is not attached to a model\.$"):
        adapter.merge_and_unload()


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry server on 127.0.0.1 that this test's Hub calls go to, with a token that writes to ``org``;
    yields its root."""
    from subspace_hub.hub.server import RegistryServer
    from subspace_hub.hub.server.auth import TokenBook

    root = tmp_path / "registry"
    token = TokenBook.load(root).add("org", write=("org",))
    server = RegistryServer(root)
    monkeypatch.setenv("SUBSPACE_HUB_ENDPOINT", server.start())
    monkeypatch.setenv("SUBSPACE_HUB_TOKEN", token)
    try:
        yield root
    finally:
        server.stop()


def test_push_to_hub_is_public_by_default_with_its_commit_message(registry):
    from subspace_hub.hub.server.storage import RepoStore

    adapter = SubspaceAdapter.of(attach_subspace(backbone(), bundle=synthetic_bundle(backbone(), d=2)))
    adapter.push_to_hub("org/public", tag="v1")
    adapter.push_to_hub("org/hidden", private=True, message="Cores after 10 steps")
    store = RepoStore(registry)
    try:
        assert store.repo_meta("model", "org/public")["private"] is False
        assert store.repo_meta("model", "org/hidden")["private"] is True
        assert store.history("model", "org/public", "v1")[0].title == "Upload subspace adapter"
        assert store.history("model", "org/hidden", None)[0].title == "Cores after 10 steps"
        files = store.commit("model", "org/public", store.resolve("model", "org/public", "v1")).files
        assert {CONFIG_FILE, WEIGHTS_FILE} <= set(files)  # the adapter as save_pretrained writes it
    finally:
        store.close()


def test_both_sides_combine_with_the_configured_method_and_a_one_sided_drop_is_reported():
    from subspace_hub.subspaces.combine import combine_bases

    bundle = synthetic_bundle(backbone(), d=2, targets=["blocks.0.mlp.fc1"])
    texture, geometry = (bundle.attributes[a]["blocks.0.mlp.fc1"] for a in ("texture", "geometry"))
    geometry.U = texture.U.clone()  # the output side repeats texture's, the input side does not
    for method in ("qr", "loewdin"):
        combined = SubspaceAdapter(bundle, combine=method, tol=1e-3).combined_bases()["blocks.0.mlp.fc1"]
        v = combine_bases([texture.V, geometry.V], method=method, tol=1e-3)
        torch.testing.assert_close(combined.V, v.Q.float(), rtol=0, atol=0)
        assert (combined.dropped_out, combined.dropped_in) == (2, 0)
    model = attach_subspace(backbone(), bundle=bundle)
    assert SubspaceAdapter.of(model).report().splitlines()[2] == (
        "  blocks.0.mlp.fc1: dropped 2 output / 0 input columns as dependent"
    )


def _orthonormal(rows: int, columns: int, seed: int) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed)))[0]


def test_targets_reach_modules_the_backbone_keeps_frozen_by_default():
    from subspace_hub.subspaces.bundle import ModuleSubspace, SubspaceBundle

    # the reference backbone freezes its patch embedding (a 3 -> 32 convolution with 8 x 8 kernels: 192 inputs)
    sub = ModuleSubspace(
        U=_orthonormal(32, 2, 0),
        V=_orthonormal(192, 2, 1),
        S=torch.ones(2),
        spectrum=torch.ones(2),
        weights=torch.ones(2),
        residuals=torch.zeros(2),
    )
    bundle = SubspaceBundle(attributes={"texture": {"patch_embed": sub, "blocks.0.mlp.fc1": sub}})
    bundle.attributes["texture"]["blocks.0.mlp.fc1"] = synthetic_bundle(backbone(), ("texture",), 2).attributes[
        "texture"
    ]["blocks.0.mlp.fc1"]
    model = attach_subspace(backbone(), bundle=bundle, targets=["patch_embed"])
    assert list(wrapped(model)) == ["patch_embed"]
    both = attach_subspace(backbone(), bundle=bundle, targets=["patch_embed", r"blocks\.0\.mlp\.fc1"])
    assert sorted(wrapped(both)) == ["blocks.0.mlp.fc1", "patch_embed"]


def test_the_lora_beside_the_subspaces_has_the_rank_asked_for():
    bundle = synthetic_bundle(backbone(), targets=["blocks.0.mlp.fc1"])
    model = attach_subspace(backbone(), bundle=bundle, lora_rank=3)
    layer = model.get_submodule("blocks.1.attn.qkv")
    assert layer.r["default"] == 3 and layer.lora_A["default"].weight.shape == (3, 32)
    assert layer.scaling["default"] == 2.0  # alpha 2 * rank over the rank


def test_a_saved_adapter_records_its_backbone_and_matches_save_adapter(tmp_path):
    bundle = synthetic_bundle(backbone(), d=2, targets=["blocks.0.mlp.fc1"])
    adapter = SubspaceAdapter(bundle)
    assert adapter.attributes == [] and adapter.model is None  # nothing attached yet
    model = adapter.attach(backbone())
    adapter.save_pretrained(tmp_path / "direct")
    subspace_hub.save_adapter(model, tmp_path / "generic")
    for name in ("README.md", "subspace_hub_adapter.json", CONFIG_FILE):
        assert (tmp_path / "direct" / name).read_text() == (tmp_path / "generic" / name).read_text(), name
    marker = json.loads((tmp_path / "direct" / "subspace_hub_adapter.json").read_text())
    assert (marker["method"], marker["options"]) == ("subspace", {})
    config = json.loads((tmp_path / "direct" / CONFIG_FILE).read_text())
    assert config["backbone"] == marker["backbone"] and config["backbone"]["name"] == "reference"
    card = (tmp_path / "direct" / "README.md").read_text()
    assert "- subspace\n" in card and "- reference\n" in card  # the card's tags: the method and the backbone


def test_random_like_is_seeded_with_zero_by_default():
    mined = synthetic_bundle(backbone(), d=2, seed=3)
    assert same(bases(random_like(mined)), bases(random_like(mined, seed=0)))
    assert random_like(mined).info["seed"] == 0


def test_attach_subspace_takes_a_hub_repo_at_a_revision(registry):
    SubspaceAdapter(synthetic_bundle(backbone(), d=2)).push_to_hub("org/bases", tag="v1")
    SubspaceAdapter(synthetic_bundle(backbone(), d=3)).push_to_hub("org/bases")
    core = "blocks.0.mlp.fc1"
    assert wrapped(attach_subspace(backbone(), bundle="org/bases", revision="v1"))[core].core.shape == (4, 4)
    assert wrapped(attach_subspace(backbone(), bundle="org/bases"))[core].core.shape == (6, 6)


def test_a_subspace_adapter_of_a_plain_module_saves_without_a_backbone_and_reloads_into_one_given(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    fresh = copy.deepcopy(net)
    adapter = SubspaceAdapter(synthetic_bundle(net, targets=["0", "2"]))
    adapted = adapter.attach(net)
    with torch.no_grad():
        for layer in adapter.layers.values():
            layer.core.normal_()
    adapter.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / CONFIG_FILE).read_text())["backbone"] is None
    with pytest.raises(ConfigError, match="does not record its backbone; pass model="):
        subspace_hub.load_adapter(tmp_path / "saved")
    reloaded = subspace_hub.load_adapter(tmp_path / "saved", model=fresh)
    x = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), adapted(x))
