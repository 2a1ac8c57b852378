"""Regression tests of the paths a new user walks (issue 13), one group per finding. The bad-input table is
``tests/test_bad_inputs.py``, the README walk ``tests/test_readme_walk.py``, PiSSA on VGGT's own targets
``plugins/vggt/tests/test_adapters.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import tomllib
import torch
import yaml
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

import subspace_hub
from subspace_hub.cli import cli, main
from subspace_hub.errors import ConfigError
from subspace_hub.hub import default_client, push_folder
from subspace_hub.pipelines.train import read_metrics
from subspace_hub.publishing.publish import pull
from subspace_hub.subspaces import extract_bundle
from subspace_hub.testing import tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory, make_loras, reference_entry):
    """registry/ref-tex.yaml, its card and its built bundle (from real PEFT LoRAs) in build/ref-tex/bundle."""
    root = tmp_path_factory.mktemp("project")
    (root / "registry").mkdir()
    (root / "cards").mkdir()
    (root / "registry" / "ref-tex.yaml").write_text(yaml.safe_dump(reference_entry()))
    (root / "cards" / "ref-tex.md").write_text("# Reference subspaces\n\nWritten by hand.\n")
    make_loras(root / "build" / "ref-tex" / "loras" / "texture", 2, seed=0, config={"depth": 2})  # the tiny preset
    bundle = extract_bundle({"texture": [root / "build" / "ref-tex" / "loras" / "texture"]}, d=2, progress=False)
    bundle.save(root / "build" / "ref-tex" / "bundle")
    return root


@pytest.fixture
def data(tmp_path):
    return tiny_dataset(tmp_path / "data", height=32, width=40, scenes=3)


# -- PiSSA on targets narrower than its rank --------------------------------------------------------------------


def test_pissa_leaves_targets_narrower_than_its_rank_frozen_and_still_trains():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Conv2d(16, 2, 1), torch.nn.Linear(16, 16))
    with pytest.warns(UserWarning, match=r"pissa rank 4 exceeds min\(in, out\) of 1 target\(s\).*1 \(16 -> 2\)"):
        model = subspace_hub.attach_adapter(net, "pissa", rank=4, targets=["0", "1", "2"])
    assert sorted(model.peft_config["default"].target_modules) == ["0", "2"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and not any(p.requires_grad for p in model.base_model.model[1].parameters())
    with pytest.raises(ConfigError, match="exceeds min\\(in, out\\) of every target; choose a smaller rank"):
        subspace_hub.attach_adapter(torch.nn.Sequential(torch.nn.Linear(8, 2)), "pissa", rank=4, targets=["0"])


# -- a push is one commit plus its tag, or nothing; the version is the same everywhere ---------------------------


def test_a_push_with_a_bad_version_publishes_nothing(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    for version in ("bad version", "1.0", "v1.0.0.0"):
        assert main(["push", "ref-tex", "--version", version]) == 1
        assert "semantic" in capsys.readouterr().err
    assert not default_client().api.repo_exists("lab/ref-subspaces")


def test_a_version_override_is_stated_by_the_tag_the_card_and_registry_yaml(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert main(["push", "ref-tex", "--version", "1.2.0"]) == 0
    assert "lab/ref-subspaces@v1.2.0" in capsys.readouterr().out
    refs = default_client().api.list_repo_refs("lab/ref-subspaces")
    assert [tag.name for tag in refs.tags] == ["v1.2.0"]
    folder = pull("lab/ref-subspaces", revision="v1.2.0")
    assert yaml.safe_load((folder / "registry.yaml").read_text())["version"] == "1.2.0"
    card = (folder / "README.md").read_text()
    assert "1.2.0" in card and "1.0.0" not in card
    # The published provenance holds no local paths and names its backbone.
    info = json.loads((folder / "subspace_config.json").read_text())
    assert info["backbone"] == "reference"
    paths = [source["path"] for source in info["sources"]["texture"]]
    assert paths == ["loras/texture/lora-0", "loras/texture/lora-1"]
    # The same version again is refused, and leaves the repo as it was.
    assert main(["push", "ref-tex", "--version", "1.2.0"]) == 1
    assert "immutable" in capsys.readouterr().err
    after = default_client().api.list_repo_refs("lab/ref-subspaces")
    assert after.branches[0].target_commit == refs.branches[0].target_commit


# -- the default data fits the default backbone; a mismatch is caught before any work ----------------------------


def test_data_generate_defaults_to_518_pixels_and_checks_the_backbone_first(tmp_path, capsys):
    command = cli.commands["data"].commands["generate"]
    resolution = next(p for p in command.params if p.name == "resolution")
    assert resolution.default in ("518", 518)
    assert main(["data", "generate", "texture", "--backbone", "reference", "--resolution", "100", "--out", "x"]) == 1
    assert "multiples of 8" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_training_checks_the_image_size_against_the_backbone_before_writing(tmp_path, monkeypatch, capsys):
    data = tiny_dataset(tmp_path / "odd", height=36, width=44, scenes=3)  # not multiples of the 8-pixel patch
    args = ["train", "reference", "-c", "tiny", "--data", str(data), "--steps", "2", "--quiet", "--out", "run"]
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    assert "multiples of 8" in capsys.readouterr().err and not (tmp_path / "run").exists()


# -- an unfinished generation is marked and refused unless asked for ---------------------------------------------


def test_an_unfinished_generation_is_refused_until_it_is_finished_or_allowed(data, tmp_path, capsys):
    from subspace_hub.data import load_samples
    from subspace_hub.data.export import check_complete

    check_complete(data)
    shard = next(data.rglob("test-*.parquet"))
    saved = shard.read_bytes()
    shard.unlink()  # what a kill between two shards leaves
    with pytest.raises(ConfigError, match=r"unfinished generation \(1 of 2 shards missing\)"):
        load_samples(str(data), "train", "texture-000")
    assert len(load_samples(str(data), "train", "texture-000", allow_incomplete=True)) == 2  # the finished shard
    evaluate = ["evaluate", "reference", "-c", "tiny", "--data", str(data), "--split", "train", "--quiet"]
    assert main(evaluate) == 1 and "--allow-incomplete" in capsys.readouterr().err
    assert main([*evaluate, "--allow-incomplete", "--metric", "abs_rel"]) == 0
    run = ["train", "reference", "-c", "tiny", "--data", str(data), "--steps", "1", "--views", "2-4"]
    run += ["--max-images", "8", "--no-tensorboard", "--quiet", "--out", str(tmp_path / "run")]
    assert main(run) == 1 and "--allow-incomplete" in capsys.readouterr().err
    assert main([*run, "--allow-incomplete"]) == 0 and len(read_metrics(tmp_path / "run")) == 1
    every = [*run[:-1], str(tmp_path / "every"), "--data-config", "all", "--allow-incomplete"]
    assert main(every) == 0 and len(read_metrics(tmp_path / "every")) == 1
    assert main(["data", "push", str(data), "lab/half"]) == 1
    assert not default_client().api.repo_exists("lab/half", repo_type="dataset")
    shard.write_bytes(saved)
    check_complete(data)


# -- every saved adapter loads from a folder or a Hub repo, from anywhere ----------------------------------------


def _trained_reference(seed: int = 0):
    torch.manual_seed(seed)
    return subspace_hub.load_backbone("reference", config="tiny")


def _same_outputs(a, b) -> bool:
    spec = subspace_hub.plugins.get_backbone_spec("reference")
    torch.manual_seed(1)
    batch = spec.example_batch(a)
    with torch.no_grad():
        out_a, out_b = spec.run(a, batch), spec.run(b, batch)
    return all(torch.allclose(out_a[k], out_b[k], atol=1e-6) for k in out_a if torch.is_tensor(out_a[k]))


@pytest.mark.parametrize("writer", ["save_adapter", "subspace_save_pretrained", "peft_save_pretrained"])
def test_any_saved_adapter_loads_from_a_folder_or_a_hub_repo_from_another_directory(
    writer, project, tmp_path, monkeypatch
):
    model = _trained_reference()
    folder = tmp_path / "saved"
    if writer == "save_adapter":
        adapted = subspace_hub.attach_adapter(model, "lora", rank=2)
        torch.nn.init.normal_(next(p for n, p in adapted.named_parameters() if "lora_B" in n))
        subspace_hub.save_adapter(adapted, folder)
    elif writer == "subspace_save_pretrained":
        adapter = subspace_hub.SubspaceAdapter.from_pretrained(project / "build" / "ref-tex" / "bundle")
        adapted = adapter.attach(model, lora_rank=2)
        with torch.no_grad():
            for layer in adapter.layers.values():
                layer.core.normal_()
        adapter.save_pretrained(folder)
    else:
        adapted = get_peft_model(model, LoraConfig(r=2, target_modules=["qkv"], init_lora_weights=False))
        adapted.save_pretrained(folder)
    push_folder(folder, "lab/saved-adapter", tag="v1.0.0")
    later = tmp_path / "later"  # a later push to main with other trained weights: the tag still loads v1.0.0's
    shutil.copytree(folder, later)
    changed = 0
    for path in later.glob("*.safetensors"):
        tensors = load_file(str(path))
        for key in [k for k in tensors if "lora_B" in k or "core" in k]:
            tensors[key], changed = 2 * tensors[key] + 0.5, changed + 1
        save_file(tensors, str(path))
    assert changed
    push_folder(later, "lab/saved-adapter")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither the folder nor the recorded paths are relative to here
    for source, revision in ((folder, None), ("lab/saved-adapter", "v1.0.0")):
        loaded = subspace_hub.load_adapter(source, model=_trained_reference(), revision=revision)
        assert _same_outputs(adapted, loaded), (writer, source)
    assert not _same_outputs(adapted, subspace_hub.load_adapter("lab/saved-adapter", model=_trained_reference()))


def test_evaluate_takes_a_subspace_adapter_and_a_hub_adapter(project, data, tmp_path, capsys):
    adapter = subspace_hub.SubspaceAdapter.from_pretrained(project / "build" / "ref-tex" / "bundle")
    adapter.attach(subspace_hub.load_backbone("reference", config="tiny"), lora_rank=2)
    adapter.save_pretrained(tmp_path / "cores")
    adapter.push_to_hub("lab/cores", tag="v0.1.0")
    base = ["evaluate", "reference", "-c", "tiny", "--data", str(data), "--split", "test", "--metric", "abs_rel"]
    assert main([*base, "--adapter", str(tmp_path / "cores"), "--quiet"]) == 0
    capsys.readouterr()
    assert main([*base, "--adapter", "lab/cores", "--adapter-revision", "v0.1.0", "--quiet", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert "abs_rel" in json.dumps(scores["summary"])


def test_saved_peft_adapters_name_their_base_and_carry_a_real_card(tmp_path):
    model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference", config="tiny"), "lora", rank=2)
    subspace_hub.save_adapter(model, tmp_path / "lora")
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "reference"
    card = (tmp_path / "lora" / "README.md").read_text()
    assert "subspace-hub" in card and "lora" in card and "[More Information Needed]" not in card


# -- the embedded registry keeps its own download cache ----------------------------------------------------------


def test_the_embedded_registry_cache_is_apart_from_the_hugging_face_cache(tmp_path):
    published = tmp_path / "published"
    published.mkdir()
    (published / "weights.txt").write_text("embedded\n")
    push_folder(published, "my-lab/x")
    assert (subspace_hub.hub.download("my-lab/x") / "weights.txt").read_text() == "embedded\n"
    cache = default_client().cache_dir
    assert cache is not None and Path(os.environ["HF_HOME"]) not in cache.parents
    code = (
        "from huggingface_hub import hf_hub_download\n"
        "try:\n"
        "    hf_hub_download('my-lab/x', 'weights.txt')\n"
        "    print('found')\n"
        "except Exception as exc:\n"
        "    print('missing', type(exc).__name__)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("missing"), out


# -- a plugin reusing a taken name does not disable the commands -------------------------------------------------


def test_a_plugin_shadowing_a_builtin_name_leaves_every_command_working(distributions, good_plugin, capsys):
    distributions.add("subspace-hub-shadow", "subspace_hub_shadow", good_plugin(backbone="reference"))
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("subspace_hub_shadow"))
    assert "'reference' is registered twice" in row
    assert main(["params", "reference", "--lora-rank", "2"]) == 0


# -- CLI consistency ---------------------------------------------------------------------------------------------


def test_datasets_and_models_share_the_hub_nouns_and_flags(data, tmp_path, capsys):
    assert main(["data", "push", str(data), "lab/texture", "--tag", "v1.0.0"]) == 0
    assert main(["data", "pull", "lab/texture", "--revision", "v1.0.0", "--local-dir", str(tmp_path / "a")]) == 0
    assert main(["pull", "lab/texture", "--repo-type", "dataset", "--local-dir", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    for copy in ("a", "b"):
        assert sorted(p.name for p in (tmp_path / copy).rglob("*.parquet")) == sorted(
            p.name for p in data.rglob("*.parquet")
        )
    json_flags = {
        name: option.is_flag
        for name, command in _commands(cli)
        for option in command.params
        if isinstance(option, click.Option) and "--json" in option.opts
    }
    assert json_flags and all(json_flags.values()), json_flags  # --json is a flag everywhere; files go to --output


def _commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_option_and_argument_of_every_command_is_documented():
    undocumented = [
        f"{name} {'/'.join(option.opts)}"
        for name, command in _commands(cli)
        for option in command.params
        if isinstance(option, click.Option) and not option.help and option.name != "help"
    ]
    assert not undocumented
    assert all(command.help for _, command in _commands(cli))


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from subspace_hub.cli import main\n"
        "for args in (['--help'], ['train', '--help'], ['data', 'generate', '--help'], ['evaluate', '--help'],"
        " ['push', '--help'], ['extract', '--help'], ['build', '--help'], ['registry', 'serve', '--help']):\n"
        "    assert main(args) == 0\n"
        "print(sorted(m for m in ('torch', 'datasets', 'peft', 'accelerate') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# -- portability and dependencies --------------------------------------------------------------------------------


def test_no_module_imports_fcntl_or_transformers_and_neither_is_declared():
    sources = list((ROOT / "subspace_hub").rglob("*.py")) + list((ROOT / "plugins").rglob("*.py"))
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources
        if any(f"import {m}" in p.read_text() or f"from {m}" in p.read_text() for m in ("fcntl", "transformers"))
    ]
    assert not offenders
    declared = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "transformers" not in declared and "evaluate" not in declared  # evaluate is the [evaluate] extra


def test_shutil_is_enough_to_move_a_generated_folder(data, tmp_path):
    """A generated folder is self-contained: moved elsewhere it still loads and is still complete."""
    from subspace_hub.data import load_samples

    moved = Path(shutil.move(str(data), str(tmp_path / "moved")))
    assert len(load_samples(str(moved), "train", "texture-000")) == 2
