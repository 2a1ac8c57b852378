"""Triangle meshes of MegaSynth's primitives: ellipsoids, cubes and cylinders with a height field per face
(shared/reference/methods.md D.3), and plain boxes and quads for the room.

Every primitive is a cube whose six faces are n x n vertex grids mapped onto the shape; each face carries its own
height field, displaced along the surface normal. Height fields have a zero border, so faces meet without gaps.
A :class:`Mesh` holds world-space vertices, triangles, per-corner texture coordinates and a material per
triangle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# The six cube faces: (normal axis, sign, u axis, v axis), u x v pointing outwards.
_FACES = ((0, 1, 1, 2), (0, -1, 2, 1), (1, 1, 2, 0), (1, -1, 0, 2), (2, 1, 0, 1), (2, -1, 1, 0))
KINDS: tuple[str, ...] = ("ellipsoid", "cube", "cylinder")


@dataclass
class Mesh:
    """Triangles with texture coordinates and materials."""

    vertices: np.ndarray
    """[V, 3] float64 positions."""
    faces: np.ndarray
    """[F, 3] int64 vertex indices, counter-clockwise seen from outside."""
    uvs: np.ndarray
    """[F, 3, 2] float32 texture coordinates of each triangle corner (repeating: the texture tiles)."""
    materials: np.ndarray
    """[F] int32 material index of each triangle."""

    @staticmethod
    def concatenate(meshes: Sequence[Mesh]) -> Mesh:
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return Mesh(
            vertices=np.concatenate([m.vertices for m in meshes]),
            faces=np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)]),
            uvs=np.concatenate([m.uvs for m in meshes]),
            materials=np.concatenate([m.materials for m in meshes]),
        )

    def corner_normals(self, smoothing_angle: float = 40.0) -> np.ndarray:
        """[F, 3, 3] float32 per-corner shading normals (see :func:`corner_normals`)."""
        import torch

        return corner_normals(torch.as_tensor(self.vertices[self.faces]), smoothing_angle).numpy()

    def transformed(self, matrix: np.ndarray, translation: np.ndarray) -> Mesh:
        """``x -> matrix @ x + translation``; triangles keep facing outwards (orientation flips with det < 0)."""
        faces = self.faces if np.linalg.det(matrix) > 0 else self.faces[:, ::-1]
        uvs = self.uvs if np.linalg.det(matrix) > 0 else self.uvs[:, ::-1]
        return Mesh(self.vertices @ matrix.T + translation, faces, uvs, self.materials)


def corner_normals(triangles: Any, smoothing_angle: float = 40.0) -> Any:
    """Unit normals at each corner of ``triangles`` (a torch tensor [F, 3, 3], on any device) for smooth shading:
    the mean normal of all triangles meeting at that point, weighted by their angle there (so it does not depend
    on how a surface is split into triangles), welded by position (so the seams between a primitive's face grids
    vanish); or the triangle's own normal where that mean is more than ``smoothing_angle`` degrees away from it,
    so creases such as a cube's edges (45 degrees from the mean) stay sharp. Returns float32 [F, 3, 3] on the
    same device. The exact (flat) triangle normals remain what the renderer exports."""
    import torch

    tri = triangles.double()
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    unit = cross / cross.norm(dim=1, keepdim=True).clamp(min=1e-30)
    after, before = torch.roll(tri, -1, dims=1) - tri, torch.roll(tri, 1, dims=1) - tri
    cosine = (after * before).sum(-1) / (after.norm(dim=-1) * before.norm(dim=-1)).clamp(min=1e-30)
    angle = torch.arccos(cosine.clamp(-1, 1)).reshape(-1)  # each triangle's angle at each of its corners
    corners = tri.reshape(-1, 3)
    # Weld by position: one int64 key per corner from its coordinates on a grid of 1e-6 of the extent.
    low = corners.min(0).values
    step = 1e-6 * max(float((corners.max(0).values - low).max()), 1e-12)
    grid = ((corners - low) / step).round().long()
    _, point = torch.unique((grid[:, 0] * 1_000_003 + grid[:, 1]) * 1_000_003 + grid[:, 2], return_inverse=True)
    own = unit.repeat_interleave(3, dim=0)
    mean = torch.zeros(int(point.max()) + 1 if len(point) else 0, 3, dtype=tri.dtype, device=tri.device)
    mean.index_add_(0, point, own * angle[:, None])
    mean = mean[point]
    mean = mean / mean.norm(dim=1, keepdim=True).clamp(min=1e-30)
    crease = (mean * own).sum(1) < math.cos(math.radians(smoothing_angle))
    mean = torch.where(crease[:, None], own, mean)
    return mean.reshape(-1, 3, 3).float()


@lru_cache(maxsize=8)
def _height_field_map(size: int) -> np.ndarray:
    """[size, 5] matrix M with field = M @ grid @ M.T: the cubic upsampling of a 5 x 5 grid to 5/6 of ``size``
    followed by a linear resize to ``size`` (both linear in the grid, so computed once from unit vectors)."""
    from scipy.ndimage import zoom

    inner = round(size * 5 / 6)
    columns = []
    for k in range(5):
        unit = np.zeros(5)
        unit[k] = 1.0
        up = zoom(unit, inner / 5, order=3)
        columns.append(zoom(up, size / len(up), order=1))
    return np.stack(columns, axis=1)


def height_field(
    rng: np.random.Generator, amplitude: float, size: int = 36, flat_probability: float = 0.1
) -> np.ndarray:
    """MegaSynth's per-face height field [size, size]: a 5 x 5 grid of U(-h, h) with a zero border, upsampled
    cubically to 5/6 of ``size`` and resized to ``size``; flat with probability ``flat_probability``."""
    if rng.random() < flat_probability or amplitude <= 0:
        return np.zeros((size, size))
    grid = np.zeros((5, 5))
    grid[1:-1, 1:-1] = rng.uniform(-amplitude, amplitude, (3, 3))
    m = _height_field_map(size)
    field = m @ grid @ m.T
    field[0, :] = field[-1, :] = field[:, 0] = field[:, -1] = 0.0  # exact zero border: faces stay closed
    return field


def _sample(field: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a height field at s, t in [0, 1]."""
    size = field.shape[0] - 1
    x, y = s * size, t * size
    x0, y0 = np.minimum(np.floor(x).astype(int), size - 1), np.minimum(np.floor(y).astype(int), size - 1)
    fx, fy = x - x0, y - y0
    return (
        field[y0, x0] * (1 - fx) * (1 - fy)
        + field[y0, x0 + 1] * fx * (1 - fy)
        + field[y0 + 1, x0] * (1 - fx) * fy
        + field[y0 + 1, x0 + 1] * fx * fy
    )


def _grid_faces(n: int, offset: int) -> np.ndarray:
    idx = np.arange(n * n).reshape(n, n) + offset
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])


def primitive(
    kind: str,
    semi_axes: Sequence[float],
    fields: Sequence[np.ndarray] | None,
    resolution: int,
    material: int,
    uv_scale: float = 1.0,
) -> Mesh:
    """A primitive centred at the origin: ``kind`` in :data:`KINDS`, semi-axes (a, b, c), one height field per
    face (or ``None`` for smooth faces), ``resolution`` cells per face side."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n = resolution + 1
    axes = np.asarray(semi_axes, dtype=np.float64)
    coords = np.linspace(0.0, 1.0, n)
    s, t = np.meshgrid(coords, coords, indexing="xy")
    vertices, faces, uvs = [], [], []
    for f, (normal_axis, sign, u_axis, v_axis) in enumerate(_FACES):
        cube = np.zeros((n, n, 3))
        cube[..., normal_axis] = sign
        cube[..., u_axis] = 2 * s - 1
        cube[..., v_axis] = 2 * t - 1
        if kind == "cube":
            point, normal = cube * axes, np.broadcast_to(np.eye(3)[normal_axis] * sign, cube.shape)
        elif kind == "ellipsoid":
            unit = cube / np.linalg.norm(cube, axis=-1, keepdims=True)
            point = unit * axes
            normal = point / axes**2
        else:  # cylinder along z: side faces wrap around, the two z faces are discs
            if normal_axis == 2:
                x, y = cube[..., 0], cube[..., 1]
                disc = np.stack([x * np.sqrt(1 - y**2 / 2), y * np.sqrt(1 - x**2 / 2), cube[..., 2]], -1)
                point, normal = disc * axes, np.broadcast_to(np.array([0.0, 0.0, sign]), cube.shape)
            else:
                radial = cube[..., :2] / np.linalg.norm(cube[..., :2], axis=-1, keepdims=True)
                point = np.concatenate([radial, cube[..., 2:]], -1) * axes
                normal = np.concatenate([radial / axes[:2], np.zeros_like(cube[..., 2:])], -1)
        normal = normal / np.linalg.norm(normal, axis=-1, keepdims=True)
        if fields is not None:
            point = point + normal * _sample(fields[f], s, t)[..., None]
        local = _grid_faces(n, 0)
        vertices.append(point.reshape(-1, 3))
        faces.append(local + f * n * n)
        uvs.append(np.stack([s.ravel(), t.ravel()], -1)[local] * uv_scale)
    triangles = np.concatenate(faces)
    return Mesh(
        np.concatenate(vertices),
        triangles,
        np.concatenate(uvs).astype(np.float32),
        np.full(len(triangles), material, np.int32),
    )


def box(
    size: Sequence[float],
    centre: Sequence[float],
    material: int,
    *,
    resolution: int = 1,
    uv_density: float = 1.0,
    inward: bool = False,
) -> Mesh:
    """An axis-aligned box (``inward`` flips it to be seen from inside, as the room), ``uv_density`` texture
    repeats per unit length."""
    half = np.asarray(size, dtype=np.float64) / 2
    mesh = primitive("cube", half, None, resolution, material)
    # Texture coordinates in world units so textures keep their scale on long walls.
    face_sizes = [(half[u], half[v]) for _, _, u, v in _FACES]
    per_face = len(mesh.faces) // 6
    uvs = mesh.uvs.copy()
    for f, (hu, hv) in enumerate(face_sizes):
        uvs[f * per_face : (f + 1) * per_face, :, 0] *= 2 * hu * uv_density
        uvs[f * per_face : (f + 1) * per_face, :, 1] *= 2 * hv * uv_density
    mesh = Mesh(mesh.vertices + np.asarray(centre, dtype=np.float64), mesh.faces, uvs, mesh.materials)
    if inward:
        mesh = Mesh(mesh.vertices, mesh.faces[:, ::-1].copy(), mesh.uvs[:, ::-1].copy(), mesh.materials)
    return mesh


def quad(
    corner: Sequence[float],
    edge_u: Sequence[float],
    edge_v: Sequence[float],
    material: int,
    *,
    resolution: int = 1,
    uv_density: float = 1.0,
) -> Mesh:
    """A planar rectangle ``corner + s edge_u + t edge_v`` (s, t in [0, 1]), facing along ``edge_u x edge_v``."""
    n = resolution + 1
    coords = np.linspace(0.0, 1.0, n)
    s, t = np.meshgrid(coords, coords, indexing="xy")
    eu, ev = np.asarray(edge_u, dtype=np.float64), np.asarray(edge_v, dtype=np.float64)
    points = np.asarray(corner, dtype=np.float64) + s[..., None] * eu + t[..., None] * ev
    faces = _grid_faces(n, 0)
    uv = np.stack([s.ravel() * np.linalg.norm(eu), t.ravel() * np.linalg.norm(ev)], -1) * uv_density
    return Mesh(points.reshape(-1, 3), faces, uv[faces].astype(np.float32), np.full(len(faces), material, np.int32))
