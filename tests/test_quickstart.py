"""The quickstart pipeline (the README's first command) runs end to end on the CPU."""

from __future__ import annotations

import json
import math

import subspace_hub


def test_quickstart_runs_every_stage(tmp_path, monkeypatch):
    from subspace_hub import plugins
    from subspace_hub.pipelines.quickstart import format_summary, run

    monkeypatch.delenv(plugins.ENV_LOAD_PLUGINS, raising=False)  # the VGGT plugin is installed next to the core
    plugins.reset_host()
    assert "vggt" in subspace_hub.list_components("backbone"), "install plugins/vggt (make setup does)"
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
    # every row is scored on the held-out scenes, and every fine-tuned row trained: finite losses, and scores that
    # moved away from the pretrained model's
    pretrained = rows["pretrained (no adaptation)"]["metrics"]
    for name, row in rows.items():
        depth, reconstruction = row["metrics"]["depth"], row["metrics"]["reconstruction"]
        assert 0 < depth["abs_rel"] < 1 and 0 <= depth["delta_1"] <= 1, name
        assert reconstruction["acc"] >= 0 and reconstruction["comp"] >= 0 and 0 <= reconstruction["nc"] <= 1, name
        if row is not rows["pretrained (no adaptation)"]:
            assert math.isfinite(row["loss_first"]) and math.isfinite(row["loss_last"]), name
            assert depth["abs_rel"] != pretrained["depth"]["abs_rel"], f"{name} scores exactly as the pretrained model"
