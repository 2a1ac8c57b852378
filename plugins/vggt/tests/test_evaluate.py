"""VGGT predictions scored with the paper's reconstruction protocol and depth metrics through the evaluate runner."""

from __future__ import annotations

import math

import numpy as np
import torch

import subspace_hub
from subspace_hub.metrics import depth_metrics, reconstruction_metrics
from subspace_hub.pipelines.evaluate import evaluate_backbone


def test_vggt_tiny_is_scored_with_the_protocol():
    rng = np.random.default_rng(0)
    depth = (2 + 0.2 * rng.random((2, 28, 42))).astype("float32")
    extrinsics = np.tile(np.eye(3, 4, dtype="float32"), (2, 1, 1))
    extrinsics[1, 0, 3] = -0.1
    intrinsics = np.tile(np.array([[42, 0, 21], [0, 42, 14], [0, 0, 1]], "float32"), (2, 1, 1))
    sample = {
        "scene_id": "a",
        "images": (rng.random((2, 28, 42, 3)) * 255).astype("uint8"),
        "depth": depth,
        "intrinsics": intrinsics,
        "extrinsics": extrinsics,
    }
    torch.manual_seed(0)
    model = subspace_hub.load_backbone("vggt", config="vggt-tiny")
    spec = subspace_hub.plugins.get_backbone_spec("vggt")
    metrics = [subspace_hub.get_metric("reconstruction"), subspace_hub.get_metric("depth")]
    report = evaluate_backbone(model, spec, [sample], metrics, options={"reconstruction": {"k": 8}}, progress=False)
    scores = report.scenes[0]["metrics"]
    assert all(math.isfinite(v) for v in scores["reconstruction"].values())
    # the same numbers straight from the backbone's predictions
    from subspace_hub.data import sample_to_batch

    batch = sample_to_batch(sample)
    with torch.no_grad():
        predictions = spec.predict(model.eval()(batch["images"]), batch)
    direct = reconstruction_metrics(
        {k: predictions[k][0] for k in ("depth", "extrinsics", "intrinsics")},
        {k: batch[k][0] for k in ("depth", "extrinsics", "intrinsics", "mask")},
        k=8,
    )
    assert scores["reconstruction"] == {k: direct[k] for k in scores["reconstruction"]}
    assert (
        scores["depth"]["abs_rel"]
        == depth_metrics(predictions["depth"][0], batch["depth"][0], batch["mask"][0])["abs_rel"]
    )
