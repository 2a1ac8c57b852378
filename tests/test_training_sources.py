"""Where a training run's data and weights come from: a dataset repo on the Hub at a tag (one config, or ``all``
of them), and pretrained weights from a Hub repo at a revision; both on the embedded registry of the test."""

from __future__ import annotations

import pytest
import torch

import subspace_hub
from subspace_hub.errors import CheckpointError
from subspace_hub.hub import push_folder
from subspace_hub.pipelines.config import load_train_config
from subspace_hub.pipelines.train import _attach, _samples, _training_data, held_out_samples
from subspace_hub.testing import tiny_dataset


def settings(**changes):
    fields = {"backbone": "reference", "data": {"source": "unused"}, "tensorboard": False, **changes}
    return load_train_config(None, [], **fields)


def test_a_hub_dataset_repo_is_read_at_its_tag_one_config_or_all(tmp_path):
    # v1: two configs of one train and one test scene each; main, pushed after it: two configs of three and one
    for scenes, tag in ((2, "v1"), (4, None)):
        folder = tiny_dataset(tmp_path / f"{scenes}", height=16, width=24, scenes=scenes, views=2, datasets=2)
        push_folder(folder, "me/texture", repo_type="dataset", tag=tag)
    data = {"source": "me/texture", "revision": "v1", "min_views": 2, "max_views": 2, "max_images": 2}

    every = settings(data={**data, "config": "all", "test_split": "test"})
    train_rows = _samples(every, "train", "all")
    assert train_rows["scene_id"] == ["texture-000/scene-00000", "texture-001/scene-00000"]
    assert held_out_samples(every)["scene_id"] == ["texture-000/scene-00001", "texture-001/scene-00001"]
    groups, plan = _training_data(every)
    assert len(groups) == 2 and plan.items == 2

    one = settings(data={**data, "config": "texture-001"})
    assert _samples(one, "train", "texture-001")["scene_id"] == ["texture-001/scene-00000"]
    latest = settings(data={**data, "config": "all", "revision": None})
    assert _samples(latest, "train", "all").num_rows == 6  # main: the second push


def base_weights(model) -> dict[str, torch.Tensor]:
    """The backbone's own tensors inside a LoRA-wrapped model, under the backbone's names."""
    state = model.get_base_model().state_dict()
    return {k.replace(".base_layer.", "."): v for k, v in state.items() if "lora_" not in k}


def test_pretrained_weights_come_from_a_hub_repo_at_the_revision_asked(tmp_path):
    saved = {}
    for seed, tag in ((1, "v1"), (2, None)):
        torch.manual_seed(seed)
        model = subspace_hub.load_backbone("reference", config={"depth": 2})
        saved[tag] = {k: v.clone() for k, v in model.state_dict().items()}
        subspace_hub.save_backbone(model, tmp_path / f"weights-{seed}")
        push_folder(tmp_path / f"weights-{seed}", "me/reference", tag=tag)
    method = {"method": "lora", "method_options": {"rank": 2}}
    for revision, expected in (("v1", saved["v1"]), (None, saved[None])):
        attached = _attach(settings(pretrained="me/reference", revision=revision, **method))
        weights = base_weights(attached)
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[k], expected[k]) for k in expected), revision
    # backbone_config reaches the backbone: three blocks do not fit the checkpoint's two
    with pytest.raises(CheckpointError, match=r"^Checkpoint 'me/reference' does not fit the model: 12 missing key"):
        _attach(settings(pretrained="me/reference", backbone_config={"depth": 3}, **method))
