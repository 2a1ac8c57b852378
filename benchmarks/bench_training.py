"""The training engine on GPUs: VGGT-1B LoRA step time and memory, and images/s on one GPU against two.

``--mode step``: VGGT-1B (random weights; the paper's setting: camera and depth heads on, point and track heads
off) with rank-16 LoRA on the paper's targets (aggregator, camera head, depth head), one sample of F frames at
518 x 518 a step (forward under bf16 autocast, the VGGT loss, backward, clipping, AdamW), for F in ``--frames``,
with and without gradient checkpointing. Figures: the median step time over ``--steps`` steps after
``--warmup``, and ``torch.cuda.max_memory_allocated``.

``--mode scaling``: ``subspace-hub train`` itself, on data the GPU renderer generates here, with one process on
one GPU and then ``--num-processes 2`` on two GPUs; the figure is images/s (all processes) from the runs'
``metrics.csv``, median over the steps after the first ``--warmup``.

Usage (from the repository root, on the GPU machine)::

    PYTHONPATH=.:plugins/vggt SUBSPACE_HUB_PLUGINS=subspace_hub_vggt.plugin python benchmarks/bench_training.py \
        --mode step --frames 8 16 24 --json benchmarks/results/training_step_h200.json
    ... --mode scaling --json benchmarks/results/training_scaling_h200x2.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path
from bench_adapters import MID, batch_for

import subspace_hub
from subspace_hub.plugins import get_backbone_spec

PAPER_1B = {"enable_point": False, "enable_track": False}


def step_benchmark(frames: int, checkpointing: bool, args: argparse.Namespace) -> dict[str, Any]:
    try:
        return _step_benchmark(frames, checkpointing, args)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        result = {"frames": frames, "gradient_checkpointing": checkpointing, "out_of_memory": True}
        print(json.dumps(result), flush=True)
        return result


def _step_benchmark(frames: int, checkpointing: bool, args: argparse.Namespace) -> dict[str, Any]:
    spec = get_backbone_spec("vggt")
    torch.manual_seed(0)
    config = {**spec.presets["vggt-1b"], **PAPER_1B}
    model = subspace_hub.load_backbone("vggt", config=config, device="cuda")
    model = subspace_hub.attach_adapter(model, "lora", rank=16)
    if checkpointing:
        model.get_base_model().gradient_checkpointing_enable()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.05)
    batch = batch_for(frames, args.size, "cuda")
    model.train()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        started = time.perf_counter()
        loss = spec.task_loss(spec.run(model, batch), batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    result = {
        "frames": frames,
        "gradient_checkpointing": checkpointing,
        "step_s": statistics.median(times),
        "frames_per_s": frames / statistics.median(times),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "trainable": sum(p.numel() for p in params),
        "loss": float(loss),
    }
    del model, optimizer, batch
    torch.cuda.empty_cache()
    print(json.dumps(result), flush=True)
    return result


def images_per_s(run: Path, warmup: int) -> float:
    with open(run / "metrics.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("images_per_s")]
    return statistics.median(float(row["images_per_s"]) for row in rows[warmup:])


def scaling_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    data = work / "texture"
    cli = [sys.executable, "-m", "subspace_hub"]
    generate = [*cli, "data", "generate", "texture", "--datasets", "1", "--scenes", str(args.scenes)]
    generate += ["--views", str(args.views), "--resolution", str(args.size), "--device", "cuda", "--quiet"]
    started = time.perf_counter()
    subprocess.run([*generate, "--out", str(data)], check=True)
    generation_s = time.perf_counter() - started
    config = work / "mid.json"
    config.write_text(json.dumps(MID))
    train = [*cli, "train", "vggt", "-c", str(config), "--method", "lora", "--option", "rank=16"]
    train += ["--data", str(data), "--steps", str(args.train_steps), "--views", f"{args.frames[0]}-{args.frames[0]}"]
    train += ["--max-images", str(args.max_images), "--precision", "bf16", "--lr", "1e-5", "--no-tensorboard"]
    train += ["--checkpoint-every", "100000", "--set", "data.test_split=null", "--set", f"data.workers={args.workers}"]
    train += ["--quiet"]
    results: dict[str, Any] = {"generation_s": generation_s}
    for processes in (1, 2):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0" if processes == 1 else "0,1"}
        run = work / f"run-{processes}"
        started = time.perf_counter()
        completed = subprocess.run(
            [*train, "--num-processes", str(processes), "--out", str(run)], env=env, capture_output=True, text=True
        )
        if completed.returncode != 0:
            print(completed.stdout[-3000:], completed.stderr[-6000:], flush=True)
            raise SystemExit(f"the {processes}-process run failed")
        results[f"{processes}_gpu"] = {
            "images_per_s": images_per_s(run, args.warmup),
            "wall_s": time.perf_counter() - started,
        }
        print(processes, results[f"{processes}_gpu"], flush=True)
    results["speedup"] = results["2_gpu"]["images_per_s"] / results["1_gpu"]["images_per_s"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("step", "scaling"), required=True)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 24])
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting (step mode)")
    parser.add_argument("--scenes", type=int, default=32, help="scenes of the generated data (scaling mode)")
    parser.add_argument("--views", type=int, default=24, help="views per generated scene (scaling mode)")
    parser.add_argument("--train-steps", type=int, default=40, help="steps of each train run (scaling mode)")
    parser.add_argument("--max-images", type=int, default=16, help="images per step and process (scaling mode)")
    parser.add_argument("--workers", type=int, default=6, help="data-loader workers per process (scaling mode)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {**header("cuda"), "mode": args.mode}
    if args.mode == "step":
        report["vggt_1b_lora_r16"] = [
            step_benchmark(frames, checkpointing, args) for frames in args.frames for checkpointing in (False, True)
        ]
    else:
        report["setting"] = {k: getattr(args, k) for k in ("frames", "size", "train_steps", "max_images", "workers")}
        report["mid_vggt_lora_r16"] = scaling_benchmark(args)
    finish(report, args.json)


if __name__ == "__main__":
    main()
