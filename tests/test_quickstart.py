"""The quickstart pipeline (the README's first command) runs end to end on the CPU."""

from __future__ import annotations

import json

import pytest

import subspace_hub


def test_quickstart_runs_every_stage(tmp_path, monkeypatch):
    from subspace_hub import plugins
    from subspace_hub.pipelines.quickstart import format_summary, run

    monkeypatch.delenv(plugins.ENV_LOAD_PLUGINS, raising=False)  # the VGGT plugin is installed next to the core
    plugins.reset_host()
    if "vggt" not in subspace_hub.list_components("backbone"):
        pytest.skip("the VGGT plugin is not installed")
    summary = run(tmp_path / "qs", steps=3, loras=2, scenes=3, views=3, progress=False, log=lambda m: None)
    rows = summary["fine_tuning"]
    assert set(rows) == {
        "pretrained (no adaptation)",
        "subspace (mined)",
        "subspace (random bases)",
        "heads LoRA r2 only",
        "LoRA r4",
        "PiSSA r4",
    }
    mined, random, heads = rows["subspace (mined)"], rows["subspace (random bases)"], rows["heads LoRA r2 only"]
    assert mined["trainable_parameters"] == random["trainable_parameters"]  # the control matches in size
    assert mined["heads_parameters"] == heads["trainable_parameters"] == heads["heads_parameters"] > 0
    assert mined["trainable_parameters"] < rows["LoRA r4"]["trainable_parameters"]
    assert rows["pretrained (no adaptation)"]["trainable_parameters"] == 0
    assert summary["subspaces"]["texture"]["total_dims"] > 0 and "embedded registry" in summary["published"]
    assert json.loads((tmp_path / "qs" / "summary.json").read_text())["published"] == summary["published"]
    table = format_summary(summary)
    assert "random bases" in table and "OF WHICH HEADS" in table
    assert list((tmp_path / "qs" / "build" / "bundle" / "analysis").rglob("*.png"))
