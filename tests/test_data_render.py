"""The renderer's ground truth is exact: depth unprojects onto the hit triangles, normals are theirs, and a surface
point seen in two views projects to matching pixels; the ray-casting backends agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subspace_hub.data.bvh import build_bvh
from subspace_hub.data.raycast import BruteCaster, EmbreeCaster, make_caster
from subspace_hub.data.render import Renderer, RenderSettings, render_scene
from subspace_hub.data.scene import SceneRecipe, generate_scene
from subspace_hub.errors import ConfigError
from subspace_hub.geometry import depth_to_world_points, project_points


@pytest.fixture(scope="module")
def scene():
    return generate_scene(SceneRecipe(1, 2, 3, 4, 5, views=6, mesh_resolution=8, layout="megasynth"))


@pytest.fixture(scope="module")
def views(scene):
    return render_scene(scene, 48, 64)


def test_outputs_have_the_interchange_shapes(views, scene):
    assert views.images.shape == (6, 48, 64, 3) and views.images.dtype == np.uint8
    assert views.depth.shape == (6, 48, 64) and views.depth.dtype == np.float32
    assert views.mask.dtype == bool and views.normals.shape == (6, 48, 64, 3)
    assert views.intrinsics.shape == (6, 3, 3) and views.extrinsics.shape == (6, 3, 4)
    assert np.array_equal(views.mask, views.depth > 0) and np.array_equal(views.mask, views.triangles >= 0)
    assert views.images.std() > 10  # textured and lit, not blank
    assert scene.stats["primitives"] >= 50


def test_depth_unprojects_onto_the_hit_triangles_and_normals_are_theirs(scene, views):
    points = depth_to_world_points(
        torch.from_numpy(views.depth).double(),
        torch.from_numpy(views.extrinsics).double(),
        torch.from_numpy(views.intrinsics).double(),
    ).numpy()
    hit = views.mask
    tri = scene.mesh.vertices[scene.mesh.faces[views.triangles[hit]]]  # [N, 3, 3]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    plane_distance = np.abs(((points[hit] - tri[:, 0]) * normal).sum(1))
    assert plane_distance.max() < 1e-5 * np.ptp(scene.mesh.vertices)  # on the triangle's plane (float32 rays)
    # inside the triangle: barycentric coordinates in [0, 1] up to rounding
    e1, e2, rel = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], points[hit] - tri[:, 0]
    gram = np.stack(
        [np.stack([(e1 * e1).sum(1), (e1 * e2).sum(1)], 1), np.stack([(e1 * e2).sum(1), (e2 * e2).sum(1)], 1)], 1
    )
    uv = np.linalg.solve(gram, np.stack([(rel * e1).sum(1), (rel * e2).sum(1)], 1)[..., None])[..., 0]
    assert uv.min() > -1e-3 and (uv.sum(1)).max() < 1 + 1e-3
    cosine = (views.normals[hit] * normal).sum(1)
    np.testing.assert_allclose(np.abs(cosine), 1.0, atol=1e-5)
    # and they face the camera
    centres = -np.einsum("sji,sj->si", views.extrinsics[:, :, :3], views.extrinsics[:, :, 3])
    to_camera = centres[np.nonzero(hit)[0]] - points[hit]
    assert ((views.normals[hit] * to_camera).sum(1) >= -1e-6).all()


def test_a_surface_point_seen_in_two_views_projects_to_matching_pixels(scene, views):
    renderer = Renderer(scene)
    e, k = torch.from_numpy(views.extrinsics).double(), torch.from_numpy(views.intrinsics).double()
    points = depth_to_world_points(torch.from_numpy(views.depth).double(), e, k)
    checked = 0
    same_triangle = []
    for a in range(len(e)):
        sample = points[a][torch.from_numpy(views.mask[a])][::7]
        sample_triangles = torch.from_numpy(views.triangles[a][views.mask[a]][::7]).long()
        pixels_a, _ = project_points(sample, e[a], k[a])
        assert (pixels_a - pixels_a.round()).abs().max() < 1e-3  # back onto its own pixel centres
        for b in range(len(e)):
            if a == b:
                continue
            pixels, z = project_points(sample, e[b], k[b])
            inside = (z > 0) & (pixels[:, 0] >= 0) & (pixels[:, 0] <= 63) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= 47)
            if not bool(inside.any()):
                continue
            # cast the rays of view b through the projected (sub-pixel) positions
            rotation = e[b][:, :3].T
            centre = -(rotation @ e[b][:, 3])
            cam = torch.stack(
                [
                    (pixels[inside, 0] - k[b][0, 2]) / k[b][0, 0],
                    (pixels[inside, 1] - k[b][1, 2]) / k[b][1, 1],
                    torch.ones(int(inside.sum()), dtype=torch.float64),
                ],
                1,
            )
            directions = cam @ rotation.T
            hits = renderer.caster.intersect(centre.expand_as(directions).float(), directions.float())
            seen = hits.t.double() > z[inside] * (1 - 1e-4)  # nothing in front of the point: visible in view b
            landed = centre + directions * hits.t.double()[:, None]
            error = (landed - sample[inside]).norm(dim=1)[seen]
            assert error.numel() == 0 or float(error.max()) < 1e-4 * float(np.ptp(scene.mesh.vertices))
            same_triangle.append(
                (landed - sample[inside]).norm(dim=1)[seen & (hits.triangle == sample_triangles[inside])]
            )
            checked += int(seen.sum())
    assert checked > 50
    # Where view b's ray lands on the very triangle view a saw: exact up to float32 rays, 1e-5 of the scene.
    errors = torch.cat(same_triangle) / float(np.ptp(scene.mesh.vertices))
    assert errors.numel() > 50 and float(errors.median()) < 1e-6 and float(errors.quantile(0.99)) < 1e-5


def test_backends_agree(scene):
    renderer = Renderer(scene)
    origins, directions, _, _ = renderer.rays(24, 32, slice(0, 2))
    embree = EmbreeCaster(scene.mesh.vertices, scene.mesh.faces).intersect(origins, directions)
    brute = BruteCaster(scene.mesh.vertices, scene.mesh.faces, chunk=256).intersect(origins, directions)
    same = embree.triangle == brute.triangle
    assert float(same.double().mean()) > 0.99  # exact ties on shared edges may pick the neighbour
    torch.testing.assert_close(embree.t[same], brute.t[same], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(embree.u[same], brute.u[same], atol=1e-3, rtol=0)
    offsets = origins + directions * 0.5 * embree.t[:, None]
    limits = torch.ones(len(origins))
    assert not bool(
        EmbreeCaster(scene.mesh.vertices, scene.mesh.faces).occluded(offsets, directions, limits * 0.4 * embree.t).any()
    )
    assert bool(
        EmbreeCaster(scene.mesh.vertices, scene.mesh.faces).occluded(origins, directions, embree.t * 1.01).all()
    )
    with pytest.raises(ConfigError, match="needs device='cuda'"):
        make_caster(scene.mesh.vertices, scene.mesh.faces, "cuda", "cpu")
    with pytest.raises(ConfigError, match="Unknown ray-casting backend"):
        make_caster(scene.mesh.vertices, scene.mesh.faces, "optix")


def test_bvh_is_well_formed():
    rng = np.random.default_rng(0)
    for n in (2, 3, 17, 2000):
        triangles = rng.random((n, 1, 3)) + 0.01 * rng.random((n, 3, 3))
        bvh = build_bvh(triangles)
        children, boxes, order = bvh.children.numpy(), bvh.boxes.numpy(), bvh.order.numpy()
        assert np.array_equal(np.sort(~children[children < 0]), np.arange(n))  # every triangle in one leaf
        assert np.array_equal(np.sort(children[children >= 0]), np.arange(1, n - 1))  # every node but the root once
        sorted_tris = triangles[order]
        rows, sides = np.nonzero(children < 0)
        leaf = ~children[rows, sides]
        assert (boxes[rows, sides, 0] <= sorted_tris[leaf].min(1) + 1e-6).all()
        assert (boxes[rows, sides, 1] >= sorted_tris[leaf].max(1) - 1e-6).all()
        rows, sides = np.nonzero(children >= 0)  # a child's box holds both of the child's own children
        inner = children[rows, sides]
        assert (boxes[rows, sides, 0] <= boxes[inner, :, 0].min(1) + 1e-6).all()
        assert (boxes[rows, sides, 1] >= boxes[inner, :, 1].max(1) - 1e-6).all()
    with pytest.raises(ValueError, match="at least two triangles"):
        build_bvh(np.zeros((1, 3, 3)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_renderer_matches_embree(scene):
    cpu = Renderer(scene).render(96, 128)
    gpu = Renderer(scene, device="cuda").render(96, 128)
    same = cpu.triangles == gpu.triangles
    assert same.mean() > 0.995
    np.testing.assert_allclose(gpu.depth[same], cpu.depth[same], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu.normals[same], cpu.normals[same], atol=1e-5)
    assert np.abs(gpu.images.astype(int) - cpu.images.astype(int))[same].mean() < 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bvh_is_well_formed():
    rng = np.random.default_rng(1)
    for n in (2, 3, 1000, 50000):
        triangles = rng.random((n, 1, 3)) + 0.01 * rng.random((n, 3, 3))
        bvh = build_bvh(torch.as_tensor(triangles, device="cuda"))
        children, boxes, order = bvh.children.cpu().numpy(), bvh.boxes.cpu().numpy(), bvh.order.cpu().numpy()
        assert np.array_equal(np.sort(~children[children < 0]), np.arange(n))
        assert np.array_equal(np.sort(children[children >= 0]), np.arange(1, n - 1))
        rows, sides = np.nonzero(children < 0)
        sorted_tris = triangles[order]
        assert (boxes[rows, sides, 0] <= sorted_tris[~children[rows, sides]].min(1)).all()
        assert (boxes[rows, sides, 1] >= sorted_tris[~children[rows, sides]].max(1)).all()
        rows, sides = np.nonzero(children >= 0)
        inner = children[rows, sides]
        assert (boxes[rows, sides, 0] <= boxes[inner, :, 0].min(1)).all() and (
            boxes[rows, sides, 1] >= boxes[inner, :, 1].max(1)
        ).all()
        cpu = build_bvh(triangles)
        assert np.array_equal(cpu.children.numpy(), children) and np.allclose(cpu.boxes.numpy(), boxes)


# -- colour: anti-aliasing, smooth shading, materials, light, sky -----------------------------------------------


def test_colour_settings_change_the_image_and_never_the_geometry(scene):
    plain = render_scene(scene, 48, 64, settings=RenderSettings(samples=1, ambient_occlusion=False, soft_shadows=False))
    full = render_scene(scene, 48, 64, settings=RenderSettings(samples=4))
    for field in ("depth", "mask", "normals", "triangles", "intrinsics", "extrinsics"):
        assert np.array_equal(getattr(plain, field), getattr(full, field)), field
    assert not np.array_equal(plain.images, full.images)
    # Anti-aliasing: fewer hard jumps between neighbouring pixels of the same view.
    jumps = lambda images: np.abs(np.diff(images.astype(int), axis=2)).mean()  # noqa: E731
    assert jumps(full.images) < jumps(plain.images)
    with pytest.raises(ConfigError, match="square number"):
        RenderSettings(samples=3)


def test_a_view_renders_to_the_same_bytes_in_any_batch(scene):
    renderer = Renderer(scene)
    together = renderer.render(32, 40)
    apart = [renderer.render(32, 40, slice(i, i + 1)) for i in range(scene.recipe.views)]
    assert np.array_equal(together.images, np.concatenate([v.images for v in apart]))
    again = Renderer(scene).render(32, 40, slice(2, 4))
    assert np.array_equal(again.images, together.images[2:4])


def test_smooth_shading_normals_are_welded_and_keep_creases(scene):
    from subspace_hub.data.shapes import primitive

    corners = scene.mesh.corner_normals()
    np.testing.assert_allclose(np.linalg.norm(corners, axis=-1), 1.0, atol=1e-5)
    tri = scene.mesh.vertices[scene.mesh.faces]
    face = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    face /= np.linalg.norm(face, axis=1, keepdims=True)
    assert ((corners * face[:, None]).sum(-1) >= np.cos(np.radians(40)) - 1e-5).all()  # within the smoothing angle
    sphere = primitive("ellipsoid", [1.0, 1.0, 1.0], None, 8, 0)
    normals = sphere.corner_normals().reshape(-1, 3)
    points = sphere.vertices[sphere.faces].reshape(-1, 3)
    analytic = points / np.linalg.norm(points, axis=1, keepdims=True)
    assert np.degrees(np.arccos(np.clip((normals * analytic).sum(1), -1, 1))).max() < 5
    _, where = np.unique(np.round(points, 9), axis=0, return_inverse=True)  # one normal per point: no seams
    for point in np.unique(where)[:200]:
        np.testing.assert_allclose(
            normals[where == point], normals[where == point][:1].repeat((where == point).sum(), 0), atol=1e-6
        )
    cube = primitive("cube", [1.0, 1.0, 1.0], None, 2, 0)
    cube_normals = cube.corner_normals()
    cube_tri = cube.vertices[cube.faces]
    cube_face = np.cross(cube_tri[:, 1] - cube_tri[:, 0], cube_tri[:, 2] - cube_tri[:, 0])
    cube_face /= np.linalg.norm(cube_face, axis=1, keepdims=True)
    np.testing.assert_allclose(cube_normals, np.repeat(cube_face[:, None], 3, 1), atol=1e-6)  # edges stay sharp


def test_rays_that_leave_the_scene_see_the_sky_and_lights_cast_soft_shadows():
    open_scene = generate_scene(SceneRecipe(7, 8, 9, 10, 11, views=3, mesh_resolution=4, object_centred=True))
    views = render_scene(open_scene, 40, 48)
    background = views.images[~views.mask]
    assert len(background) > 0 and background.mean() > 20  # the sky, not black
    renderer = Renderer(open_scene)
    up = torch.tensor([[0.0, 0.0, 1.0]])
    down = torch.tensor([[0.0, 0.0, -1.0]])
    assert not torch.allclose(renderer.sky(up), renderer.sky(down))
    sun = torch.as_tensor(open_scene.lighting.sun_direction, dtype=torch.float32)[None]
    assert float(renderer.sky(sun).sum()) > float(renderer.sky(up).sum())  # the sun's disc is the brightest
    # Soft shadows sample the sun's disc: directions spread by about its angular radius.
    key = torch.arange(2000)
    position = torch.zeros(2000, 3)
    directions = renderer._lights(position, torch.tensor([[0.0, 0.0, 1.0]]).expand(2000, 3), key)[0][0]
    angles = torch.arccos((directions @ sun[0]).clamp(-1, 1))
    assert float(angles.max()) <= open_scene.lighting.sun_radius * 1.001 and float(angles.std()) > 0


def test_the_material_model_is_energy_plausible():
    """A white Lambert surface lit head-on reflects less than it receives; a mirror-like metal's highlight is
    brighter than a rough one's, and off the mirror direction darker."""
    scene = generate_scene(SceneRecipe(1, 2, 3, 4, 5, views=1, mesh_resolution=2))
    renderer = Renderer(scene, settings=RenderSettings(samples=1, shadows=False, ambient_occlusion=False))
    n = torch.tensor([[0.0, 0.0, 1.0]]).expand(2, 3)
    renderer.ambient_top = renderer.ambient_bottom = torch.zeros(3)
    renderer.point_positions = torch.zeros(0, 3)
    renderer.sun_direction = torch.tensor([0.0, 0.0, 1.0])
    renderer.sun_colour = torch.ones(3)
    renderer.material_metallic = torch.tensor([0.0, 1.0, 1.0])
    renderer.material_roughness = torch.tensor([0.9, 0.05, 0.6])
    albedo = torch.ones(2, 3)
    head_on = torch.tensor([[0.0, 0.0, -1.0]]).expand(2, 3)
    ones = torch.ones(2, dtype=torch.bool)
    key = torch.arange(2)
    occlusion = torch.ones(2, 1)
    diffuse = renderer._shade(torch.zeros(2, 3), n, n, head_on, albedo, torch.tensor([0, 0]), ones, key, occlusion)
    assert float(diffuse.max()) < 1.0  # 2 / pi of the incoming light
    metals = renderer._shade(torch.zeros(2, 3), n, n, head_on, albedo, torch.tensor([1, 2]), ones, key, occlusion)
    assert float(metals[0].mean()) > float(metals[1].mean())
    oblique = torch.nn.functional.normalize(torch.tensor([[0.6, 0.0, -0.8]]), dim=1).expand(2, 3)
    off = renderer._shade(torch.zeros(2, 3), n, n, oblique, albedo, torch.tensor([1, 2]), ones, key, occlusion)
    assert float(off[0].mean()) < float(metals[0].mean())


def test_intrinsics_put_the_principal_point_at_half_the_size_and_look_at_aims_there():
    """VGGT's convention (its camera encoding assumes it): pixel centres at integer coordinates, the principal point at
    (W / 2, H / 2), also for odd and non-square sizes; the look-at target projects exactly there."""
    from subspace_hub.data.cameras import CameraPath, look_at

    position, target = np.array([1.0, -2.0, 0.5]), np.array([0.2, 0.3, 0.1])
    path = CameraPath(rotations=look_at(position, target)[None], centres=position[None], fov=60.0)
    k = path.intrinsics(31, 42)[0]
    focal = 21.0 / np.tan(np.radians(30.0))
    np.testing.assert_allclose(k, [[focal, 0, 21.0], [0, focal, 15.5], [0, 0, 1]], rtol=1e-12)
    extrinsics = path.extrinsics()[0]

    def project(point: np.ndarray) -> np.ndarray:
        camera = extrinsics[:, :3] @ point + extrinsics[:, 3]
        return (k @ camera)[:2] / camera[2]

    np.testing.assert_allclose(project(target), [21.0, 15.5], atol=1e-9)
    above, right = project(target + [0, 0, 0.1]), project(target + 0.1 * np.cross(target - position, [0, 0, 1.0]))
    assert above[1] < 15.5 and abs(above[0] - 21.0) < 1e-9  # world up is image up (y down)
    assert right[0] > 21.0  # the camera's right is image right
