"""Attribute families: datasets in which exactly one attribute varies from scene to scene.

A dataset of family ``texture`` (``geometry``, ``camera``, ``lighting``) draws a new seed per scene for its
attribute and holds the seeds of the other attributes fixed across its scenes; datasets of the same family with
different indices re-draw those fixed seeds, so the family as a whole covers many geometries, textures, camera
paths and lights (seed 003 section 4.1). Seeds derive from (family seed, dataset index, scene index) only, so any
scene can be rebuilt alone: generation order and parallelism do not matter.

What each attribute covers, as the paper's datasets (shared/reference/methods.md A.2):

- ``texture``: the texture pool and the materials (metallic, roughness). Experiment 1 (the default) keeps the
  geometry bit-identical; experiment 2 (``geometry_jitter`` > 0) also turns and shrinks the objects slightly per
  scene;
- ``geometry``: the objects in the room (boxes, primitives, height fields); the room shell stays fixed so the
  dataset's cameras stay valid (objects keep clear of them). Dataset i uses the paper's geometry group i mod 9
  (box and primitive counts, see :mod:`.layout`);
- ``camera``: the camera path (control points, spline, field of view). Each dataset draws its own ranges within
  the camera-variation mode's (control-point distance within 0.7-2.0 D, look-at spread up to 0.35); the other
  families use MegaSynth's default 0.85-1.5 D looking at the centre;
- ``lighting``: ambient levels, the key light's direction, colour, strength and size, point lights, the sky.

Every family can be object-centred (the room shell left out, as the paper's human experiments).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from subspace_hub.data.choices import FAMILIES, GEOMETRY_GROUPS
from subspace_hub.data.scene import SceneRecipe
from subspace_hub.errors import ConfigError

SEED_KEYS: tuple[str, ...] = ("room_seed", "objects_seed", "texture_seed", "camera_seed", "lighting_seed")
"""The five seeds of a scene (:class:`~subspace_hub.data.scene.SceneRecipe`)."""
ATTRIBUTE_SEEDS: dict[str, tuple[str, ...]] = {
    "texture": ("texture_seed",),
    "geometry": ("objects_seed",),
    "camera": ("camera_seed",),
    "lighting": ("lighting_seed",),
}
"""Family -> the seeds its datasets draw anew for every scene (the attribute that varies)."""


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions, unlike ``hash``)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class DatasetRecipe:
    """One dataset of a family: its scenes' recipes follow from these fields alone."""

    family: str
    index: int
    seed: int
    scenes: int
    views: int = 24
    camera_mode: str = "orbit"
    mesh_resolution: int = 16
    texture_size: int = 128
    texture_pool: int = 16
    texture_folder: str | None = None
    layout: str = "attribute"
    object_centred: bool = False
    geometry_jitter: float = 0.0
    """Texture experiment 2 (texture datasets only): how much the objects change per scene."""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"Unknown attribute family {self.family!r}; choose from {', '.join(FAMILIES)}.")
        if self.scenes < 1:
            raise ConfigError(f"A dataset needs at least one scene, got scenes={self.scenes}.")
        if self.geometry_jitter and self.family != "texture":
            raise ConfigError(
                f"geometry_jitter is the texture family's experiment 2; a {self.family} dataset keeps its geometry "
                "as its family says. Leave it at 0."
            )

    @property
    def name(self) -> str:
        """The dataset's config name, e.g. ``texture-003``."""
        return f"{self.family}-{self.index:03d}"

    def fixed_seeds(self) -> dict[str, int]:
        """The dataset-level value of every seed (the varying ones are re-drawn per scene, see :meth:`scene`)."""
        return {key: derive_seed(self.seed, self.family, self.index, key) for key in SEED_KEYS}

    def shared_seeds(self) -> dict[str, int]:
        """The seeds every scene of this dataset shares: all but the family's own attribute seeds."""
        varying = ATTRIBUTE_SEEDS[self.family]
        return {key: value for key, value in self.fixed_seeds().items() if key not in varying}

    @property
    def geometry_group(self) -> int | None:
        """The paper's geometry group of this dataset (geometry datasets cycle through 9), else ``None``."""
        return self.index % GEOMETRY_GROUPS if self.family == "geometry" else None

    def camera_ranges(self) -> tuple[tuple[float, float], float]:
        """(control-point distance range in D, look-at spread): a camera dataset's own, drawn within the
        camera-variation mode's 0.7-2.0 and 0.35; MegaSynth's defaults (0.85-1.5, 0) for the other families."""
        if self.family != "camera":
            return (0.85, 1.5), 0.0
        rng = np.random.default_rng(derive_seed(self.seed, self.family, self.index, "camera-ranges"))
        low = float(rng.uniform(0.7, 1.2))
        high = float(rng.uniform(max(low + 0.3, 1.2), 2.0))
        return (low, high), float(rng.uniform(0.0, 0.35))

    def scene(self, number: int) -> SceneRecipe:
        """Recipe of scene ``number`` (0-based): the family's attribute seed is drawn per scene."""
        if not 0 <= number < self.scenes:
            raise ConfigError(f"Scene {number} is outside 0..{self.scenes - 1}.")
        seeds = self.fixed_seeds()
        for key in ATTRIBUTE_SEEDS[self.family]:
            seeds[key] = derive_seed(self.seed, self.family, self.index, key, "scene", number)
        distance, spread = self.camera_ranges()
        jitter_seed = derive_seed(self.seed, self.family, self.index, "jitter", number) if self.geometry_jitter else 0
        return SceneRecipe(
            **seeds,
            views=self.views,
            camera_mode=self.camera_mode,
            cameras_first=self.family == "geometry",
            mesh_resolution=self.mesh_resolution,
            texture_size=self.texture_size,
            texture_pool=self.texture_pool,
            texture_folder=self.texture_folder,
            layout=self.layout,
            object_centred=self.object_centred,
            geometry_group=self.geometry_group,
            geometry_jitter=self.geometry_jitter,
            jitter_seed=jitter_seed,
            camera_distance=distance,
            camera_target_sigma=spread,
        )
