"""Whole-model extraction from real PEFT adapters, the bundle format, the report and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model

import subspace_hub
from subspace_hub.cli import main
from subspace_hub.errors import CheckpointError, CheckpointNotFoundError, ConfigError, SpecError
from subspace_hub.subspaces import SubspaceBundle, extract_bundle, load_lora, shared_subspace
from subspace_hub.subspaces.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, make_loras):
    root = tmp_path_factory.mktemp("loras")
    return {
        "texture": make_loras(root / "texture", 3, seed=0),
        "geometry": make_loras(root / "geometry", 3, seed=10),
    }


def test_load_lora_reads_peft_folders_with_scaling(adapters):
    path = adapters["texture"][0]
    checkpoint = load_lora(path)
    assert sorted(checkpoint.factors) == [f"blocks.{i}.{m}" for i in range(3) for m in ("attn.qkv", "mlp.fc1")]
    B, A = checkpoint.factors["blocks.0.attn.qkv"]
    assert B.shape == (96, 4) and A.shape == (4, 32)
    from safetensors.torch import load_file

    raw = load_file(str(path / "adapter_model.safetensors"))
    torch.testing.assert_close(B, raw["base_model.model.blocks.0.attn.qkv.lora_B.weight"] * 2.0)  # alpha / r = 8 / 4
    assert checkpoint.source["r"] == 4 and len(checkpoint.source["sha256"]) == 64


def test_rank_and_alpha_patterns_and_rslora(tmp_path, make_loras):
    [path] = make_loras(tmp_path, 1, seed=3, rank_pattern={"fc1": 2}, alpha_pattern={"fc1": 6}, use_rslora=True)
    checkpoint = load_lora(path)
    from safetensors.torch import load_file

    raw = load_file(str(path / "adapter_model.safetensors"))
    B, A = checkpoint.factors["blocks.1.mlp.fc1"]
    assert A.shape == (2, 32)
    torch.testing.assert_close(B, raw["base_model.model.blocks.1.mlp.fc1.lora_B.weight"] * (6 / 2**0.5))
    B, _ = checkpoint.factors["blocks.1.attn.qkv"]
    torch.testing.assert_close(B, raw["base_model.model.blocks.1.attn.qkv.lora_B.weight"] * (8 / 4**0.5))


def test_conv2d_loras_become_flattened_matrices(tmp_path):
    torch.manual_seed(0)
    model = subspace_hub.load_backbone("reference")
    peft_model = get_peft_model(
        model, LoraConfig(r=2, lora_alpha=2, target_modules=["patch_embed"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "conv")
    B, A = load_lora(tmp_path / "conv").factors["patch_embed"]
    assert B.shape == (32, 2) and A.shape == (2, 3 * 8 * 8)
    layer = peft_model.base_model.model.patch_embed
    delta = layer.get_delta_weight("default").reshape(32, -1)
    torch.testing.assert_close(B @ A, delta, atol=1e-6, rtol=1e-5)


def test_state_dicts_and_bad_sources(tmp_path):
    state = {
        "blocks.0.attn.qkv.lora_A.weight": torch.randn(2, 8),
        "blocks.0.attn.qkv.lora_B.weight": torch.randn(24, 2),
    }
    checkpoint = load_lora(state, scaling=0.5)
    torch.testing.assert_close(
        checkpoint.factors["blocks.0.attn.qkv"][0], state["blocks.0.attn.qkv.lora_B.weight"] * 0.5
    )
    with pytest.raises(CheckpointError, match="lora_B is missing"):
        load_lora({"m.lora_A.weight": torch.randn(2, 3)})
    with pytest.raises(CheckpointError, match="holds no LoRA weights"):
        load_lora({"weight": torch.randn(2, 3)})
    with pytest.raises(ConfigError, match="several adapters"):
        load_lora(
            {
                "m.lora_A.a.weight": torch.randn(1, 2),
                "m.lora_B.a.weight": torch.randn(2, 1),
                "m.lora_A.b.weight": torch.randn(1, 2),
                "m.lora_B.b.weight": torch.randn(2, 1),
            }
        )
    with pytest.raises(CheckpointNotFoundError):
        load_lora(tmp_path / "nowhere")


def test_extract_bundle_matches_per_module_extraction(adapters):
    bundle = extract_bundle(adapters, d=3, progress=False, info={"backbone": "reference"})
    assert bundle.attribute_names == ["texture", "geometry"]
    assert len(bundle.modules()) == 6
    module = "blocks.2.mlp.fc1"
    factors = [load_lora(p).factors[module] for p in adapters["geometry"]]
    direct = shared_subspace(factors, 3)
    sub = bundle.attributes["geometry"][module]
    torch.testing.assert_close(sub.U, direct.U)
    torch.testing.assert_close(sub.V, direct.V)
    assert sub.U.shape == (128, 3) and sub.V.shape == (32, 3)
    assert bundle.info["extraction"]["d"] == 3 and bundle.info["backbone"] == "reference"
    assert [s["path"] for s in bundle.info["sources"]["texture"]] == [str(p) for p in adapters["texture"]]


def test_folders_of_adapters_targets_and_allocations(adapters):
    folder = adapters["texture"][0].parent
    bundle = extract_bundle({"texture": [folder]}, d=2, targets=[r"blocks\.[01]\..*qkv"], progress=False)
    assert list(bundle.attributes["texture"]) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    # each module's dimension is the one its own first-iteration spectrum gives, capped at max_dim
    from subspace_hub.subspaces import energy_dim, spectral_gap_dim

    gap = extract_bundle({"texture": [folder]}, allocation="gap", max_dim=6, progress=False)
    for module, sub in gap.attributes["texture"].items():
        cap = min(6, len(sub.spectrum))
        assert sub.d == min(spectral_gap_dim(sub.spectrum, 1, cap), cap), module
    energy = extract_bundle({"texture": [folder]}, allocation="energy", energy=0.5, progress=False)
    for module, sub in energy.attributes["texture"].items():
        assert sub.d == energy_dim(sub.spectrum, 0.5), module
    with pytest.raises(ConfigError, match="no adapted module matches"):
        extract_bundle({"texture": [folder]}, targets=["decoder"], progress=False)


def test_training_run_folders_count_as_their_adapters(adapters, tmp_path):
    """A folder of training runs (``run/adapter/``), as `subspace-hub build` leaves them, is a valid source."""
    import shutil

    from subspace_hub.subspaces.lora_io import expand_sources

    for i, adapter in enumerate(adapters["texture"]):
        shutil.copytree(adapter, tmp_path / "runs" / f"lora-{i}" / "adapter")
        (tmp_path / "runs" / f"lora-{i}" / "metrics.csv").write_text("step\n")
    (tmp_path / "runs" / "notes").mkdir()  # a folder without an adapter is passed over
    expected = [tmp_path / "runs" / f"lora-{i}" / "adapter" for i in range(3)]
    assert expand_sources(tmp_path / "runs") == expected
    assert expand_sources(tmp_path / "runs" / "lora-1") == [expected[1]]
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(CheckpointNotFoundError, match="holds no LoRA adapter: give an adapter folder"):
        expand_sources(tmp_path / "empty")


def test_mismatched_ensembles_are_refused(adapters, tmp_path, make_loras):
    [other] = make_loras(tmp_path, 1, seed=30, targets=("qkv",))
    with pytest.raises(ConfigError, match="adapts other modules than LoRA 0"):
        extract_bundle({"texture": [*adapters["texture"], other]}, progress=False)
    with pytest.raises(SpecError, match="not a valid slug"):
        extract_bundle({"Texture Maps": adapters["texture"]}, progress=False)


def test_bundle_round_trip(adapters, tmp_path):
    bundle = extract_bundle(adapters, d=2, progress=False)
    folder = bundle.save(tmp_path / "bundle")
    assert sorted(p.name for p in folder.iterdir()) == ["subspace_config.json", "subspaces.safetensors"]
    loaded = SubspaceBundle.load(folder)
    assert loaded.dims() == bundle.dims()
    for attribute, module, sub in bundle.items():
        torch.testing.assert_close(loaded.attributes[attribute][module].U, sub.U.float())
        assert loaded.attributes[attribute][module].iterations == sub.iterations
    config = json.loads((folder / "subspace_config.json").read_text())
    assert config["format_version"] == 1 and config["library_version"] == subspace_hub.__version__
    with pytest.raises(CheckpointNotFoundError, match="is not a subspace bundle"):
        SubspaceBundle.load(tmp_path)


def test_report_writes_figures_and_summaries(adapters, tmp_path):
    bundle = extract_bundle(adapters, d=2, progress=False)
    summary = write_report(bundle, tmp_path / "report", progress=False)
    files = summary["files"]
    assert "max_singular_value.png" in files and "orthogonality/texture__geometry.png" in files
    assert "spectra/texture/blocks.N.attn.qkv.png" in files and "spectra/geometry/blocks.N.mlp.fc1.png" in files
    for name in files:
        assert (tmp_path / "report" / name).read_bytes()[:8] == PNG
    data = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert data["attributes"]["texture"]["modules"] == 6 and data["attributes"]["texture"]["total_dims"] == 12
    pair = data["orthogonality"]["texture__geometry"]["blocks.*.attn.qkv"]
    # the smallest orthogonality eigenvalue of each qkv module (both sides), their mean and minimum over the blocks
    from subspace_hub.subspaces import orthogonality_eigenvalues

    for side, basis in (("out", "U"), ("in", "V")):
        smallest = [
            float(
                orthogonality_eigenvalues(
                    getattr(bundle.attributes["texture"][m], basis), getattr(bundle.attributes["geometry"][m], basis)
                ).min()
            )
            for m in (f"blocks.{i}.attn.qkv" for i in range(3))
        ]
        assert pair[side]["min_eigenvalue"] == pytest.approx(min(smallest), abs=1e-6)
        assert pair[side]["mean_min_eigenvalue"] == pytest.approx(sum(smallest) / 3, abs=1e-6)
    markdown = (tmp_path / "report" / "summary.md").read_text()
    assert "| texture | 6 | 12 |" in markdown and "texture / geometry" in markdown


def test_cli_extract_and_analyze(adapters, tmp_path, capsys):
    texture = ",".join(str(p) for p in adapters["texture"])
    geometry = str(adapters["geometry"][0].parent)
    code = main(
        [
            "extract",
            "--attribute",
            f"texture={texture}",
            "--attribute",
            f"geometry={geometry}",
            "--d",
            "2",
            "--out",
            str(tmp_path / "b"),
            "--backbone",
            "reference",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "texture: 6 modules, 12 dimensions" in out and f"Wrote {tmp_path / 'b'}" in out
    assert SubspaceBundle.load(tmp_path / "b").info["backbone"] == "reference"
    assert main(["analyze", str(tmp_path / "b")]) == 0
    assert "summary.json and summary.md" in capsys.readouterr().out
    assert (tmp_path / "b" / "analysis" / "summary.md").is_file()
    assert main(["extract", "--attribute", "texture", "--out", str(tmp_path / "c")]) == 1
    assert "--attribute expects NAME=PATH" in capsys.readouterr().err
