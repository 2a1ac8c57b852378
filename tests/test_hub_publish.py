"""Publishing end to end on 127.0.0.1 with the real clients: `subspace-hub push` of registry entries at two
versions, `SubspaceAdapter.from_pretrained` at each tag, dataset repos read by `datasets.load_dataset` (also
streaming), PEFT checkpoints read by `PeftModel.from_pretrained`; the same on the embedded default registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import subspace_hub
from subspace_hub import SubspaceAdapter
from subspace_hub.cli import main
from subspace_hub.errors import ConfigError
from subspace_hub.hub import push_folder
from subspace_hub.hub.server import RegistryServer
from subspace_hub.hub.server.auth import TokenBook
from subspace_hub.publishing.entries import check_bundle, load_entry
from subspace_hub.subspaces import SubspaceBundle, extract_bundle

ENTRY = {
    "name": "ref-tex-geo",
    "repo_id": "org/ref-subspaces",
    "version": "1.0.0",
    "license": "apache-2.0",
    "backbone": {"name": "reference", "config": "tiny"},
    "attributes": {
        "texture": {
            "dataset": {"family": "texture", "scenes": 4},
            "lora": {"count": 2, "rank": 4, "targets": ["qkv", "fc1"]},
        },
        "geometry": {
            "dataset": {"family": "geometry", "scenes": 4},
            "lora": {"count": 2, "rank": 4, "targets": ["qkv", "fc1"]},
        },
    },
    "extraction": {"d": 2},
    "evaluation": [{"task": "depth-estimation", "dataset": "synthetic", "metric": "abs_rel", "value": 0.123}],
    "bundle": "bundles/ref-tex-geo",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory, make_loras):
    """A project folder with registry/, cards/ and a built bundle made from real PEFT LoRAs."""
    root = tmp_path_factory.mktemp("project")
    (root / "registry").mkdir()
    (root / "cards").mkdir()
    (root / "registry" / "ref-tex-geo.yaml").write_text(yaml.safe_dump(ENTRY))
    (root / "cards" / "ref-tex-geo.md").write_text("# Reference subspaces\n\nA test card written by hand.\n")
    loras = {
        "texture": make_loras(root / "loras" / "texture", 2, seed=0),
        "geometry": make_loras(root / "loras" / "geometry", 2, seed=10),
    }
    extract_bundle(loras, d=2, progress=False, info={"backbone": "reference"}).save(root / "bundles" / "ref-tex-geo")
    other = {
        "texture": make_loras(root / "loras2" / "texture", 2, seed=20),
        "geometry": make_loras(root / "loras2" / "geometry", 2, seed=30),
    }
    extract_bundle(other, d=2, progress=False, info={"backbone": "reference"}).save(root / "bundles" / "second")
    return root


@pytest.fixture
def server(tmp_path, monkeypatch):
    root = tmp_path / "server"
    token = TokenBook.load(root).add("org", write=("org",))
    registry = RegistryServer(root)
    url = registry.start()
    monkeypatch.setenv("SUBSPACE_HUB_ENDPOINT", url)
    monkeypatch.setenv("SUBSPACE_HUB_TOKEN", token)
    yield url, token
    registry.stop()


def bundle_tensors(path) -> dict:
    bundle = SubspaceBundle.load(path)
    return {(a, m): s.U for a, m, s in bundle.items()}


def same_bases(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def push_twice_and_pull(project: Path, capsys) -> None:
    """push v1.0.0, push another bundle as v1.1.0, refuse v1.1.0 again, pull each tag."""
    os.chdir(project)
    assert main(["push", "ref-tex-geo"]) == 0
    first_out = capsys.readouterr().out
    assert "Pushed org/ref-subspaces@v1.0.0" in first_out
    assert main(["push", "ref-tex-geo", "--version", "1.1.0", "--bundle", "bundles/second"]) == 0
    assert "@v1.1.0" in capsys.readouterr().out
    assert main(["push", "ref-tex-geo", "--version", "1.1.0", "--bundle", "bundles/second"]) == 1
    assert "already has a tag 'v1.1.0'" in capsys.readouterr().err
    v1 = SubspaceAdapter.from_pretrained("org/ref-subspaces", revision="v1.0.0")
    v11 = SubspaceAdapter.from_pretrained("org/ref-subspaces", revision="v1.1.0")
    assert same_bases(
        {(a, m): s.U for a, m, s in v1.bundle.items()}, bundle_tensors(project / "bundles" / "ref-tex-geo")
    )
    assert same_bases({(a, m): s.U for a, m, s in v11.bundle.items()}, bundle_tensors(project / "bundles" / "second"))
    model = v1.attach(subspace_hub.load_backbone("reference", config={"depth": 3}))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 6 * 16
    assert main(["pull", "org/ref-subspaces", "--revision", "v1.0.0"]) == 0
    folder = Path(capsys.readouterr().out.strip().split(" to ")[-1])
    assert (folder / "subspaces.safetensors").is_file() and (folder / "registry.yaml").is_file()
    figures = list((folder / "figures").rglob("*.png"))
    assert figures and (folder / "figures" / "summary.md").is_file()
    from huggingface_hub import ModelCard

    card = ModelCard((folder / "README.md").read_text())
    assert card.data.library_name == "subspace-hub" and card.data.license == "apache-2.0"
    assert card.data.eval_results[0].metric_value == 0.123 and "attribute-texture" in card.data.tags
    assert "A test card written by hand." in card.text and "| texture | 6 | 2-2 | 12 |" in card.text
    for figure in figures:  # every figure the card shows is in the repo
        assert str(figure.relative_to(folder)) in card.text


def test_push_and_pull_versions_through_a_registry_server(project, server, capsys, monkeypatch):
    monkeypatch.chdir(project)
    push_twice_and_pull(project, capsys)


def test_a_pull_reads_256_kib_at_a_time_and_gets_every_byte(server, tmp_path, monkeypatch):
    """huggingface_hub's HTTP library reads 64 KiB from the socket at a time; the client widens that to 256 KiB
    (a faster pull, BENCHMARKS.md) and never narrows a wider setting. Bytes across many reads arrive intact."""
    import importlib

    from subspace_hub.hub import download

    http11 = None
    for name in ("httpcore2._sync.http11", "httpcore._sync.http11"):
        try:
            http11 = importlib.import_module(name)
            break
        except ImportError:
            continue
    assert http11 is not None, "huggingface_hub's HTTP library was not found"
    monkeypatch.setattr(http11.HTTP11Connection, "READ_NUM_BYTES", 64 << 10)
    payload = os.urandom((3 << 20) + 12345)  # 13 reads of 256 KiB, the last one partial
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "weights.bin").write_bytes(payload)
    push_folder(tmp_path / "bundle", "org/big", tag="v1")
    monkeypatch.setenv("SUBSPACE_HUB_HOME", str(tmp_path / "home"))
    assert (download("org/big", revision="v1") / "weights.bin").read_bytes() == payload
    assert http11.HTTP11Connection.READ_NUM_BYTES == 256 << 10
    monkeypatch.setattr(http11.HTTP11Connection, "READ_NUM_BYTES", 1 << 20)
    download("org/big", revision="v1")
    assert http11.HTTP11Connection.READ_NUM_BYTES == 1 << 20


def test_push_and_pull_on_the_embedded_default(project, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SUBSPACE_HUB_ENDPOINT", raising=False)
    monkeypatch.setenv("SUBSPACE_HUB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(project)
    push_twice_and_pull(project, capsys)
    assert (tmp_path / "home" / "registry" / "repos" / "model" / "org" / "ref-subspaces" / "refs.json").is_file()
    adapter = SubspaceAdapter.from_pretrained("org/ref-subspaces", revision="v1.0.0")
    adapter.attach(subspace_hub.load_backbone("reference", config={"depth": 3}))
    pushed = adapter.push_to_hub("org/trained", tag="v0.1.0")
    assert "embedded registry" in pushed.describe()
    again = SubspaceAdapter.from_pretrained("org/trained", revision="v0.1.0")
    assert again.trained and again.config.attributes == ["texture", "geometry"]


def test_push_refuses_a_bundle_that_does_not_fit_its_entry(project, server, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    entry, _ = load_entry("ref-tex-geo")
    bundle = SubspaceBundle.load(project / "bundles" / "ref-tex-geo")
    bundle.info["extraction"]["d"] = 5
    bundle.save(tmp_path / "wrong")
    assert check_bundle(entry, SubspaceBundle.load(tmp_path / "wrong")) == [
        "the bundle was extracted with d=5, the entry says 2"
    ]
    from subspace_hub.publishing.publish import push

    with pytest.raises(
        ConfigError, match="does not match registry entry ref-tex-geo: the bundle was extracted with d=5"
    ):
        push("ref-tex-geo", bundle=tmp_path / "wrong")
    with pytest.raises(ConfigError, match="No registry entry 'nope'"):
        push("nope")


def run_python(code: str, url: str, token: str) -> str:
    env = {
        **os.environ,
        "HF_ENDPOINT": url,
        "HF_TOKEN": token,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_datasets_load_dataset_reads_pushed_synthetic_data(server, tmp_path, capsys):
    url, token = server
    from subspace_hub.data.export import GenerationSpec, generate

    spec = GenerationSpec(
        "texture",
        datasets=2,
        scenes=3,
        views=2,
        height=24,
        width=32,
        mesh_resolution=4,
        texture_size=32,
        texture_pool=4,
        test_fraction=0.34,
    )
    folder = generate(spec, tmp_path / "data", workers=1, progress=False)
    assert main(["data", "push", str(folder), "org/tiny-texture", "--tag", "v1"]) == 0
    assert "dataset repo" in capsys.readouterr().out
    out = run_python(
        """
        import datasets
        train = datasets.load_dataset("org/tiny-texture", "texture-001", split="train", revision="v1")
        stream = datasets.load_dataset("org/tiny-texture", "texture-000", split="test", streaming=True, revision="v1")
        row = next(iter(stream))
        print(len(train), train[0]["scene_id"], row["scene_id"], len(row["images"]))
        """,
        url,
        token,
    )
    assert out.split() == ["1", "texture-001/scene-00000", "texture-000/scene-00001", "2"]
    rows = subspace_hub.hub.load_dataset("org/tiny-texture", "texture-000", split="train")
    assert len(rows) == 1


def test_peft_checkpoints_push_and_load_with_peft(server, tmp_path):
    url, token = server
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = subspace_hub.load_backbone("reference")
    subspace_hub.save_backbone(base, tmp_path / "base")
    lora = get_peft_model(
        base, LoraConfig(r=2, lora_alpha=4, target_modules=["blocks.0.attn.qkv"], init_lora_weights=False)
    )
    lora.save_pretrained(tmp_path / "adapter")
    pushed = push_folder(tmp_path / "adapter", "org/lora-test", tag="v1")
    images = torch.rand(1, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = lora(images)["depth"]
    torch.save(images, tmp_path / "images.pt")
    out = run_python(
        f"""
        import torch, subspace_hub
        from peft import PeftModel
        base = subspace_hub.load_backbone("reference", pretrained={str(tmp_path / "base")!r})
        model = PeftModel.from_pretrained(base, "org/lora-test", revision="v1")
        with torch.no_grad():
            depth = model(torch.load({str(tmp_path / "images.pt")!r}))["depth"]
        torch.save(depth, {str(tmp_path / "depth.pt")!r})
        print("ok")
        """,
        url,
        token,
    )
    assert out.strip() == "ok" and pushed.tag == "v1"
    torch.testing.assert_close(torch.load(tmp_path / "depth.pt"), expected)


def test_registry_cli_lists_shows_and_validates(project, capsys, tmp_path):
    registry = str(project / "registry")
    assert main(["registry", "validate", "--registry", registry, "--bundles"]) == 0
    assert "ref-tex-geo: ok" in capsys.readouterr().out
    assert main(["registry", "list", "--registry", registry, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["repo_id"] == "org/ref-subspaces"
    assert main(["registry", "show", "ref-tex-geo", "--registry", registry]) == 0
    assert "repo_id: org/ref-subspaces" in capsys.readouterr().out
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.yaml").write_text(
        yaml.safe_dump({**ENTRY, "name": "bad", "version": "one", "repo_id": "no-slash", "extraction": {"dd": 2}})
    )
    assert main(["registry", "validate", "--registry", str(broken)]) == 1
    captured = capsys.readouterr()
    assert "Unknown" in captured.out and "'dd' (did you mean 'd'?)" in captured.out
    (broken / "bad.yaml").write_text(yaml.safe_dump({**ENTRY, "name": "bad", "version": "one", "repo_id": "no-slash"}))
    assert main(["registry", "validate", "--registry", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "repo_id 'no-slash' must look like namespace/name" in out and "version 'one' must be semantic" in out


def test_the_shipped_registry_entries_are_valid():
    root = Path(__file__).resolve().parents[1]
    for path in (root / "registry").glob("*.yaml"):
        entry, base = load_entry(path, root / "registry")
        assert entry.card_path(base).is_file(), f"{path.name}: its card is missing"


def test_datasets_and_peft_on_the_embedded_default(tmp_path, monkeypatch):
    from huggingface_hub import constants, hf_api
    from peft import LoraConfig, PeftModel, get_peft_model

    from subspace_hub.data.export import GenerationSpec, generate
    from subspace_hub.hub import configure_clients

    for name in ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_URL_HOSTS"):  # restored after the test
        monkeypatch.setattr(constants, name, getattr(constants, name))
    monkeypatch.setattr(hf_api.api, "endpoint", hf_api.api.endpoint)
    monkeypatch.setenv("HF_ENDPOINT", "unused")
    monkeypatch.setenv("HF_TOKEN", "unused")
    spec = GenerationSpec(
        "lighting",
        scenes=2,
        views=2,
        height=16,
        width=24,
        mesh_resolution=4,
        texture_size=16,
        texture_pool=2,
        test_fraction=0.0,
    )
    push_folder(
        generate(spec, tmp_path / "data", workers=1, progress=False), "me/lighting", repo_type="dataset", tag="v1"
    )
    assert len(subspace_hub.hub.load_dataset("me/lighting", "lighting-000", split="train", revision="v1")) == 2
    streamed = subspace_hub.hub.load_dataset(
        "me/lighting", "lighting-000", split="train", revision="v1", streaming=True
    )
    assert [row["scene_id"] for row in streamed] == ["lighting-000/scene-00000", "lighting-000/scene-00001"]
    torch.manual_seed(0)
    base = subspace_hub.load_backbone("reference")
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["blocks.1.mlp.fc1"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    push_folder(tmp_path / "adapter", "me/lora", tag="v1")
    target = configure_clients()
    assert target.embedded and target.url == constants.ENDPOINT
    torch.manual_seed(0)
    reloaded = PeftModel.from_pretrained(subspace_hub.load_backbone("reference"), "me/lora", revision="v1")
    images = torch.rand(1, 2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images)["depth"], lora(images)["depth"])


def test_evaluate_reads_a_dataset_repo_from_the_registry(tmp_path, capsys):
    from subspace_hub.data.export import GenerationSpec, generate

    spec = GenerationSpec(
        "lighting",
        scenes=2,
        views=2,
        height=16,
        width=24,
        mesh_resolution=4,
        texture_size=16,
        texture_pool=2,
        test_fraction=0.5,
    )
    push_folder(generate(spec, tmp_path / "data", workers=1, progress=False), "me/eval-data", repo_type="dataset")
    args = [
        "evaluate",
        "reference",
        "--data",
        "me/eval-data",
        "--data-config",
        "lighting-000",
        "--split",
        "test",
        "--metric",
        "depth",
        "--quiet",
    ]
    assert main(args) == 0
    assert "reference on me/eval-data (test): 1 scene(s)" in capsys.readouterr().out
