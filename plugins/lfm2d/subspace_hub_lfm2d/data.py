"""Synthetic landmark data for 2D-LFM: procedural categories (articulated skeletons and rigid object templates)
with per-sample shape deformation, random views, orthographic projection, 2D noise and occlusion. The 3D shape is
kept for evaluation only (training reads ``landmarks2d`` and ``visible``).

A sample (one view of one shape) holds ``scene_id``, ``category`` (int), ``landmarks2d`` [N, 2] (centred, unit RMS
radius over the visible landmarks), ``visible`` [N] bool, ``valid`` [N] bool (real slots; the rest is padding to
``max_landmarks``), ``landmarks`` [N, 3] (the 3D shape in the camera frame, centred and scaled as its 2D view) and
``adjacency`` [N, N] (the category's skeleton, for the graph-Laplacian Phi). Everything follows from the seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# (name, rest positions [N, 3], edges, articulated): small, readable templates
_HUMAN = np.array(
    [
        [0, 0, 0],
        [0.12, 0, 0],
        [0.12, -0.45, 0],
        [0.12, -0.9, 0],
        [-0.12, 0, 0],
        [-0.12, -0.45, 0],
        [-0.12, -0.9, 0],
        [0, 0.25, 0],
        [0, 0.5, 0],
        [0, 0.62, 0.05],
        [0, 0.75, 0],
        [-0.2, 0.5, 0],
        [-0.45, 0.5, 0],
        [-0.7, 0.5, 0],
        [0.2, 0.5, 0],
        [0.45, 0.5, 0],
        [0.7, 0.5, 0],
    ],
    dtype=np.float64,
)
_HUMAN_EDGES = [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12),
                (12, 13), (8, 14), (14, 15), (15, 16)]  # fmt: skip
_QUADRUPED = np.array(
    [
        [0, 0, 0],
        [0.4, 0, 0],
        [0.8, 0, 0],
        [1.0, 0.15, 0],
        [1.15, 0.2, 0],
        [0, -0.1, 0.15],
        [0, -0.5, 0.15],
        [0, -0.1, -0.15],
        [0, -0.5, -0.15],
        [0.8, -0.1, 0.15],
        [0.8, -0.5, 0.15],
        [0.8, -0.1, -0.15],
        [0.8, -0.5, -0.15],
        [-0.3, 0.1, 0],
    ],
    dtype=np.float64,
)
_QUADRUPED_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (0, 7), (7, 8), (2, 9), (9, 10), (2, 11),
                    (11, 12), (0, 13)]  # fmt: skip
_CHAIR = np.array(
    [
        [0, 0, 0],
        [0.5, 0, 0],
        [0.5, 0, 0.5],
        [0, 0, 0.5],
        [0, -0.5, 0],
        [0.5, -0.5, 0],
        [0.5, -0.5, 0.5],
        [0, -0.5, 0.5],
        [0, 0.6, 0.5],
        [0.5, 0.6, 0.5],
    ],
    dtype=np.float64,
)
_CHAIR_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 5), (2, 6), (3, 7), (3, 8), (2, 9), (8, 9)]
_BOTTLE = np.array(
    [[np.cos(a) * r, y, np.sin(a) * r] for y, r in ((-0.6, 0.2), (0.2, 0.2), (0.45, 0.08)) for a in (0, 2.1, 4.2)]
    + [[0, 0.6, 0]],
    dtype=np.float64,
)
_BOTTLE_EDGES = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (6, 7), (7, 8), (8, 6), (0, 3), (1, 4), (2, 5),
                 (3, 6), (4, 7), (5, 8), (6, 9), (7, 9), (8, 9)]  # fmt: skip

CATEGORIES: dict[str, tuple[np.ndarray, list[tuple[int, int]], bool]] = {
    "human": (_HUMAN, _HUMAN_EDGES, True),
    "quadruped": (_QUADRUPED, _QUADRUPED_EDGES, True),
    "chair": (_CHAIR, _CHAIR_EDGES, False),
    "bottle": (_BOTTLE, _BOTTLE_EDGES, False),
}
"""name -> (rest shape [N, 3], skeleton edges, articulated)."""


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3D rotation (QR of a Gaussian matrix with the signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def shape_modes(category: str, modes: int) -> np.ndarray:
    """The ``modes`` fixed deformation modes of ``category`` (the same for every sample and seed): for an articulated
    category [modes, bones, 3] axis-angle vectors (radians per unit coefficient) of each bone's rotation about its
    parent joint; for a rigid one [modes, N, 3] displacement fields of the landmarks (in the template's units)."""
    rest, edges, articulated = CATEGORIES[category]
    rng = np.random.default_rng([zlib.crc32(category.encode()), modes])
    return rng.standard_normal((modes, len(edges) if articulated else len(rest), 3))


def deform(category: str, rng: np.random.Generator, amount: float, modes: int = 3) -> np.ndarray:
    """One instance of ``category``: a low-rank deformation (coefficients drawn uniformly in [-1, 1] for the
    category's ``modes`` fixed modes, :func:`shape_modes`: the bones of articulated categories turn by ``amount``
    times the combined axis-angle, rigid templates move by ``0.3 amount`` times the combined displacement field),
    then a small anisotropic scaling (+-``amount / 10`` per axis) and per-landmark jitter (``0.02 amount``).

    Low-rank because that is what a single view can identify: with every bone turning independently (this
    generator's first version), even a lifter trained on the 3D shapes did no better than the category's mean
    shape (BENCHMARKS.md, 2D-LFM), and non-rigid structure from motion assumes shapes of a few degrees of freedom."""
    rest, edges, articulated = CATEGORIES[category]
    coefficients = rng.uniform(-1, 1, size=modes)
    combined = np.tensordot(coefficients, shape_modes(category, modes), axes=1)  # [bones or N, 3]
    shape = rest * rng.uniform(1 - amount / 10, 1 + amount / 10, size=3)
    if articulated:
        children: dict[int, list[int]] = {}
        for parent, child in edges:
            children.setdefault(parent, []).append(child)

        def subtree(joint: int) -> list[int]:
            out = [joint]
            for child in children.get(joint, []):
                out += subtree(child)
            return out

        for (parent, child), axis_angle in zip(edges, amount * combined, strict=True):
            angle = float(np.linalg.norm(axis_angle))
            if angle > 0:
                moved = subtree(child)
                rotation = _rodrigues(axis_angle, angle)
                shape[moved] = (shape[moved] - shape[parent]) @ rotation.T + shape[parent]
    else:
        shape = shape + 0.3 * amount * combined
    return shape + rng.normal(0, 0.02 * amount, size=shape.shape)


def adjacency(category: str, slots: int) -> np.ndarray:
    """[slots, slots] 0/1 skeleton of ``category`` (padding slots unconnected)."""
    rest, edges, _ = CATEGORIES[category]
    matrix = np.zeros((slots, slots), dtype=np.float32)
    for a, b in edges:
        matrix[a, b] = matrix[b, a] = 1
    return matrix


@dataclass(frozen=True)
class LandmarkSpec:
    """What :func:`generate_samples` draws."""

    samples_per_category: int = 256
    categories: tuple[str, ...] = tuple(CATEGORIES)
    max_landmarks: int = 32
    deformation: float = 0.3
    """Amount of shape variation within a category (:func:`deform`)."""
    modes: int = 3
    """Degrees of freedom of that variation: the number of the category's deformation modes."""
    noise: float = 0.01
    """Standard deviation of the 2D noise, in units of the view's RMS radius."""
    occlusion: float = 0.1
    """Chance that a landmark is hidden."""
    seed: int = 0


def generate_samples(spec: LandmarkSpec) -> Iterator[dict[str, object]]:
    """The samples of ``spec``, category by category (deterministic in ``spec.seed``)."""
    if spec.modes < 0 or not spec.deformation >= 0:
        raise ValueError(f"modes and deformation must be >= 0, got {spec.modes} and {spec.deformation}.")
    for category_index, name in enumerate(spec.categories):
        if name not in CATEGORIES:
            raise ValueError(f"Unknown landmark category {name!r}; choose from {', '.join(CATEGORIES)}.")
        n = len(CATEGORIES[name][0])
        if n > spec.max_landmarks:
            raise ValueError(f"Category {name!r} has {n} landmarks, more than max_landmarks={spec.max_landmarks}.")
        rng = np.random.default_rng([spec.seed, category_index])
        graph = adjacency(name, spec.max_landmarks)
        for i in range(spec.samples_per_category):
            shape = deform(name, rng, spec.deformation, spec.modes)
            camera = shape @ random_rotation(rng).T  # camera frame: x, y on the image, z towards the scene
            visible = rng.random(n) >= spec.occlusion
            if visible.sum() < 3:
                visible[rng.choice(n, 3, replace=False)] = True
            centre = camera[visible, :2].mean(0)
            radius = np.sqrt(((camera[visible, :2] - centre) ** 2).sum(1).mean())
            camera = (camera - np.array([*centre, camera[visible, 2].mean()])) / radius
            points2d = camera[:, :2] + rng.normal(0, spec.noise, size=(n, 2))
            pad = spec.max_landmarks - n
            yield {
                "scene_id": f"{name}-{i:05d}",
                "category": category_index,
                "landmarks2d": np.pad(points2d, ((0, pad), (0, 0))).astype(np.float32),
                "visible": np.pad(visible, (0, pad)),
                "valid": np.pad(np.ones(n, dtype=bool), (0, pad)),
                "landmarks": np.pad(camera, ((0, pad), (0, 0))).astype(np.float32),
                "adjacency": graph,
            }


def category_mean_shapes(samples: list[dict[str, object]]) -> dict[int, np.ndarray]:
    """The trivial baseline of the acceptance: per category, the mean of the training samples' 3D shapes after
    aligning each to the first by a similarity (a fixed prediction whatever the 2D input)."""
    import torch

    from subspace_hub.metrics.alignment import umeyama

    out: dict[int, np.ndarray] = {}
    by_category: dict[int, list[dict[str, object]]] = {}
    for sample in samples:
        by_category.setdefault(int(sample["category"]), []).append(sample)
    for category, group in by_category.items():
        valid = np.asarray(group[0]["valid"], dtype=bool)
        reference = np.asarray(group[0]["landmarks"])[valid]
        aligned = []
        for sample in group:
            points = np.asarray(sample["landmarks"])[valid]
            sim = umeyama(torch.from_numpy(points).double(), torch.from_numpy(reference).double())
            aligned.append(sim.apply(torch.from_numpy(points).double()).numpy())
        mean = np.zeros_like(np.asarray(group[0]["landmarks"]), dtype=np.float64)
        mean[valid] = np.mean(aligned, axis=0)
        out[category] = mean
    return out


def load_landmarks(
    *,
    samples_per_category: int = 256,
    categories: tuple[str, ...] | list[str] | None = None,
    max_landmarks: int = 32,
    deformation: float = 0.3,
    modes: int = 3,
    noise: float = 0.01,
    occlusion: float = 0.1,
    seed: int = 0,
    test_fraction: float = 0.25,
) -> object:
    """``DatasetSpec.load`` of ``lfm2d-synthetic``: a ``datasets.DatasetDict`` with ``train`` and ``test`` (the last
    ``test_fraction`` of each category's samples: other shapes and views than any training sample)."""
    import datasets

    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    spec = LandmarkSpec(
        samples_per_category=samples_per_category,
        categories=tuple(categories or CATEGORIES),
        max_landmarks=max_landmarks,
        deformation=deformation,
        modes=modes,
        noise=noise,
        occlusion=occlusion,
        seed=seed,
    )
    held_out = int(round(test_fraction * samples_per_category))
    splits: dict[str, list[dict[str, object]]] = {"train": [], "test": []}
    for sample in generate_samples(spec):
        index = int(str(sample["scene_id"]).rsplit("-", 1)[1])
        splits["test" if index >= samples_per_category - held_out else "train"].append(sample)
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items() if rows})
