"""The 4D data: deterministic sequences whose depth, cameras and canonical XYZ agree, inside the LRM's box."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from subspace_hub_lim.data import SequenceSpec, keyframe_records, load_sequences, sequence_record

from subspace_hub.geometry import depth_to_world_points

SPEC = SequenceSpec(keyframes=4, cameras=3, size=24, seed=2)


@pytest.fixture(scope="module")
def record():
    return sequence_record(SPEC, 0)


def _points(record, views):
    return depth_to_world_points(
        torch.from_numpy(record["depth"][views]).double(),
        torch.from_numpy(record["extrinsics"][views]).double(),
        torch.from_numpy(record["intrinsics"][views]).double(),
    ).numpy()


def test_a_sequence_is_deterministic_and_its_views_agree(record):
    again = sequence_record(SPEC, 0)
    assert all(np.array_equal(record[k], again[k]) for k in ("images", "depth", "canonical_xyz", "extrinsics"))
    assert record["images"].shape == (12, 24, 24, 3) and list(record["view_ids"]) == list(range(12))
    mask = record["mask"]
    assert 0.05 < mask.mean() < 0.9
    assert not record["images"][~mask].any()  # composited on black, as the LRM renders
    points = _points(record, slice(None))
    assert np.abs(points[mask]).max() < 0.8  # every keyframe inside the scene box [-1, 1]^3
    # keyframe 0 is the canonical frame: its surface points are their own canonical XYZ
    first = slice(0, SPEC.cameras)
    np.testing.assert_allclose(points[first][mask[first]], record["canonical_xyz"][first][mask[first]], atol=1e-4)


def test_the_object_moves_and_canonical_xyz_follows_it(record):
    """Later keyframes see the surface elsewhere than it was at keyframe 0; without motion, every keyframe's
    surface points are their canonical XYZ (which therefore names the keyframe-0 position of what each pixel sees)."""
    last = slice(3 * SPEC.cameras, 4 * SPEC.cameras)
    moved = np.linalg.norm(_points(record, last) - record["canonical_xyz"][last], axis=-1)[record["mask"][last]]
    assert np.median(moved) > 0.02
    still = sequence_record(dataclasses.replace(SPEC, turn=0.0, twist=0.0, sway=0.0), 0)
    mask = still["mask"]
    np.testing.assert_allclose(_points(still, slice(None))[mask], still["canonical_xyz"][mask], atol=1e-4)


def test_keyframe_records_and_splits(record):
    rows = keyframe_records(record)
    assert len(rows) == 4 and rows[2]["scene_id"].endswith("-k2") and list(rows[2]["view_ids"]) == [0, 1, 2]
    assert np.array_equal(rows[3]["images"], record["images"][9:12])
    data = load_sequences(sequences=4, keyframes=3, cameras=2, size=16, test_fraction=0.25, per="keyframe")
    assert len(data["train"]) == 9 and len(data["test"]) == 3
    with pytest.raises(ValueError, match="at least 3 keyframes"):
        load_sequences(keyframes=2)


def test_travel_moves_the_object_along_a_line_inside_the_box():
    """With travel, the object's surface centre moves by about ``travel`` per keyframe along one horizontal line
    (a turn alone leaves it in place), the path is centred on the box and every keyframe stays inside it."""
    spec = dataclasses.replace(SPEC, keyframes=5, cameras=4, turn=0.0, twist=0.0, sway=0.0, travel=0.1)
    moving = sequence_record(spec, 0)
    still = sequence_record(dataclasses.replace(spec, travel=0.0), 0)
    mask = moving["mask"]
    points = _points(moving, slice(None))
    assert np.abs(points[mask]).max() < 0.8
    # Keyframe k's surface points minus their canonical XYZ (where they were at keyframe 0) is the travel so far.
    steps = []
    for k in range(spec.keyframes):
        views = slice(k * spec.cameras, (k + 1) * spec.cameras)
        shift = (points[views] - moving["canonical_xyz"][views])[mask[views]]
        np.testing.assert_allclose(shift, np.broadcast_to(np.median(shift, 0), shift.shape), atol=2e-3)
        steps.append(np.median(shift, 0))
    steps = np.diff(np.array(steps), axis=0)
    np.testing.assert_allclose(np.linalg.norm(steps, axis=1), 0.1, atol=1e-3)
    np.testing.assert_allclose(steps[:, 2], 0.0, atol=1e-3)  # horizontal
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-3)  # one straight line
    # The object is smaller by half its path, so its silhouettes cover less of the same cameras' frames.
    assert moving["mask"].mean() < still["mask"].mean()
    with pytest.raises(ValueError, match="travel"):
        sequence_record(dataclasses.replace(spec, travel=0.3), 0)


def test_records_read_back_as_typed_arrays():
    """The datasets carry a fixed-shape schema (images stored as uint8): a record comes back as whole numpy arrays
    (an untyped dataset returns nested lists that must be converted element by element)."""
    data = load_sequences(sequences=2, keyframes=3, cameras=2, size=16, travel=0.05, test_fraction=0.0)
    assert data["train"].features["images"].dtype == "uint8"
    row = data["train"].with_format("numpy")[0]
    assert isinstance(row["images"], np.ndarray) and row["images"].shape == (6, 16, 16, 3)
    assert row["mask"].dtype == bool and row["depth"].dtype == np.float32
    assert row["canonical_xyz"].shape == (6, 16, 16, 3) and row["extrinsics"].shape == (6, 3, 4)
    original = sequence_record(SequenceSpec(sequences=2, keyframes=3, cameras=2, size=16, travel=0.05), 0)
    assert np.array_equal(row["images"], original["images"]) and np.array_equal(row["depth"], original["depth"])
