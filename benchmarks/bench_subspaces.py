"""Subspace extraction speed at VGGT-1B scale, and per matrix against PEFT's SVD merge of the same LoRAs.

1. Whole model: the 192 aggregator matrices of VGGT-1B (24 frame + 24 global blocks x qkv 3072x1024, proj
   1024x1024, fc1 4096x1024, fc2 1024x4096), N = 10 LoRAs of rank 16 each, d = 16, exactly 20 IRLS iterations
   (tol = 0), alpha = 1, mode "mean": ``extract_bundle`` on in-memory state dicts, and end to end from PEFT adapter
   files on disk.
2. Per matrix, side by side on the same LoRAs: ``PeftModel.add_weighted_adapter(combination_type="svd")``
   (default full_matrices=True) merging the 10 LoRAs of every matrix into one rank-16 adapter, over a PEFT model
   holding all 192 matrices, against ``extract_bundle`` on the same LoRAs: least squares (alpha = 2, the same
   weighted-mean truncated SVD PEFT computes; both answers are compared) and the robust extraction (alpha = 1,
   20 iterations). Per matrix = whole-model time / 192. Single calls per matrix shape are timed too.

Usage::

    python benchmarks/bench_subspaces.py [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path

from subspace_hub.subspaces import extract_bundle, shared_subspace

SHAPES = {"attn.qkv": (3072, 1024), "attn.proj": (1024, 1024), "mlp.fc1": (4096, 1024), "mlp.fc2": (1024, 4096)}
N, RANK, D, ITERATIONS = 10, 16, 16, 20


def vggt_aggregator_loras(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """N PEFT-format LoRA state dicts over the 192 aggregator matrices: a shared rank-8 part per matrix plus
    LoRA-specific parts, as a trained ensemble looks."""
    gen = torch.Generator().manual_seed(seed)
    shared = {}
    for kind in ("frame", "global"):
        for layer in range(24):
            for module, (out, inn) in SHAPES.items():
                shared[f"aggregator.{kind}_blocks.{layer}.{module}"] = (
                    torch.randn(out, 8, generator=gen) * 0.02,
                    torch.randn(8, inn, generator=gen) * 0.02,
                )
    loras = []
    for _ in range(N):
        state = {}
        for name, (b, a) in shared.items():
            out, inn = b.shape[0], a.shape[1]
            own_b = torch.randn(out, RANK - 8, generator=gen) * 0.01
            own_a = torch.randn(RANK - 8, inn, generator=gen) * 0.01
            state[f"base_model.model.{name}.lora_B.weight"] = torch.cat(
                [b + 0.002 * torch.randn(b.shape, generator=gen), own_b], 1
            )
            state[f"base_model.model.{name}.lora_A.weight"] = torch.cat([a, own_a], 0)
        loras.append(state)
    return loras


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def peft_whole_model(loras: list[dict[str, torch.Tensor]]) -> tuple[float, torch.nn.Module]:
    """PEFT's SVD merge of the same LoRAs over a model holding the 192 matrices; returns (seconds, model)."""
    from peft import LoraConfig, get_peft_model

    modules = sorted({k.removeprefix("base_model.model.").rsplit(".lora_", 1)[0] for k in loras[0]})
    root = torch.nn.Module()
    for name in modules:
        out, inn = (
            loras[0][f"base_model.model.{name}.lora_B.weight"].shape[0],
            loras[0][f"base_model.model.{name}.lora_A.weight"].shape[1],
        )
        parent = root
        for part in name.split(".")[:-1]:
            if not hasattr(parent, part):
                parent.add_module(part, torch.nn.Module())
            parent = getattr(parent, part)
        parent.add_module(name.split(".")[-1], torch.nn.utils.skip_init(torch.nn.Linear, inn, out))
    config = LoraConfig(r=RANK, lora_alpha=RANK, target_modules=modules)  # scaling 1: the state dicts hold B * scaling
    model = get_peft_model(root, config, adapter_name="lora0")
    for i in range(1, N):
        model.add_adapter(f"lora{i}", config)
    state = {}
    for i, lora in enumerate(loras):
        for key, value in lora.items():
            state[key.replace(".weight", f".lora{i}.weight")] = value
    missing = model.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys[:3]
    start = time.perf_counter()
    model.add_weighted_adapter([f"lora{i}" for i in range(N)], [1.0 / N] * N, "merged", combination_type="svd")
    return time.perf_counter() - start, model


def whole_model(repeat: int, with_peft: bool) -> dict[str, float]:
    loras = vggt_aggregator_loras()
    options = {"d": D, "alpha": 1.0, "mode": "mean", "max_iter": ITERATIONS, "tol": 0.0, "progress": False}
    extract_bundle({"texture": [loras[0], loras[1]]}, **{**options, "max_iter": 1})  # warm-up
    in_memory = timed(lambda: extract_bundle({"texture": loras}, **options), repeat)
    least_squares = timed(lambda: extract_bundle({"texture": loras}, **{**options, "alpha": 2.0}), repeat)
    result: dict[str, float] = {"least_squares_in_memory_s": statistics.median(least_squares)}
    if with_peft:
        from subspace_hub.subspaces import principal_angles

        seconds, peft_model = peft_whole_model(loras)
        result["peft_svd_s"] = seconds
        ours = extract_bundle({"texture": loras}, **{**options, "alpha": 2.0})
        worst = 0.0
        for name, sub in ours.attributes["texture"].items():
            layer = peft_model.base_model.model.get_submodule(name)
            merged_b = layer.lora_B["merged"].weight.detach().double()
            worst = max(worst, float(principal_angles(merged_b, sub.U).max()))
        result["max_angle_ours_vs_peft_rad"] = worst
        del peft_model
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file

        paths = []
        for i, state in enumerate(loras):
            folder = Path(tmp) / f"lora-{i}"
            folder.mkdir()
            save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "adapter_model.safetensors"))
            (folder / "adapter_config.json").write_text(
                json.dumps({"peft_type": "LORA", "r": RANK, "lora_alpha": RANK})
            )
            paths.append(folder)
        from_files = timed(lambda: extract_bundle({"texture": paths}, **options), repeat)
    return {
        **result,
        "matrices": 192,
        "in_memory_s": statistics.median(in_memory),
        "in_memory_all_s": in_memory,
        "from_adapter_files_s": statistics.median(from_files),
        "from_adapter_files_all_s": from_files,
    }


def per_matrix(repeat: int) -> list[dict[str, float]]:
    from peft import LoraConfig, get_peft_model

    rows = []
    for module, (out, inn) in SHAPES.items():
        torch.manual_seed(0)
        base = torch.nn.Sequential(torch.nn.Linear(inn, out))
        config = LoraConfig(r=RANK, lora_alpha=RANK, target_modules=["0"], init_lora_weights=False)
        model = get_peft_model(base, config, adapter_name="lora0")
        for i in range(1, N):
            model.add_adapter(f"lora{i}", config)
        names = [f"lora{i}" for i in range(N)]
        layer = model.base_model.model[0]
        factors = [(layer.lora_B[n].weight.detach() * layer.scaling[n], layer.lora_A[n].weight.detach()) for n in names]

        def peft_svd(model=model, names=names):
            model.add_weighted_adapter(names, [1.0 / N] * N, "merged", combination_type="svd")
            model.delete_adapter("merged")

        peft_svd()
        peft_times = timed(peft_svd, repeat)
        shared_subspace(factors, D, alpha=2.0)
        least_squares = timed(lambda factors=factors: shared_subspace(factors, D, alpha=2.0), repeat * 5)
        robust = timed(
            lambda factors=factors: shared_subspace(factors, D, alpha=1.0, max_iter=ITERATIONS, tol=0.0), repeat * 2
        )
        rows.append(
            {
                "module": module,
                "shape": [out, inn],
                "peft_svd_s": statistics.median(peft_times),
                "ours_least_squares_s": statistics.median(least_squares),
                "ours_robust_20_iterations_s": statistics.median(robust),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument(
        "--no-peft-whole-model", action="store_true", help="skip PEFT's whole-model merge (about 2 minutes)"
    )
    args = parser.parse_args()
    report = header("cpu")
    report["whole_model"] = whole = whole_model(args.repeat, with_peft=not args.no_peft_whole_model)
    print(whole, flush=True)
    report["per_matrix"] = per_matrix(args.repeat)
    print(
        f"\nWhole model (192 matrices, N={N}, r={RANK}, d={D}, {ITERATIONS} IRLS iterations): "
        f"{whole['in_memory_s']:.2f} s in memory, {whole['from_adapter_files_s']:.2f} s from adapter files"
    )
    if "peft_svd_s" in whole:
        peft = whole["peft_svd_s"] / 192
        print(
            f"Per matrix over the whole model: PEFT svd {peft * 1e3:.1f} ms | ours least squares "
            f"{whole['least_squares_in_memory_s'] / 192 * 1e3:.2f} ms "
            f"({whole['peft_svd_s'] / whole['least_squares_in_memory_s']:.0f}x) | "
            f"ours robust, 20 iterations {whole['in_memory_s'] / 192 * 1e3:.2f} ms "
            f"({whole['peft_svd_s'] / whole['in_memory_s']:.0f}x); "
            "largest angle between PEFT's and our least-squares subspaces: "
            f"{whole['max_angle_ours_vs_peft_rad']:.1e} rad"
        )
    print("Single calls:")
    print(f"{'matrix':>10} {'PEFT svd':>10} {'ours LS':>10} {'speed-up':>9} {'ours robust x20':>16} {'speed-up':>9}")
    for row in report["per_matrix"]:
        print(
            f"{row['module']:>10} {row['peft_svd_s'] * 1e3:8.1f}ms {row['ours_least_squares_s'] * 1e3:8.2f}ms "
            f"{row['peft_svd_s'] / row['ours_least_squares_s']:8.0f}x "
            f"{row['ours_robust_20_iterations_s'] * 1e3:14.1f}ms "
            f"{row['peft_svd_s'] / row['ours_robust_20_iterations_s']:8.0f}x"
        )
    finish(report, args.json)


if __name__ == "__main__":
    main()
