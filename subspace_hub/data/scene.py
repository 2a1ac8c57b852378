"""A synthetic scene from five seeds: room shell, objects, textures, cameras and lighting.

Each attribute has its own seed, so a dataset can vary exactly one of them (see :mod:`.families`). Geometry is
built in MegaSynth's room units and the finished scene is scaled so its largest dimension is U(0.3, 0.45) (the
released scenes' normalisation), which is the unit of depth, camera positions and the micro-baseline limits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from subspace_hub.data.cameras import CameraPath, sample_path
from subspace_hub.data.choices import CAMERA_MODES, GEOMETRY_GROUPS, LAYOUTS
from subspace_hub.data.layout import Layout, layout_mesh, primitive_count, sample_layout, sample_shell
from subspace_hub.data.lights import Lighting, Materials, sample_lighting, sample_materials
from subspace_hub.data.shapes import Mesh
from subspace_hub.data.textures import texture_pool
from subspace_hub.errors import ConfigError

MAX_MATERIAL_SLOTS = 512  # materials are drawn for this many slots so a fixed texture seed styles any geometry alike


@dataclass(frozen=True)
class SceneRecipe:
    """Everything that determines a scene; equal recipes give identical scenes."""

    room_seed: int
    objects_seed: int
    texture_seed: int
    camera_seed: int
    lighting_seed: int
    views: int = 24
    camera_mode: str = "standard"
    cameras_first: bool = False
    """Place cameras before objects (objects then keep clear of them): a geometry dataset's cameras stay put."""
    mesh_resolution: int = 16
    """Cells per face side of every primitive (MegaSynth's height fields are 36 x 36)."""
    texture_size: int = 128
    texture_pool: int = 16
    texture_folder: str | None = None
    layout: str = "attribute"
    """``attribute`` (the paper's attribute scenes) or ``megasynth`` (see :mod:`.layout`)."""
    object_centred: bool = False
    """Leave the room shell out: the objects alone, seen against the sky, from cameras about them."""
    geometry_group: int | None = None
    """One of the paper's 9 geometry groups (box and primitive counts), or ``None`` for the style's defaults."""
    geometry_jitter: float = 0.0
    """The paper's texture experiment 2: objects turned and shrunk slightly per scene (0: experiment 1)."""
    jitter_seed: int = 0
    camera_distance: tuple[float, float] = (0.85, 1.5)
    """Range of the orbit's control-point distances, in units of D (see :func:`.cameras.orbit`)."""
    camera_target_sigma: float = 0.0
    """Spread of the orbit's look-at target, in units of D / sqrt(3)."""

    def __post_init__(self) -> None:
        if self.camera_mode not in CAMERA_MODES:
            raise ConfigError(f"Unknown camera mode {self.camera_mode!r}; choose from {', '.join(CAMERA_MODES)}.")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"Unknown layout {self.layout!r}; choose from {', '.join(LAYOUTS)}.")
        if self.geometry_group is not None and not 0 <= self.geometry_group < GEOMETRY_GROUPS:
            raise ConfigError(f"geometry_group must be in 0..{GEOMETRY_GROUPS - 1}, got {self.geometry_group}.")
        if not 0 <= self.geometry_jitter <= 0.5:
            raise ConfigError(f"geometry_jitter must be in [0, 0.5], got {self.geometry_jitter}.")
        low, high = self.camera_distance
        if not 0 < low <= high:
            raise ConfigError(f"camera_distance must be 0 < low <= high, got {self.camera_distance}.")
        if self.views < 1:
            raise ConfigError(f"views must be at least 1, got {self.views}.")
        if not 1 <= self.mesh_resolution <= 64:
            raise ConfigError(f"mesh_resolution must be in 1..64, got {self.mesh_resolution}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Scene:
    """Geometry in scene units, appearance, lights and cameras."""

    recipe: SceneRecipe
    mesh: Mesh
    textures: np.ndarray
    """[P, T, T, 3] float32 texture pool."""
    materials: Materials
    lighting: Lighting
    cameras: CameraPath
    scale: float
    """Scene units per room unit."""
    layout: Layout
    stats: dict[str, Any] = field(default_factory=dict)

    def extrinsics(self) -> np.ndarray:
        return self.cameras.extrinsics(self.scale)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def generate_scene(recipe: SceneRecipe) -> Scene:
    """Build the scene of ``recipe`` (deterministic)."""
    shell = sample_shell(_rng(recipe.room_seed, 0), recipe.layout)
    room = shell.size
    scale = float(_rng(recipe.room_seed, 1).uniform(0.3, 0.45) / room.max())
    clearance = 0.05 * room.max()
    camera_rng = _rng(recipe.camera_seed, 2)
    orbit = {"distance": recipe.camera_distance, "target_sigma": recipe.camera_target_sigma}
    layout_options = {"style": recipe.layout, "group": recipe.geometry_group}

    def inside_room(p: np.ndarray) -> bool:
        return bool(np.all(p > 0.02 * room) and np.all(p < 0.98 * room))

    if recipe.object_centred:
        # MegaSynth's D for an object-centred scene: sqrt(3) x the half-size of the space the objects fill.
        orbit.update(unit=float(np.sqrt(3) * room.max() / 2), inside=False)
    if recipe.cameras_first:
        cameras = sample_path(
            recipe.camera_mode, camera_rng, room, recipe.views, inside_room, (room / 2)[None], **orbit
        )
        layout = sample_layout(
            shell, _rng(recipe.objects_seed, 3), keep_clear=cameras.centres, clearance=clearance, **layout_options
        )
    else:
        layout = sample_layout(shell, _rng(recipe.objects_seed, 3), **layout_options)
        boxes = layout.boxes

        def clear(p: np.ndarray) -> bool:
            return (recipe.object_centred or inside_room(p)) and all(
                not np.all(np.abs(p - b.centre) < b.size / 2 + clearance) for b in boxes
            )

        centres = np.array([b.centre for b in boxes if b.primitives]) if boxes else np.zeros((0, 3))
        cameras = sample_path(recipe.camera_mode, camera_rng, room, recipe.views, clear, centres, **orbit)
    mesh, slots = layout_mesh(
        layout,
        _rng(recipe.objects_seed, 4),
        recipe.mesh_resolution,
        shell=not recipe.object_centred or not layout.boxes,  # an empty object-centred scene keeps its room
        jitter=recipe.geometry_jitter,
        jitter_rng=_rng(recipe.jitter_seed, 7),
    )
    if slots > MAX_MATERIAL_SLOTS:
        raise ConfigError(f"The layout needs {slots} material slots, more than {MAX_MATERIAL_SLOTS}.")
    mesh = Mesh(mesh.vertices * scale, mesh.faces, mesh.uvs, mesh.materials)
    textures = texture_pool(recipe.texture_seed, recipe.texture_pool, recipe.texture_size, recipe.texture_folder)
    all_materials = sample_materials(_rng(recipe.texture_seed, 5), MAX_MATERIAL_SLOTS, recipe.texture_pool)
    materials = Materials(
        all_materials.texture[:slots], all_materials.metallic[:slots], all_materials.roughness[:slots]
    )
    lighting = sample_lighting(_rng(recipe.lighting_seed, 6), room, None if shell.window is None else shell.window[0])
    lighting = dataclasses.replace(
        lighting, point_positions=lighting.point_positions * scale, point_radius=lighting.point_radius * scale
    )
    stats = {
        "primitives": primitive_count(layout),
        "boxes": len(layout.boxes),
        "triangles": int(len(mesh.faces)),
        "material_slots": slots,
    }
    return Scene(recipe, mesh, textures, materials, lighting, cameras, scale, layout, stats)
