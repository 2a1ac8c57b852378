"""Attribute control: within a dataset only its family's attribute varies; across datasets the rest re-draws.
Camera modes keep their limits; scenes are deterministic; textures and shapes are well-formed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from subspace_hub.data.families import DatasetRecipe, derive_seed
from subspace_hub.data.scene import SceneRecipe, generate_scene
from subspace_hub.data.shapes import primitive
from subspace_hub.data.textures import FAMILIES, procedural_texture, texture_pool
from subspace_hub.errors import ConfigError


def scenes(family: str, index: int = 0, count: int = 2, **options):
    recipe = DatasetRecipe(
        family, index, seed=3, scenes=count, views=4, mesh_resolution=4, texture_size=32, texture_pool=4, **options
    )
    return [generate_scene(recipe.scene(i)) for i in range(count)]


def same_geometry(a, b) -> bool:
    return a.mesh.vertices.shape == b.mesh.vertices.shape and np.array_equal(a.mesh.vertices, b.mesh.vertices)


def same_cameras(a, b) -> bool:
    return np.array_equal(a.extrinsics(), b.extrinsics()) and a.cameras.fov == b.cameras.fov


def same_lighting(a, b) -> bool:
    return np.array_equal(a.lighting.sun_direction, b.lighting.sun_direction) and np.array_equal(
        a.lighting.ambient_top, b.lighting.ambient_top
    )


def same_textures(a, b) -> bool:
    """The same texture pool and the same material per slot (geometry decides how many slots are used)."""
    n = min(len(a.materials.metallic), len(b.materials.metallic))
    return np.array_equal(a.textures, b.textures) and np.array_equal(a.materials.metallic[:n], b.materials.metallic[:n])


@pytest.mark.parametrize(
    ("family", "varies"),
    [("texture", same_textures), ("geometry", same_geometry), ("camera", same_cameras), ("lighting", same_lighting)],
)
def test_only_the_family_attribute_varies_within_a_dataset(family, varies):
    a, b = scenes(family)
    checks = {"texture": same_textures, "geometry": same_geometry, "camera": same_cameras, "lighting": same_lighting}
    assert not varies(a, b), f"{family} should differ between scenes of a {family} dataset"
    for name, check in checks.items():
        if name != family:
            assert check(a, b), f"{name} should be shared by the scenes of a {family} dataset"
    # across datasets of the family the shared attributes are re-drawn
    other = scenes(family, index=1, count=1)[0]
    for name, check in checks.items():
        if name != family:
            assert not check(a, other), f"{name} should differ between {family}-000 and {family}-001"


def test_geometry_datasets_keep_objects_clear_of_their_fixed_cameras():
    for scene in scenes("geometry", count=3):
        centres = scene.cameras.centres
        for box in scene.layout.boxes:
            assert not np.any(np.all(np.abs(centres - box.centre) < box.size / 2, axis=1))


def test_scenes_are_deterministic_and_seeds_are_stable():
    recipe = SceneRecipe(11, 12, 13, 14, 15, views=3, mesh_resolution=4, texture_size=32, texture_pool=4)
    a, b = generate_scene(recipe), generate_scene(recipe)
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.textures, b.textures)
    assert np.array_equal(a.extrinsics(), b.extrinsics())
    assert derive_seed(0, "texture", 0) == derive_seed(0, "texture", 0) != derive_seed(0, "texture", 1)
    assert derive_seed(1, "x") == 1253570696159761767  # fixed across processes and Python versions


def test_micro_baseline_motion_stays_within_its_limits():
    for index in range(3):
        scene = scenes("camera", index=index, count=1, camera_mode="micro")[0]
        positions, rotations = scene.cameras.controls
        side = scene.layout.shell.size.min()  # limits are in room-sides: 0.25 away, steps of at most 0.01
        steps = np.linalg.norm(np.diff(positions, axis=0), axis=1) / side
        assert steps.max() <= 0.01 + 1e-12
        turns = Rotation.from_matrix(np.einsum("cji,cjk->cik", rotations[:-1], rotations[1:])).as_euler(
            "zyx", degrees=True
        )
        assert np.abs(turns).max() <= 1.0 + 1e-9
        # the start is 0.25 scene units from an object box centre, and views stay near the control points
        centres = np.array([b.centre for b in scene.layout.boxes if b.primitives])
        distances = np.linalg.norm(centres - positions[0], axis=1) / side
        unit_sum = np.sqrt(1 + 2 * np.sin(np.radians(5)) * np.cos(np.radians(5)))  # the D.5 offset is not unit length
        assert (np.abs(distances - 0.25) <= 0.25 * (unit_sum - 1) + 1e-9).any()
        spread = np.linalg.norm(scene.cameras.centres - positions[0], axis=1).max() / side
        assert spread <= 9 * 0.01 * 1.5
        assert np.all(scene.cameras.centres > 0) and np.all(scene.cameras.centres < scene.layout.shell.size)


def test_orbit_and_standard_cameras():
    orbit = scenes("camera", count=1, camera_mode="orbit")[0]
    controls, _ = orbit.cameras.controls
    target = orbit.cameras.target
    assert len(controls) == 6 and orbit.cameras.centres.shape == (4, 3) and target.shape == (3,)
    # consecutive control points less than 3 pi / 4 apart around the target, within 0.7-2.0 D of it (every range a
    # camera dataset may draw lies there)
    a, b = controls[:-1] - target, controls[1:] - target
    cosines = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert np.all(np.arccos(np.clip(cosines, -1, 1)) < 3 * np.pi / 4)
    unit = orbit.layout.shell.size.min() / 6
    assert np.all(np.linalg.norm(controls - target, axis=1) >= 0.7 * unit - 1e-9)
    assert np.all(np.linalg.norm(controls - target, axis=1) <= 2.0 * unit + 1e-9)
    # every view looks at the target: its forward axis (z) points at it
    towards = target - orbit.cameras.centres
    towards /= np.linalg.norm(towards, axis=1, keepdims=True)
    np.testing.assert_allclose(np.einsum("si,si->s", orbit.cameras.rotations[:, :, 2], towards), 1.0, atol=1e-9)
    standard = scenes("camera", count=1, camera_mode="standard")[0]
    room = standard.layout.shell.size
    assert np.all(standard.cameras.centres > 0) and np.all(standard.cameras.centres < room)
    assert 45 <= standard.cameras.fov <= 70
    r = standard.cameras.rotations
    np.testing.assert_allclose(np.einsum("sji,sjk->sik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)


def test_textures_and_primitives():
    for family in FAMILIES:
        texture = procedural_texture(5, 32, family)
        assert (
            texture.shape == (32, 32, 3) and texture.dtype == np.float32 and texture.min() >= 0 and texture.max() <= 1
        )
    pool = texture_pool(1, 3, 16)
    assert pool.shape == (3, 16, 16, 3) and not np.array_equal(pool[0], pool[1])
    with pytest.raises(ConfigError, match="Unknown texture family"):
        procedural_texture(0, 16, "plaid")
    for kind in ("ellipsoid", "cube", "cylinder"):
        mesh = primitive(kind, [1.0, 0.5, 0.3], None, 6, 0)
        v = mesh.vertices[mesh.faces]
        volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
        expected = {"ellipsoid": 4 / 3 * np.pi * 0.15, "cube": 8 * 0.15, "cylinder": np.pi * 0.5 * 0.6}[kind]
        assert volume == pytest.approx(expected, rel=0.1)  # closed and facing outwards


def test_texture_folder(tmp_path):
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"t{i}.png")
    pool = texture_pool(0, 4, 16, tmp_path)
    assert pool.shape == (4, 16, 16, 3)
    assert all(np.isclose(value, 0.0) or np.isclose(value, 40 / 255) for value in np.unique(pool))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="No texture images"):
        texture_pool(0, 2, 16, empty)


def test_bad_recipes():
    with pytest.raises(ConfigError, match="Unknown camera mode"):
        SceneRecipe(1, 2, 3, 4, 5, camera_mode="drone")
    with pytest.raises(ConfigError, match="Unknown attribute family"):
        DatasetRecipe("colour", 0, 0, 1)
    with pytest.raises(ConfigError, match="Scene 5 is outside 0..1"):
        DatasetRecipe("texture", 0, 0, 2).scene(5)


# -- the paper's families (shared/reference/methods.md A.2, D.4) --------------------------------------------------


def test_the_attribute_layout_is_the_papers_room_with_large_and_small_boxes_only():
    for scene in scenes("lighting", count=1) + scenes("texture", index=1, count=1):
        x, y, z = scene.layout.shell.size
        assert 12 <= x <= 15 and 12 <= y <= 15 and 12 <= z <= 18
        kinds = [box.kind for box in scene.layout.boxes]
        assert set(kinds) <= {"large", "small"} and kinds.count("large") <= 6 and kinds.count("small") <= 6
    megasynth = scenes("lighting", count=1, layout="megasynth")[0]
    assert 17 <= megasynth.layout.shell.size[0] <= 30 and "stick" in {b.kind for b in megasynth.layout.boxes}


@pytest.mark.parametrize("index", range(10))
def test_geometry_dataset_i_uses_the_papers_group_i_mod_9(index):
    from subspace_hub.data.layout import GROUP_BINS, group_box_limit

    group = index % 9
    assert DatasetRecipe("geometry", index, 0, 1).geometry_group == group
    for scene in scenes("geometry", index=index, count=3):
        assert scene.recipe.geometry_group == group
        for kind in ("large", "small"):
            boxes = [b for b in scene.layout.boxes if b.kind == kind]
            assert len(boxes) <= group_box_limit(group)
            assert {b.primitives for b in boxes} <= set(GROUP_BINS[kind][group // 3])
        assert {b.kind for b in scene.layout.boxes} <= {"large", "small"}


def test_geometry_groups_differ_in_counts_as_the_paper_says():
    from subspace_hub.data.layout import GROUP_BINS, group_box_limit

    assert [group_box_limit(g) for g in range(9)] == [3, 5, 7] * 3
    assert GROUP_BINS["large"][0] == {1: 2, 2: 3, 3: 3} and GROUP_BINS["large"][2] == {7: 2, 8: 3, 9: 3}
    assert GROUP_BINS["small"][1] == {3: 2, 4: 3}
    few = [s.stats["primitives"] for i in (0, 9) for s in scenes("geometry", index=i, count=3)]
    many = [s.stats["primitives"] for i in (8, 17) for s in scenes("geometry", index=i, count=3)]
    assert max(few) < min(many)  # group 0: at most 3 boxes of 1-3 primitives; group 8: up to 7 boxes of 7-9


def test_texture_experiment_2_varies_the_geometry_slightly_and_nothing_else():
    a, b = scenes("texture", geometry_jitter=0.05)
    assert same_cameras(a, b) and same_lighting(a, b) and not same_textures(a, b)
    assert a.mesh.vertices.shape == b.mesh.vertices.shape and not same_geometry(a, b)
    moved = np.linalg.norm(a.mesh.vertices - b.mesh.vertices, axis=1).max()
    assert 0 < moved < 0.1 * np.ptp(a.mesh.vertices, axis=0).max()  # the same objects, slightly changed
    first, second = scenes("texture")  # experiment 1: bit-identical geometry
    assert same_geometry(first, second)
    with pytest.raises(ConfigError, match="texture family's experiment 2"):
        DatasetRecipe("geometry", 0, 0, 1, geometry_jitter=0.05)


def test_camera_datasets_draw_their_own_ranges_and_paths_keep_to_them():
    ranges = [DatasetRecipe("camera", i, 0, 1).camera_ranges() for i in range(4)]
    assert len(set(ranges)) == 4
    for (low, high), spread in ranges:
        assert 0.7 <= low < high <= 2.0 and 0 <= spread <= 0.35
    assert DatasetRecipe("texture", 0, 0, 1).camera_ranges() == ((0.85, 1.5), 0.0)
    for index in range(2):
        (low, high), _ = DatasetRecipe("camera", index, 3, 1).camera_ranges()
        for scene in scenes("camera", index=index, count=2):
            controls, _ = scene.cameras.controls
            unit = scene.layout.shell.size.min() / 6
            distances = np.linalg.norm(controls - scene.cameras.target, axis=1) / unit
            assert np.all(distances >= low - 1e-9) and np.all(distances <= high + 1e-9)
            forward = scene.cameras.rotations[:, :, 2]  # every view looks at the target
            towards = scene.cameras.target - scene.cameras.centres
            towards /= np.linalg.norm(towards, axis=1, keepdims=True)
            np.testing.assert_allclose((forward * towards).sum(1), 1.0, atol=1e-9)
    lighting = scenes("lighting", count=2)
    np.testing.assert_allclose(lighting[0].cameras.target, lighting[0].layout.shell.size / 2)  # looks at the centre


@pytest.mark.parametrize("family", ["texture", "geometry", "camera", "lighting"])
def test_every_family_can_be_object_centred(family):
    a, b = scenes(family, object_centred=True)
    for scene in (a, b):
        assert scene.recipe.object_centred and not np.isin(scene.mesh.materials, (0, 1, 2)).any()  # no room shell
    checks = {"texture": same_textures, "geometry": same_geometry, "camera": same_cameras, "lighting": same_lighting}
    for name, check in checks.items():
        assert check(a, b) == (name != family)
