"""The training views of generated records: every field of a sample comes from the same chosen views, drawn
reproducibly; landmark records get their defaults; collate stacks what it can."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from subspace_hub.data.views import LandmarkRecords, ViewGroups, collate
from subspace_hub.errors import ConfigError


def record(scene: str, count: int, size: tuple[int, int] = (4, 5)) -> dict:
    """A record of ``count`` views whose every field says which view it belongs to (view v: value v)."""
    h, w = size
    ids = np.arange(count)
    extrinsics = np.zeros((count, 3, 4), np.float32)
    extrinsics[:, :, 3] = ids[:, None]
    intrinsics = np.tile(np.eye(3, dtype=np.float32), (count, 1, 1))
    intrinsics[:, 0, 2] = ids
    return {
        "scene_id": scene,
        "view_ids": ids * 10,
        "images": np.broadcast_to((ids * 20).astype(np.uint8)[:, None, None, None], (count, h, w, 3)).copy(),
        "depth": np.broadcast_to(ids.astype(np.float32)[:, None, None] + 1, (count, h, w)).copy(),
        "mask": np.broadcast_to((ids % 2 == 1)[:, None, None], (count, h, w)).copy(),
        "normals": np.broadcast_to(ids.astype(np.float32)[:, None, None, None], (count, h, w, 3)).copy(),
        "intrinsics": intrinsics,
        "extrinsics": extrinsics,
    }


def test_every_field_of_a_sample_comes_from_the_same_sorted_views():
    groups = ViewGroups([record("a", 9), record("b", 6)], views=4, seed=3)
    assert len(groups) == 2 and groups.view_counts is None  # a plain list has no view_ids column to read
    sample = groups[0]
    chosen = sample["view_ids"].numpy() // 10
    assert len(chosen) == 4 and list(chosen) == sorted(set(chosen)) and chosen.max() < 9
    assert sample["scene_id"] == "a"
    assert sample["images"].shape == (4, 3, 4, 5) and sample["images"].dtype == torch.float32
    np.testing.assert_allclose(sample["images"][:, :, 0, 0].numpy(), np.repeat(chosen[:, None] * 20 / 255.0, 3, 1))
    np.testing.assert_array_equal(sample["depth"][:, 0, 0].numpy(), chosen + 1)
    np.testing.assert_array_equal(sample["mask"][:, 0, 0].numpy(), chosen % 2 == 1)
    np.testing.assert_array_equal(sample["normals"][:, 0, 0, 0].numpy(), chosen)
    np.testing.assert_array_equal(sample["intrinsics"][:, 0, 2].numpy(), chosen)
    np.testing.assert_array_equal(sample["extrinsics"][:, 0, 3].numpy(), chosen)
    assert groups[1]["scene_id"] == "b"


def test_views_are_drawn_from_seed_epoch_item_and_count_only():
    groups = ViewGroups([record("a", 12), record("b", 12)], views=3, seed=1)
    first = groups[0]["view_ids"]
    assert torch.equal(first, groups[0]["view_ids"])  # the same item reads the same views again
    assert torch.equal(first, ViewGroups([record("a", 12)], views=3, seed=1)[0]["view_ids"])
    assert not torch.equal(first, ViewGroups([record("a", 12)], views=3, seed=2)[0]["view_ids"])
    draws = {tuple(groups[0]["view_ids"].tolist())}
    for epoch in range(1, 6):
        groups.epoch = epoch
        draws.add(tuple(groups[0]["view_ids"].tolist()))
    assert len(draws) > 3  # a new epoch draws new subsets
    groups.epoch = 0
    assert len(groups[0, 5]["view_ids"]) == 5  # an explicit count
    defaults = ViewGroups([record("a", 12)])
    assert (defaults.views, defaults.seed, defaults.epoch) == (8, 0, 0)
    counts = [groups[0, 3]["view_ids"] for _ in range(2)]
    assert torch.equal(counts[0], counts[1]) and not torch.equal(counts[0], first)  # the count is in the draw
    expected = np.sort(np.random.default_rng([1, 0, 1]).choice(12, 3, replace=False)) * 10
    fresh = ViewGroups([record("a", 12), record("b", 12)], views=3, seed=1)  # epoch 0 until told otherwise
    np.testing.assert_array_equal(fresh[1]["view_ids"].numpy(), expected)  # the documented entropy


def test_view_groups_refuse_what_they_cannot_give_and_read_counts_from_a_dataset():
    with pytest.raises(ConfigError, match=r"^views must be at least 1, got 0\.$"):
        ViewGroups([record("a", 3)], views=0)
    ViewGroups([record("a", 3)], views=1)[0]  # one view is enough
    with pytest.raises(ConfigError, match=r"^Scene a has 3 views in its record; 4 were asked for\.$"):
        ViewGroups([record("a", 3)], views=4)[0]
    assert len(ViewGroups([record("a", 3)], views=3)[0]["view_ids"]) == 3  # exactly all of them
    rows = datasets.Dataset.from_list([record("a", 3), record("b", 5)])
    groups = ViewGroups(rows, views=2)
    assert groups.view_counts == [3, 5]
    assert groups.rows.format["type"] == "numpy"  # whole arrays per read, not nested lists converted per element
    assert groups[1]["images"].shape == (2, 3, 4, 5) and groups[1]["scene_id"] == "b"


def test_landmark_records_are_tensors_with_defaults_for_what_a_record_lacks():
    full = {
        "scene_id": "s0",
        "landmarks2d": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
        "visible": [True, False, True],
        "valid": [1, 1, 0],  # flags may come as 0/1
        "category": 2,
        "landmarks": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]],
        "adjacency": [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
    }
    bare = {"landmarks2d": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], "visible": [0, 1, 1], "category": 0}
    records = LandmarkRecords([full, bare])
    assert len(records) == 2 and records.view_counts is None
    a, b = records[0], records[1, 7]  # a view count is accepted and ignored
    assert a["scene_id"] == "s0" and b["scene_id"] == "1"  # the index stands in for a missing id
    assert a["landmarks2d"].dtype == torch.float32 and torch.equal(a["landmarks2d"], torch.tensor(full["landmarks2d"]))
    assert a["visible"].tolist() == [True, False, True] and a["visible"].dtype == torch.bool
    assert a["valid"].tolist() == [True, True, False] and a["valid"].dtype == torch.bool
    assert b["valid"].tolist() == [True, True, True]  # default: valid
    assert b["visible"].dtype == b["valid"].dtype == torch.bool and b["visible"].tolist() == [False, True, True]
    assert a["category"].dtype == torch.long and int(a["category"]) == 2 and a["category"].ndim == 0
    assert torch.equal(a["landmarks"], torch.tensor(full["landmarks"])) and a["landmarks"].dtype == torch.float32
    assert torch.equal(a["adjacency"], torch.tensor(full["adjacency"]))
    assert "landmarks" not in b and "adjacency" not in b
    none_valid = LandmarkRecords([{**bare, "valid": None}])[0]
    assert none_valid["valid"].tolist() == [True, True, True]
    dataset = LandmarkRecords(datasets.Dataset.from_list([full]))  # numpy-formatted rows read the same
    assert dataset.rows.format["type"] == "numpy"
    assert torch.equal(dataset[0]["landmarks2d"], a["landmarks2d"]) and dataset[0]["valid"].tolist() == [
        True,
        True,
        False,
    ]


def test_collate_stacks_tensors_and_lists_the_rest():
    samples = [{"scene_id": "a", "x": torch.zeros(2, 3)}, {"scene_id": "b", "x": torch.ones(2, 3)}]
    batch = collate(samples)
    assert batch["scene_id"] == ["a", "b"] and batch["x"].shape == (2, 2, 3)
    assert torch.equal(batch["x"][1], torch.ones(2, 3))
