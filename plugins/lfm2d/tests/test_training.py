"""2D-LFM trains through the project's engine on landmark records, with 2D supervision only."""

from __future__ import annotations

import json

import pytest
from subspace_hub_lfm2d.data import load_landmarks

from subspace_hub.pipelines.config import DataConfig, OptimConfig, TrainConfig
from subspace_hub.pipelines.train import train


@pytest.fixture(scope="module")
def landmark_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("landmarks") / "lfm2d"
    load_landmarks(samples_per_category=48, categories=("human", "chair"), seed=0).save_to_disk(str(folder))
    return folder


def test_the_engine_trains_2d_lfm_on_landmark_records_and_scores_pa_mpjpe(landmark_folder, tmp_path):
    config = TrainConfig(
        backbone="lfm2d",
        backbone_config="lfm2d-tiny",
        method="full",
        data=DataConfig(source=str(landmark_folder), split="train", test_split="test", max_images=32),
        steps=60,
        seed=0,
        optim=OptimConfig(lr=3e-3, warmup=0.05, weight_decay=1e-4),
        checkpoint_every=60,
        metrics=("mpjpe", "pa_mpjpe"),
        tensorboard=False,
    )
    result = train(config, tmp_path / "run", progress=False)
    losses = result.losses
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10  # the reprojection error falls
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert 0 < evaluation["pa_mpjpe"]["pa_mpjpe"] < evaluation["mpjpe"]["mpjpe"]


def test_landmark_records_are_batched_max_images_at_a_time_in_the_runs_seeded_order(landmark_folder):
    from subspace_hub.data.views import BatchPlan, LandmarkRecords
    from subspace_hub.pipelines.train import _training_data

    config = TrainConfig(
        backbone="lfm2d", data=DataConfig(source=str(landmark_folder), split="train", max_images=32), seed=3
    )
    records, plan = _training_data(config)
    assert (
        isinstance(records, LandmarkRecords) and len(records) == 72
    )  # 3 of every 4 of 2 x 48 samples, each one "view"
    batches = [b for _, b in zip(range(3), plan, strict=False)]
    assert [(len(b.items), b.views) for b in batches] == [(32, 1)] * 3
    expected = [b.items for _, b in zip(range(3), BatchPlan(72, 1, 1, 32, 3), strict=False)]
    assert [b.items for b in batches] == expected and expected != [
        b.items for _, b in zip(range(3), BatchPlan(72, 1, 1, 32, 0), strict=False)
    ]
