"""Where a VGGT-1B forward spends its time on one GPU: each part's share (CUDA events around the aggregator and each
head) and the top kernels (torch.profiler), for the bf16 settings bench_vggt times. Guides the work of issue 19.

    PYTHONPATH=.:plugins/vggt SUBSPACE_HUB_PLUGINS=subspace_hub_vggt.plugin \
        python benchmarks/profile_vggt.py --frames 16 [--compile] [--compile-heads] [--heads fp32|autocast] \
            [--json out.json]

It also times one SDPA call of each attention backend alone at the model's shapes (which kernel is fastest).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path

import subspace_hub

PARTS = ("aggregator", "camera_head", "depth_head", "point_head")
ATTENTION = {"cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION"}


def part_times(model: torch.nn.Module, images: torch.Tensor, repeat: int = 5) -> dict[str, float]:
    """Mean milliseconds of each of :data:`PARTS` and of the whole forward, from CUDA events around each part."""
    events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = {name: [] for name in PARTS}
    handles = []
    for name in PARTS:
        module = getattr(model, name)
        if module is None:
            continue

        # compiled modules trace their hooks: the event records must stay outside the graph
        @torch.compiler.disable
        def before(_module: Any, _args: Any, name: str = name) -> None:
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            events[name].append((start, torch.cuda.Event(enable_timing=True)))

        @torch.compiler.disable
        def after(_module: Any, _args: Any, _out: Any, name: str = name) -> None:
            events[name][-1][1].record()

        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    whole = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(images)
        end.record()
        whole.append((start, end))
    torch.cuda.synchronize()
    for handle in handles:
        handle.remove()
    times = {name: sum(s.elapsed_time(e) for s, e in pairs) / repeat for name, pairs in events.items() if pairs}
    times["forward"] = sum(s.elapsed_time(e) for s, e in whole) / repeat
    return times


def attention_times(frames: int, tokens: int = 1374, heads: int = 16, head_dim: int = 64) -> dict[str, Any]:
    """Milliseconds of one bf16 SDPA call at VGGT-1B's two shapes (global: [1, heads, frames * tokens, head_dim];
    frame: [frames, heads, tokens, head_dim]; 1374 tokens a 518 x 518 frame) under each backend, or why it refused."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    shapes = {"global": (1, heads, frames * tokens, head_dim), "frame": (frames, heads, tokens, head_dim)}
    times: dict[str, Any] = {}
    for name, backend in ATTENTION.items():
        for kind, shape in shapes.items():
            q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            try:
                with sdpa_kernel(getattr(SDPBackend, backend)):
                    for _ in range(3):
                        torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    for _ in range(10):
                        torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    end.record()
                    torch.cuda.synchronize()
                times[f"{name}_{kind}_ms"] = start.elapsed_time(end) / 10
            except RuntimeError as error:
                times[f"{name}_{kind}_ms"] = f"refused: {str(error).splitlines()[0][:120]}"
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--heads", default="autocast", choices=("fp32", "autocast"))
    parser.add_argument("--compile", action="store_true", help="compile_blocks() first")
    parser.add_argument("--compile-heads", action="store_true", help="compile_heads() first")
    parser.add_argument("--kernels", type=int, default=25, help="top kernels to list")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = subspace_hub.load_backbone("vggt", config="vggt-1b", device="cuda").eval()
    model.head_precision = args.heads
    if args.compile:
        model.compile_blocks()
    if args.compile_heads:
        model.compile_heads()
    images = torch.rand(1, args.frames, 3, 518, 518, device="cuda")
    attention = attention_times(args.frames)
    print(attention, flush=True)
    for _ in range(2):  # warm-up (and compilation)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(images)
    report: dict[str, Any] = {
        **header("cuda"),
        "frames": args.frames,
        "heads": args.heads,
        "compiled": args.compile,
        "compiled_heads": args.compile_heads,
    }
    report["attention_alone"] = attention
    report["milliseconds"] = part_times(model, images)
    print({k: round(v, 1) for k, v in report["milliseconds"].items()}, flush=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profiler:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(images)
        torch.cuda.synchronize()
    kernels = sorted(profiler.key_averages(), key=lambda e: e.device_time_total, reverse=True)[: args.kernels]
    total = sum(e.device_time_total for e in profiler.key_averages() if e.device_time_total > 0)
    report["top_kernels"] = [
        {"name": e.key[:160], "ms": e.device_time_total / 1e3, "share": e.device_time_total / total, "calls": e.count}
        for e in kernels
    ]
    for row in report["top_kernels"]:
        print(f"{row['ms']:8.2f} ms {row['share']:6.1%} {row['calls']:5d}  {row['name'][:110]}")
    finish(report, args.json)


if __name__ == "__main__":
    main()
