"""Small-model training on one shared GPU: steps/s of N processes, each training its own LoRA at once.

The reproduction study trains hundreds of short runs of ``vggt-small`` (23.6 M parameters, 112 px); a step of it
launches some 6,000 kernels, too few operations each to fill a GPU, so the study runs many processes on one GPU.
This benchmark measures what that buys and what a host synchronisation inside the step costs there (a process
that waits for the GPU also waits for every other process's queued kernels).

Each process builds ``vggt-small`` with random weights, attaches LoRA rank 16 on the paper's targets and trains on
one GPU-resident batch of 4 scenes x 6 views at 112 x 112 (a fifth of the pixels invalid), in float32, reading the
loss terms back once a step as the training engine does. ``--loss-from FILE`` trains with another version of
``subspace_hub_vggt/losses.py`` (e.g. ``git show 3a23f7c:plugins/vggt/subspace_hub_vggt/losses.py``, the loss that
indexed by the mask) for comparison.

    PYTHONPATH=.:plugins/vggt SUBSPACE_HUB_PLUGINS=subspace_hub_vggt.plugin \\
        python benchmarks/bench_shared_gpu.py --processes 1 14 --steps 40
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from multiprocessing import get_context
from pathlib import Path


def _loss(loss_from: str | None):
    if loss_from is None:
        from subspace_hub_vggt.losses import vggt_loss

        return vggt_loss
    spec = importlib.util.spec_from_file_location("other_losses", loss_from)
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_losses"] = module
    spec.loader.exec_module(module)
    return module.vggt_loss


def _batch(device: str):
    import torch

    gen = torch.Generator().manual_seed(0)
    b, s, h, w = 4, 6, 112, 112
    intrinsics = torch.tensor([[100.0, 0, w / 2], [0, 100.0, h / 2], [0, 0, 1]]).expand(b, s, 3, 3).clone()
    extrinsics = torch.zeros(b, s, 3, 4)
    extrinsics[..., :3, :3] = torch.eye(3)
    extrinsics[..., 0, 3] = -0.05 * torch.arange(s, dtype=torch.float32)
    batch = {
        "images": torch.rand(b, s, 3, h, w, generator=gen),
        "depth": 2.0 + 0.5 * torch.rand(b, s, h, w, generator=gen),
        "mask": torch.rand(b, s, h, w, generator=gen) > 0.2,
        "intrinsics": intrinsics,
        "extrinsics": extrinsics,
    }
    return {k: v.to(device) for k, v in batch.items()}


def _worker(rank: int, steps: int, warmup: int, loss_from: str | None, device: str, barrier, queue) -> None:
    import torch

    import subspace_hub

    torch.set_num_threads(1)
    torch.manual_seed(rank)
    loss_fn = _loss(loss_from)
    model = subspace_hub.load_backbone("vggt", config="vggt-small")
    model = subspace_hub.attach_adapter(model, "lora", rank=16).to(device).train()
    batch = _batch(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> list[float]:
        terms = loss_fn(model(batch["images"]), batch)
        terms["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return torch.stack([v.detach().float() for v in terms.values()]).tolist()  # one read-back a step

    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    barrier.wait()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    queue.put(time.perf_counter() - started)


def measure(processes: int, steps: int, warmup: int, loss_from: str | None, device: str) -> dict[str, float]:
    context = get_context("spawn")
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_worker, args=(rank, steps, warmup, loss_from, device, barrier, queue))
        for rank in range(processes)
    ]
    for worker in workers:
        worker.start()
    seconds = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    slowest = max(seconds)
    return {
        "processes": processes,
        "ms_per_step": 1000 * sum(seconds) / len(seconds) / steps,
        "steps_per_s_total": processes * steps / slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 14])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--loss-from", default=None, help="Another losses.py to train with (for comparison).")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", default=None, help="Append the rows to this JSON-lines file.")
    args = parser.parse_args()
    import torch

    label = Path(args.loss_from).name if args.loss_from else "current loss"
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    for processes in args.processes:
        row = {"loss": label, "gpu": gpu, **measure(processes, args.steps, args.warmup, args.loss_from, args.device)}
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
