"""The figures of vggt-tiny-synthetic's card: depth metrics of the pretrained weights, of the same architecture
with random weights, and of a constant depth (after the same per-view median scaling), on held-out scenes.

    python plugins/vggt/recipes/evaluate_vggt_tiny_synthetic.py DATA_FOLDER CONFIG [CONFIG ...] --split test
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import subspace_hub
from subspace_hub.data import load_samples
from subspace_hub.metrics import depth_metrics
from subspace_hub.pipelines.evaluate import evaluate_backbone
from subspace_hub.plugins import get_backbone_spec, get_metric


def constant_depth(samples) -> dict[str, float]:
    """A predictor that answers 1 everywhere: after median alignment, the scene's median depth everywhere."""
    totals: dict[str, float] = {}
    pixels = 0
    for sample in samples:
        depth = torch.as_tensor(np.asarray(sample["depth"], dtype=np.float32))
        scores = depth_metrics(torch.ones_like(depth), depth, torch.as_tensor(np.asarray(sample["mask"])))
        weight = scores["valid_pixels"]
        for key, value in scores.items():
            if key != "valid_pixels":
                totals[key] = totals.get(key, 0.0) + weight * value
        pixels += weight
    return {key: value / pixels for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    spec = get_backbone_spec("vggt")
    torch.manual_seed(0)
    models = {
        "vggt-tiny-synthetic": subspace_hub.load_backbone("vggt", pretrained="vggt-tiny-synthetic"),
        "random weights": subspace_hub.load_backbone("vggt", config="vggt-tiny"),
    }
    results: dict[str, dict[str, float]] = {}
    samples = [s for config in args.configs for s in load_samples(args.data, args.split, config)]
    for name, model in models.items():
        report = evaluate_backbone(model, spec, samples, [get_metric("depth")], progress=False)
        results[name] = report.summary()["depth"]
    results["constant depth"] = constant_depth(samples)
    print(json.dumps({"scenes": len(samples), **results}, indent=1))


if __name__ == "__main__":
    main()
