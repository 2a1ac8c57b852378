"""Landmark and image metrics, the registered metric specs, the packaged `evaluate` modules, and
`subspace-hub evaluate` on a dataset written with `datasets`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import subspace_hub
from subspace_hub.cli import main
from subspace_hub.errors import ConfigError, MetricInputError
from subspace_hub.metrics import (
    depth_metrics,
    evaluate_module_path,
    mpjpe,
    pa_mpjpe,
    point_cloud_metrics,
    psnr,
)
from subspace_hub.testing import check_metric

RNG = np.random.default_rng(0)
BUILTIN = [
    "abs_rel",
    "chamfer",
    "delta",
    "depth",
    "log_rmse",
    "mpjpe",
    "normal_consistency",
    "pa_mpjpe",
    "psnr",
    "reconstruction",
    "rmse",
    "sq_rel",
]


def test_mpjpe_and_pa_mpjpe():
    gt = RNG.standard_normal((3, 17, 3)) * 100
    offset = np.zeros_like(gt)
    offset[..., 0] = 3.0
    assert mpjpe(gt + offset, gt) == pytest.approx(3.0)
    visible = np.ones((3, 17), bool)
    visible[:, :4] = False
    wrong = gt.copy()
    wrong[:, :4] += 1000.0  # invisible joints do not count
    assert mpjpe(wrong, gt, visible) == pytest.approx(0.0)
    moved = 1.7 * gt @ Rotation.random(random_state=1).as_matrix().T + 50.0
    assert pa_mpjpe(moved, gt) == pytest.approx(0.0, abs=1e-9)
    assert mpjpe(moved, gt) > 10
    mirrored = moved * np.array([1.0, -1.0, 1.0])  # no rotation undoes a reflection ...
    assert pa_mpjpe(mirrored, gt) > 10
    assert pa_mpjpe(mirrored, gt, reflection=True) == pytest.approx(0.0, abs=1e-9)  # ... unless it may be mirrored
    assert pa_mpjpe(noisy := gt + RNG.standard_normal(gt.shape), gt, reflection=True) == pytest.approx(
        pa_mpjpe(noisy, gt)
    )  # a prediction that is not mirrored keeps its error
    noisy = gt + RNG.standard_normal(gt.shape)
    per_sample = []  # brute force: similarity per sample, then mean joint distance over all joints
    for i in range(3):
        x, y = noisy[i], gt[i]
        mx, my = x.mean(0), y.mean(0)
        U, D, Vt = np.linalg.svd((y - my).T @ (x - mx) / 17)
        S = np.diag([1, 1, np.sign(np.linalg.det(U) * np.linalg.det(Vt))])
        R = U @ S @ Vt
        c = np.trace(np.diag(D) @ S) / ((x - mx) ** 2).sum(1).mean()
        per_sample.append(np.linalg.norm(c * x @ R.T + (my - c * R @ mx) - y, axis=1))
    assert pa_mpjpe(noisy, gt) == pytest.approx(np.concatenate(per_sample).mean(), abs=1e-6)
    with pytest.raises(MetricInputError, match="No visible landmark"):
        mpjpe(gt, gt, np.zeros((3, 17), bool))
    with pytest.raises(MetricInputError, match=r"sample 0 has 2 visible joint\(s\)"):
        pa_mpjpe(gt, gt, np.r_[[[True, True] + [False] * 15], np.ones((2, 17), bool)])
    with pytest.raises(MetricInputError, match=r"landmarks must be \[..., J, 3\]"):
        mpjpe(gt[..., :2], gt[..., :2])


def test_psnr_known_values_masks_and_errors():
    gt = np.full((2, 3, 4, 4), 0.5)
    assert psnr(gt + 0.1, gt) == pytest.approx(20.0)  # MSE 0.01
    assert psnr(gt * 255 + 25.5, gt * 255, data_range=255.0) == pytest.approx(20.0)
    assert psnr(gt, gt) == math.inf
    pred = gt.copy()
    pred[:, :, :2] += 0.1  # only the top half is wrong
    mask = np.zeros((2, 4, 4), bool)
    mask[:, 2:] = True
    assert psnr(pred, gt, mask) == math.inf
    assert psnr(pred, gt, ~mask) == pytest.approx(20.0)
    assert psnr(pred, gt) == pytest.approx(10 * math.log10(1 / 0.005))
    with pytest.raises(MetricInputError, match=r"1 image\(s\) have an empty mask"):
        psnr(pred, gt, np.stack([mask[0], np.zeros((4, 4), bool)]))
    with pytest.raises(MetricInputError, match="images must be"):
        psnr(gt[0, 0], gt[0, 0])


def test_every_builtin_metric_is_registered_and_conforms():
    assert subspace_hub.list_components("metric") == BUILTIN
    for name in BUILTIN:
        check_metric(name)
    spec = subspace_hub.get_metric("reconstruction")
    assert spec.direction("acc") is False and spec.direction("nc") is True and spec.inputs is not None


@pytest.mark.parametrize("name", BUILTIN)
def test_packaged_evaluate_modules_load_offline_and_agree(name, monkeypatch, tmp_path):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = evaluate.load(evaluate_module_path(name))
    if name in ("chamfer", "normal_consistency", "reconstruction"):
        gt = [np.c_[RNG.random((150, 2)), np.zeros(150)] for _ in range(2)]
        pred = [g + 0.01 * RNG.standard_normal(g.shape) for g in gt]
        options = {"k": 10} if name != "chamfer" else {}
        function = point_cloud_metrics if name == "reconstruction" else subspace_hub.get_metric(name).compute
        expected = [function(p, g, **options) for p, g in zip(pred, gt, strict=True)]
        result = module.compute(predictions=pred, references=gt, **options)
        for key in result:
            assert result[key] == pytest.approx((expected[0][key] + expected[1][key]) / 2, abs=1e-9)
    elif name in ("mpjpe", "pa_mpjpe"):
        gt = [RNG.standard_normal((17, 3)) for _ in range(2)]
        pred = [g + 0.1 * RNG.standard_normal((17, 3)) for g in gt]
        fn = subspace_hub.get_metric(name).compute
        assert module.compute(predictions=pred, references=gt)[name] == pytest.approx(
            (fn(pred[0], gt[0]) + fn(pred[1], gt[1])) / 2
        )
    elif name == "psnr":
        gt = [RNG.random((3, 5, 6)) for _ in range(2)]
        pred = [np.clip(g + 0.05, 0, 1) for g in gt]
        assert module.compute(predictions=pred, references=gt)["psnr"] == pytest.approx(
            (psnr(pred[0], gt[0]) + psnr(pred[1], gt[1])) / 2
        )
    else:  # depth maps of different sizes; depth metrics are weighted by valid pixels
        gt = [1 + RNG.random((6, 8)), 1 + RNG.random((4, 5))]
        gt[0][0, :] = 0
        pred = [g * 1.2 + 0.05 * RNG.random(g.shape) for g in gt]
        results = [depth_metrics(p, g, align="scale") for p, g in zip(pred, gt, strict=True)]
        source = {"depth": "abs_rel", "delta": "delta_1"}.get(name, name)
        expected = (results[0][source] * 40 + results[1][source] * 20) / 60  # 40 and 20 valid pixels
        output = "abs_rel" if name == "depth" else name
        assert module.compute(predictions=pred, references=gt, align="scale")[output] == pytest.approx(expected)


def test_evaluate_module_path_errors():
    with pytest.raises(Exception, match="Unknown evaluate module 'chamfr'"):
        evaluate_module_path("chamfr")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Three two-view scenes in the interchange format, written with `datasets` (images as PIL images)."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(1)
    rows = []
    for i in range(3):
        depth = (2 + 0.1 * rng.random((2, 16, 24))).astype("float32")
        depth[1, :2] = 0  # invalid rows
        extrinsics = np.tile(np.eye(3, 4, dtype="float32"), (2, 1, 1))
        extrinsics[1, 0, 3] = -0.1
        intrinsics = np.tile(np.array([[24, 0, 12], [0, 24, 8], [0, 0, 1]], "float32"), (2, 1, 1))
        images = [Image.fromarray((rng.random((16, 24, 3)) * 255).astype("uint8")) for _ in range(2)]
        rows.append(
            {
                "scene_id": f"scene-{i}",
                "images": images,
                "depth": depth,
                "mask": depth > 0,
                "intrinsics": intrinsics,
                "extrinsics": extrinsics,
            }
        )
    folder = tmp_path_factory.mktemp("data") / "tiny"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    return folder


def test_evaluate_backbone_scores_match_direct_computation(tiny_dataset):
    import datasets

    from subspace_hub.data import sample_to_batch
    from subspace_hub.pipelines.evaluate import evaluate_backbone

    torch.manual_seed(0)
    model = subspace_hub.load_backbone("reference", config={"patch_size": 8})
    samples = datasets.load_from_disk(str(tiny_dataset))["test"]
    metrics = [subspace_hub.get_metric("depth"), subspace_hub.get_metric("rmse")]
    spec = subspace_hub.plugins.get_backbone_spec("reference")
    report = evaluate_backbone(
        model, spec, samples, metrics, options={"depth": {"align": "scale_shift_lstsq"}}, progress=False
    )
    expected, pixels = [], []
    for sample in samples:
        batch = sample_to_batch(sample)
        assert (
            batch["images"].shape == (1, 2, 3, 16, 24)
            and float(batch["images"].min()) >= 0.0
            and float(batch["images"].max()) <= 1.0
        )
        with torch.no_grad():
            depth = model(batch["images"])["depth"][0]
        result = depth_metrics(depth, batch["depth"][0], batch["mask"][0], align="scale_shift_lstsq")
        expected.append(result)
        pixels.append(result["valid_pixels"])
    assert [s["metrics"]["depth"]["abs_rel"] for s in report.scenes] == pytest.approx(
        [e["abs_rel"] for e in expected], abs=1e-9
    )
    assert pixels == [2 * 16 * 24 - 2 * 24] * 3
    summary = report.summary()
    assert summary["depth"]["delta_1"] == pytest.approx(
        sum(e["delta_1"] * n for e, n in zip(expected, pixels, strict=True)) / sum(pixels)
    )
    assert (
        set(summary) == {"depth", "rmse"}
        and ("depth", "abs_rel", f"{summary['depth']['abs_rel']:.6g}", "lower") in report.rows()
    )


def test_cli_evaluate_prints_a_table_and_writes_json(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "scores.json"
    args = [
        "evaluate",
        "reference",
        "--set",
        "patch_size=8",
        "--data",
        str(tiny_dataset),
        "--metric",
        "depth",
        "--metric",
        "rmse",
    ]
    args += ["--option", "depth.align=scale_shift_lstsq", "--limit", "2", "--output", str(out), "--quiet"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert (
        "reference on" in table
        and "2 scene(s)" in table
        and "abs_rel" in table
        and "lower" in table
        and "higher" in table
    )
    scores = json.loads(out.read_text())
    assert [s["scene_id"] for s in scores["scenes"]] == ["scene-0", "scene-1"]
    assert set(scores["summary"]) == {"depth", "rmse"}


def test_cli_evaluate_errors(tiny_dataset, capsys):
    assert (
        main(
            [
                "evaluate",
                "reference",
                "--data",
                str(tiny_dataset),
                "--metric",
                "reconstruction",
                "--set",
                "patch_size=8",
                "--quiet",
            ]
        )
        == 1
    )
    assert "metric 'reconstruction'" in capsys.readouterr().err
    assert main(["evaluate", "reference", "--data", "nowhere", "--quiet"]) == 1
    assert "No dataset 'nowhere'" in capsys.readouterr().err
    assert main(["evaluate", "reference", "--data", str(tiny_dataset), "--option", "align=scale", "--quiet"]) == 1
    assert "--option expects METRIC.KEY=VALUE" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "reference",
                "--data",
                str(tiny_dataset),
                "--metric",
                "depth",
                "--option",
                "psnr.data_range=2",
                "--quiet",
            ]
        )
        == 1
    )
    assert "not being computed: psnr" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        from subspace_hub.data import load_samples

        load_samples(str(tiny_dataset), split="train")


def test_an_evaluation_averages_depth_over_pixels_not_scenes():
    """A scene of 1 valid pixel with AbsRel 1 and one of 3 with AbsRel 0 average to 0.25 (per scene it would be 0.5)."""
    from subspace_hub.pipelines.evaluate import EvaluationReport
    from subspace_hub.plugins import get_metric

    spec = get_metric("depth")
    scores = [dict.fromkeys(spec.outputs, 0.0) for _ in range(2)]
    scores[0].update(abs_rel=1.0, valid_pixels=1)
    scores[1].update(abs_rel=0.0, valid_pixels=3)
    report = EvaluationReport([spec], [{"scene_id": str(i), "metrics": {"depth": s}} for i, s in enumerate(scores)])
    assert report.summary()["depth"]["abs_rel"] == pytest.approx(0.25)
