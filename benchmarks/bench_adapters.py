"""Subspace adapter vs PEFT LoRA on VGGT: training-step time, peak memory, and inference before/after merging.

Both methods adapt the same modules (every linear layer of the aggregator's frame and global blocks); the subspace
core is ``rank x rank`` (two attributes of ``rank / 2`` dimensions, random orthonormal bases) and LoRA has rank
``rank``, so both train on the same-size update. A step is forward + VGGT loss (camera + depth) + backward +
AdamW, with bf16 autocast on the GPU and float32 on the CPU. The methods alternate round by round (so drift
hits both alike) and each figure is the median over rounds of the mean step time in the round.

Inference is timed for the plain backbone, each adapter before merging, and each after ``merge_adapter``
(a plain backbone again: the target is zero overhead).

Peak memory: ``torch.cuda.max_memory_allocated`` on the GPU; on the CPU each method runs in a fresh process and
the figures are its peak resident set size and that peak less the size before the first step (activations,
gradients and optimiser state: what training adds).

Usage (from the repository root)::

    PYTHONPATH=.:plugins/vggt SUBSPACE_HUB_PLUGINS=subspace_hub_vggt.plugin python benchmarks/bench_adapters.py \
        --device cpu --config vggt-tiny --frames 4 --size 112 --json benchmarks/results/adapters_cpu.json
    ... --device cuda --config mid --frames 8 --size 518 --json benchmarks/results/adapters_gpu.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path

import subspace_hub
from subspace_hub.adapters.subspace import synthetic_bundle
from subspace_hub_vggt.losses import vggt_loss

MID = {
    # VGGT with a ViT-B/14 DINOv2 and 12 alternating blocks of width 768: a third of VGGT-1B's aggregator.
    "embed_dim": 768,
    "enable_point": False,
    "enable_track": False,
    "aggregator": {"depth": 12, "num_heads": 12, "patch_embed": "dinov2_vitb14_reg"},
    "camera_head": {"num_heads": 12},
    "depth_head": {"intermediate_layer_idx": [2, 5, 8, 11]},
}
TARGETS = ["frame", "global"]  # the spec's groups: every qkv/proj/fc1/fc2 of the alternating blocks


def build(config: str, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    resolved: Any = MID if config == "mid" else config
    if config == "vggt-tiny":
        resolved = {
            **subspace_hub.plugins.get_backbone_spec("vggt").presets["vggt-tiny"],
            "enable_point": False,
            "enable_track": False,
        }
    return subspace_hub.load_backbone("vggt", config=resolved, device=device)


def attach(model: torch.nn.Module, method: str, rank: int) -> torch.nn.Module:
    if method == "lora":
        return subspace_hub.attach_adapter(model, "lora", rank=rank, targets=TARGETS)
    if method == "subspace":
        bundle = synthetic_bundle(model, ("texture", "geometry"), rank // 2, targets=TARGETS)
        return subspace_hub.attach_adapter(model, "subspace", bundle=bundle)
    raise ValueError(method)


def batch_for(frames: int, size: int, device: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    intrinsics = torch.tensor([[size * 0.8, 0, size / 2], [0, size * 0.8, size / 2], [0, 0, 1.0]]).expand(
        1, frames, 3, 3
    )
    extrinsics = torch.zeros(1, frames, 3, 4)
    extrinsics[..., :3, :3] = torch.eye(3)
    extrinsics[..., 0, 3] = -0.05 * torch.arange(frames)
    batch = {
        "images": torch.rand(1, frames, 3, size, size, generator=gen),
        "depth": 2 + torch.rand(1, frames, size, size, generator=gen),
        "mask": torch.ones(1, frames, size, size, dtype=torch.bool),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics.clone(),
    }
    return {k: v.to(device) for k, v in batch.items()}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Trainer:
    """One adapted model with its optimiser; ``step()`` is one training step."""

    def __init__(self, method: str, args: argparse.Namespace) -> None:
        self.device = args.device
        self.model = attach(build(args.config, args.device), method, args.rank).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in self.params)
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-5)
        self.batch = batch_for(args.frames, args.size, args.device)

    def step(self) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device == "cuda"):
            out = self.model(self.batch["images"])
        loss = vggt_loss(out, self.batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def timed_steps(self, steps: int) -> float:
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync(self.device)
        return (time.perf_counter() - start) / steps


def inference_time(model: torch.nn.Module, images: torch.Tensor, device: str, repeat: int) -> float:
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        for _ in range(2):
            model(images)
        times = []
        for _ in range(repeat):
            sync(device)
            start = time.perf_counter()
            model(images)
            sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference(args: argparse.Namespace) -> dict[str, float]:
    images = batch_for(args.frames, args.size, args.device)["images"]
    plain = build(args.config, args.device)
    plain_types = [type(m) for m in plain.modules()]
    result = {}
    models = {"plain": plain}
    for method in ("lora", "subspace"):
        adapted = attach(build(args.config, args.device), method, args.rank)
        with torch.no_grad():  # a trained-looking adapter, so merging really changes the weights
            for p in adapted.parameters():
                if p.requires_grad:
                    p.normal_(std=1e-3)
        models[method] = adapted
        merged = subspace_hub.merge_adapter(attach(build(args.config, args.device), method, args.rank))
        assert [type(m) for m in merged.modules()] == plain_types, f"merged {method} is not the plain backbone"
        models[f"{method}_merged"] = merged
    for _ in range(args.rounds):  # alternate, then take medians
        for name, model in models.items():
            result.setdefault(name, []).append(inference_time(model, images, args.device, args.repeat))
    return {name: statistics.median(times) for name, times in result.items()}


def train_in_process(args: argparse.Namespace) -> dict[str, Any]:
    trainers = {m: Trainer(m, args) for m in ("lora", "subspace")}
    for trainer in trainers.values():
        trainer.timed_steps(args.warmup)
    rounds: dict[str, list[float]] = {m: [] for m in trainers}
    for _ in range(args.rounds):
        for method, trainer in trainers.items():
            rounds[method].append(trainer.timed_steps(args.steps))
    peaks = {}
    for method in trainers:  # peak memory one method at a time, the other freed
        for other in trainers.values():
            other.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        trainers[method].timed_steps(2)
        peaks[method] = torch.cuda.max_memory_allocated() / 2**30
    return {
        m: {
            "step_s": statistics.median(rounds[m]),
            "rounds_s": rounds[m],
            "peak_gib": peaks[m],
            "trainable": trainers[m].trainable,
        }
        for m in trainers
    }


def train_worker(args: argparse.Namespace) -> None:
    """CPU: one method in this fresh process; prints its step times and memory as JSON."""
    import peft  # noqa: F401  (both methods pay for the same imports, so the memory figures compare training only)

    trainer = Trainer(args.worker, args)
    before = _rss_gib()
    trainer.timed_steps(args.warmup)
    times = [trainer.timed_steps(args.steps) for _ in range(args.rounds)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(
        json.dumps(
            {"rounds_s": times, "peak_rss_gib": peak, "training_rss_gib": peak - before, "trainable": trainer.trainable}
        )
    )


def _rss_gib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 2**20


def train_in_workers(args: argparse.Namespace) -> dict[str, Any]:
    base = [sys.executable, __file__, "--device", "cpu", "--config", args.config, "--rank", str(args.rank)]
    base += [
        "--frames",
        str(args.frames),
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--rounds",
        "1",
    ]
    runs: dict[str, list[dict[str, Any]]] = {"lora": [], "subspace": []}
    for _ in range(args.rounds):  # alternate processes so drift hits both methods alike
        for method in runs:
            out = subprocess.run([*base, "--worker", method], check=True, capture_output=True, text=True).stdout
            runs[method].append(json.loads(out.strip().splitlines()[-1]))
    return {
        m: {
            "step_s": statistics.median(r["rounds_s"][0] for r in rs),
            "rounds_s": [r["rounds_s"][0] for r in rs],
            "peak_rss_gib": max(r["peak_rss_gib"] for r in rs),
            "training_rss_gib": max(r["training_rss_gib"] for r in rs),
            "trainable": rs[0]["trainable"],
        }
        for m, rs in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--config", default="vggt-tiny", help="vggt-tiny, mid (see MID) or another preset")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank = subspace core size")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=112, help="image height = width, a multiple of 14")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10, help="inference calls per round")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--worker", choices=["lora", "subspace"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        train_worker(args)
        return
    report: dict[str, Any] = {
        **header(args.device),
        "setting": {k: getattr(args, k) for k in ("config", "rank", "frames", "size", "steps", "warmup", "rounds")},
    }
    report["train"] = train_in_process(args) if args.device == "cuda" else train_in_workers(args)
    report["train"]["subspace_over_lora"] = report["train"]["subspace"]["step_s"] / report["train"]["lora"]["step_s"]
    report["inference_s"] = inference(args)
    report["inference_s"]["subspace_merged_over_plain"] = (
        report["inference_s"]["subspace_merged"] / report["inference_s"]["plain"]
    )
    finish(report, args.json)


if __name__ == "__main__":
    main()
