"""4D synthetic data for LRM and LIM: object-centred scenes of the project's generator (textured primitives, GGX
materials, sun and sky) that turn, twist and sway over keyframes, rendered by the project's renderer from a fixed
ring of cameras. Every keyframe is a multi-view capture with exact depth, mask and canonical XYZ (where the seen
surface point was at keyframe 0).

One record is one sequence in the interchange format, keyframe after keyframe (``cameras`` views each, view id
``keyframe * cameras + camera``): ``images`` [K V, H, W, 3] uint8 composited on black (the LRM renders on black),
``depth`` [K V, H, W] z-depth, ``mask``, ``normals``, ``canonical_xyz`` [K V, H, W, 3], ``intrinsics``,
``extrinsics`` (camera-from-world, OpenCV axes), ``view_ids``, ``scene_id``, ``keyframes``, ``cameras``. Units are
normalised so every keyframe's object lies inside the LRM's scene box [-1, 1]^3 (at most 0.75 from the centre).
Everything follows from the seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

FILL = 0.6
"""Half-extent of a still object in normalised units (motion keeps it under 0.75); a travelling one is smaller by
half its path."""
DISTANCE = 2.4
"""Distance of the cameras from the object's centre, normalised units (outside the scene box)."""


@dataclass(frozen=True)
class SequenceSpec:
    """What :func:`load_sequences` generates."""

    sequences: int = 16
    keyframes: int = 6
    cameras: int = 6
    size: int = 32
    """Square image side, pixels."""
    turn: float = 0.3
    """Turn about the vertical axis per keyframe, radians (each sequence draws its direction and 0.5-1x of it)."""
    twist: float = 0.4
    """Largest extra turn between the object's bottom and top at the last keyframe, radians."""
    sway: float = 0.05
    """Amplitude of the sideways sway, normalised units."""
    travel: float = 0.0
    """Straight-line travel of the object per keyframe, normalised units, along a horizontal direction each sequence
    draws; the path is centred on the scene box and the object shrinks by half its length to stay inside the box.
    Travel is what linear triplane interpolation cannot express (it fades one place out and the other in)."""
    mesh_resolution: int = 6
    texture_size: int = 32
    samples: int = 1
    """Rays per pixel for colour (a square number)."""
    seed: int = 0


def _rig(cameras: int, centre: np.ndarray, radius: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """World-from-camera rotations [V, 3, 3] and centres [V, 3] of a ring about ``centre`` (world z up)."""
    from subspace_hub.data.cameras import look_at

    start = rng.uniform(0, 2 * np.pi)
    rotations, centres = [], []
    for v in range(cameras):
        azimuth = start + 2 * np.pi * v / cameras
        elevation = np.radians(rng.uniform(15, 35))
        offset = radius * np.array(
            [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
        )
        centres.append(centre + offset)
        rotations.append(look_at(centre + offset, centre))
    return np.stack(rotations), np.stack(centres)


def _animate(vertices: np.ndarray, centre: np.ndarray, extent: float, k: int, motion: dict[str, float]) -> np.ndarray:
    """Keyframe ``k``'s vertices: a turn about the vertical axis through ``centre`` that grows with height (twist),
    a sideways sway and the travel along ``motion["direction"]`` (``motion["unit"]``: scene units per normalised
    unit)."""
    relative = vertices - centre
    height = np.clip(relative[:, 2] / extent, -1.0, 1.0)
    fraction = k / max(motion["keyframes"] - 1, 1)
    angle = motion["turn"] * k + motion["twist"] * fraction * (height + 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    x = cos * relative[:, 0] - sin * relative[:, 1]
    y = sin * relative[:, 0] + cos * relative[:, 1]
    sway = motion["sway"] * np.array([np.sin(1.3 * k + motion["phase"]), np.cos(0.9 * k), 0.0])
    travel = motion["travel"] * (k - (motion["keyframes"] - 1) / 2) * motion["direction"]
    return centre + np.stack([x, y, relative[:, 2]], axis=1) + motion["unit"] * (sway + travel)


def _barycentric(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentric coordinates [N, 3] of points [N, 3] in triangles [N, 3, 3] (projected onto their planes)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denominator = np.where(np.abs(d00 * d11 - d01 * d01) < 1e-30, 1e-30, d00 * d11 - d01 * d01)
    v = (d11 * d20 - d01 * d21) / denominator
    w = (d00 * d21 - d01 * d20) / denominator
    return np.stack([1 - v - w, v, w], axis=1)


def sequence_record(spec: SequenceSpec, index: int) -> dict[str, Any]:
    """Sequence ``index`` of ``spec`` (see the module docstring)."""
    import torch

    from subspace_hub.data.render import Renderer, RenderSettings
    from subspace_hub.data.scene import SceneRecipe, generate_scene
    from subspace_hub.data.shapes import Mesh
    from subspace_hub.geometry import depth_to_world_points

    rng = np.random.default_rng([spec.seed, index])
    seeds = rng.integers(0, 2**31, size=5)
    recipe = SceneRecipe(
        *map(int, seeds),
        views=spec.cameras,
        camera_mode="orbit",
        mesh_resolution=spec.mesh_resolution,
        texture_size=spec.texture_size,
        texture_pool=4,
        layout="attribute",
        object_centred=True,
    )
    scene = generate_scene(recipe)
    low, high = scene.mesh.vertices.min(0), scene.mesh.vertices.max(0)
    centre, extent = (low + high) / 2, float((high - low).max() / 2)
    fill = FILL - spec.travel * (spec.keyframes - 1) / 2
    if fill < 0.2:
        raise ValueError(
            f"travel={spec.travel} over {spec.keyframes} keyframes leaves the object {fill:.2f} of the scene box; "
            "keep travel * (keyframes - 1) / 2 under 0.4."
        )
    scale = fill / extent  # scene units -> normalised units (about the centre)
    heading = np.random.default_rng([spec.seed, index, 1]).uniform(0, 2 * np.pi)  # leaves the other draws as they were
    motion = {
        "keyframes": spec.keyframes,
        "turn": spec.turn * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0]),
        "twist": spec.twist * rng.uniform(-1.0, 1.0),
        "sway": spec.sway,
        "phase": rng.uniform(0, 2 * np.pi),
        "travel": spec.travel,
        "direction": np.array([np.cos(heading), np.sin(heading), 0.0]),
        "unit": 1.0 / scale,
    }
    rest = _animate(scene.mesh.vertices, centre, extent, 0, motion)  # keyframe 0: the canonical frame
    rotations, centres = _rig(spec.cameras, centre, DISTANCE / scale, rng)
    fov = 2 * np.degrees(np.arctan(0.8 / DISTANCE))  # the central 0.8 of the box fills the frame
    cameras = dataclasses.replace(
        scene.cameras, rotations=rotations, centres=centres / scene.scale, fov=fov, controls=None
    )
    settings = RenderSettings(samples=spec.samples)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("images", "depth", "mask", "normals", "canonical_xyz")}
    intrinsics = extrinsics = None
    for k in range(spec.keyframes):
        vertices = _animate(scene.mesh.vertices, centre, extent, k, motion)
        mesh = Mesh(vertices, scene.mesh.faces, scene.mesh.uvs, scene.mesh.materials)
        views = Renderer(dataclasses.replace(scene, mesh=mesh, cameras=cameras), settings=settings).render(
            spec.size, spec.size
        )
        points = depth_to_world_points(
            torch.from_numpy(views.depth).double(),
            torch.from_numpy(views.extrinsics).double(),
            torch.from_numpy(views.intrinsics).double(),
        ).numpy()
        canonical = np.zeros_like(points)
        hit = views.triangles >= 0
        faces = scene.mesh.faces[views.triangles[hit]]
        weights = _barycentric(points[hit], vertices[faces])
        canonical[hit] = (weights[..., None] * rest[faces]).sum(1)
        mask = views.mask
        out["images"].append((views.images * mask[..., None]).astype(np.uint8))
        out["depth"].append((views.depth * scale * mask).astype(np.float32))
        out["mask"].append(mask)
        out["normals"].append(views.normals.astype(np.float32))
        out["canonical_xyz"].append((((canonical - centre) * scale) * mask[..., None]).astype(np.float32))
        intrinsics = views.intrinsics.astype(np.float32)
        rotation = views.extrinsics[:, :, :3].astype(np.float64)
        translation = scale * (rotation @ centre + views.extrinsics[:, :, 3])
        extrinsics = np.concatenate([rotation, translation[..., None]], axis=-1).astype(np.float32)
    count = spec.keyframes * spec.cameras
    return {
        "scene_id": f"sequence-{index:05d}",
        **{key: np.concatenate(value) for key, value in out.items()},
        "intrinsics": np.tile(intrinsics, (spec.keyframes, 1, 1)),
        "extrinsics": np.tile(extrinsics, (spec.keyframes, 1, 1)),
        "view_ids": np.arange(count, dtype=np.int64),
        "keyframes": spec.keyframes,
        "cameras": spec.cameras,
    }


def keyframe_records(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A sequence record split into one multi-view record per keyframe (``scene_id`` ``<sequence>-k<k>``, view ids
    0 .. cameras - 1): what the LRM trains on, since its views must show one moment."""
    cameras = int(record["cameras"])
    out = []
    for k in range(int(record["keyframes"])):
        views = slice(k * cameras, (k + 1) * cameras)
        row = {key: value[views] for key, value in record.items() if isinstance(value, np.ndarray)}
        row.update(scene_id=f"{record['scene_id']}-k{k}", view_ids=np.arange(cameras), keyframes=1, cameras=cameras)
        out.append(row)
    return out


def features(size: int) -> Any:
    """The ``datasets`` schema of sequence and keyframe records of ``size`` x ``size`` images: fixed-shape arrays,
    so a record reads back as numpy arrays in one step (untyped nested lists are converted element by element, which
    made reading a batch take longer than training on it)."""
    import datasets

    return datasets.Features(
        {
            "scene_id": datasets.Value("string"),
            "images": datasets.Array4D((None, size, size, 3), "uint8"),
            "depth": datasets.Array3D((None, size, size), "float32"),
            "mask": datasets.Array3D((None, size, size), "bool"),
            "normals": datasets.Array4D((None, size, size, 3), "float32"),
            "canonical_xyz": datasets.Array4D((None, size, size, 3), "float32"),
            "intrinsics": datasets.Array3D((None, 3, 3), "float32"),
            "extrinsics": datasets.Array3D((None, 3, 4), "float32"),
            "view_ids": datasets.Sequence(datasets.Value("int64")),
            "keyframes": datasets.Value("int64"),
            "cameras": datasets.Value("int64"),
        }
    )


def as_dataset(rows: list[dict[str, Any]], size: int) -> Any:
    """Sequence or keyframe records (of ``size`` x ``size`` images) as a ``datasets.Dataset`` with :func:`features`."""
    import datasets

    return datasets.Dataset.from_list(rows, features=features(size))


def load_sequences(
    *,
    sequences: int = 16,
    keyframes: int = 6,
    cameras: int = 6,
    size: int = 32,
    travel: float = 0.0,
    seed: int = 0,
    test_fraction: float = 0.25,
    per: str = "sequence",
) -> Any:
    """``DatasetSpec.load`` of ``lim-synthetic-4d``: a ``datasets.DatasetDict`` with ``train`` and ``test`` (the
    last ``test_fraction`` of the sequences: other objects, motions and cameras than any training sequence); a
    record per ``sequence`` (LIM) or per ``keyframe`` (the LRM). ``travel``: see :class:`SequenceSpec`."""
    import datasets

    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    if keyframes < 3:
        raise ValueError(f"LIM needs sequences of at least 3 keyframes, got keyframes={keyframes}.")
    if per not in ("sequence", "keyframe"):
        raise ValueError(f"per must be 'sequence' or 'keyframe', got {per!r}.")
    spec = SequenceSpec(sequences=sequences, keyframes=keyframes, cameras=cameras, size=size, travel=travel, seed=seed)
    held_out = int(round(test_fraction * sequences))
    rows = [sequence_record(spec, i) for i in range(sequences)]
    if per == "keyframe":
        held_out *= keyframes
        sequences *= keyframes
        rows = [row for record in rows for row in keyframe_records(record)]
    splits = {"train": rows[: sequences - held_out], "test": rows[sequences - held_out :]}
    return datasets.DatasetDict({name: as_dataset(part, size) for name, part in splits.items() if part})
