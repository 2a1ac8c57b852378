"""Generated folders: datasets.load_dataset reads every config and split, a PyTorch loader yields view groups,
the same seed gives the same bytes, and an interrupted generation resumes without redoing or corrupting shards."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import subspace_hub
from subspace_hub.cli import main
from subspace_hub.data.export import RECIPE_FILE, GenerationSpec, generate, plan
from subspace_hub.errors import ConfigError

SMALL = {
    "scenes": 3,
    "views": 4,
    "height": 32,
    "width": 40,
    "mesh_resolution": 4,
    "texture_size": 32,
    "texture_pool": 4,
    "test_fraction": 0.34,
}


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "lighting"
    spec = GenerationSpec("lighting", datasets=2, seed=4, scenes_per_shard=1, **SMALL)
    generate(spec, root, workers=1, progress=False)
    return spec, root


def test_load_dataset_reads_every_config_and_split(generated):
    import datasets

    spec, root = generated
    card = yaml.safe_load((root / "README.md").read_text().split("---")[1])
    assert [c["config_name"] for c in card["configs"]] == ["lighting-000", "lighting-001"] and card[
        "license"
    ] == "cc0-1.0"
    for config in ("lighting-000", "lighting-001"):
        for split, count in (("train", 1), ("test", 2)):
            ds = datasets.load_dataset(str(root), config, split=split)
            assert len(ds) == count
            row = ds.with_format("numpy")[0]
            assert row["images"].shape == (4, 32, 40, 3) and row["depth"].shape == (4, 32, 40)
            assert (
                row["normals"].shape == (4, 32, 40, 3)
                and row["intrinsics"].shape == (4, 3, 3)
                and row["extrinsics"].shape == (4, 3, 4)
            )
            assert row["scene_id"].startswith(f"{config}/scene-")
    text = (root / "README.md").read_text()
    recipe = json.loads((root / RECIPE_FILE).read_text())
    assert (
        recipe["family"] == "lighting" and recipe["seed"] == 4 and recipe["library_version"] == subspace_hub.__version__
    )
    assert "room_seed=" in text and "test_fraction: 0.34" in text  # the card records the parameters
    spec_ds = subspace_hub.get_dataset("synthetic")
    assert len(spec_ds.load(str(root), split="train")) == 1  # the registered dataset loads the first config


def reprojected_depth_errors(
    depth: torch.Tensor, extrinsics: torch.Tensor, intrinsics: torch.Tensor, i: int, j: int
) -> torch.Tensor:
    """|z - depth_j| / depth_j for the valid pixels of view i seen by view j: view i's depth unprojected with its own
    cameras, projected with view j's, compared with view j's depth at the closest-agreeing of the 3 x 3 pixels around
    the projection (pixel centres at integers; the neighbourhood absorbs rounding at depth edges)."""
    from subspace_hub.geometry import depth_to_world_points

    height, width = depth.shape[-2:]
    points = depth_to_world_points(depth, extrinsics, intrinsics)[i][depth[i] > 0]
    camera = points @ extrinsics[j, :, :3].T + extrinsics[j, :, 3]
    pixels = camera @ intrinsics[j].T
    u = (pixels[:, 0] / pixels[:, 2]).round().long()
    v = (pixels[:, 1] / pixels[:, 2]).round().long()
    inside = (camera[:, 2] > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], camera[inside, 2]
    best = torch.full_like(z, float("inf"))
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            seen = depth[j][(v + dv).clamp(0, height - 1), (u + du).clamp(0, width - 1)]
            error = torch.where(seen > 0, (z - seen).abs() / seen.clamp(min=1e-12), torch.inf)
            best = torch.minimum(best, error)
    return best[torch.isfinite(best)]


def test_a_torch_loader_yields_view_groups_with_matching_depth_and_cameras(generated):
    import datasets

    from subspace_hub.data import ViewGroups
    from subspace_hub.geometry import depth_to_world_points

    _, root = generated
    rows = datasets.load_dataset(str(root), "lighting-000", split="test")
    loader = torch.utils.data.DataLoader(ViewGroups(rows, views=3, seed=1), batch_size=2)
    batch = next(iter(loader))
    assert (
        batch["images"].shape == (2, 3, 3, 32, 40)
        and batch["images"].dtype == torch.float32
        and float(batch["images"].max()) <= 1
    )
    assert batch["depth"].shape == (2, 3, 32, 40) and batch["mask"].shape == (2, 3, 32, 40)
    assert batch["intrinsics"].shape == (2, 3, 3, 3) and batch["extrinsics"].shape == (2, 3, 3, 4)
    assert torch.equal(batch["mask"], batch["depth"] > 0)
    # the views of one record are consistent: the same world surface from depth + cameras across views
    points = depth_to_world_points(
        batch["depth"][0].double(), batch["extrinsics"][0].double(), batch["intrinsics"][0].double()
    )
    assert points.shape == (3, 32, 40, 3) and torch.isfinite(points).all()
    for sample in range(2):
        depth, extrinsics, intrinsics = (batch[k][sample].double() for k in ("depth", "extrinsics", "intrinsics"))
        errors = torch.cat(
            [reprojected_depth_errors(depth, extrinsics, intrinsics, i, j) for i, j in ((0, 1), (1, 2), (2, 0))]
        )
        # occlusions aside the views agree (about 85 % within 2 %; with another view's cameras under 10 % do)
        assert len(errors) > 500 and float((errors < 0.02).double().mean()) > 0.6, sample
    with pytest.raises(ConfigError, match="has 4 views in its record; 5 were asked for"):
        ViewGroups(rows, views=5)[0]


def test_same_seed_gives_identical_bytes_whatever_the_workers(generated, tmp_path):
    spec, root = generated
    again = tmp_path / "again"
    generate(spec, again, workers=2, progress=False)
    assert files(again) == files(root)
    assert all(filecmp.cmp(root / f, again / f, shallow=False) for f in files(root))
    other = tmp_path / "other-seed"
    generate(
        GenerationSpec("lighting", datasets=2, seed=5, scenes_per_shard=1, **SMALL), other, workers=1, progress=False
    )
    assert not filecmp.cmp(
        root / "lighting-000/train-00000-of-00001.parquet",
        other / "lighting-000/train-00000-of-00001.parquet",
        shallow=False,
    )


def test_resume_redoes_only_missing_or_broken_shards(generated, tmp_path):
    spec, root = generated
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(root), str(copy)], check=True)
    shards = [s.path(copy) for s in plan(spec)]
    shards[1].unlink()  # missing
    shards[2].write_bytes(shards[2].read_bytes()[:100])  # truncated by a crash
    (shards[0].parent / ".test-00000-of-00002.parquet.999.tmp").write_bytes(b"partial")  # a leftover temporary
    untouched = {p: p.stat().st_mtime_ns for p in shards[3:]}
    generate(spec, copy, workers=1, progress=False)
    assert files(copy) == files(root)
    assert all(filecmp.cmp(root / f, copy / f, shallow=False) for f in files(root))
    assert all(p.stat().st_mtime_ns == m for p, m in untouched.items())


def test_a_killed_generation_resumes_to_the_same_bytes(generated, tmp_path):
    spec, root = generated
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "subspace_hub",
        "data",
        "generate",
        "lighting",
        "--out",
        str(out),
        "--datasets",
        "2",
        "--scenes",
        "3",
    ]
    args += [
        "--views",
        "4",
        "--resolution",
        "32x40",
        "--mesh-resolution",
        "4",
        "--texture-size",
        "32",
        "--texture-pool",
        "4",
    ]
    args += ["--test-fraction", "0.34", "--seed", "4", "--workers", "1", "--scenes-per-shard", "1", "--quiet"]
    args += ["--backbone", "reference"]  # 32 x 40: the reference backbone's 8-pixel patches
    process = subprocess.Popen(args, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*/*.parquet"))) < 2 and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(out.glob("*/*.parquet")))
    assert 0 < written < len(plan(spec)), "the kill should land mid-generation"
    assert main(args[3:]) == 0
    assert files(out) == files(root)
    assert all(filecmp.cmp(root / f, out / f, shallow=False) for f in files(root))


def test_a_folder_of_another_recipe_is_refused(generated, tmp_path, capsys):
    spec, root = generated
    with pytest.raises(ConfigError, match="already holds datasets of another recipe"):
        generate(GenerationSpec("lighting", datasets=2, seed=99, scenes_per_shard=1, **SMALL), root, progress=False)
    assert main(["data", "generate", "lighting", "--out", str(tmp_path / "x"), "--resolution", "32by40"]) == 1
    assert "--resolution expects N or HxW" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="at least 8 x 8"):
        GenerationSpec("texture", height=4, width=4)
    assert GenerationSpec("texture", scenes=10).splits() == {"train": list(range(9)), "test": [9]}
    assert GenerationSpec("texture", scenes=1).splits() == {"train": [0]}
    assert np.isclose(GenerationSpec("texture", test_fraction=0.0, scenes=5).splits()["train"][-1], 4)


def test_the_gpu_pipeline_writes_the_same_bytes(generated, tmp_path):
    """Scenes built in worker processes, rendered in order, written by threads: the GPU path's structure, run
    here with the CPU renderer, gives the same files as the per-shard CPU path."""
    from tqdm.auto import tqdm

    from subspace_hub.data.export import _generate_on_gpu

    spec, root = generated
    out = tmp_path / "pipeline"
    out.mkdir()
    with tqdm(disable=True) as bar:
        _generate_on_gpu(spec, plan(spec), out, 2, "cpu", "embree", bar)
    parquet = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == parquet
    assert all(filecmp.cmp(root / f, out / f, shallow=False) for f in parquet)


def test_two_folders_of_one_name_load_their_own_data(generated, tmp_path):
    """`datasets` caches a local folder by its name and card configs; the recipe fingerprint in each config keeps
    a folder of the same name but another recipe from reading the first one's cached arrow files."""
    import datasets

    spec, root = generated
    other = GenerationSpec("lighting", datasets=1, seed=5, **{**SMALL, "scenes": 4})
    generate(other, tmp_path / "lighting", workers=1, progress=False)
    first = datasets.load_dataset(str(root), "lighting-000", split="train")
    second = datasets.load_dataset(str(tmp_path / "lighting"), "lighting-000", split="train")
    assert (len(first), len(second)) == (1, 2)  # 3 and 4 scenes, of which 2 are held out for testing
    assert first.with_format("numpy")[0]["seeds"] != second.with_format("numpy")[0]["seeds"]


def test_preview_draws_a_contact_sheet_of_every_dataset(generated, tmp_path, capsys):
    from PIL import Image

    from subspace_hub.data.preview import colour_depth

    spec, root = generated
    out = tmp_path / "sheet.png"
    code = main(["data", "preview", str(root), "--out", str(out), "--scenes", "2", "--views", "2", "--split", "test"])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    sheet = np.asarray(Image.open(out))
    tile = 160 * spec.height // spec.width  # tiles are 160 wide, in the views' aspect
    assert sheet.shape[1] == 2 * 3 * 160  # 2 views x (RGB, depth, normals)
    assert sheet.shape[0] == spec.datasets * (22 + 2 * tile)  # a label and 2 scene rows per dataset (2 test scenes)
    assert not (root / "preview.png").exists()  # with --out nothing is written into the data folder
    depth = np.array([[1.0, 2.0], [4.0, 0.0]])
    coloured = colour_depth(depth, depth > 0)
    assert coloured[0, 0].sum() > coloured[0, 1].sum() > coloured[1, 0].sum() and coloured[1, 1].sum() == 0
    with pytest.raises(ConfigError, match="not a folder made by `subspace-hub data generate`"):
        from subspace_hub.data.preview import contact_sheet

        contact_sheet(tmp_path)


def test_a_quiet_generation_prints_nothing_and_leaves_datasets_bars_as_it_found_them(generated, tmp_path, capfd):
    import datasets

    spec, _ = generated
    was = datasets.utils.logging.is_progress_bar_enabled()
    try:
        for enabled, workers in ((True, 1), (False, 2), (True, 2)):
            (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
            capfd.readouterr()
            generate(spec, tmp_path / f"{enabled}-{workers}", workers=workers, progress=False)
            assert capfd.readouterr().err == ""  # nor datasets' "Creating parquet from Arrow format", in any process
            assert datasets.utils.logging.is_progress_bar_enabled() is enabled
    finally:
        (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()
