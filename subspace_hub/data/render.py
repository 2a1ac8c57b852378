"""Rendering a scene's views with exact ground truth: RGB, z-depth, mask, normals and the cameras.

Geometry comes from ray casting (:mod:`.raycast`: Embree on the CPU, a BVH kernel on the GPU) through pixel
centres, so depth, mask, normals and triangle ids are those of the mesh itself, exactly: pixel (u, v) is the ray
through ``K^-1 [u, v, 1]`` (the interchange convention, under which
:func:`subspace_hub.geometry.depth_to_world_points` inverts rendering).

Colour is distribution ray tracing of direct light, computed in torch on the same device (so the CPU and the GPU
path share every line of it):

- ``samples`` rays per pixel on a stratified sub-pixel grid, averaged (anti-aliasing); the exported geometry
  stays that of the pixel centre;
- smooth shading from per-corner normals (:meth:`~subspace_hub.data.shapes.Mesh.corner_normals`), while the
  exported normals stay the exact face normals;
- a microfacet material: Lambert diffuse plus GGX specular (Smith masking, Schlick Fresnel) from the slot's
  metallic and roughness;
- light: a hemispherical ambient term attenuated by ambient occlusion (one bounded occlusion ray per sample), the
  sun as a disc of small angular size and the bulbs as small spheres, each sampled once per sample, so shadows
  have penumbras; rays that leave the scene (through a window, say) see the sky;
- a filmic tone curve (ACES fit) and gamma 2.2.

Every random number is a hash of the pixel's index, the sample and the purpose, never a generator's state, so a
view renders to the same bytes whatever batch it is rendered in, on any device.

Why this renderer: the paper's data needs exact geometry more than global illumination, and it must produce
hundreds of views per second on a laptop CPU and thousands on a GPU, installing from PyPI everywhere. Embree is
the fastest CPU ray tracer available as a wheel (``embreex``); a path tracer (Cycles, Mitsuba) would be orders of
magnitude slower per view and needs system libraries; a rasteriser would need a GPU context or slow software
clipping. The GPU path reuses the same shading code over a BVH kernel compiled at runtime by CuPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from subspace_hub.data.raycast import Backend, RayCaster, make_caster
from subspace_hub.data.scene import Scene
from subspace_hub.data.shapes import corner_normals
from subspace_hub.errors import ConfigError


@dataclass
class Views:
    """Rendered views of one scene (numpy, on the CPU)."""

    images: np.ndarray
    """[S, H, W, 3] uint8 RGB."""
    depth: np.ndarray
    """[S, H, W] float32 z-depth in scene units, 0 where no surface is hit."""
    mask: np.ndarray
    """[S, H, W] bool: a surface is hit."""
    normals: np.ndarray
    """[S, H, W, 3] float32 unit world-frame normals facing the camera (0 where no hit)."""
    triangles: np.ndarray
    """[S, H, W] int32 index of the mesh triangle each pixel sees (-1 where no hit)."""
    intrinsics: np.ndarray
    """[S, 3, 3] float32."""
    extrinsics: np.ndarray
    """[S, 3, 4] float32 camera-from-world."""


def sample_offsets(samples: int) -> list[tuple[float, float]]:
    """Sub-pixel offsets of ``samples`` rays (a square number): the centres of an n x n grid over the pixel."""
    n = math.isqrt(samples)
    if samples < 1 or n * n != samples:
        raise ConfigError(f"samples must be a square number (1, 4, 9, 16, ...), got {samples}.")
    return [((i + 0.5) / n - 0.5, (j + 0.5) / n - 0.5) for j in range(n) for i in range(n)]


def hash_uniform(key: torch.Tensor, stream: int) -> torch.Tensor:
    """Uniform numbers in [0, 1) from int64 ``key`` and a ``stream`` number: an integer hash, identical on every
    device (float32 with 24 random bits)."""
    x = (key * 2654435761 + stream * 0x9E3779B9 + 0x632BE5AB) & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    x = (x >> 16) ^ x
    return (x >> 8).float() * (1.0 / (1 << 24))


def _orthonormal(normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit tangents completing ``normal`` [N, 3] to a right-handed frame (Duff et al.'s branchless basis)."""
    sign = torch.where(normal[:, 2] >= 0, 1.0, -1.0)
    a = -1.0 / (sign + normal[:, 2])
    b = normal[:, 0] * normal[:, 1] * a
    tangent = torch.stack([1 + sign * normal[:, 0] ** 2 * a, sign * b, -sign * normal[:, 0]], 1)
    bitangent = torch.stack([b, sign + normal[:, 1] ** 2 * a, -normal[:, 1]], 1)
    return tangent, bitangent


def _tonemap(colour: torch.Tensor) -> torch.Tensor:
    """Linear radiance -> display values in [0, 1]: Narkowicz's ACES filmic fit, then gamma 2.2."""
    x = colour * EXPOSURE
    mapped = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
    return mapped.clamp(0, 1) ** (1 / 2.2)


EXPOSURE = 1.0
"""Scales linear radiance before the tone curve (keeps the ambient-lit walls at about mid-grey)."""
OCCLUSION_RAYS = 4
"""Ambient-occlusion rays per pixel (a square number: a stratified grid over the hemisphere)."""


@dataclass(frozen=True)
class RenderSettings:
    """How colour is rendered (the exported geometry does not depend on these)."""

    samples: int = 4
    """Rays per pixel (a square number); 1 is one ray through the pixel centre, aliased."""
    shadows: bool = True
    """Trace shadow rays (off: every light reaches every surface facing it)."""
    ambient_occlusion: bool = True
    """Attenuate the ambient light by occlusion within ``occlusion_distance``."""
    occlusion_distance: float = 0.12
    """Reach of the occlusion rays as a fraction of the scene's largest extent."""
    soft_shadows: bool = True
    """Sample the sun's disc and the bulbs' spheres (off: point-like lights, hard shadows)."""

    def __post_init__(self) -> None:
        sample_offsets(self.samples)
        if not self.occlusion_distance > 0:
            raise ConfigError(f"occlusion_distance must be positive, got {self.occlusion_distance}.")


class Renderer:
    """Renders views of one scene; reuses the ray caster, the mesh tables and the uploaded textures across calls."""

    def __init__(
        self,
        scene: Scene,
        *,
        backend: Backend = "auto",
        device: str | torch.device = "cpu",
        settings: RenderSettings | None = None,
    ) -> None:
        self.scene = scene
        self.settings = settings or RenderSettings()
        self.offsets = sample_offsets(self.settings.samples)
        self.device = torch.device(device)
        mesh = scene.mesh
        f = self.device
        # The triangles are gathered once, on the device, and shared with the ray caster.
        triangles = torch.as_tensor(mesh.vertices, dtype=torch.float64, device=f)[torch.as_tensor(mesh.faces, device=f)]
        self.caster: RayCaster = make_caster(mesh.vertices, mesh.faces, backend, self.device, triangles=triangles)
        tri = triangles.float()
        normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.tri_normal = normal / normal.norm(dim=1, keepdim=True).clamp(min=1e-20)
        self.corner_normals = corner_normals(triangles)  # [F, 3, 3], computed on the device
        self.tri_uv = torch.as_tensor(mesh.uvs, dtype=torch.float32, device=f)
        self.tri_material = torch.as_tensor(mesh.materials, dtype=torch.long, device=f)
        materials = scene.materials
        self.material_texture = torch.as_tensor(materials.texture, dtype=torch.long, device=f)
        self.material_metallic = torch.as_tensor(materials.metallic, device=f)
        self.material_roughness = torch.as_tensor(materials.roughness, device=f)
        self.textures = torch.as_tensor(scene.textures, device=f)  # [P, T, T, 3]
        self._flat_textures = self.textures.reshape(-1, 3)
        light = scene.lighting
        as_tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=f)  # noqa: E731
        self.ambient_top, self.ambient_bottom = as_tensor(light.ambient_top), as_tensor(light.ambient_bottom)
        self.sun_direction, self.sun_colour = as_tensor(light.sun_direction), as_tensor(light.sun_colour)
        self.point_positions, self.point_colours = as_tensor(light.point_positions), as_tensor(light.point_colours)
        self.sky_zenith, self.sky_horizon = as_tensor(light.sky_zenith), as_tensor(light.sky_horizon)
        self.ground = as_tensor(light.ground)
        self.sun_radius, self.point_radius = float(light.sun_radius), float(light.point_radius)
        extent = float(np.ptp(mesh.vertices, axis=0).max())
        self.epsilon = 1e-4 * extent
        self.occlusion_distance = self.settings.occlusion_distance * extent
        self._pinned: dict = {}

    def rays(
        self, height: int, width: int, views: slice | None = None, offset: tuple[float, float] = (0.0, 0.0)
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        """World-space origins and directions [S * H * W, 3] (direction camera-z = 1) through the pixel centres
        shifted by ``offset`` pixels, and the cameras."""
        intrinsics = self.scene.cameras.intrinsics(height, width)
        extrinsics = self.scene.extrinsics()
        if views is not None:
            intrinsics, extrinsics = intrinsics[views], extrinsics[views]
        v, u = torch.meshgrid(
            torch.arange(height, dtype=torch.float32, device=self.device) + offset[1],
            torch.arange(width, dtype=torch.float32, device=self.device) + offset[0],
            indexing="ij",
        )
        k = torch.as_tensor(intrinsics, dtype=torch.float32, device=self.device)
        camera_dirs = torch.stack(
            [
                (u[None] - k[:, 0, 2, None, None]) / k[:, 0, 0, None, None],
                (v[None] - k[:, 1, 2, None, None]) / k[:, 1, 1, None, None],
                torch.ones_like(u).expand(len(k), -1, -1),
            ],
            dim=-1,
        )
        e = torch.as_tensor(extrinsics, dtype=torch.float64, device=self.device)
        rotation = e[:, :, :3].transpose(1, 2)  # world-from-camera
        centre = -(rotation @ e[:, :, 3:])[..., 0]
        directions = torch.einsum("sij,shwj->shwi", rotation.float(), camera_dirs)
        origins = centre.float()[:, None, None, :].expand_as(directions)
        return origins.reshape(-1, 3).contiguous(), directions.reshape(-1, 3).contiguous(), intrinsics, extrinsics

    def render(self, height: int, width: int, views: slice | None = None) -> Views:
        """The views as numpy arrays on the CPU (see :class:`Views`)."""
        tensors = self.render_tensors(height, width, views)
        if self.device.type != "cuda":
            return Views(**{k: v if isinstance(v, np.ndarray) else v.numpy() for k, v in tensors.items()})
        # Through reused page-locked buffers: several times the bandwidth of copies to pageable memory.
        staged = {}
        for key, value in tensors.items():
            if isinstance(value, np.ndarray):
                continue
            buffer = self._pinned.get((key, value.shape, value.dtype))
            if buffer is None:
                buffer = self._pinned[(key, value.shape, value.dtype)] = torch.empty(
                    value.shape, dtype=value.dtype, pin_memory=True
                )
            buffer.copy_(value, non_blocking=True)
            staged[key] = buffer
        torch.cuda.current_stream(self.device).synchronize()
        return Views(**{k: v if isinstance(v, np.ndarray) else staged[k].numpy().copy() for k, v in tensors.items()})

    def render_tensors(
        self, height: int, width: int, views: slice | None = None
    ) -> dict[str, torch.Tensor | np.ndarray]:
        """The fields of :class:`Views` as tensors on the renderer's device (cameras as numpy)."""
        origins, directions, intrinsics, extrinsics = self.rays(height, width, views)
        hits = self.caster.intersect(origins, directions)
        t = hits.t.to(self.device)
        triangle = hits.triangle.to(self.device)
        hit = triangle >= 0
        normal = self.tri_normal[triangle.clamp(min=0)]
        normal = torch.where(((normal * directions).sum(-1, keepdim=True) > 0), -normal, normal)  # face the camera
        s = len(intrinsics)
        first = 0 if views is None else (views.start or 0)
        pixel = torch.arange(len(origins), device=self.device, dtype=torch.int64) + first * height * width
        position = origins + directions * torch.where(hit, t, torch.zeros_like(t))[:, None]
        occlusion = self._occlusion(position, normal, hit, t, pixel, (s, height, width))[:, None]
        colour = torch.zeros_like(origins)
        for index, offset in enumerate(self.offsets):
            if offset == (0.0, 0.0):
                sample_origins, sample_directions, sample_hits = origins, directions, hits
            else:
                sample_origins, sample_directions, _, _ = self.rays(height, width, views, offset)
                sample_hits = self.caster.intersect(sample_origins, sample_directions)
            key = pixel * len(self.offsets) + index
            colour += self._radiance(sample_origins, sample_directions, sample_hits, key, occlusion)
        image = _tonemap(colour / len(self.offsets))
        shape = lambda x: x.reshape(s, height, width, *x.shape[1:])  # noqa: E731
        return {
            "images": shape((image * 255 + 0.5).to(torch.uint8)),
            "depth": shape(torch.where(hit, t, torch.zeros_like(t)).float()),
            "mask": shape(hit),
            "normals": shape(torch.where(hit[:, None], normal, torch.zeros_like(normal)).float()),
            "triangles": shape(triangle.int()),
            "intrinsics": intrinsics.astype(np.float32),
            "extrinsics": extrinsics.astype(np.float32),
        }

    def _radiance(
        self, origins: torch.Tensor, directions: torch.Tensor, hits: Any, key: torch.Tensor, occlusion: torch.Tensor
    ) -> torch.Tensor:
        """[N, 3] linear radiance along each ray: the shaded surface it hits, or the sky."""
        t = hits.t.to(self.device)
        triangle = hits.triangle.to(self.device)
        hit = triangle >= 0
        safe = triangle.clamp(min=0)
        u, v = hits.u.to(self.device), hits.v.to(self.device)
        weights = torch.stack([1 - u - v, u, v], dim=-1)
        geometric = self.tri_normal[safe]
        facing_away = (geometric * directions).sum(-1, keepdim=True) > 0
        geometric = torch.where(facing_away, -geometric, geometric)
        smooth = (self.corner_normals[safe] * weights[..., None]).sum(1)
        smooth = torch.where(facing_away, -smooth, smooth)
        smooth = smooth / smooth.norm(dim=1, keepdim=True).clamp(min=1e-12)
        view = directions / directions.norm(dim=1, keepdim=True)
        # Interpolated normals can turn away from the eye at grazing angles; the face normal is used there.
        smooth = torch.where((smooth * view).sum(1, keepdim=True) > -0.02, geometric, smooth)
        position = origins + directions * torch.where(hit, t, torch.zeros_like(t))[:, None]
        uv = (self.tri_uv[safe] * weights[..., None]).sum(1)
        material = self.tri_material[safe]
        albedo = self._sample(self.material_texture[material], uv)
        surface = self._shade(position, geometric, smooth, view, albedo, material, hit, key, occlusion)
        return torch.where(hit[:, None], surface, self.sky(view))

    def sky(self, direction: torch.Tensor) -> torch.Tensor:
        """[N, 3] radiance of the environment in unit ``direction`` [N, 3]: zenith to horizon above, the ground
        below, and the sun's disc with a glow around it."""
        z = direction[:, 2:3]
        above = self.sky_horizon + (self.sky_zenith - self.sky_horizon) * z.clamp(min=0).sqrt()
        below = self.ground + (self.sky_horizon - self.ground) * (1 + z.clamp(max=0)) ** 8
        cosine = (direction * self.sun_direction).sum(1, keepdim=True)
        angle = torch.arccos(cosine.clamp(-1, 1))
        disc = (angle < self.sun_radius).float() * 8.0 + torch.exp(-angle / (4 * self.sun_radius)) * 0.5
        return torch.where(z >= 0, above, below) + self.sun_colour * disc

    def _occlusion(
        self,
        position: torch.Tensor,
        normal: torch.Tensor,
        hit: torch.Tensor,
        depth: torch.Tensor,
        pixel: torch.Tensor,
        shape: tuple[int, int, int],
    ) -> torch.Tensor:
        """[N] ambient occlusion at the pixel centres' surface points: the unblocked share of ``OCCLUSION_RAYS``
        cosine-weighted rays (stratified over the hemisphere, rotated per pixel) of bounded reach, then a 5 x 5
        filter that averages neighbours on the same surface (close in depth and normal), as a denoiser would."""
        if not self.settings.ambient_occlusion:
            return torch.ones_like(position[:, 0])
        tangent, bitangent = _orthonormal(normal)
        n = math.isqrt(OCCLUSION_RAYS)
        jitter_u, jitter_v = hash_uniform(pixel, 3), hash_uniform(pixel, 4)
        reach = torch.full_like(position[:, 0], self.occlusion_distance)
        open_share = torch.zeros_like(position[:, 0])
        for i in range(n):
            for j in range(n):
                radius = ((i + jitter_u) / n).sqrt()[:, None]
                angle = 2 * math.pi * ((j + jitter_v) / n)[:, None]
                lift = (1 - radius**2).clamp(min=0).sqrt()
                probe = radius * (torch.cos(angle) * tangent + torch.sin(angle) * bitangent) + lift * normal
                open_share += self._unblocked(position, normal, probe, reach, hit)
        s, h, w = shape
        occlusion = (open_share / (n * n)).reshape(shape)
        depth = torch.where(hit, depth, torch.zeros_like(depth)).reshape(shape)
        normals = normal.reshape(*shape, 3)
        valid = hit.reshape(shape).float()
        # Zero-padded copies: a neighbour outside the image has weight 0.
        padded = {
            "occlusion": F.pad(occlusion, (2, 2, 2, 2)),
            "depth": F.pad(depth, (2, 2, 2, 2)),
            "valid": F.pad(valid, (2, 2, 2, 2)),
            "normals": F.pad(normals.permute(0, 3, 1, 2), (2, 2, 2, 2)).permute(0, 2, 3, 1),
        }
        total = torch.zeros_like(occlusion)
        weight = torch.zeros_like(occlusion)
        for dy in range(5):
            for dx in range(5):
                near = {k: v[:, dy : dy + h, dx : dx + w] for k, v in padded.items()}
                same = torch.exp(-(((near["depth"] - depth) / (0.02 * depth.clamp(min=1e-6))) ** 2))
                same = same * (near["normals"] * normals).sum(-1).clamp(min=0) ** 8 * near["valid"]
                total += same * near["occlusion"]
                weight += same
        return torch.where(weight > 0, total / weight.clamp(min=1e-12), occlusion).reshape(-1)

    def _sample(self, texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Bilinear, repeating texture lookup: texture index [N], uv [N, 2] -> [N, 3]."""
        size = self.textures.shape[1]
        x = torch.remainder(uv[:, 0], 1.0) * size - 0.5
        y = torch.remainder(uv[:, 1], 1.0) * size - 0.5
        x0, y0 = torch.floor(x), torch.floor(y)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        x0, y0 = x0.long() % size, y0.long() % size
        x1, y1 = (x0 + 1) % size, (y0 + 1) % size
        base = texture * (size * size)
        flat = self._flat_textures
        row0, row1 = base + y0 * size, base + y1 * size
        top = flat.index_select(0, row0 + x0) * (1 - fx) + flat.index_select(0, row0 + x1) * fx
        bottom = flat.index_select(0, row1 + x0) * (1 - fx) + flat.index_select(0, row1 + x1) * fx
        return top * (1 - fy) + bottom * fy

    def _unblocked(
        self,
        position: torch.Tensor,
        normal: torch.Tensor,
        direction: torch.Tensor,
        distance: torch.Tensor,
        active: torch.Tensor,
    ) -> torch.Tensor:
        """[N] float: 1 where nothing lies within ``distance`` along ``direction`` (only ``active`` rays are traced;
        the others get 0)."""
        visible = active.float()
        if not bool(active.any()):
            return visible
        index = torch.nonzero(active)[:, 0]
        origins = position[index] + normal[index] * self.epsilon
        blocked = self.caster.occluded(origins, direction[index].contiguous(), distance[index]).to(self.device)
        visible[index] = (~blocked).float()
        return visible

    def _lights(
        self, position: torch.Tensor, geometric: torch.Tensor, key: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(unit direction to the light, radiance arriving, distance) per light and shading point: the sun's disc
        and the bulbs' spheres sampled at one point each (a centre point without soft shadows)."""
        soft = self.settings.soft_shadows
        sun = self.sun_direction.expand_as(position)
        if soft:
            tangent, bitangent = _orthonormal(sun)
            radius = self.sun_radius * hash_uniform(key, 1).sqrt()[:, None]
            angle = 2 * math.pi * hash_uniform(key, 2)[:, None]
            sun = sun + radius * (torch.cos(angle) * tangent + torch.sin(angle) * bitangent)
            sun = sun / sun.norm(dim=1, keepdim=True)
        lights = [(sun, self.sun_colour.expand_as(position), torch.full_like(position[:, 0], math.inf))]
        for number, (centre, colour) in enumerate(zip(self.point_positions, self.point_colours, strict=True)):
            target = centre.expand_as(position)
            if soft:  # a point on the bulb's sphere, uniform over its surface
                z = 2 * hash_uniform(key, 10 + 2 * number) - 1
                phi = 2 * math.pi * hash_uniform(key, 11 + 2 * number)
                ring = (1 - z * z).clamp(min=0).sqrt()
                target = target + self.point_radius * torch.stack([ring * torch.cos(phi), ring * torch.sin(phi), z], 1)
            offset = target - position
            distance = offset.norm(dim=1).clamp(min=1e-6)
            reference = 0.1  # light strength is given at a tenth of a scene unit
            falloff = (reference / distance.clamp(min=0.02)) ** 2
            lights.append((offset / distance[:, None], colour * falloff[:, None], distance))
        return lights

    def _shade(
        self,
        position: torch.Tensor,
        geometric: torch.Tensor,
        normal: torch.Tensor,
        view: torch.Tensor,
        albedo: torch.Tensor,
        material: torch.Tensor,
        hit: torch.Tensor,
        key: torch.Tensor,
        occlusion: torch.Tensor,
    ) -> torch.Tensor:
        """Outgoing radiance [N, 3] towards the eye of surface points with face normal ``geometric`` (facing the
        eye), shading ``normal``, unit ray direction ``view``; ``occlusion`` [N, 1] scales the ambient light."""
        metallic = self.material_metallic[material][:, None]
        roughness = self.material_roughness[material][:, None]
        diffuse = albedo * (1 - metallic)
        f0 = 0.04 * (1 - metallic) + albedo * metallic
        to_eye = -view
        n_dot_v = (normal * to_eye).sum(1, keepdim=True).clamp(min=1e-4)
        fresnel_view = f0 + (1 - f0) * (1 - n_dot_v) ** 5

        def ambient(direction: torch.Tensor) -> torch.Tensor:
            up = direction[:, 2:3]
            return self.ambient_top * (0.5 + 0.5 * up) + self.ambient_bottom * (0.5 - 0.5 * up)

        reflected = view - 2 * (view * normal).sum(1, keepdim=True) * normal
        gloss = (1 - roughness).clamp(min=0)
        colour = occlusion * (diffuse * ambient(normal) + fresnel_view * gloss * ambient(reflected))
        alpha = (roughness * roughness).clamp(min=0.02)  # a floor: bulbs and the sun are not infinitely small
        alpha2 = alpha * alpha
        k = alpha / 2
        for direction, radiance, distance in self._lights(position, geometric, key):
            cosine = (normal * direction).sum(1, keepdim=True)
            lit = hit & (cosine[:, 0] > 0) & ((geometric * direction).sum(1) > 0)
            if self.settings.shadows:
                visible = self._unblocked(position, geometric, direction, distance, lit)[:, None]
            else:
                visible = lit.float()[:, None]
            half = direction + to_eye
            half = half / half.norm(dim=1, keepdim=True).clamp(min=1e-12)
            n_dot_h = (normal * half).sum(1, keepdim=True).clamp(min=0)
            n_dot_l = cosine.clamp(min=1e-4)
            distribution = alpha2 / (math.pi * (n_dot_h**2 * (alpha2 - 1) + 1) ** 2)
            masking = (n_dot_l / (n_dot_l * (1 - k) + k)) * (n_dot_v / (n_dot_v * (1 - k) + k))
            fresnel = f0 + (1 - f0) * (1 - (half * to_eye).sum(1, keepdim=True).clamp(min=0)) ** 5
            specular = distribution * masking * fresnel / (4 * n_dot_l * n_dot_v)
            colour = colour + visible * radiance * cosine.clamp(min=0) * (diffuse * (2 / math.pi) + specular)
        return colour


def render_scene(
    scene: Scene,
    height: int,
    width: int,
    *,
    backend: Backend = "auto",
    device: str | torch.device = "cpu",
    settings: RenderSettings | None = None,
    batch_rays: int = 1 << 20,
) -> Views:
    """All views of ``scene`` at ``height`` x ``width``, rendered in batches of views of about ``batch_rays`` rays."""
    renderer = Renderer(scene, backend=backend, device=device, settings=settings)
    per_batch = max(1, batch_rays // (height * width))
    parts = [renderer.render(height, width, slice(i, i + per_batch)) for i in range(0, scene.recipe.views, per_batch)]
    return Views(*(np.concatenate([getattr(p, f) for p in parts]) for f in Views.__dataclass_fields__))
