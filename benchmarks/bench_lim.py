"""LIM against linear triplane interpolation, with and without the causal loss, at held-out in-between times.

On the plugin's 4D data (``lim-synthetic-4d``), through the training engine: the LRM is trained on keyframe
records (its first 4 views in, every view rendered), then LIM twice from it (``train --method full`` with the LRM
frozen): with the causal consistency loss and without. On held-out sequences, for every source and target keyframe
2, 3 or 4 apart and every keyframe between, the triplane at the in-between time is rendered to that keyframe's
held-out cameras (never an input) and scored by PSNR (whole image, on black) and PSNR_FG (object pixels); also at a
gap of 5 (alphas never trained on) and in two LIM hops (see ``CASE_SETS``):

- linear: (1 - alpha) T_LRM(source) + alpha T_LRM(target), the paper's baseline;
- nearest: the LRM triplane of the nearer keyframe;
- LIM, LIM without L_causal;
- oracle: the LRM on the in-between keyframe's own input views (LIM's teacher; not an interpolation).

LIM is trained ``--lim-seeds`` times each way on the same LRM (the seed orders the data and draws the keyframes);
``--travel`` makes the objects move along a line, which linear interpolation cannot express. ``--data-cache``
keeps the generated data between runs.

    PYTHONPATH=.:plugins/lim python benchmarks/bench_lim.py --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import finish, header, portable  # benchmarks/_report.py: the script's folder is on sys.path

import subspace_hub
from subspace_hub.metrics import psnr
from subspace_hub.pipelines.config import DataConfig, OptimConfig, TrainConfig
from subspace_hub.pipelines.train import train

CAUSAL, NO_CAUSAL = "LIM", "LIM without L_causal"
VARIANTS = {"both": (CAUSAL, NO_CAUSAL), "causal": (CAUSAL,), "no-causal": (NO_CAUSAL,)}
"""The LIM trainings of one run: ``--variants`` runs both or one (the causal one with ``--causal-weight`` and
``--causal-stop-gradient``)."""


def _spec(args: argparse.Namespace) -> Any:
    from subspace_hub_lim.data import SequenceSpec

    return SequenceSpec(
        sequences=args.sequences,
        keyframes=args.keyframes,
        cameras=6,
        size=args.size,
        turn=args.turn,
        travel=args.travel,
        seed=args.seed,
    )


def _data(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """The sequence and keyframe datasets (``train``: all but the last ``--test`` sequences), generated on every
    core, or read from ``--data-cache`` where an earlier run with the same data arguments left them."""
    import datasets
    from subspace_hub_lim.data import as_dataset, keyframe_records, sequence_record

    spec = _spec(args)
    key = hashlib.sha256(json.dumps([repr(spec), args.test]).encode()).hexdigest()[:12]
    folder = Path(args.data_cache) / f"lim-{key}" if args.data_cache else work / "data"
    if not (folder / "done").exists():
        with multiprocessing.get_context("spawn").Pool() as pool:
            records = pool.starmap(sequence_record, [(spec, i) for i in range(args.sequences)], chunksize=1)
        train_count = args.sequences - args.test
        splits = {"train": records[:train_count], "test": records[train_count:]}
        shutil.rmtree(folder, ignore_errors=True)
        datasets.DatasetDict({k: as_dataset(v, args.size) for k, v in splits.items()}).save_to_disk(
            str(folder / "sequences")
        )
        keyframes = {k: [r for rec in v for r in keyframe_records(rec)] for k, v in splits.items()}
        datasets.DatasetDict({k: as_dataset(v, args.size) for k, v in keyframes.items()}).save_to_disk(
            str(folder / "keyframes")
        )
        (folder / "done").touch()
    return folder / "sequences", folder / "keyframes"


def _train(backbone: str, config: dict, source: Path, views: int, images: int, steps: int, lr: float, run: Path,
           pretrained: str | None = None, seed: int = 0, precision: str = "fp32") -> dict[str, Any]:  # fmt: skip
    settings = TrainConfig(
        backbone=backbone,
        backbone_config=None if pretrained else config,
        pretrained=pretrained,
        method="full",
        data=DataConfig(
            source=str(source), split="train", test_split=None, min_views=views, max_views=views, max_images=images
        ),
        steps=steps,
        seed=seed,
        precision=precision,
        optim=OptimConfig(lr=lr, weight_decay=0.0, warmup=0.05, start_lr=1e-6, end_lr=1e-6),
        checkpoint_every=steps,
        metrics=(),
        tensorboard=False,
    )
    started = time.perf_counter()
    result = train(settings, run, progress=False)
    return {
        "loss_first": result.losses[0],
        "loss_last": float(np.mean(result.losses[-50:])),
        "seconds": time.perf_counter() - started,
        "trainable_parameters": result.trainable_parameters,
    }


def _sequence_batch(record: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """One sequence record as a batch of one (what the engine would feed ``lim``)."""
    batch = {
        "images": torch.from_numpy(np.asarray(record["images"])).permute(0, 3, 1, 2)[None].float() / 255,
        "mask": torch.from_numpy(np.asarray(record["mask"]))[None],
        "intrinsics": torch.from_numpy(np.asarray(record["intrinsics"], dtype=np.float32))[None],
        "extrinsics": torch.from_numpy(np.asarray(record["extrinsics"], dtype=np.float32))[None],
    }
    return {k: v.to(device) for k, v in batch.items()}


CASE_SETS = {
    "held_out": "gaps of 2-4 keyframes, every keyframe between: the alphas LIM trains on",
    "held_out_gap5": "a gap of 5 (alpha 0.2, 0.4, 0.6, 0.8): times LIM never trains on",
    "held_out_two_hops": "gaps of 2-4 in two LIM hops, to alpha / 2 and on from there (what L_causal trains)",
}
"""The scored case sets: the rendered triplane at an in-between keyframe against its held-out views."""


@torch.no_grad()
def evaluate(lrm: Any, lims: dict[str, Any], records: list[dict[str, Any]], keyframes: int) -> dict[str, Any]:
    """Mean PSNR / PSNR_FG per method over every case of every held-out sequence, for each of :data:`CASE_SETS`
    (the two-hop set scores LIMs only, against linear interpolation on the same cases)."""
    from subspace_hub_lim.plugin import keyframe_views

    config = lrm.config
    device = next(lrm.parameters()).device
    scores: dict[str, dict[str, dict[str, list[float]]]] = {name: {} for name in CASE_SETS}

    def score(cases: str, name: str, triplane: torch.Tensor, target: dict[str, torch.Tensor]) -> None:
        size = target["images"].shape[-1]
        rendered = lrm.renderer(triplane, target["intrinsics"], target["extrinsics"], size, size)["rgb"].clamp(0, 1)
        entry = scores[cases].setdefault(name, {"psnr": [], "psnr_fg": []})
        entry["psnr"].append(psnr(rendered, target["images"]))
        entry["psnr_fg"].append(psnr(rendered, target["images"], target["mask"]))

    gaps = [(gap, "held_out") for gap in (2, 3, 4)] + ([(5, "held_out_gap5")] if keyframes > 5 else [])
    for record in records:
        batch = _sequence_batch(record, device)
        planes, views = {}, {}
        for k in range(keyframes):
            views[k] = keyframe_views(batch, config, k)
            planes[k] = lrm.head(lrm.encode(views[k]["images"], views[k]["intrinsics"], views[k]["extrinsics"])[0])
        # what each LIM reads of every keyframe, once: (stream, features) as a source, image tokens as a target
        sources = {name: [lim.keyframe(v["images"], v["intrinsics"], v["extrinsics"]) for v in views.values()]
                   for name, lim in lims.items()}  # fmt: skip
        targets = {name: [lim.lrm.tokenizer(v["images"], v["intrinsics"], v["extrinsics"]) for v in views.values()]
                   for name, lim in lims.items()}  # fmt: skip
        for gap, cases in gaps:
            for source in range(keyframes - gap):
                target = source + gap
                for between in range(source + 1, target):
                    alpha = (between - source) / gap
                    truth = keyframe_views(batch, config, between, held_out=True)
                    linear = (1 - alpha) * planes[source] + alpha * planes[target]
                    score(cases, "oracle (LRM on the in-between keyframe)", planes[between], truth)
                    score(cases, "linear", linear, truth)
                    score(cases, "nearest keyframe", planes[source] if alpha < 0.5 else planes[target], truth)
                    if cases == "held_out":
                        score("held_out_two_hops", "linear", linear, truth)
                    for name, lim in lims.items():
                        (tokens, features), next_tokens = sources[name][source], targets[name][target]
                        at = torch.tensor([alpha], device=device)
                        score(cases, name, lim.interpolate(tokens, features, next_tokens, at)[0], truth)
                        if cases == "held_out":  # the causal loss's path: to alpha / 2, then on to alpha
                            _, hop_features, hop_tokens = lim.interpolate(tokens, features, next_tokens, at / 2)
                            rest = (at - at / 2) / (1 - at / 2)
                            hopped = lim.interpolate(hop_tokens, hop_features, next_tokens, rest)[0]
                            score("held_out_two_hops", name, hopped, truth)
    return {cases: _summary(by_method) for cases, by_method in scores.items() if by_method}


def _summary(scores: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Each method's mean PSNR / PSNR_FG and, paired on the same cases, its PSNR minus linear interpolation's."""
    linear = np.array(scores["linear"]["psnr"])
    return {
        name: {
            "psnr": float(np.mean(v["psnr"])),
            "psnr_fg": float(np.mean(v["psnr_fg"])),
            "psnr_sem": float(np.std(v["psnr"]) / np.sqrt(len(v["psnr"]))),
            # paired with linear interpolation on the same cases: what the comparison rests on
            "psnr_minus_linear": float(np.mean(np.array(v["psnr"]) - linear)),
            "psnr_minus_linear_sem": float(np.std(np.array(v["psnr"]) - linear) / np.sqrt(len(linear))),
            "count": len(v["psnr"]),
        }
        for name, v in scores.items()
    }


def main() -> None:
    from subspace_hub_lim.config import LIM_STREAMS, PRESETS
    from subspace_hub_lim.model import lim_from_lrm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lim-tiny")
    parser.add_argument("--sequences", type=int, default=40)
    parser.add_argument("--test", type=int, default=8, help="Held-out sequences (the last ones).")
    parser.add_argument("--keyframes", type=int, default=6)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--turn", type=float, default=0.3, help="Turn per keyframe, radians (SequenceSpec.turn).")
    parser.add_argument("--travel", type=float, default=0.0, help="Travel per keyframe (SequenceSpec.travel).")
    parser.add_argument("--lrm-steps", type=int, default=1500)
    parser.add_argument("--lim-steps", type=int, default=600)
    parser.add_argument("--lrm-lr", type=float, default=1e-3)
    parser.add_argument("--lim-lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=4, help="Samples (keyframes for the LRM) a step.")
    parser.add_argument("--lim-batch", type=int, default=2, help="Sequences a LIM step.")
    parser.add_argument("--lim-seeds", type=int, default=1, help="LIM trainings each way, seeds 0, 1, ...")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    parser.add_argument("--seed", type=int, default=0, help="Seeds the data and the LRM.")
    parser.add_argument("--data-cache", help="Folder that keeps generated data between runs.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="LRM preset field, JSON.")
    parser.add_argument("--first-lim-seed", type=int, default=0, help="LIM seeds start here.")
    parser.add_argument("--variants", default="both", choices=tuple(VARIANTS), help="LIM with/without L_causal.")
    parser.add_argument("--lim-stream", default=LIM_STREAMS[0], choices=LIM_STREAMS)
    parser.add_argument("--causal-weight", type=float, default=1.0, help="L_causal's weight in the causal LIM.")
    parser.add_argument(
        "--causal-stop-gradient",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Detach L_causal's one-hop target (LIMConfig's default).",
    )
    parser.add_argument("--lrm", help="A trained LRM folder (``--save-lrm`` of an earlier run): no LRM training.")
    parser.add_argument("--save-lrm", help="Copy the trained LRM folder here.")
    parser.add_argument("--json")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    config = {**PRESETS[args.preset], "image_size": args.size, **overrides}
    report: dict[str, Any] = {
        **header(device.type),
        "preset": args.preset,
        "args": {key: portable(value) for key, value in vars(args).items()},
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        sequences, keyframes = _data(args, work)
        report["data_seconds"] = time.perf_counter() - started
        trained = Path(args.lrm) if args.lrm else work / "lrm" / "adapter"
        if not args.lrm:
            report["runs"]["lrm"] = _train("lrm", config, keyframes, 6, 6 * args.batch, args.lrm_steps, args.lrm_lr,
                                           work / "lrm", seed=args.seed, precision=args.precision)  # fmt: skip
            print("lrm", report["runs"]["lrm"], flush=True)
            if args.save_lrm:
                shutil.copytree(trained, args.save_lrm, dirs_exist_ok=True)
        lrm = subspace_hub.load_backbone("lrm", pretrained=str(trained)).eval()
        lims = {}
        views = args.keyframes * 6
        for seed in range(args.first_lim_seed, args.first_lim_seed + args.lim_seeds):
            for name in VARIANTS[args.variants]:
                label = f"{name}, seed {seed}"
                causal = {"causal_weight": args.causal_weight if name == CAUSAL else 0.0}
                if name == CAUSAL:
                    causal["causal_stop_gradient"] = args.causal_stop_gradient
                start = lim_from_lrm(lrm, lim_stream=args.lim_stream, **causal)
                start = subspace_hub.save_backbone(start, work / f"start-{name}")
                run = work / f"lim-{name}-{seed}"
                report["runs"][label] = _train("lim", config, sequences, views, args.lim_batch * views, args.lim_steps,
                                               args.lim_lr, run, pretrained=str(start), seed=seed,
                                               precision=args.precision)  # fmt: skip
                print(label, report["runs"][label], flush=True)
                lims[label] = subspace_hub.load_backbone("lim", pretrained=str(run / "adapter")).to(device).eval()
        import datasets

        test = list(datasets.load_from_disk(str(sequences))["test"].with_format("numpy"))
        report |= evaluate(lrm.to(device), lims, test, args.keyframes)
        report["held_out_means"] = {cases: _means(report[cases]) for cases in CASE_SETS if cases in report}
    finish(report, args.json)


def _means(held_out: dict[str, Any]) -> dict[str, Any]:
    """Each LIM variant's PSNR / PSNR_FG averaged over its seeds, with the spread between seeds."""
    out: dict[str, Any] = {}
    for name in VARIANTS["both"]:
        runs = [v for k, v in held_out.items() if k.rsplit(", seed ", 1)[0] == name]
        if runs:
            out[name] = {key: float(np.mean([r[key] for r in runs])) for key in ("psnr", "psnr_fg")} | {
                "psnr_seed_std": float(np.std([r["psnr"] for r in runs])),
                "seeds": len(runs),
            }
    return out


if __name__ == "__main__":
    main()
