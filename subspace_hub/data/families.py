"""Attribute families: datasets in which exactly one attribute varies from scene to scene.

A dataset of family ``texture`` (``geometry``, ``camera``, ``lighting``) draws a new seed per scene for its
attribute and holds the seeds of the other attributes fixed across its scenes; datasets of the same family with
different indices re-draw those fixed seeds, so the family as a whole covers many geometries, textures, camera
paths and lights (seed 003 section 4.1). Seeds derive from (family seed, dataset index, scene index) only, so any
scene can be rebuilt alone: generation order and parallelism do not matter.

What each attribute covers:

- ``texture``: the texture pool and the materials (metallic, roughness);
- ``geometry``: the objects in the room (boxes, primitives, height fields); the room shell stays fixed so the
  dataset's cameras stay valid (objects keep clear of them);
- ``camera``: the camera path (positions, orientations, field of view);
- ``lighting``: ambient levels, the key light's direction, colour and strength, point lights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from subspace_hub.data.choices import FAMILIES
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
    camera_mode: str = "standard"
    mesh_resolution: int = 16
    texture_size: int = 128
    texture_pool: int = 16
    texture_folder: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"Unknown attribute family {self.family!r}; choose from {', '.join(FAMILIES)}.")
        if self.scenes < 1:
            raise ConfigError(f"A dataset needs at least one scene, got scenes={self.scenes}.")

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

    def scene(self, number: int) -> SceneRecipe:
        """Recipe of scene ``number`` (0-based): the family's attribute seed is drawn per scene."""
        if not 0 <= number < self.scenes:
            raise ConfigError(f"Scene {number} is outside 0..{self.scenes - 1}.")
        seeds = self.fixed_seeds()
        for key in ATTRIBUTE_SEEDS[self.family]:
            seeds[key] = derive_seed(self.seed, self.family, self.index, key, "scene", number)
        return SceneRecipe(
            **seeds,
            views=self.views,
            camera_mode=self.camera_mode,
            cameras_first=self.family == "geometry",
            mesh_resolution=self.mesh_resolution,
            texture_size=self.texture_size,
            texture_pool=self.texture_pool,
            texture_folder=self.texture_folder,
        )
