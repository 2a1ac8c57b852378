"""VGGT-1B on one GPU: numerical parity at full scale, forward speed and memory, LoRA r16 training step.

Protocol (as the official performance anchor in shared/reference/vggt/README.md): random weights, eval mode,
bf16 autocast, images 1 x S x 3 x 518 x 518, 2 warm-up runs then the mean of 5; peak memory from
``torch.cuda.max_memory_allocated``. With ``--official PATH`` (a checkout of facebookresearch/vggt) the official
model is timed in the same run and its random weights are copied into ours, so parity is checked on
identical weights; without it the accuracy reference is ours in fp32 (equal to the official fp32 outputs, max abs
difference 0.0) and ours in bf16 with fp32 heads stands for the official bf16 error (within 10 % of it on every
output when both were run). Each configuration in :data:`CONFIGURATIONS` is timed and its bf16 error reported.

Usage (on a GPU machine, from the repository root)::

    PYTHONPATH=.:plugins/vggt SUBSPACE_HUB_PLUGINS=subspace_hub_vggt.plugin \
        python benchmarks/bench_vggt.py --frames 8 16 32 [--official /path/to/vggt] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from typing import Any

import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path

import subspace_hub
from subspace_hub_vggt.geometry import depth_to_world_points  # noqa: F401  (imported for a complete install check)
from subspace_hub_vggt.losses import vggt_loss


def timed(fn, warmup: int = 2, repeat: int = 5) -> tuple[float, float]:
    """Mean seconds per call and peak GiB allocated during the timed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat, torch.cuda.max_memory_allocated() / 2**30


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def free(*models: Any) -> None:
    del models
    gc.collect()
    torch.cuda.empty_cache()


def build_ours(config: dict | str, state: dict | None) -> torch.nn.Module:
    model = subspace_hub.load_backbone("vggt", config=config, device="cuda")
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model.eval()


PARITY_KEYS = ["pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"]


# Each configuration of ours timed (name, head precision, what has been compiled by then): compilation is in place,
# so the compiled ones come last, in this order.
CONFIGURATIONS = (
    ("ours_fp32_heads", "fp32", None),
    ("ours_bf16_heads", "autocast", None),
    ("ours_fp32_heads_compiled", "fp32", "blocks"),
    ("ours_bf16_heads_compiled", "autocast", "blocks"),
    ("ours_fp32_heads_all_compiled", "fp32", "heads"),
)


def parity(
    official, ours, frames: int, reference: str = "official"
) -> tuple[dict[str, Any], torch.Tensor, dict[str, torch.Tensor]]:
    """fp32 (TF32 off, so both run true float32) and bf16-autocast outputs against the ``reference`` model's fp32
    ones (``official`` is ours itself when there is no official checkout). Returns the figures, the input images
    and the fp32 reference outputs (for later modes)."""
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(1)
    images = torch.rand(1, frames, 3, 518, 518, device="cuda")
    with torch.no_grad():
        ref = {k: v for k, v in official(images).items() if k in PARITY_KEYS}
        fp32 = ours(images)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            official_bf16 = official(images)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    result = {
        "reference": f"{reference} fp32",
        "fp32_max_abs_diff_vs_reference": {k: float((fp32[k] - ref[k]).abs().max()) for k in PARITY_KEYS},
        f"{reference}_bf16_rel_error": {k: rel_error(official_bf16[k], ref[k]) for k in PARITY_KEYS},
    }
    del fp32, official_bf16
    return result, images, ref


def bf16_error(model, images: torch.Tensor, ref: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative L2 error of a bf16-autocast forward against the fp32 reference outputs (``ref``)."""
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(images)
    return {k: rel_error(out[k], ref[k]) for k in PARITY_KEYS}


def forward_bench(model, frames: int) -> tuple[float, float] | str:
    """(seconds per forward, peak GiB) of a bf16-autocast forward of ``frames`` 518 x 518 images, or ``"oom"``."""
    try:
        images = torch.rand(1, frames, 3, 518, 518, device="cuda")

        def run():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                model(images)

        return timed(run)
    except torch.OutOfMemoryError:
        images = None
        free()
        return "oom"


def lora_step_bench(frames: int, checkpointing: bool) -> tuple[float, float, int]:
    from peft import LoraConfig, get_peft_model

    from subspace_hub.adapters.targets import resolve_targets
    from subspace_hub_vggt.plugin import example_batch  # noqa: F401

    model = subspace_hub.load_backbone("vggt", config={"enable_point": False, "enable_track": False}, device="cuda")
    model.gradient_checkpointing_enable(checkpointing)
    targets = resolve_targets(model)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets)).train()
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-5)
    h = w = 518
    intrinsics = torch.tensor([[400.0, 0, w / 2], [0, 400.0, h / 2], [0, 0, 1]], device="cuda").expand(1, frames, 3, 3)
    extrinsics = torch.zeros(1, frames, 3, 4, device="cuda")
    extrinsics[..., :3, :3] = torch.eye(3, device="cuda")
    extrinsics[..., 0, 3] = -0.05 * torch.arange(frames, device="cuda")
    batch = {
        "images": torch.rand(1, frames, 3, h, w, device="cuda"),
        "depth": 2 + torch.rand(1, frames, h, w, device="cuda"),
        "mask": torch.ones(1, frames, h, w, dtype=torch.bool, device="cuda"),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
    }

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = peft_model(batch["images"])
        loss = vggt_loss(out, batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in peft_model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds, peak = timed(step, warmup=2, repeat=3)
    free(peft_model, model, optimizer)
    return seconds, peak, trainable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--official", help="path of a facebookresearch/vggt checkout to compare against")
    parser.add_argument("--train-frames", type=int, nargs="*", default=[8, 16, 32])
    parser.add_argument("--json", help="write all figures to this file")
    parser.add_argument(
        "--compile", action="store_true", help="also time ours with compile_blocks(), then with compile_heads() too"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {
        **header("cuda"),
    }
    print(f"{report['machine']}, torch {report['torch']}", flush=True)

    official = None
    state = None
    if args.official:
        sys.path.insert(0, args.official)
        from vggt.models.vggt import VGGT as OfficialVGGT

        torch.manual_seed(0)
        with torch.device("cuda"):
            official = OfficialVGGT().eval()
        official.cuda()  # its normalisation buffers are created on the CPU whatever the default device
        state = official.state_dict()
    torch.manual_seed(0)
    ours = build_ours("vggt-1b", state)

    # The accuracy reference: the official model in fp32, or ours in fp32 without it (the two agree exactly:
    # max abs difference 0.0 on every output, BENCHMARKS.md)
    report["parity_S2"], images, ref = parity(
        official or ours, ours, frames=2, reference="official" if official else "ours"
    )
    print(json.dumps(report["parity_S2"], indent=1), flush=True)

    rows = [{"frames": frames} for frames in args.frames]
    if official is not None:
        for entry in rows:
            entry["official"] = forward_bench(official, entry["frames"])
            print(entry, flush=True)
    compiled: set[str] = set()
    for name, precision, compile_step in CONFIGURATIONS:
        if compile_step is not None and not args.compile:
            break
        if compile_step is not None and compile_step not in compiled:
            getattr(ours, f"compile_{compile_step}")()
            compiled.add(compile_step)
        ours.head_precision = precision
        report["parity_S2"][f"{name}_rel_error"] = bf16_error(ours, images, ref)
        print(name, json.dumps(report["parity_S2"][f"{name}_rel_error"]), flush=True)
        for entry in rows:
            entry[name] = forward_bench(ours, entry["frames"])
            print(entry, flush=True)
    report["forward"] = rows
    free(official, ours)
    official = ours = None

    train_rows = []
    for frames in args.train_frames:
        for checkpointing in (False, True):
            try:
                seconds, peak, trainable = lora_step_bench(frames, checkpointing)
                train_rows.append(
                    {
                        "frames": frames,
                        "checkpointing": checkpointing,
                        "s_per_step": seconds,
                        "peak_gib": peak,
                        "trainable": trainable,
                    }
                )
            except torch.OutOfMemoryError:
                train_rows.append({"frames": frames, "checkpointing": checkpointing, "oom": True})
                free()
            print(train_rows[-1], flush=True)
    report["lora_r16_train_step"] = train_rows

    print("\nForward, bf16 autocast, 518x518, batch 1 (frames/s | peak GiB):")
    columns = ("official", *(name for name, _, _ in CONFIGURATIONS))
    print(f"{'S':>4}  " + "  ".join(f"{c:>24}" for c in columns))
    for entry in rows:
        cells = []
        for key in columns:
            if entry.get(key) == "oom":
                cells.append("out of memory")
            elif key in entry:
                s, peak = entry[key]
                cells.append(f"{entry['frames'] / s:7.1f} | {peak:6.2f}")
            else:
                cells.append("-")
        print(f"{entry['frames']:>4}  " + "  ".join(f"{c:>24}" for c in cells))
    print("\nLoRA r16 training step (paper targets; bf16 autocast; loss + backward + AdamW):")
    for row in train_rows:
        if row.get("oom"):
            print(f"  S={row['frames']:>2} checkpointing={row['checkpointing']!s:5}: out of memory")
        else:
            print(
                f"  S={row['frames']:>2} checkpointing={row['checkpointing']!s:5}: {row['s_per_step']:.3f} s/step, "
                f"{row['frames'] / row['s_per_step']:.1f} frames/s, peak {row['peak_gib']:.2f} GiB, trainable "
                f"{row['trainable']:,}"
            )
    finish(report, args.json)


if __name__ == "__main__":
    main()
