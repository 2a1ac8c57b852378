"""Lights, sky and materials of the synthetic scenes (shared/reference/methods.md D.4).

MegaSynth renders with path tracing: two large area lights (up and down, strength 1), a sun behind the window
(p = 0.6, strength U(0.2, 2), random colour) and light bulbs (p = 0.1, 1-3 point lights, strength U(0.2, 2) or
with p = 0.15 U(5, 8)). Here the area lights become a hemispherical ambient term (from above, and the bounce from
below) that the renderer attenuates by ambient occlusion; the sun becomes a key light of small angular size that
is always present (so lighting datasets vary visibly) and casts soft shadows; the bulbs are small spherical
lights with inverse-square falloff; a sky (zenith, horizon and ground colours with the sun's disc) is what windows
and rays leaving the scene see. Materials: metallic and roughness per slot (D.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Lighting:
    """Direct lighting of one scene (linear RGB radiance scales)."""

    ambient_top: np.ndarray
    """[3] colour x strength of the light from above (normals pointing up receive all of it)."""
    ambient_bottom: np.ndarray
    """[3] from below."""
    sun_direction: np.ndarray
    """[3] unit vector from the scene towards the sun."""
    sun_colour: np.ndarray
    """[3] colour x strength."""
    point_positions: np.ndarray
    """[P, 3] positions in room units."""
    point_colours: np.ndarray
    """[P, 3] colour x strength (at distance 1 scene unit)."""
    sun_radius: float = 0.03
    """Angular radius of the sun, radians (its shadows' penumbra)."""
    point_radius: float = 0.3
    """Radius of the spherical bulbs, in room units."""
    sky_zenith: np.ndarray = field(default_factory=lambda: np.array([0.35, 0.5, 0.8]))
    """[3] radiance of the sky straight up."""
    sky_horizon: np.ndarray = field(default_factory=lambda: np.array([0.8, 0.85, 0.9]))
    """[3] radiance of the sky at the horizon."""
    ground: np.ndarray = field(default_factory=lambda: np.array([0.25, 0.22, 0.2]))
    """[3] radiance below the horizon."""


@dataclass
class Materials:
    """Per material slot: texture index into the pool, metallic and roughness."""

    texture: np.ndarray
    metallic: np.ndarray
    roughness: np.ndarray


def _colour(rng: np.random.Generator, saturation: float) -> np.ndarray:
    c = 1 - saturation * rng.random(3)
    return c / c.max()


def sample_lighting(rng: np.random.Generator, room: np.ndarray, window_wall: int | None) -> Lighting:
    ambient = rng.uniform(0.25, 0.7)
    tint = _colour(rng, 0.15)
    if window_wall is not None:  # the sun comes in through the window wall, from above the horizon
        outward = [np.array([-1.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 1.0, 0])][
            window_wall
        ]
        direction = outward + np.array([0, 0, rng.uniform(0.2, 1.5)]) + rng.normal(0, 0.3, 3) * [1, 1, 0]
    else:
        direction = rng.normal(size=3)
        direction[2] = abs(direction[2]) + 0.3
    direction = direction / np.linalg.norm(direction)
    sun = rng.uniform(0.2, 2.0) * _colour(rng, 0.5)
    count = int(rng.integers(1, 4)) if rng.random() < 0.1 else 0
    strengths = np.where(rng.random(count) < 0.15, rng.uniform(5, 8, count), rng.uniform(0.2, 2, count))
    positions = rng.uniform(0.15, 0.85, (count, 3)) * room
    colours = np.stack([_colour(rng, 0.5) for _ in range(count)]) * strengths[:, None] if count else np.zeros((0, 3))
    # Drawn after everything above, so these additions leave the earlier draws (and their datasets) as they were.
    sun_radius = float(rng.uniform(0.01, 0.06))
    sky_tint = _colour(rng, 0.3)
    sky_strength = rng.uniform(0.5, 1.5)
    zenith = sky_strength * np.array([0.3, 0.45, 0.85]) * sky_tint
    horizon = sky_strength * np.array([0.85, 0.88, 0.92]) * (0.5 + 0.5 * sky_tint)
    ground = rng.uniform(0.1, 0.35) * _colour(rng, 0.4)
    return Lighting(
        ambient * tint,
        0.35 * ambient * tint,
        direction,
        sun,
        positions,
        colours,
        sun_radius=sun_radius,
        point_radius=0.02 * float(room.min()),
        sky_zenith=zenith,
        sky_horizon=horizon,
        ground=ground,
    )


def sample_materials(rng: np.random.Generator, slots: int, pool: int) -> Materials:
    """``slots`` material slots drawing textures from a pool of ``pool`` (slot i uses texture i mod pool, so a
    fixed pool textures any geometry the same way); a "specular scene" with p = 0.2."""
    specular_scene = rng.random() < 0.2
    metallic = np.where(
        rng.random(slots) < 0.4, rng.uniform(0.6, 1, slots) if specular_scene else rng.uniform(0.001, 1, slots), 0.0
    )
    roughness = np.where(
        metallic > 0,
        rng.uniform(0, 0.05, slots) if specular_scene else rng.uniform(0.001, 0.2, slots),
        rng.uniform(0.3, 0.9, slots),
    )
    return Materials(np.arange(slots) % pool, metallic.astype(np.float32), roughness.astype(np.float32))
