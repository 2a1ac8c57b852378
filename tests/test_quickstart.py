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
    assert set(summary["fine_tuning"]) == {"pretrained", "subspace", "lora"}
    subspace, lora = summary["fine_tuning"]["subspace"], summary["fine_tuning"]["lora"]
    assert subspace["trainable_parameters"] < lora["trainable_parameters"]
    assert summary["subspaces"]["texture"]["total_dims"] > 0 and "embedded registry" in summary["published"]
    assert json.loads((tmp_path / "qs" / "summary.json").read_text())["published"] == summary["published"]
    assert "subspace" in format_summary(summary)
    assert list((tmp_path / "qs" / "analysis").rglob("*.png"))
