"""The camera modes of the synthetic scenes, drawn many times: each keeps the ranges methods.md D.4-D.5 give it and
covers them (a range narrowed, widened, shifted or collapsed by a wrong constant fails here), looks where it says,
and respects the caller's ``valid`` test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from subspace_hub.data.cameras import (
    CameraPath,
    _first_valid,
    _free_rotation,
    look_at,
    micro,
    orbit,
    sample_path,
    standard,
)
from subspace_hub.errors import ConfigError


def anywhere(_: np.ndarray) -> bool:
    return True


def degrees_above_horizontal(vectors: np.ndarray) -> np.ndarray:
    """[N, 3] -> [N]: elevation of each vector over the world's horizontal plane (world z is up), degrees."""
    return np.degrees(np.arcsin(vectors[:, 2] / np.linalg.norm(vectors, axis=1)))


def test_free_cameras_look_horizontally_at_any_yaw_with_a_little_roll():
    """MegaSynth's free cameras: pitch 90 +- 10 degrees from straight down, yaw U(-180, 180), roll +- 10."""
    rng = np.random.default_rng(0)
    rotations = np.stack([_free_rotation(rng) for _ in range(4000)])
    identity = np.broadcast_to(np.eye(3), rotations.shape)
    np.testing.assert_allclose(np.einsum("nji,njk->nik", rotations, rotations), identity, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    forward, right, down = rotations[:, :, 2], rotations[:, :, 0], rotations[:, :, 1]
    elevation = degrees_above_horizontal(forward)
    assert np.abs(elevation).max() <= 10 + 1e-9 and elevation.min() < -9.5 and elevation.max() > 9.5
    azimuth = np.degrees(np.arctan2(forward[:, 1], forward[:, 0]))
    counts = np.histogram(azimuth, bins=8, range=(-180, 180))[0]
    assert counts.min() > 0.8 * 500 and counts.max() < 1.2 * 500  # every heading, evenly
    roll = degrees_above_horizontal(right)  # the camera's x axis leaves the horizontal by the roll
    assert np.abs(roll).max() <= 10 + 1e-9 and roll.min() < -9 and roll.max() > 9
    assert down[:, 2].max() < -0.9  # image down is world down


def test_standard_cameras_are_boundary_views_of_the_centre_and_free_views_near_it():
    """3 in 4 views on a face of the room, inset 1.2-3 % of its longest side, aimed at the centre with N(0, 0.05)
    x room noise; the rest within 12.5 % of the centre per axis, free-looking; FOV U(45, 70)."""
    room = np.array([8.0, 6.0, 3.0])
    rng = np.random.default_rng(1)
    insets, faces, misses, offsets, free_elevation, fovs = [], [], [], [], [], []
    for _ in range(300):
        path = standard(rng, room, 8, anywhere)  # round(8 x 36 / 48) = 6 boundary views
        assert path.rotations.shape == (8, 3, 3) and path.centres.shape == (8, 3)
        fovs.append(path.fov)
        for i, (centre, rotation) in enumerate(zip(path.centres, path.rotations, strict=True)):
            if i < 6:
                gaps = np.concatenate([centre, room - centre])  # distance to each of the six faces
                insets.append(gaps.min())
                faces.append(int(gaps.argmin()))
                misses.append(np.linalg.norm(np.cross(room / 2 - centre, rotation[:, 2])))  # the ray to the centre
            else:
                offsets.append((centre - room / 2) / room)
                free_elevation.append(degrees_above_horizontal(rotation[None, :, 2])[0])
    insets = np.array(insets)
    assert insets.min() >= 0.012 * 8 - 1e-12 and insets.max() <= 0.03 * 8 + 1e-12
    assert insets.min() < 0.1 and insets.max() > 0.235
    assert set(faces) == set(range(6))
    assert 0.15 < np.median(misses) < 0.5 and max(misses) < 2.0  # aimed near the centre, not at it
    offsets = np.array(offsets)
    assert np.abs(offsets).max() <= 0.125 + 1e-12 and np.all(offsets.max(axis=0) > 0.12)
    assert np.all(offsets.min(axis=0) < -0.12)
    assert abs(np.corrcoef(offsets[:, 0], offsets[:, 1])[0, 1]) < 0.3  # each axis drawn on its own
    assert np.abs(free_elevation).max() <= 10 + 1e-9
    assert 45 <= min(fovs) < 46 and 69 < max(fovs) <= 70


def test_standard_views_split_three_in_four_on_the_boundary():
    room = np.array([8.0, 6.0, 3.0])
    for views, boundary in ((4, 3), (48, 36), (6, 4)):  # round(views x 36 / 48), 4.5 rounding to even
        path = standard(np.random.default_rng(2), room, views, anywhere)
        on_face = np.concatenate([path.centres, room - path.centres], axis=1).min(axis=1) <= 0.03 * 8 + 1e-12
        assert on_face[:boundary].all() and not on_face[boundary:].any()


def test_sampling_keeps_to_the_valid_test_and_falls_back_to_a_last_draw():
    room = np.array([8.0, 6.0, 3.0])
    path = standard(np.random.default_rng(3), room, 16, lambda p: p[0] > 4.0)
    assert np.all(path.centres[:, 0] > 4.0)
    asked, drawn = [], []

    def draw() -> np.ndarray:
        drawn.append(1)
        return np.full(3, float(len(drawn)))

    point = _first_valid(draw, lambda p: asked.append(1) is not None)  # never valid
    assert len(asked) == 3000 and len(drawn) == 3001 and point[0] == 3001.0
    assert _first_valid(draw, lambda p: p[0] > len(drawn) - 1, tries=5)[0] == len(drawn)


def test_orbit_controls_keep_their_distance_elevation_turn_and_target_spread():
    """Control points at 0.85-1.5 D from the target (D = a sixth of the room's smallest side), above it (the
    vertical component halved: mean elevation ~22 degrees), consecutive ones less than 3 pi / 4 apart; the target
    spread N(0, sigma^2) D / sqrt(3) per axis; FOV U(45, 70)."""
    room = np.array([12.0, 12.0, 12.0])  # D = 2
    rng = np.random.default_rng(4)
    elevations, distances, turns, targets, fovs = [], [], [], [], []
    for _ in range(300):
        path = orbit(rng, room, 5, anywhere, target_sigma=0.35)
        controls, rotations = path.controls
        assert controls.shape == (6, 3) and rotations.shape == (0, 3, 3) and path.centres.shape == (5, 3)
        np.testing.assert_allclose(path.centres[[0, -1]], controls[[0, -1]], atol=1e-9)  # the spline's ends
        arms = controls - path.target
        elevations.extend(degrees_above_horizontal(arms))
        distances.extend(np.linalg.norm(arms, axis=1) / 2.0)
        cosines = (arms[:-1] * arms[1:]).sum(1) / np.linalg.norm(arms[:-1], axis=1) / np.linalg.norm(arms[1:], axis=1)
        turns.extend(np.arccos(np.clip(cosines, -1, 1)))
        targets.append(path.target - room / 2)
        fovs.append(path.fov)
    assert min(elevations) >= 0 and 20 < np.mean(elevations) < 24
    assert 0.85 - 1e-12 <= min(distances) < 0.86 and 1.49 < max(distances) <= 1.5 + 1e-12
    assert max(turns) < 3 * np.pi / 4 and max(turns) > 2.2  # the limit binds: without it turns reach pi
    targets = np.array(targets)
    np.testing.assert_allclose(np.std(targets, axis=0), 0.35 * 2.0 / np.sqrt(3), rtol=0.15)
    assert abs(np.corrcoef(targets[:, 0], targets[:, 1])[0, 1]) < 0.3  # each axis drawn on its own
    assert 45 <= min(fovs) < 46 and 69 < max(fovs) <= 70
    still = orbit(np.random.default_rng(5), room, 5, anywhere)
    np.testing.assert_array_equal(still.target, room / 2)  # no spread by default: the room's centre
    above = orbit(np.random.default_rng(5), room, 5, lambda p: p[0] > 6.0)  # the caller's test holds
    assert np.all(above.controls[0][:, 0] > 6.0)


def test_orbit_options_move_the_target_and_the_unit_and_inside_keeps_the_room():
    room = np.array([6.0, 6.0, 6.0])
    centre = np.array([2.0, 2.5, 1.0])
    path = orbit(np.random.default_rng(6), room, 4, anywhere, centre=centre, unit=2.0, distance=(0.7, 0.8),
                 control_points=3, inside=False)  # fmt: skip
    controls, _ = path.controls
    np.testing.assert_array_equal(path.target, centre)
    distances = np.linalg.norm(controls - centre, axis=1)
    assert len(controls) == 3 and np.all((distances >= 1.4 - 1e-12) & (distances <= 1.6 + 1e-12))
    # a unit too large for the room: by default every control point stays 5 % clear of the walls, inside=False not
    kept = np.stack([orbit(np.random.default_rng(s), room, 4, anywhere, unit=3.0).controls[0] for s in range(20)])
    free = np.stack([orbit(np.random.default_rng(s), room, 4, anywhere, unit=3.0, inside=False).controls[0]
                     for s in range(20)])  # fmt: skip
    assert np.all(kept > 0.05 * 6) and np.all(kept < 0.95 * 6)
    assert np.any(free < 0.3) or np.any(free > 5.7)


def test_micro_paths_start_near_an_object_and_move_smoothly():
    room = np.array([8.0, 6.0, 3.0])
    objects = np.array([[2.0, 2.0, 1.0]])
    path = micro(np.random.default_rng(7), room, 24, anywhere, objects)
    positions, rotations = path.controls
    assert positions.shape == (10, 3) and rotations.shape == (10, 3, 3) and path.centres.shape == (24, 3)
    start = np.linalg.norm(positions[0] - objects[0]) / 3.0  # 0.25 room-sides, its direction offset up to 5 degrees
    assert 0.25 - 1e-9 <= start <= 0.25 * np.sqrt(1 + 2 * np.sin(np.radians(5)) * np.cos(np.radians(5))) + 1e-9
    towards = (objects[0] - positions[0]) / np.linalg.norm(objects[0] - positions[0])
    np.testing.assert_allclose(rotations[0][:, 2], towards, atol=1e-9)  # the first control looks at the object
    steps = np.linalg.norm(np.diff(path.centres, axis=0), axis=1) / 3.0
    assert steps.max() < 0.01  # views in time order along the spline: consecutive views are close
    np.testing.assert_allclose(np.linalg.det(path.rotations), 1.0, atol=1e-9)
    near = micro(np.random.default_rng(7), room, 4, anywhere, np.zeros((0, 3)))  # no objects: the room's centre
    assert abs(np.linalg.norm(near.controls[0][0] - room / 2) / 3.0 - 0.25) < 0.02


def test_sample_path_dispatches_each_mode_and_names_the_choices():
    room = np.array([8.0, 6.0, 3.0])
    objects = np.array([[2.0, 2.0, 1.0]])
    orbit_path = sample_path("orbit", np.random.default_rng(8), room, 4, anywhere, objects, distance=(1.0, 1.0))
    np.testing.assert_allclose(np.linalg.norm(orbit_path.controls[0] - orbit_path.target, axis=1), 0.5)  # D = 3 / 6
    assert sample_path("standard", np.random.default_rng(8), room, 4, anywhere, objects).controls is None
    micro_path = sample_path("micro", np.random.default_rng(8), room, 4, anywhere, objects)
    assert np.linalg.norm(micro_path.controls[0][0] - objects[0]) < 0.26 * 3.0
    with pytest.raises(ConfigError, match=r"^Unknown camera mode 'spiral'; choose from orbit, standard, micro\.$"):
        sample_path("spiral", np.random.default_rng(8), room, 4, anywhere, objects)


def test_look_at_straight_down_and_extrinsics_of_a_scaled_scene():
    down = look_at(np.array([1.0, 2.0, 5.0]), np.array([1.0, 2.0, 0.0]))  # right from world y: x right, y down
    np.testing.assert_allclose(down, [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)
    tilted = look_at(np.zeros(3), np.array([1.0, 0.0, 0.0]))  # level: x right of forward, y down
    np.testing.assert_allclose(tilted, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    rotation = look_at(np.array([1.0, -2.0, 0.5]), np.zeros(3))
    path = CameraPath(rotations=rotation[None], centres=np.array([[1.0, -2.0, 0.5]]), fov=90.0)
    extrinsics = path.extrinsics(scale=2.0)[0]
    np.testing.assert_allclose(extrinsics[:, :3], rotation.T, atol=1e-12)
    np.testing.assert_allclose(-extrinsics[:, :3].T @ extrinsics[:, 3], [2.0, -4.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(path.intrinsics(10, 20)[0], [[10.0, 0, 10.0], [0, 10.0, 5.0], [0, 0, 1]], atol=1e-12)


def test_micro_starts_face_the_room_centre_within_five_degrees():
    """The start is 0.25 room-sides from the object along the direction to the room's centre turned by theta and
    phi, each one of -5, 0, 5 degrees; an object at the centre starts along +x, one under it turns about +y."""
    room = np.array([8.0, 6.0, 4.0])
    objects = np.array([[2.0, 4.5, 2.0]])  # at the centre's height: the direction to the centre is horizontal
    towards = (room / 2 - objects[0]) / np.linalg.norm(room / 2 - objects[0])
    up, side = np.array([0.0, 0.0, 1.0]), np.cross([0.0, 0.0, 1.0], towards)
    thetas, phis = set(), set()
    for seed in range(60):
        path = micro(np.random.default_rng(seed), room, 4, anywhere, objects)
        arm = (path.controls[0][0] - objects[0]) / 4.0
        assert np.linalg.norm(arm) == pytest.approx(0.25, abs=1e-12)
        phi, theta = np.degrees(np.arcsin(arm @ up / 0.25)), np.degrees(np.arctan2(arm @ side, arm @ towards))
        thetas.add(round(theta, 6))
        phis.add(round(phi, 6))
        assert 45 <= path.fov <= 70
    assert thetas == phis == {-5.0, 0.0, 5.0}
    for seed in range(6):
        centred = micro(np.random.default_rng(seed), room, 4, anywhere, (room / 2)[None])
        arm = (centred.controls[0][0] - room / 2) / 4.0
        assert np.linalg.norm(arm) == pytest.approx(0.25, abs=1e-12) and arm[0] > 0.24
        under = np.array([[4.0, 3.0, 0.5]])  # straight below the centre: the turn is about world y, in the y-z plane
        arm = (micro(np.random.default_rng(seed), room, 4, anywhere, under).controls[0][0] - under[0]) / 4.0
        assert np.isfinite(arm).all() and arm[0] == pytest.approx(0.0, abs=1e-12) and arm[2] > 0.2
        assert abs(arm[1]) <= 0.25 * np.sin(np.radians(5)) + 1e-12
        near = room / 2 + np.array([0.0, 0.5, 0.0])  # half a unit from the centre: still turned towards it
        arm = (micro(np.random.default_rng(seed), room, 4, anywhere, near[None]).controls[0][0] - near) / 4.0
        assert arm[1] < -0.24


def test_micro_steps_and_turns_cover_their_limits_and_views_follow_the_controls():
    room = np.array([8.0, 6.0, 3.0])
    objects = np.array([[2.0, 2.0, 1.0]])
    steps, turns, fovs = [], [], []
    for seed in range(300):
        path = micro(np.random.default_rng(seed), room, 4, anywhere, objects)
        positions, rotations = path.controls
        steps.append(np.diff(positions, axis=0) / 3.0)
        relative = np.einsum("cji,cjk->cik", rotations[:-1], rotations[1:])
        turns.append(Rotation.from_matrix(relative).as_euler("zyx", degrees=True))
        fovs.append(path.fov)
    steps, turns = np.concatenate(steps), np.concatenate(turns)
    lengths = np.linalg.norm(steps, axis=1)
    assert lengths.max() <= 0.01 + 1e-12 and lengths.max() > 0.0099
    directions = steps / lengths[:, None]
    assert 0.2 < np.mean(directions[:, 2] > 0.6) < 0.4  # polar angle U(0, pi): 29.5 % within 53 degrees of up
    quadrants = np.histogram(np.arctan2(directions[:, 1], directions[:, 0]), bins=4, range=(-np.pi, np.pi))[0]
    assert quadrants.min() > 0.2 * len(steps) and quadrants.max() < 0.3 * len(steps)
    assert np.abs(turns).max() <= 1.0 + 1e-9 and np.all(turns.min(axis=0) < -0.95) and np.all(turns.max(axis=0) > 0.95)
    assert 45 <= min(fovs) < 46 and 69 < max(fovs) <= 70
    # the views run along the whole path: every control point has a view close by
    path = micro(np.random.default_rng(0), room, 400, anywhere, objects)
    positions, _ = path.controls
    gaps = np.linalg.norm(positions[:, None] - path.centres[None], axis=2).min(axis=1)
    assert gaps.max() < 0.1 * np.linalg.norm(np.diff(positions, axis=0), axis=1).max()


def test_micro_asks_valid_a_bounded_number_of_times():
    """100 start attempts, then 100 tries for each of the 9 later control points, when nothing is ever valid."""
    calls = []
    micro(np.random.default_rng(0), np.array([8.0, 6.0, 3.0]), 4, lambda p: calls.append(1) is None and False,
          np.array([[2.0, 2.0, 1.0]]))  # fmt: skip
    assert len(calls) == 100 + 9 * 100
