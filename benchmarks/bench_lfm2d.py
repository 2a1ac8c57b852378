"""2D-LFM trained from scratch with 2D supervision only, through the training engine, on the plugin's synthetic
landmark categories: PA-MPJPE on held-out shapes and views for Phi in every layer (the paper), Phi at the input
only, and no Phi (Proposition 1), each with the canonicalisation term (C3DPO's, the plugin's default), and Phi in
every layer on the 2D loss alone; against the category-mean-shape baseline (one fixed 3D shape per category,
whatever the 2D input; PA-MPJPE aligns it to each sample by a similarity, as it aligns the predictions).

PA-MPJPE is reported as is and with mirror images allowed (the better of the prediction and its reflection per
sample, C3DPO's convention: an orthographic view cannot tell a shape from its mirror image); the baseline is scored
both ways too.

    SUBSPACE_HUB_PLUGINS=subspace_hub_lfm2d.plugin PYTHONPATH=.:plugins/lfm2d \\
        python benchmarks/bench_lfm2d.py --steps 1500 --json out.json

Units: the generator's (each view centred with unit RMS radius in 2D; a human is about 1.7 units tall before that).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path
from subspace_hub_lfm2d.data import category_mean_shapes, load_landmarks

from subspace_hub.metrics import pa_mpjpe
from subspace_hub.pipelines.config import DataConfig, OptimConfig, TrainConfig
from subspace_hub.pipelines.train import train

VARIANTS = {
    "phi every layer (the paper)": {"phi": "rff", "phi_layers": "all"},
    "phi input only": {"phi": "rff", "phi_layers": "input"},
    "no phi": {"phi": "none"},
    "phi every layer, 2D loss alone": {"phi": "rff", "phi_layers": "all", "canonical_weight": 0.0},
    "phi every layer, shape basis": {"phi": "rff", "phi_layers": "all", "shape_basis": 8},
    "phi input only, shape basis": {"phi": "rff", "phi_layers": "input", "shape_basis": 8},
    "no phi, shape basis": {"phi": "none", "shape_basis": 8},
    # the control: what the architecture and data let a single view recover when the 3D shapes are the supervision
    "phi every layer, 3D-supervised (control)": {"phi": "rff", "phi_layers": "all", "supervision": "3d"},
}


def mean_shape_baseline(data: Any, reflection: bool) -> float:
    means = category_mean_shapes(list(data["train"]))
    errors = []
    for sample in data["test"]:
        visible = np.asarray(sample["visible"], dtype=bool)
        prediction = means[int(sample["category"])]
        reference = np.asarray(sample["landmarks"])[visible][None]
        errors.append(pa_mpjpe(prediction[visible][None], reference, reflection=reflection))
    return float(np.mean(errors))


def held_out_scores(run: Path, test: Any) -> dict[str, float]:
    """PA-MPJPE (as is, and with mirror images allowed) and MPJPE of the trained run on the held-out samples."""
    import subspace_hub
    from subspace_hub.pipelines.evaluate import evaluate_backbone
    from subspace_hub.plugins import get_backbone_spec, get_metric

    model = subspace_hub.load_backbone("lfm2d", pretrained=str(run / "adapter"))
    spec, scores = get_backbone_spec("lfm2d"), {}
    for key, reflection in (("pa_mpjpe", False), ("pa_mpjpe_mirror", True)):
        options = {"pa_mpjpe": {"reflection": reflection}}
        report = evaluate_backbone(model, spec, test, [get_metric("pa_mpjpe")], options=options, progress=False)
        scores[key] = report.summary()["pa_mpjpe"]["pa_mpjpe"]
    report = evaluate_backbone(model, spec, test, [get_metric("mpjpe")], progress=False)
    scores["mpjpe"] = report.summary()["mpjpe"]["mpjpe"]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lfm2d-small")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--samples", type=int, default=400, help="Samples per category (a quarter held out).")
    parser.add_argument("--modes", type=int, default=3, help="Deformation modes of each category (the data's rank).")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data = load_landmarks(samples_per_category=args.samples, modes=args.modes, seed=args.seed)
    report: dict[str, Any] = {
        **header("cuda" if torch.cuda.is_available() else "cpu"),
        "preset": args.preset,
        "modes": args.modes,
        "precision": args.precision,
        "seed": args.seed,
        "steps": args.steps,
        "batch": args.batch,
        "train_samples": len(data["train"]),
        "test_samples": len(data["test"]),
        "category_mean_shape_pa_mpjpe": mean_shape_baseline(data, reflection=False),
        "category_mean_shape_pa_mpjpe_mirror": mean_shape_baseline(data, reflection=True),
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "data"
        data.save_to_disk(str(folder))
        for name in args.variants:
            options = VARIANTS[name]
            from subspace_hub_lfm2d.config import PRESETS

            config = TrainConfig(
                backbone="lfm2d",
                backbone_config={**PRESETS[args.preset], **options},
                method="full",
                data=DataConfig(source=str(folder), split="train", test_split="test", max_images=args.batch),
                steps=args.steps,
                seed=args.seed,
                precision=args.precision,
                optim=OptimConfig(lr=args.lr, weight_decay=1e-4, warmup=0.05, start_lr=1e-6, end_lr=1e-6),
                checkpoint_every=args.steps,
                metrics=(),
                tensorboard=False,
            )
            start = time.perf_counter()
            run = Path(work) / name.replace(" ", "-").replace("(", "").replace(")", "").replace(",", "")
            result = train(config, run, progress=False)
            seconds = time.perf_counter() - start
            with open(run / "metrics.csv") as f:
                terms = list(csv.DictReader(f))[-50:]
            report["variants"][name] = {
                **held_out_scores(run, data["test"]),
                "loss_first": result.losses[0],
                "loss_last": float(np.mean(result.losses[-50:])),
                **{
                    f"{term}_last": float(np.mean([float(t[term]) for t in terms]))
                    for term in ("reprojection", "canonical", "shape_3d")
                    if term in terms[0]
                },
                "seconds": seconds,
            }
            print(name, report["variants"][name], flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
