"""`subspace-hub build` then `push`: the registry entry drives generation, LoRA ensembles, extraction, analysis and
the staged repo; a second build skips every finished step; a changed recipe redoes exactly what depends on it.

The entry is the repository's `texture-geometry-microbaseline-tiny` at a reduced size (CI's budget), on the
pretrained small VGGT the vggt plugin ships."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import subspace_hub
from subspace_hub import SubspaceAdapter, plugins
from subspace_hub.cli import main
from subspace_hub.pipelines.build import build
from subspace_hub.subspaces import SubspaceBundle

ROOT = Path(__file__).resolve().parents[1]
NAME = "texture-geometry-microbaseline-tiny"
BASE = ROOT / "plugins" / "vggt" / "subspace_hub_vggt" / "checkpoints" / "vggt-tiny-synthetic"

pytestmark = pytest.mark.skipif(not (BASE / "model.safetensors").is_file(), reason="the shipped base is missing")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the repository's registry/ and cards/, the tiny entry made smaller still."""
    monkeypatch.delenv(plugins.ENV_LOAD_PLUGINS, raising=False)  # the VGGT plugin is installed next to the core
    plugins.reset_host()
    if "vggt" not in subspace_hub.list_components("backbone"):
        pytest.skip("the VGGT plugin is not installed")
    root = tmp_path / "project"
    shutil.copytree(ROOT / "registry", root / "registry")
    shutil.copytree(ROOT / "cards", root / "cards")
    path = root / "registry" / f"{NAME}.yaml"
    entry = yaml.safe_load(path.read_text())
    for recipe in entry["attributes"].values():
        recipe["dataset"].update(datasets=2, scenes=3, views=4, test_fraction=0.34)
        recipe["lora"].update(count=2, steps=4)
        recipe["lora"]["train"]["data"].update(max_views=4, max_images=8)
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
    monkeypatch.chdir(root)
    return root


def test_build_then_push_and_a_rebuild_skips_what_is_done(project, capsys):
    result = build(NAME, progress=False, log=lambda line: None)
    steps = ["data/texture", "lora/texture/0", "lora/texture/1", "data/geometry", "lora/geometry/0"]
    assert result.ran[:5] == steps and result.ran[-3:] == ["extract", "analyze", "stage"] and not result.skipped
    folder = project / "build" / NAME
    bundle = SubspaceBundle.load(folder / "bundle")
    assert bundle.attribute_names == ["texture", "geometry"] and len(bundle.info["sources"]["texture"]) == 2
    assert bundle.info["extraction"]["d"] == 2 and bundle.info["backbone"] == "vggt"
    assert (folder / "bundle" / "analysis" / "summary.json").is_file()
    card = (folder / "repo" / "README.md").read_text()
    assert "| texture | " in card and "`micro` cameras" in card
    trained = json.loads(
        (folder / "loras" / "texture" / "lora-1" / "adapter" / "subspace_hub_adapter.json").read_text()
    )
    assert trained["backbone"]["pretrained"] == "vggt-tiny-synthetic"  # rebuilt by name from anywhere
    seeds = {yaml.safe_load((run / "config.yaml").read_text())["seed"] for run in (folder / "loras").glob("*/lora-*")}
    assert len(seeds) == 4  # every LoRA of every attribute starts from its own initialisation

    again = build(NAME, progress=False, log=lambda line: None)
    assert again.ran == [] and len(again.skipped) == len(result.ran)

    assert main(["push", NAME]) == 0
    pushed = capsys.readouterr().out
    assert "@v0.1.0" in pushed
    pulled = SubspaceAdapter.from_pretrained("subspace-hub/vggt-tiny-texture-geometry-microbaseline", revision="v0.1.0")
    assert pulled.bundle.dims() == bundle.dims()


def test_a_changed_recipe_redoes_what_depends_on_it_and_a_lost_run_is_retrained(project):
    build(NAME, progress=False, log=lambda line: None)
    path = project / "registry" / f"{NAME}.yaml"
    entry = yaml.safe_load(path.read_text())
    entry["extraction"]["d"] = 1
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
    changed = build(NAME, progress=False, log=lambda line: None)
    assert changed.ran == ["extract", "analyze", "stage"]
    assert SubspaceBundle.load(changed.bundle).info["extraction"]["d"] == 1

    shutil.rmtree(project / "build" / NAME / "loras" / "geometry" / "lora-1" / "adapter")  # as if killed in training
    retrained = build(NAME, progress=False, log=lambda line: None)
    # training is reproducible: the same weights again, so nothing downstream has to be redone
    assert retrained.ran == ["lora/geometry/1"]


def test_the_cli_builds_and_reports(project, capsys):
    assert main(["build", NAME, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "extract: running" in out and f"subspace-hub push {NAME}" in out
    assert main(["build", NAME, "--quiet"]) == 0
    assert "extract: done (skipped)" in capsys.readouterr().out
