"""LIM against linear triplane interpolation, with and without the causal loss, at held-out in-between times.

On the plugin's 4D data (``lim-synthetic-4d``), through the training engine: the LRM is trained on keyframe
records (its first 4 views in, every view rendered), then LIM twice from it (``train --method full`` with the LRM
frozen): with the causal consistency loss and without. On held-out sequences, for every source and target keyframe
2, 3 or 4 apart and every keyframe between, the triplane at the in-between time is rendered to that keyframe's
held-out cameras (never an input) and scored by PSNR (whole image, on black) and PSNR_FG (object pixels):

- linear: (1 - alpha) T_LRM(source) + alpha T_LRM(target), the paper's baseline;
- nearest: the LRM triplane of the nearer keyframe;
- LIM, LIM without L_causal;
- oracle: the LRM on the in-between keyframe's own input views (LIM's teacher; not an interpolation).

    PYTHONPATH=.:plugins/lim python benchmarks/bench_lim.py --json out.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path

import subspace_hub
from subspace_hub.metrics import psnr
from subspace_hub.pipelines.config import DataConfig, OptimConfig, TrainConfig
from subspace_hub.pipelines.train import train


def _data(args: argparse.Namespace, work: Path) -> tuple[Path, Path, Any]:
    import datasets
    from subspace_hub_lim.data import SequenceSpec, keyframe_records, sequence_record

    spec = SequenceSpec(sequences=args.sequences, keyframes=args.keyframes, cameras=6, size=args.size, seed=args.seed)
    records = [sequence_record(spec, i) for i in range(args.sequences)]
    train_count = args.sequences - args.test
    splits = {"train": records[:train_count], "test": records[train_count:]}
    sequences = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
    keyframes = datasets.DatasetDict(
        {k: datasets.Dataset.from_list([r for rec in v for r in keyframe_records(rec)]) for k, v in splits.items()}
    )
    sequences.save_to_disk(str(work / "sequences"))
    keyframes.save_to_disk(str(work / "keyframes"))
    return work / "sequences", work / "keyframes", splits["test"]


def _train(backbone: str, config: dict, source: Path, views: int, images: int, steps: int, lr: float, run: Path,
           pretrained: str | None = None) -> dict[str, Any]:  # fmt: skip
    settings = TrainConfig(
        backbone=backbone,
        backbone_config=None if pretrained else config,
        pretrained=pretrained,
        method="full",
        data=DataConfig(
            source=str(source), split="train", test_split=None, min_views=views, max_views=views, max_images=images
        ),
        steps=steps,
        seed=0,
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


def _sequence_batch(record: dict[str, Any]) -> dict[str, torch.Tensor]:
    """One sequence record as a batch of one (what the engine would feed ``lim``)."""
    return {
        "images": torch.from_numpy(np.asarray(record["images"])).permute(0, 3, 1, 2)[None].float() / 255,
        "mask": torch.from_numpy(np.asarray(record["mask"]))[None],
        "intrinsics": torch.from_numpy(np.asarray(record["intrinsics"], dtype=np.float32))[None],
        "extrinsics": torch.from_numpy(np.asarray(record["extrinsics"], dtype=np.float32))[None],
    }


@torch.no_grad()
def evaluate(lrm: Any, lims: dict[str, Any], records: list[dict[str, Any]], keyframes: int) -> dict[str, Any]:
    """Mean PSNR / PSNR_FG per method over every (source, between, target) of every held-out sequence."""
    from subspace_hub_lim.plugin import keyframe_views

    config = lrm.config
    scores: dict[str, dict[str, list[float]]] = {}

    def score(name: str, triplane: torch.Tensor, target: dict[str, torch.Tensor]) -> None:
        size = target["images"].shape[-1]
        rendered = lrm.renderer(triplane, target["intrinsics"], target["extrinsics"], size, size)["rgb"].clamp(0, 1)
        entry = scores.setdefault(name, {"psnr": [], "psnr_fg": []})
        entry["psnr"].append(psnr(rendered, target["images"]))
        entry["psnr_fg"].append(psnr(rendered, target["images"], target["mask"]))

    for record in records:
        batch = _sequence_batch(record)
        planes, streams = {}, {}
        for k in range(keyframes):
            views = keyframe_views(batch, config, k)
            tokens, features = lrm.encode(views["images"], views["intrinsics"], views["extrinsics"])
            planes[k], streams[k] = lrm.head(tokens), views
        for gap in (2, 3, 4):
            for source in range(keyframes - gap):
                target = source + gap
                for between in range(source + 1, target):
                    alpha = (between - source) / gap
                    truth = keyframe_views(batch, config, between, held_out=True)
                    score("oracle (LRM on the in-between keyframe)", planes[between], truth)
                    score("linear", (1 - alpha) * planes[source] + alpha * planes[target], truth)
                    score("nearest keyframe", planes[source] if alpha < 0.5 else planes[target], truth)
                    a, b = streams[source], streams[target]
                    for name, lim in lims.items():
                        triplane = lim(
                            a["images"], a["intrinsics"], a["extrinsics"],
                            b["images"], b["intrinsics"], b["extrinsics"],
                            torch.tensor([alpha]),
                        )  # fmt: skip
                        score(name, triplane, truth)
    return {
        name: {
            "psnr": float(np.mean(v["psnr"])),
            "psnr_fg": float(np.mean(v["psnr_fg"])),
            "psnr_sem": float(np.std(v["psnr"]) / np.sqrt(len(v["psnr"]))),
            "count": len(v["psnr"]),
        }
        for name, v in scores.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lim-tiny")
    parser.add_argument("--sequences", type=int, default=40)
    parser.add_argument("--test", type=int, default=8, help="Held-out sequences (the last ones).")
    parser.add_argument("--keyframes", type=int, default=6)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--lrm-steps", type=int, default=1500)
    parser.add_argument("--lim-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    from subspace_hub_lim.config import PRESETS
    from subspace_hub_lim.model import lim_from_lrm

    torch.manual_seed(args.seed)
    config = {**PRESETS[args.preset], "image_size": args.size}
    report: dict[str, Any] = {
        **header("cuda" if torch.cuda.is_available() else "cpu"),
        "preset": args.preset,
        "args": vars(args),
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        sequences, keyframes, test = _data(args, work)
        report["data_seconds"] = time.perf_counter() - started
        report["runs"]["lrm"] = _train("lrm", config, keyframes, 6, 24, args.lrm_steps, 1e-3, work / "lrm")
        print("lrm", report["runs"]["lrm"], flush=True)
        lrm = subspace_hub.load_backbone("lrm", pretrained=str(work / "lrm" / "adapter")).eval()
        lims = {}
        for name, weight in (("LIM", 1.0), ("LIM without L_causal", 0.0)):
            folder = subspace_hub.save_backbone(lim_from_lrm(lrm, causal_weight=weight), work / f"start-{weight:g}")
            run = work / name.replace(" ", "-")
            views = args.keyframes * 6
            report["runs"][name] = _train("lim", config, sequences, views, 2 * views, args.lim_steps, 3e-4, run,
                                          pretrained=str(folder))  # fmt: skip
            print(name, report["runs"][name], flush=True)
            lims[name] = subspace_hub.load_backbone("lim", pretrained=str(run / "adapter")).eval()
        report["held_out"] = evaluate(lrm, lims, test, args.keyframes)
    finish(report, args.json)


if __name__ == "__main__":
    main()
