"""The training engine: the schedule, the batch plan, the run folder, and exact resumption after SIGKILL, SIGTERM
and a kill during a checkpoint write (CPU, the reference backbone on generated data)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import subspace_hub
from subspace_hub.data.views import BatchPlan
from subspace_hub.errors import CheckpointError, ConfigError
from subspace_hub.pipelines.checkpoints import checkpoint_path, list_checkpoints
from subspace_hub.pipelines.config import load_train_config
from subspace_hub.pipelines.train import lr_factor, read_metrics, read_rows, train
from subspace_hub.testing import tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Texture datasets at 32 x 40 pixels (multiples of the reference backbone's 8-pixel patches)."""
    return tiny_dataset(tmp_path_factory.mktemp("train-data") / "texture", height=32, width=40, scenes=5, seed=3)


@pytest.fixture
def on_the_cpu(monkeypatch):
    """For a test that compares a run with a computation on the CPU, or with the process's RSS: the engine trains
    on the CPU even where a GPU is present (it asks ``torch.cuda.is_available()``). accelerate keeps the device of
    its first Accelerator in a process-wide state, dropped here before and after."""
    from accelerate.state import PartialState

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    PartialState._reset_state()
    yield
    PartialState._reset_state()


def config(source, **changes):
    fields = {
        "backbone": "reference",
        "backbone_config": {"depth": 2},
        "method": "lora",
        "method_options": {"rank": 2},
        "data": {"source": str(source), "min_views": 2, "max_views": 4, "max_images": 8},
        "steps": 8,
        "checkpoint_every": 2,
        "tensorboard": False,
        "optim": {"lr": 1e-3, "warmup": 0.25},
    }
    return load_train_config(None, [], **{**fields, **changes})


def cli_args(data, out, steps=12):
    return [
        "train",
        "reference",
        "--backbone-config",
        "tiny",
        "--option",
        "rank=2",
        "--data",
        str(data),
        "--steps",
        str(steps),
        "--lr",
        "1e-3",
        "--views",
        "2-4",
        "--max-images",
        "8",
        "--checkpoint-every",
        "1",
        "--no-tensorboard",
        "--quiet",
        "--out",
        str(out),
    ]


def adapter_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def assert_same_run(first: Path, second: Path) -> None:
    losses = [[row["loss"] for row in read_metrics(run)] for run in (first, second)]
    assert len(losses[0]) == len(losses[1]) and max(abs(a - b) for a, b in zip(*losses, strict=True)) <= 1e-6
    a, b = adapter_tensors(first), adapter_tensors(second)
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel()) <= 1e-6


def test_the_schedule_warms_up_from_1e_8_then_decays_by_cosine_to_1e_8():
    cfg = load_train_config(None, [], backbone="reference", data={"source": "x"}, steps=100)
    lrs = [cfg.optim.lr * lr_factor(step, cfg) for step in range(100)]
    assert lrs[0] == pytest.approx(1e-8) and max(lrs) == pytest.approx(1e-5) and lrs.index(max(lrs)) == 5
    assert all(a <= b for a, b in zip(lrs[:6], lrs[1:6], strict=False))  # warm-up: 5 % of the steps
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:], strict=False))
    assert lrs[-1] == pytest.approx(1e-8)
    assert lrs[52] == pytest.approx(1e-8 + (1e-5 - 1e-8) * 0.5 * (1 + math.cos(math.pi * 47 / 94)))
    assert lrs[2] == pytest.approx(1e-8 + (1e-5 - 1e-8) * 2 / 5)  # linear from start_lr
    assert cfg.optim.lr * lr_factor(100, cfg) == pytest.approx(1e-8)  # past the last step it stays at the end
    two = load_train_config(None, [], backbone="reference", data={"source": "x"}, steps=2, optim={"warmup": 0.0})
    assert [lr_factor(step, two) for step in (0, 1)] == pytest.approx([1.0, 1e-3])  # the end at the last step


def test_the_batch_plan_is_deterministic_capped_and_resumable():
    plan = BatchPlan(items=7, min_views=3, max_views=16, max_images=48, seed=1, view_counts=[16] * 6 + [5])
    batches = [b for _, b in zip(range(40), plan, strict=False)]
    assert all(3 <= b.views <= 16 and len(b.items) * b.views <= 48 for b in batches)
    assert all(b.views <= 5 for b in batches if 6 in b.items)  # never more views than a scene holds
    assert len({b.views for b in batches}) > 3  # the frames per sample vary
    resumed = [b for _, b in zip(range(15), plan.iterate(25), strict=False)]
    assert resumed == batches[25:40]
    first_epoch = [i for b in batches for i in b.items][:7]
    assert sorted(first_epoch) == list(range(7))  # an epoch visits every scene once


def test_the_batch_plan_boundaries_epochs_view_range_and_messages():
    """The smallest legal plan, each refusal's wording, epochs as consecutive permutations, S over the whole of
    [min_views, max_views], ``max(1, max_images // S)`` scenes a batch, and the exact stream of a fixed seed (a run
    resumed with a later version must read what the first one read)."""
    smallest = BatchPlan(items=1, min_views=1, max_views=1, max_images=1)
    assert [(b.number, b.items, b.views) for _, b in zip(range(3), smallest, strict=False)] == [
        (0, (0,), 1), (1, (0,), 1), (2, (0,), 1)
    ]  # fmt: skip
    BatchPlan(items=2, min_views=3, max_views=3, max_images=3)  # equal bounds and exactly one sample: accepted
    with pytest.raises(ConfigError, match=r"^The training data holds no scene\.$"):
        BatchPlan(items=0, min_views=1, max_views=1, max_images=1)
    with pytest.raises(ConfigError, match=r"^Need 1 <= min_views <= max_views, got 0 and 2\.$"):
        BatchPlan(items=3, min_views=0, max_views=2, max_images=4)
    with pytest.raises(ConfigError, match=r"^Need 1 <= min_views <= max_views, got 3 and 2\.$"):
        BatchPlan(items=3, min_views=3, max_views=2, max_images=4)
    with pytest.raises(ConfigError, match=r"^max_images \(2\) must allow one sample of min_views \(3\) images\.$"):
        BatchPlan(items=2, min_views=3, max_views=3, max_images=2)
    plan = BatchPlan(items=5, min_views=2, max_views=2, max_images=4, seed=7)  # 2 scenes a batch
    stream = [i for _, b in zip(range(10), plan, strict=False) for i in b.items]  # 20 scenes: 4 epochs
    assert stream == np.concatenate([plan.epoch_order(e) for e in range(4)]).tolist()
    assert {b.views for _, b in zip(range(200), BatchPlan(3, 2, 4, 100), strict=False)} == {2, 3, 4}
    assert all(len(b.items) == 1 for _, b in zip(range(5), BatchPlan(4, 3, 3, 5), strict=False))  # 5 // 3
    golden = [(b.items, b.views) for _, b in zip(range(3), BatchPlan(5, 2, 6, 12, seed=3), strict=False)]
    assert golden == [((4, 2, 1, 3, 0, 4), 2), ((0, 1, 3, 2, 0, 3), 2), ((1, 4, 2), 4)]


def test_a_run_writes_its_folder_and_its_adapter_reloads(data, tmp_path):
    result = train(config(data, eval_every=4), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    evaluations = read_rows(run / "evaluation.csv")
    assert [row["step"] for row in evaluations] == [4, 8] and "depth/abs_rel" in evaluations[0]
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.csv", "loss.png", "README.md", "adapter", "evaluation.json", "checkpoints"} <= names
    rows = read_metrics(run)
    assert [row["step"] for row in rows] == list(range(1, 9))
    assert {"loss", "depth_l1", "lr", "grad_norm", "images_per_s", "memory_gib"} <= set(rows[0])
    assert rows[0]["lr"] == pytest.approx(1e-8) and rows[2]["lr"] == pytest.approx(1e-3)
    assert [p.name for p in list_checkpoints(run)] == ["step-00000006", "step-00000008"]  # the newest two
    assert set(result.evaluation["depth"]) >= {"abs_rel", "delta_1"}
    # rank 2 on qkv (32 -> 96), proj (32 -> 32), fc1 (32 -> 128) and fc2 (128 -> 32) of 2 blocks: 2 * 2 * 512
    assert result.trainable_parameters == 2 * 2 * (128 + 64 + 160 + 160)
    reloaded = subspace_hub.load_adapter(
        run / "adapter", model=subspace_hub.load_backbone("reference", config={"depth": 2})
    )
    assert sum(p.numel() for p in reloaded.parameters() if p.requires_grad) == result.trainable_parameters
    card = (run / "README.md").read_text()
    assert "lora" in card and "![training loss](loss.png)" in card and "abs_rel" in card


def test_training_moves_every_trainable_weight_and_lowers_the_loss(data, tmp_path):
    from subspace_hub.pipelines.train import _attach

    settings = config(data, steps=16, checkpoint_every=16, optim={"lr": 3e-3, "warmup": 0.0})
    initial = {k: v.detach().clone() for k, v in _attach(settings).named_parameters() if v.requires_grad}
    train(settings, tmp_path / "run", progress=False)
    trained = load_file(str(tmp_path / "run" / "checkpoints" / "step-00000016" / "model.safetensors"))
    assert set(initial) <= set(trained)
    unmoved = [k for k in initial if torch.equal(initial[k], trained[k])]
    assert not unmoved, f"training left these trainable tensors at their initial values: {unmoved}"
    losses = [row["loss"] for row in read_metrics(tmp_path / "run")]
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4


def test_resuming_from_a_middle_checkpoint_repeats_the_run_exactly(data, tmp_path):
    """AdaLoRA included: its importance scores and rank pattern travel in the checkpoint."""
    for method, options in (("lora", {"rank": 2}), ("adalora", {"rank": 2, "init_rank": 4})):
        cfg = config(
            data,
            method=method,
            method_options=options,
            steps=12,
            checkpoint_every=3,
            keep_checkpoints=4,
            optim={"lr": 1e-2},
        )
        whole, cut = tmp_path / f"{method}-whole", tmp_path / f"{method}-cut"
        train(cfg, whole, progress=False)
        train(cfg, cut, progress=False)
        for later in list_checkpoints(cut)[2:]:  # as if the run had been killed after step 6
            shutil.rmtree(later)
        shutil.rmtree(cut / "adapter")
        assert [p.name for p in list_checkpoints(cut)] == ["step-00000003", "step-00000006"]
        train(cfg, cut, resume=True, progress=False)
        assert_same_run(whole, cut)
        if method == "adalora":
            # Its importance averages carried on from step 6 rather than restarting at zero: at this size they move
            # the losses by less than the tolerance above, so they are compared directly at step 9 (at step 10 the
            # final allocation keeps only the rank pattern).
            states = [load_file(str(checkpoint_path(run, 9) / "method.safetensors")) for run in (whole, cut)]
            assert states[0].keys() == states[1].keys() and any(k.startswith("exp_avg_ipt.") for k in states[0])
            for key, value in states[0].items():
                torch.testing.assert_close(states[1][key], value, rtol=1e-4, atol=0, msg=key)
        # the rows kept from before the resume are rewritten as they were written: integer steps
        steps = [line.split(",")[0] for line in (cut / "metrics.csv").read_text().splitlines()]
        assert steps == ["step", *map(str, range(1, 13))]


def test_a_sigkilled_run_resumes_to_the_uninterrupted_result(data, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-m", "subspace_hub", *cli_args(data, tmp_path / "whole")], env=env, check=True)
    victim = subprocess.Popen([sys.executable, "-m", "subspace_hub", *cli_args(data, tmp_path / "killed")], env=env)
    metrics, deadline = tmp_path / "killed" / "metrics.csv", time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 6):
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)  # at step 5 or a little later, maybe in the middle of a checkpoint write
    assert victim.wait() == -signal.SIGKILL
    assert not (tmp_path / "killed" / "adapter").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "subspace_hub", *cli_args(data, tmp_path / "killed"), "--resume"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "whole", tmp_path / "killed")


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
"""Two processes on this machine (DDP over gloo on the CPU); ``[sys.executable]`` is the one-process counterpart."""


def run_cli(launcher, args, env=None):
    """``python -m subspace_hub *args`` under ``launcher`` in a subprocess, which must succeed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run(
        [*launcher, "-m", "subspace_hub", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_accumulating_two_train_like_one_accumulating_four_and_resume_together(data, tmp_path):
    """DDP on the CPU (gloo), started by torchrun: each process takes every other batch and accumulates two a step
    (the first without synchronising), the gradients are averaged across them, the logged terms are their mean and
    only process 0 writes, so two processes equal one process that accumulates the same four batches a step. A
    resume starts every process from the checkpoint process 0 found (a process starting afresh would take other
    batches, or wait for steps the others never take)."""

    def run(launcher, out, *extra):
        run_cli(launcher, [*cli_args(data, out, steps=4), *extra])

    run([sys.executable], tmp_path / "one", "--accumulation", "4")
    run(TORCHRUN, tmp_path / "two", "--accumulation", "2")
    assert_same_run(tmp_path / "one", tmp_path / "two")
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [row["grad_norm"] for row in two] == pytest.approx([row["grad_norm"] for row in one], rel=1e-6)
    state = json.loads((list_checkpoints(tmp_path / "two")[-1] / "state.json").read_text())
    assert (state["step"], state["batches"]) == (4, 16)  # four batches a step, two in each process

    run(TORCHRUN, tmp_path / "cut", "--accumulation", "2")
    for later in list_checkpoints(tmp_path / "cut")[2:]:  # as if both were killed after step 2
        shutil.rmtree(later)
    shutil.rmtree(tmp_path / "cut" / "adapter")
    run(TORCHRUN, tmp_path / "cut", "--accumulation", "2", "--resume")
    assert_same_run(tmp_path / "one", tmp_path / "cut")


SPARE_PARAMETER_PLUGIN = """
import dataclasses

import torch

from subspace_hub import hookimpl
from subspace_hub.backbones.reference import SPEC, build


def build_with_a_spare(config):
    model = build(config)
    model.spare = torch.nn.Linear(2, 2)  # trained under `full`, never reached by the loss
    return model


@hookimpl
def register_backbones(register):
    register(dataclasses.replace(SPEC, name="reference-spare", build=build_with_a_spare))
"""


def test_two_processes_train_a_parameter_the_loss_never_reaches(data, tmp_path):
    """Full fine-tuning where one trainable parameter gets no gradient (a head the loss ignores, in a real
    backbone): DDP must not wait for it, and two processes still train as one that accumulates their batches."""
    (tmp_path / "spare_plugin.py").write_text(SPARE_PARAMETER_PLUGIN)
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": pythonpath, "SUBSPACE_HUB_PLUGINS": "spare_plugin"}
    args = ["train", "reference-spare", "-c", "tiny", "--method", "full", "--data", str(data), "--steps", "3"]
    args += ["--lr", "1e-3", "--views", "2-4", "--max-images", "8", "--no-tensorboard", "--quiet"]
    for launcher, out, extra in (([sys.executable], "one", ["--accumulation", "2"]), (TORCHRUN, "two", [])):
        run_cli(launcher, [*args, *extra, "--out", str(tmp_path / out)], env)
    losses = [[row["loss"] for row in read_metrics(tmp_path / out)] for out in ("one", "two")]
    assert len(losses[1]) == 3 and losses[1] == pytest.approx(losses[0], abs=1e-6)


def test_sigterm_stops_after_a_checkpoint_and_the_run_resumes(data, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = cli_args(data, tmp_path / "run", steps=200)
    victim = subprocess.Popen([sys.executable, "-m", "subspace_hub", *args], env=env, stderr=subprocess.PIPE, text=True)
    metrics, deadline = tmp_path / "run" / "metrics.csv", time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.01)
    victim.send_signal(signal.SIGTERM)
    _, stderr = victim.communicate(timeout=120)
    assert victim.returncode == 1 and "the checkpoint is written" in stderr and "--resume" in stderr
    stopped = int(read_metrics(tmp_path / "run")[-1]["step"])
    assert list_checkpoints(tmp_path / "run")[-1].name == f"step-{stopped:08d}" and stopped < 200


def test_a_kill_during_a_checkpoint_write_leaves_a_resumable_run(data, tmp_path):
    cfg = config(data, steps=4)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    whole = tmp_path / "whole"
    shutil.copytree(run, whole)
    # A kill while step 4 was being written: its files half there in the temporary folder, never renamed.
    newest = list_checkpoints(run)[-1]
    partial = newest.with_name(f".{newest.name}.tmp")
    newest.rename(partial)
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    (partial / "state.json").unlink()
    shutil.rmtree(run / "adapter")
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002"]
    train(cfg, run, resume=True, progress=False)
    assert not partial.exists()
    assert_same_run(whole, run)


def test_a_damaged_checkpoint_is_named(data, tmp_path):
    cfg = config(data, steps=2)
    train(cfg, tmp_path / "run", progress=False)
    (list_checkpoints(tmp_path / "run")[-1] / "optimizer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Cannot read the checkpoint .*step-00000002"):
        train(cfg, tmp_path / "run", resume=True, progress=False)


def test_an_occupied_folder_and_a_changed_config_are_refused(data, tmp_path):
    train(config(data, steps=2), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        train(config(data, steps=2), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="these settings differ: optim, seed. Resume without changing them"):
        train(config(data, steps=2, optim={"lr": 0.5}, seed=9), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(ConfigError, match="Nothing to resume"):
        train(config(data, steps=2), tmp_path / "empty", resume=True, progress=False)


def test_full_training_saves_a_backbone_checkpoint(data, tmp_path):
    train(config(data, method="full", method_options={}, steps=2), tmp_path / "run", progress=False)
    model = subspace_hub.load_backbone("reference", pretrained=tmp_path / "run" / "adapter")
    assert isinstance(model, torch.nn.Module)


def test_bad_settings_fail_before_any_work(data, tmp_path):
    with pytest.raises(ConfigError, match="data.source is required"):
        load_train_config(None, [], backbone="reference")
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        config(data, steps=0)
    with pytest.raises(ConfigError, match=r"Unknown training config field\(s\): 'stepz' \(did you mean 'steps'\?\)"):
        load_train_config(None, ["stepz=3"], backbone="reference", data={"source": str(data)})
    assert not (tmp_path / "run").exists()


def test_adalora_trained_by_the_engine_ends_at_its_rank_budget(data, tmp_path):
    """AdaLoRA starts every module at init_rank and, by the end of its schedule, keeps on average `rank` of them:
    the engine must call its allocator after every step for that to happen."""

    settings = config(data, method="adalora", method_options={"rank": 2, "init_rank": 4}, steps=10, checkpoint_every=10)
    train(settings, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    pattern = saved["rank_pattern"]
    assert pattern, "no rank allocation was recorded"
    kept = [sum(bool(x) for x in mask) for mask in pattern.values()]
    assert all(len(mask) == 4 for mask in pattern.values())  # every module started at init_rank 4
    assert sum(kept) == 2 * len(kept)  # the budget: an average of rank 2
    assert min(kept) < 4  # ranks were pruned, not kept


def test_config_all_loads_every_config_of_a_local_source_and_names_a_missing_split(data):
    from subspace_hub.data.sources import load_samples
    from subspace_hub.pipelines.train import _samples, held_out_samples

    fields = {"source": str(data), "min_views": 2, "max_views": 4, "max_images": 8}
    every = config(data, data={**fields, "config": "all", "test_split": "test", "test_config": "all"})
    for split in ("train", "test"):
        one = load_samples(str(data), split, "texture-000")
        rows = _samples(every, split, "all")
        assert rows.num_rows == one.num_rows and rows.column_names == one.column_names
        assert rows["scene_id"] == one["scene_id"] and rows["view_ids"] == one["view_ids"]
    assert held_out_samples(every)["scene_id"] == load_samples(str(data), "test", "texture-000")["scene_id"]
    with pytest.raises(ConfigError, match=f"^{data} has no split 'nope' in any config.$"):
        _samples(every, "nope", "all")


def test_config_all_reads_a_relative_folder_and_refuses_a_folder_without_a_card(data, tmp_path, monkeypatch):
    from huggingface_hub import DatasetCard

    from subspace_hub.pipelines.train import _samples

    monkeypatch.chdir(data.parent.parent)  # "<parent>/texture": a relative path that reads like a Hub repo id
    relative = f"{data.parent.name}/{data.name}"
    every = config(data, data={"source": relative, "config": "all"})
    assert _samples(every, "train", "all").num_rows == _samples(config(data), "train", "texture-000").num_rows
    with pytest.raises(ConfigError, match="^A revision \\('v1'\\) applies to Hub dataset repos, but"):
        _samples(config(data, data={"source": relative, "config": "all", "revision": "v1"}), "train", "all")
    listed = tmp_path / "listed"  # a card that also lists a config without data files (hand-written, say)
    shutil.copytree(data, listed)
    card = DatasetCard.load(listed / "README.md")
    card.data.configs = [*card.data.configs, {"config_name": "elsewhere"}]
    card.save(listed / "README.md")
    assert _samples(config(listed, data={"source": str(listed), "config": "all"}), "train", "all").num_rows == 4
    bare = tmp_path / "bare"
    shutil.copytree(data / "texture-000", bare / "texture-000")  # the data files, without the card
    with pytest.raises(ConfigError) as info:
        _samples(config(bare, data={"source": str(bare), "config": "all"}), "train", "all")
    assert str(info.value) == (
        f"data.config 'all' loads the configs a dataset card lists, and {bare} has no card with a 'configs' list; "
        "name one config instead."
    )


def test_training_data_draws_views_from_the_run_seed_and_plans_within_each_scene(data):
    """Scenes of 4 views under max_views 6: the plan never asks a scene for more views than it holds; the views of a
    group are drawn from the run's seed."""
    from subspace_hub.data.views import ViewGroups
    from subspace_hub.pipelines.train import _samples, _training_data

    fields = {"source": str(data), "min_views": 2, "max_views": 6, "max_images": 12}
    settings = config(data, data=fields, seed=5)
    groups, plan = _training_data(settings)
    assert plan.view_counts == [4] * len(groups)
    assert all(batch.views <= 4 for _, batch in zip(range(30), plan.iterate(0), strict=False))
    rows = _samples(settings, "train", None)
    for seed, same in ((5, True), (0, False)):
        drawn = ViewGroups(rows, views=6, seed=seed)[(1, 2)]
        assert torch.equal(groups[(1, 2)]["images"], drawn["images"]) is same


NOT_RANDOM_ACCESS_PLUGIN = """
    from subspace_hub import DatasetSpec, hookimpl

    @hookimpl
    def register_datasets(register):
        register(DatasetSpec("a-stream", lambda **options: iter([{"scene_id": "a"}])))
"""


def test_a_source_without_random_access_is_refused_by_type(distributions, data):
    from subspace_hub.pipelines.train import _training_data

    distributions.add("stream-plugin", "stream_plugin", NOT_RANDOM_ACCESS_PLUGIN)
    with pytest.raises(ConfigError) as info:
        _training_data(config(data, data={"source": "a-stream"}))
    assert str(info.value) == (
        "Training needs random access to the samples of 'a-stream' (a datasets.Dataset); it returned list_iterator."
    )


def test_seeding_covers_python_numpy_and_torch_and_wraps_numpys_range():
    import random

    from subspace_hub.pipelines.train import _seed_everything

    def draws(seed):
        _seed_everything(seed)
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    assert draws(7) == draws(7) and draws(7) != draws(8)
    np.random.seed(7)
    expected = float(np.random.rand())
    assert draws(7)[1] == expected  # numpy is seeded with the seed itself
    wrapped = draws(2**32 + 7)
    assert wrapped[1] == draws(7)[1] and wrapped[0] != draws(7)[0]  # numpy takes the seed modulo 2**32


def test_the_logged_memory_is_this_process_peak_in_gib(data, tmp_path, on_the_cpu):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux
    run = train(config(data, steps=2, checkpoint_every=2), tmp_path / "run", progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    memory = [row["memory_gib"] for row in read_metrics(run.run)]
    assert len(memory) == 2 and all(before <= m <= after for m in memory), (before, memory, after)


def test_tensorboard_gets_every_scalar_at_its_step_and_csv_steps_are_integers(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(config(data, steps=3, checkpoint_every=3, tensorboard=True), tmp_path / "run", progress=False).run
    rows = read_metrics(run)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert sorted(tags) == sorted(k for k in rows[0] if k != "step")
    for tag in tags:
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([row[tag] for row in rows], rel=1e-6)
    lines = (run / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["step", "1", "2", "3"]


def test_a_resumed_run_replaces_the_scalars_after_its_checkpoint_in_every_log(data, tmp_path):
    """TensorBoard purges the first run's events after the checkpoint; the CSV logs drop their rows."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = config(data, steps=4, checkpoint_every=2, eval_every=2, eval_limit=1, tensorboard=True)
    run = tmp_path / "run"
    train(settings, run, progress=False)
    shutil.rmtree(list_checkpoints(run)[-1])  # as if killed after step 2, with steps 3 and 4 logged
    shutil.rmtree(run / "adapter")
    train(settings, run, resume=True, progress=False)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [s.step for s in events.Scalars("loss")] == [1, 2, 3, 4]
    assert [s.step for s in events.Scalars("depth/abs_rel")] == [2, 4]
    assert [s.value for s in events.Scalars("loss")] == pytest.approx([r["loss"] for r in read_metrics(run)], rel=1e-6)
    assert [row["step"] for row in read_rows(run / "evaluation.csv")] == [2, 4]


def test_read_rows_gives_numbers_and_leaves_out_empty_cells(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,loss,depth/abs_rel\r\n1,0.5,\r\n2,0.25,0.125\r\n")
    assert read_rows(path) == [{"step": 1.0, "loss": 0.5}, {"step": 2.0, "loss": 0.25, "depth/abs_rel": 0.125}]


def test_without_tensorboard_the_run_warns_once_and_logs_to_csv(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it now fails
    with pytest.warns(UserWarning) as caught:
        train(config(data, steps=1, checkpoint_every=1, tensorboard=True), tmp_path / "run", progress=False)
    messages = [w for w in caught if "TensorBoard" in str(w.message)]
    assert [str(w.message) for w in messages] == ["TensorBoard is not installed: scalars go to metrics.csv only."]
    assert messages[0].filename == __file__  # it points at the caller of train()
    assert not (tmp_path / "run" / "tensorboard").exists() and len(read_metrics(tmp_path / "run")) == 1


def test_accumulated_micro_batches_make_one_step_and_the_summary_records_the_run(
    data, tmp_path, monkeypatch, capsys, on_the_cpu
):
    """Two micro-batches a step: the logged loss is their mean, the gradient that of their mean loss, the images
    those of both, the sampler position two batches a step; ``result.json`` and ``evaluation.json`` hold what the
    run returned. A clock that ticks two seconds a reading makes ``images_per_s`` and the seconds exact."""
    from types import SimpleNamespace

    from subspace_hub.data.views import collate
    from subspace_hub.pipelines import train as engine
    from subspace_hub.pipelines.evaluate import evaluate_backbone
    from subspace_hub.plugins import get_backbone_spec, get_metric

    fields = {"source": str(data), "min_views": 2, "max_views": 4, "max_images": 8, "test_split": "train"}
    settings = config(
        data, data=fields, steps=2, accumulation=2, checkpoint_every=2, eval_limit=2, optim={"lr": 1e-3, "clip": None}
    )
    spec = get_backbone_spec("reference")
    model = engine._attach(settings)
    groups, plan = engine._training_data(settings)
    batches = [b for _, b in zip(range(4), plan.iterate(0), strict=False)]
    assert [len(b.items) * b.views for b in batches] == [8, 6, 8, 8]  # 14 images in step 1, 16 in step 2
    terms = []
    for batch in batches[:2]:
        inputs = collate([groups[(index, batch.views)] for index in batch.items])
        out = spec.loss_terms(spec.run(model, inputs), inputs)
        (out["loss"] / 2).backward()
        terms.append({key: float(value.detach()) for key, value in out.items()})
    norm = float(
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    )

    ticks = iter(range(100, 1000, 2))  # two seconds a reading
    monkeypatch.setattr(engine, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    run = tmp_path / "run"
    capsys.readouterr()  # what the reads above printed (datasets' first read of this data)
    result = train(settings, run, progress=False)
    assert capsys.readouterr().err == ""  # progress=False: no bar of the run's or its evaluation's

    rows = read_metrics(run)
    assert [row["step"] for row in rows] == [1, 2]
    for key in terms[0]:
        assert rows[0][key] == pytest.approx((terms[0][key] + terms[1][key]) / 2, rel=1e-6)
    assert rows[0]["grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert [row["images_per_s"] for row in rows] == [7.0, 8.0]  # each step read one tick, two seconds, apart
    state = json.loads((run / "checkpoints" / "step-00000002" / "state.json").read_text())
    assert (state["step"], state["batches"]) == (2, 4)

    # started at 100 s, two readings a step, the end at 110 s
    assert (result.run, result.steps, result.seconds) == (run, 2, 10.0)
    assert result.losses == [row["loss"] for row in rows]
    summary = {
        "steps": 2,
        "trainable_parameters": 2048,
        "trainable_by_group": {"blocks.0": 1024, "blocks.1": 1024},
        "loss_first": rows[0]["loss"],
        "loss_last": rows[1]["loss"],
        "seconds": 10.0,
    }
    assert (run / "result.json").read_text() == json.dumps(summary, indent=2)
    assert (run / "evaluation.json").read_text() == json.dumps(result.evaluation, indent=2)
    torch.manual_seed(settings.seed)  # the run's random base weights
    base = subspace_hub.load_backbone("reference", config={"depth": 2})
    trained = subspace_hub.load_adapter(run / "adapter", model=base)
    expected = evaluate_backbone(
        trained, spec, engine.held_out_samples(settings), [get_metric("depth")], limit=2, progress=False
    ).summary()  # the first eval_limit samples of the test split
    everything = evaluate_backbone(
        trained, spec, engine.held_out_samples(settings), [get_metric("depth")], progress=False
    ).summary()
    assert result.evaluation["depth"] == pytest.approx(expected["depth"], rel=1e-6)
    assert result.evaluation["depth"]["abs_rel"] != pytest.approx(everything["depth"]["abs_rel"], rel=1e-6)


def test_the_step_gradient_holds_the_method_penalty_and_clipping_bounds_the_update(data, tmp_path, on_the_cpu):
    """AdaLoRA: the first step's gradient is that of the task loss plus the orthogonality penalty, while the logged
    loss is the task loss alone. Clipping: at a norm of 1e-12, Adam's eps outweighs the gradient and the weights
    that start at zero (LoRA's B) barely move; without clipping they move by about the learning rate."""
    from subspace_hub.data.views import collate
    from subspace_hub.pipelines import train as engine
    from subspace_hub.plugins import get_adapter_spec, get_backbone_spec

    options = {"rank": 2, "init_rank": 4}
    settings = config(data, method="adalora", method_options=options, steps=1, optim={"lr": 1e-3, "clip": None})
    model = engine._attach(settings)
    groups, plan = engine._training_data(settings)
    batch = next(iter(plan.iterate(0)))
    inputs = collate([groups[(index, batch.views)] for index in batch.items])
    spec = get_backbone_spec("reference")
    loss = spec.loss_terms(spec.run(model, inputs), inputs)["loss"]
    penalty = get_adapter_spec("adalora").regularizer(model)
    (loss + penalty).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    # the task loss gives A no gradient at the start (AdaLoRA's E starts at zero): A's is the penalty's alone
    start = {n.replace(".default", ""): (p.detach(), p.grad) for n, p in model.named_parameters() if "lora_A" in n}
    run = train(settings, tmp_path / "adalora", progress=False).run
    row = read_metrics(run)[0]
    assert float(penalty.detach()) > 0 and row["loss"] == pytest.approx(float(loss.detach()), rel=1e-6)
    assert row["grad_norm"] == pytest.approx(float(norm), rel=1e-5)
    after = adapter_tensors(run)
    assert all(float(grad.abs().max()) > 0 for _, grad in start.values())
    assert sum(float(((after[name] - weight) * grad).sum()) for name, (weight, grad) in start.items()) < 0  # downhill

    moved = {}
    for clip in (None, 1e-12):
        settings = config(data, steps=2, checkpoint_every=2, optim={"lr": 1e-3, "warmup": 0.0, "clip": clip})
        tensors = adapter_tensors(train(settings, tmp_path / f"clip-{clip}", progress=False).run)
        moved[clip] = max(float(v.abs().max()) for k, v in tensors.items() if "lora_B" in k)
    assert moved[None] > 5e-4 and moved[1e-12] < 1e-2 * moved[None], moved


def test_the_progress_bar_counts_steps_from_where_a_resumed_run_starts_and_shows_the_loss(data, tmp_path, capsys):
    settings = config(data, steps=4, checkpoint_every=1, keep_checkpoints=4)
    run = tmp_path / "run"
    train(settings, run, progress=False)
    for later in list_checkpoints(run)[1:]:  # as if killed after step 1
        shutil.rmtree(later)
    shutil.rmtree(run / "adapter")
    capsys.readouterr()
    train(settings, run, resume=True)  # the bar is on by default
    frames = [frame.strip() for frame in capsys.readouterr().err.split("\r") if frame.strip()]
    assert frames[0].startswith("train lora:  25%") and " 1/4 " in frames[0]  # it starts at the resumed step
    last_loss = read_metrics(run)[-1]["loss"]
    assert frames[-1].startswith("train lora: 100%") and " 4/4 " in frames[-1]
    assert "step/s" in frames[-1] or "s/step" in frames[-1]
    assert frames[-1].endswith(f"loss={last_loss:.4f}]")


def test_a_quiet_run_prints_nothing_even_while_datasets_reads_its_data_the_first_time(tmp_path, capsys):
    fresh = tiny_dataset(tmp_path / "fresh", height=32, width=40, scenes=2, seed=4)  # not in datasets' cache yet
    capsys.readouterr()
    train(config(fresh, steps=1, checkpoint_every=1), tmp_path / "run", progress=False)
    assert capsys.readouterr().err == ""  # neither the run's bar nor datasets' "Generating train split"


def test_gradient_checkpointing_on_a_backbone_without_it_is_refused(data, tmp_path):
    from subspace_hub.pipelines.train import _attach

    message = (
        r"^gradient_checkpointing is on, but the backbone has no gradient_checkpointing_enable\(\); turn it off\.$"
    )
    with pytest.raises(ConfigError, match=message):
        _attach(config(data, gradient_checkpointing=True))
    with pytest.raises(ConfigError, match=message):
        train(config(data, gradient_checkpointing=True), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_evaluation_during_a_run_leaves_the_model_in_the_mode_it_found(data):
    from subspace_hub.pipelines.train import _attach, _evaluate, held_out_samples

    settings = config(data, eval_limit=1)
    model = _attach(settings)
    for training in (True, False):
        model.train(training)
        summary = _evaluate(model, settings, held_out_samples(settings), torch.device("cpu"))
        assert model.training is training and set(summary["depth"]) >= {"abs_rel", "delta_1"}


def test_the_loss_figure_draws_the_loss_and_its_terms_and_the_png_is_720_by_420(tmp_path):
    from matplotlib import pyplot as plt
    from matplotlib.image import imread

    from subspace_hub.pipelines.train import loss_figure, plot_losses

    rows = [
        {"step": 1, "loss": 2.0, "loss_depth": 1.5, "lr": 1e-3},
        {"step": 2, "loss": 1.0, "loss_depth": 0.5, "lr": 1e-3},
        {"step": 2, "depth/abs_rel": 0.3},  # no loss: not drawn
        {"step": 3, "loss": 0.5, "lr": 1e-4},  # a term missing at a step: a gap
    ]
    figure = loss_figure(rows)
    (axis,) = figure.axes
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert list(lines) == ["loss", "loss_depth"]
    assert lines["loss"].get_xdata().tolist() == [1, 2, 3] and lines["loss"].get_ydata().tolist() == [2.0, 1.0, 0.5]
    assert lines["loss_depth"].get_ydata()[:2].tolist() == [1.5, 0.5] and math.isnan(lines["loss_depth"].get_ydata()[2])
    assert (axis.get_xlabel(), axis.get_ylabel(), axis.get_yscale()) == ("step", "training loss", "log")
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["loss", "loss_depth"]
    # thin lines, a small legend and a faint grid: the look of every run's loss.png
    assert [line.get_linewidth() for line in lines.values()] == [1, 1]
    assert {text.get_fontsize() for text in axis.get_legend().get_texts()} == {7}
    assert {line.get_alpha() for line in axis.xaxis.get_gridlines() + axis.yaxis.get_gridlines()} == {0.3}
    plt.close(figure)
    negative = loss_figure([{"step": 1, "loss": 0.5}, {"step": 2, "loss": -0.25}])
    assert negative.axes[0].get_yscale() == "linear"  # a loss that goes negative has no log scale
    zero = loss_figure([{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.0}])
    assert zero.axes[0].get_yscale() == "linear"  # nor one that reaches zero
    plt.close(zero)
    plt.close(negative)
    path = plot_losses(rows, tmp_path / "loss.png")
    assert path == tmp_path / "loss.png" and imread(path).shape[:2] == (420, 720)


def test_the_run_card_states_the_run(data, tmp_path):
    from subspace_hub.pipelines.train import RunResult, write_run_card

    settings = config(data, pretrained="me/weights", revision="v2", backbone_config="tiny", steps=10)
    rows = [{"step": 1, "loss": 0.123456}, {"step": 2, "loss": 0.0456789}]
    evaluation = {"depth": {"abs_rel": 0.1234567, "delta_1": 0.9}}
    result = RunResult(tmp_path, 2, trainable_parameters=1234567, evaluation=evaluation)
    card = write_run_card(tmp_path, settings, rows, result).read_text()
    assert card.startswith(
        "# Training run: `lora` on `reference`\n\n1,234,567 trainable parameters, 2 of 10 steps; training loss 0.1235 "
        "at\nthe first logged step, 0.0457 at the last.\n\n- backbone: `reference` (config `tiny`), weights "
        "`me/weights` at `v2`\n"
    )
    assert (
        "\nMETRIC  OUTPUT   VALUE\n------  -------  --------\ndepth   abs_rel  0.123457\ndepth   delta_1  0.9\n" in card
    )
    assert 'subspace_hub.load_adapter("adapter")' in card and "![training loss](loss.png)" in card
    assert settings.to_yaml().strip() in card and (tmp_path / "loss.png").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty plot, without matplotlib's empty-legend warning
        bare = write_run_card(tmp_path, config(data), [], RunResult(tmp_path, 0)).read_text()
    assert "training loss - at\nthe first logged step, - at the last." in bare
    assert "random initial weights" in bare and "No test split was evaluated." in bare


FREEZING_PLUGIN = """
    from subspace_hub import AdapterSpec, hookimpl

    def freeze(model):
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return model

    @hookimpl
    def register_adapters(register):
        register(AdapterSpec("freeze-all", freeze))
"""


def test_a_backbone_without_a_loss_and_a_method_that_trains_nothing_are_refused(
    data, tmp_path, distributions, good_plugin
):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin(), entry_point="tiny")
    distributions.add("subspace-hub-freeze", "subspace_hub_freeze", FREEZING_PLUGIN, entry_point="freeze")
    message = r"^Backbone 'tiny-third-party' declares no loss, so it cannot be trained\.$"
    with pytest.raises(ConfigError, match=message):
        train(config(data, backbone="tiny-third-party", backbone_config=None), tmp_path / "run", progress=False)
    message = r"^Method 'freeze-all' left no parameter of 'reference' trainable\.$"
    with pytest.raises(ConfigError, match=message):
        train(config(data, method="freeze-all", method_options={}), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_steps_are_logged_and_checkpointed_every_so_many_and_at_the_last(data, tmp_path):
    optim = {"lr": 1e-3, "weight_decay": 0.2, "betas": (0.8, 0.95)}
    run = train(config(data, steps=5, log_every=2, checkpoint_every=2, optim=optim), tmp_path / "run", progress=False)
    assert [row["step"] for row in read_metrics(run.run)] == [2, 4, 5]
    assert [p.name for p in list_checkpoints(run.run)] == ["step-00000004", "step-00000005"]
    groups = torch.load(list_checkpoints(run.run)[-1] / "optimizer.pt")["param_groups"]
    assert [(g["weight_decay"], tuple(g["betas"])) for g in groups] == [(0.2, (0.8, 0.95))]  # the config's AdamW


def test_a_signal_stops_the_run_after_a_checkpoint_and_restores_the_handlers(data, tmp_path, monkeypatch):
    """In process: SIGTERM arrives while step 3 is logged; the run writes step 3's checkpoint, closes its logs,
    raises, and puts the previous handlers back; a resume finishes the run."""
    from subspace_hub.pipelines import train as engine
    from subspace_hub.pipelines.train import TrainingInterrupted

    memory, steps = engine._memory_gib, []

    def memory_then_signal(device):
        steps.append(len(steps) + 1)
        if len(steps) == 3:
            signal.raise_signal(signal.SIGTERM)
        return memory(device)

    monkeypatch.setattr(engine, "_memory_gib", memory_then_signal)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    settings = config(data, steps=6, checkpoint_every=4)
    with pytest.raises(TrainingInterrupted, match=r"^Stopped at step 3 of 6 by a signal; the checkpoint is written\."):
        train(settings, tmp_path / "run", progress=False)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000003"]
    assert [row["step"] for row in read_metrics(tmp_path / "run")] == [1, 2, 3]
    monkeypatch.setattr(engine, "_memory_gib", memory)
    result = train(settings, tmp_path / "run", resume=True, progress=False)
    assert result.steps == 6 and [row["step"] for row in read_metrics(tmp_path / "run")] == list(range(1, 7))
    # a signal during the last step: nothing is left to stop, so the run ends as usual
    steps.clear()
    monkeypatch.setattr(engine, "_memory_gib", memory_then_signal)
    last = train(config(data, steps=3, checkpoint_every=4), tmp_path / "last", progress=False)
    assert last.steps == 3 and (tmp_path / "last" / "adapter").is_dir()
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_run_folder_in_missing_parents_is_made_and_images_must_fit_the_patches(data, tmp_path):
    nested = tmp_path / "a" / "b" / "run"
    assert train(config(data, steps=1, checkpoint_every=1), nested, progress=False).steps == 1
    # 32 x 40 images: whole 8-pixel patches, but not 16-pixel ones (the run's backbone config decides)
    wide = config(data, backbone_config={"depth": 2, "patch_size": 16}, steps=1)
    with pytest.raises(ConfigError, match=r"40"):
        train(wide, tmp_path / "wide", progress=False)
    assert not (tmp_path / "wide").exists()


def test_a_resume_is_refused_when_the_recorded_config_lacks_a_setting_and_a_folder_without_one_starts_afresh(
    data, tmp_path
):
    settings = config(data, steps=2, checkpoint_every=1)
    run = tmp_path / "run"
    first = [row["loss"] for row in read_metrics(train(settings, run, progress=False).run)]
    recorded = run / "config.yaml"
    lines = recorded.read_text().splitlines(True)
    recorded.write_text("".join(line for line in lines if not line.startswith("keep_checkpoints:")))
    with pytest.raises(ConfigError, match="these settings differ: keep_checkpoints. Resume without changing them"):
        train(settings, run, resume=True, progress=False)
    recorded.unlink()  # checkpoints without the config that made them: not resumed from
    (run / "metrics.csv").unlink()
    shutil.rmtree(run / "adapter")
    again = [row["loss"] for row in read_metrics(train(settings, run, progress=False).run)]
    assert again == pytest.approx(first, rel=1e-6) and len(again) == 2


def test_bf16_precision_trains_under_bf16_autocast_on_the_cpu(data, tmp_path, on_the_cpu):
    losses = {}
    for precision in ("fp32", "bf16"):
        run = train(
            config(data, steps=1, checkpoint_every=1, precision=precision), tmp_path / precision, progress=False
        )
        losses[precision] = read_metrics(run.run)[0]["loss"]
    # the same batch and weights: bf16 arithmetic moves the loss by a little, not by nothing
    assert losses["bf16"] != losses["fp32"] and losses["bf16"] == pytest.approx(losses["fp32"], rel=5e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run with `pytest -m gpu`)")
def test_on_cuda_auto_precision_is_bf16_the_run_is_on_the_gpu_and_its_memory_is_the_cuda_peak(data, tmp_path):
    """The paths only a CUDA device takes: bf16 chosen under ``auto``, the batches moved to the GPU (a forward
    on CPU inputs would fail), and ``memory_gib`` read from CUDA's allocator, not from the process's RSS."""
    fields = {"source": str(data), "min_views": 2, "max_views": 4, "max_images": 8, "test_split": None}
    losses = {}
    for precision in ("auto", "bf16", "fp32"):
        torch.cuda.reset_peak_memory_stats()
        settings = config(data, data=fields, steps=3, checkpoint_every=3, precision=precision)
        rows = read_metrics(train(settings, tmp_path / precision, progress=False).run)
        peak = torch.cuda.max_memory_allocated() / 2**30  # nothing after the last step allocates on the GPU
        memory = [row["memory_gib"] for row in rows]
        assert 0 < memory[0] <= memory[1] <= memory[2] and memory[2] == pytest.approx(peak, rel=1e-12), (memory, peak)
        losses[precision] = [row["loss"] for row in rows]
    assert torch.cuda.is_bf16_supported()
    assert losses["auto"] == losses["bf16"]  # the same kernels on the same data: bit-identical
    assert losses["auto"] != losses["fp32"] and losses["auto"] == pytest.approx(losses["fp32"], rel=5e-2)
    # evaluation in the middle of the run and at its end runs on the GPU too, and training goes on there after it
    result = train(
        config(data, steps=4, checkpoint_every=4, eval_every=2, eval_limit=1), tmp_path / "eval", progress=False
    )
    assert len(read_metrics(result.run)) == 4 and all(math.isfinite(loss) for loss in result.losses)
    assert [row["step"] for row in read_rows(result.run / "evaluation.csv")] == [2, 4]
    assert math.isfinite(result.evaluation["depth"]["abs_rel"])
