"""Ray casting against triangle meshes: the renderer's only geometric query.

Three interchangeable backends give the same answer (nearest hit: parametric distance t, triangle, barycentrics
u and v of its second and third vertices; and an any-hit occlusion test):

- ``embree`` (CPU): Intel Embree through ``embreex``; a production ray tracer, watertight, built per scene in
  milliseconds. The default on the CPU.
- ``cuda`` (GPU): a linear BVH (:mod:`.bvh`) traversed by a CUDA kernel compiled at first use through CuPy's
  NVRTC (``pip install cupy-cuda12x``); results stay on the GPU as torch tensors.
- ``brute`` (any torch device): every ray against every triangle, chunked; exact and simple, for tests and tiny
  scenes.

Directions need not be unit length: t is in units of the direction, so a direction with camera-z 1 gives
z-depth directly.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from subspace_hub.errors import ConfigError

Backend = Literal["auto", "embree", "cuda", "brute"]


@dataclass
class Hits:
    """Nearest hits of N rays (torch tensors on the rays' device)."""

    t: torch.Tensor
    """[N] float32 distance along the direction; ``inf`` for a miss."""
    triangle: torch.Tensor
    """[N] int64 triangle index; -1 for a miss."""
    u: torch.Tensor
    """[N] float32 barycentric weight of the triangle's second vertex."""
    v: torch.Tensor
    """[N] float32 weight of its third vertex."""


class RayCaster:
    """Common interface: ``intersect(origins, directions)`` and ``occluded(origins, directions, t_max)``."""

    def intersect(self, origins: torch.Tensor, directions: torch.Tensor) -> Hits:
        raise NotImplementedError

    def occluded(self, origins: torch.Tensor, directions: torch.Tensor, t_max: torch.Tensor) -> torch.Tensor:
        """[N] bool: something lies between t = 0 and ``t_max`` along the ray."""
        raise NotImplementedError


class EmbreeCaster(RayCaster):
    """Embree through embreex. Each call splits the rays into contiguous blocks traced on ``threads`` threads
    (embreex releases the GIL; default: torch's thread count, 1 in generation workers)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, threads: int | None = None) -> None:
        try:
            from embreex import rtcore_scene
            from embreex.mesh_construction import TriangleMesh
        except ImportError as exc:  # pragma: no cover - embreex is a dependency
            raise ConfigError("The embree backend needs embreex (pip install embreex).") from exc
        self._scene = rtcore_scene.EmbreeScene()
        self._mesh = TriangleMesh(
            self._scene, np.ascontiguousarray(vertices, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int32)
        )
        self.threads = max(1, threads if threads is not None else torch.get_num_threads())

    def _run(self, origins: np.ndarray, directions: np.ndarray, **options) -> list:
        if self.threads == 1 or len(origins) < 8192:
            return [self._scene.run(origins, directions, **options)]
        bounds = np.linspace(0, len(origins), self.threads + 1).astype(int)
        blocks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

        def trace(block: slice):
            extra = {k: (v[block] if isinstance(v, np.ndarray) else v) for k, v in options.items()}
            return self._scene.run(
                np.ascontiguousarray(origins[block]), np.ascontiguousarray(directions[block]), **extra
            )

        return list(_pool(self.threads).map(trace, blocks))

    def intersect(self, origins: torch.Tensor, directions: torch.Tensor) -> Hits:
        o = np.ascontiguousarray(origins.detach().cpu().numpy(), dtype=np.float32)
        d = np.ascontiguousarray(directions.detach().cpu().numpy(), dtype=np.float32)
        parts = self._run(o, d, output=1)
        result = {k: np.concatenate([p[k] for p in parts]) for k in ("primID", "tfar", "u", "v")}
        triangle = torch.from_numpy(result["primID"].astype(np.int64))
        t = torch.from_numpy(result["tfar"])
        t[triangle < 0] = math.inf
        return Hits(t, triangle, torch.from_numpy(result["u"]), torch.from_numpy(result["v"]))

    def occluded(self, origins: torch.Tensor, directions: torch.Tensor, t_max: torch.Tensor) -> torch.Tensor:
        o = np.ascontiguousarray(origins.detach().cpu().numpy(), dtype=np.float32)
        d = np.ascontiguousarray(directions.detach().cpu().numpy(), dtype=np.float32)
        limits = np.ascontiguousarray(np.minimum(t_max.detach().cpu().numpy(), 1e30), dtype=np.float32)
        return torch.from_numpy(np.concatenate(self._run(o, d, dists=limits, query="OCCLUDED")) >= 0)


_POOLS: dict[int, Any] = {}


def _pool(threads: int) -> Any:
    """A thread pool per size, shared by all Embree casters of the process."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="embree")
    return _POOLS[threads]


class BruteCaster(RayCaster):
    """Moller-Trumbore against all triangles, ``chunk`` rays at a time."""

    def __init__(
        self, vertices: np.ndarray, faces: np.ndarray, device: torch.device | str = "cpu", chunk: int = 4096
    ) -> None:
        tri = torch.as_tensor(vertices[faces], dtype=torch.float32, device=device)
        self.v0, self.e1, self.e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        self.chunk = chunk

    def _all(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = torch.cross(d[:, None, :], self.e2[None], dim=-1)
        det = (self.e1[None] * p).sum(-1)
        inv = 1.0 / torch.where(det.abs() > 1e-12, det, torch.full_like(det, math.inf))
        s = o[:, None, :] - self.v0[None]
        u = (s * p).sum(-1) * inv
        q = torch.cross(s, self.e1[None].expand_as(s), dim=-1)
        v = (d[:, None, :] * q).sum(-1) * inv
        t = (self.e2[None] * q).sum(-1) * inv
        valid = (det.abs() > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        return torch.where(valid, t, torch.full_like(t, math.inf)), u, v

    def intersect(self, origins: torch.Tensor, directions: torch.Tensor) -> Hits:
        parts = []
        for start in range(0, len(origins), self.chunk):
            t, u, v = self._all(
                origins[start : start + self.chunk].float(), directions[start : start + self.chunk].float()
            )
            best_t, best = t.min(dim=1)
            rows = torch.arange(len(best), device=best.device)
            hit = torch.isfinite(best_t)
            parts.append((best_t, torch.where(hit, best, -1), u[rows, best], v[rows, best]))
        t, tri, u, v = (torch.cat(x) for x in zip(*parts, strict=True))
        return Hits(t, tri.long(), u, v)

    def occluded(self, origins: torch.Tensor, directions: torch.Tensor, t_max: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(origins), self.chunk):
            t, _, _ = self._all(
                origins[start : start + self.chunk].float(), directions[start : start + self.chunk].float()
            )
            out.append((t < t_max[start : start + self.chunk, None]).any(dim=1))
        return torch.cat(out)


_KERNEL = r"""
extern "C" __global__ void trace(
    const float* __restrict__ boxes, const int* __restrict__ children, const float* __restrict__ tris,
    const float* __restrict__ origins, const float* __restrict__ dirs, const float* __restrict__ t_max,
    const int n_rays, const int any_hit,
    float* __restrict__ t_out, int* __restrict__ leaf_out, float* __restrict__ u_out, float* __restrict__ v_out)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_rays) return;
    const float ox = origins[3*i], oy = origins[3*i+1], oz = origins[3*i+2];
    const float dx = dirs[3*i], dy = dirs[3*i+1], dz = dirs[3*i+2];
    const float ix = 1.0f / (fabsf(dx) > 1e-30f ? dx : copysignf(1e-30f, dx));
    const float iy = 1.0f / (fabsf(dy) > 1e-30f ? dy : copysignf(1e-30f, dy));
    const float iz = 1.0f / (fabsf(dz) > 1e-30f ? dz : copysignf(1e-30f, dz));
    float best = t_max[i];
    int best_leaf = -1;
    float best_u = 0.0f, best_v = 0.0f;
    int stack[64];
    int sp = 0;
    int node = 0;
    while (true) {
        int next[2];
        float near[2];
        int count = 0;
        for (int side = 0; side < 2; ++side) {
            const int child = children[2*node + side];
            if (child < 0) {  // a leaf: intersect its triangle now (Moller-Trumbore)
                const float* tri = tris + 9 * (~child);
                const float e1x = tri[3], e1y = tri[4], e1z = tri[5], e2x = tri[6], e2y = tri[7], e2z = tri[8];
                const float px = dy*e2z - dz*e2y, py = dz*e2x - dx*e2z, pz = dx*e2y - dy*e2x;
                const float det = e1x*px + e1y*py + e1z*pz;
                if (fabsf(det) > 1e-12f) {
                    const float inv = 1.0f / det;
                    const float sx = ox - tri[0], sy = oy - tri[1], sz = oz - tri[2];
                    const float u = (sx*px + sy*py + sz*pz) * inv;
                    const float qx = sy*e1z - sz*e1y, qy = sz*e1x - sx*e1z, qz = sx*e1y - sy*e1x;
                    const float v = (dx*qx + dy*qy + dz*qz) * inv;
                    const float t = (e2x*qx + e2y*qy + e2z*qz) * inv;
                    if (u >= 0.0f && v >= 0.0f && u + v <= 1.0f && t > 0.0f && t < best) {
                        best = t; best_leaf = ~child; best_u = u; best_v = v;
                        if (any_hit) { t_out[i] = t; leaf_out[i] = ~child; return; }
                    }
                }
            } else {  // an internal child: slab test against its box
                const float* b = boxes + 12 * node + 6 * side;
                float t0 = (b[0] - ox) * ix, t1 = (b[3] - ox) * ix;
                float lo = fminf(t0, t1), hi = fmaxf(t0, t1);
                t0 = (b[1] - oy) * iy; t1 = (b[4] - oy) * iy;
                lo = fmaxf(lo, fminf(t0, t1)); hi = fminf(hi, fmaxf(t0, t1));
                t0 = (b[2] - oz) * iz; t1 = (b[5] - oz) * iz;
                lo = fmaxf(lo, fminf(t0, t1)); hi = fminf(hi, fmaxf(t0, t1));
                if (hi >= fmaxf(lo, 0.0f) && lo < best) { next[count] = child; near[count] = lo; ++count; }
            }
        }
        if (count == 2) {
            const bool swap = near[1] < near[0];
            node = swap ? next[1] : next[0];
            if (sp < 64) stack[sp++] = swap ? next[0] : next[1];
        } else if (count == 1) {
            node = next[0];
        } else {
            if (sp == 0) break;
            node = stack[--sp];
        }
    }
    t_out[i] = best_leaf >= 0 ? best : __int_as_float(0x7f800000);
    leaf_out[i] = best_leaf;
    u_out[i] = best_u;
    v_out[i] = best_v;
}
"""


class CudaCaster(RayCaster):
    """BVH traversal on the GPU (CuPy kernel); takes and returns CUDA torch tensors."""

    _kernel = None

    def __init__(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        device: torch.device | str = "cuda",
        triangles: torch.Tensor | None = None,
    ) -> None:
        try:
            import cupy
        except ImportError as exc:
            raise ConfigError(
                "The cuda ray-casting backend needs CuPy for your CUDA version (e.g. pip install cupy-cuda12x)."
            ) from exc
        from subspace_hub.data.bvh import build_bvh

        self.device = torch.device(device)
        if triangles is None:
            triangles = torch.as_tensor(np.asarray(vertices, dtype=np.float64)[faces], device=self.device)
        triangles = triangles.to(self.device, torch.float64)
        if len(triangles) == 1:  # a tree needs two leaves: the triangle twice
            triangles = torch.cat([triangles, triangles])
        bvh = build_bvh(triangles)  # on the GPU
        sorted_tris = triangles[bvh.order]
        packed = torch.cat(
            [sorted_tris[:, 0], sorted_tris[:, 1] - sorted_tris[:, 0], sorted_tris[:, 2] - sorted_tris[:, 0]], dim=1
        )
        self._boxes = cupy.from_dlpack(bvh.boxes.reshape(-1).contiguous())
        self._children = cupy.from_dlpack(bvh.children.reshape(-1).contiguous())
        self._tris = cupy.from_dlpack(packed.float().reshape(-1).contiguous())
        self._keep = (bvh, packed)  # the tensors behind the CuPy views
        self._order = bvh.order % len(faces)
        if CudaCaster._kernel is None:
            CudaCaster._kernel = cupy.RawKernel(_KERNEL, "trace")

    def _run(
        self, origins: torch.Tensor, directions: torch.Tensor, t_max: torch.Tensor, any_hit: bool
    ) -> tuple[torch.Tensor, ...]:
        import cupy

        n = len(origins)
        o = cupy.from_dlpack(origins.detach().float().contiguous())
        d = cupy.from_dlpack(directions.detach().float().contiguous())
        limit = cupy.from_dlpack(t_max.detach().float().contiguous())
        t = torch.full((n,), math.inf, device=self.device)
        leaf = torch.full((n,), -1, dtype=torch.int32, device=self.device)
        u = torch.zeros(n, device=self.device)
        v = torch.zeros(n, device=self.device)
        threads = 128
        args = (self._boxes, self._children, self._tris, o, d, limit, np.int32(n), np.int32(any_hit))
        outs = tuple(cupy.from_dlpack(x) for x in (t, leaf, u, v))
        with cupy.cuda.Device(self.device.index or 0):
            CudaCaster._kernel(((n + threads - 1) // threads,), (threads,), args + outs)
        return t, leaf, u, v

    def intersect(self, origins: torch.Tensor, directions: torch.Tensor) -> Hits:
        t, leaf, u, v = self._run(origins, directions, torch.full((len(origins),), math.inf, device=self.device), False)
        triangle = torch.where(
            leaf >= 0, self._order[leaf.long().clamp(min=0)], torch.full_like(leaf, -1, dtype=torch.int64)
        )
        return Hits(t, triangle.long(), u, v)

    def occluded(self, origins: torch.Tensor, directions: torch.Tensor, t_max: torch.Tensor) -> torch.Tensor:
        _, leaf, _, _ = self._run(origins, directions, t_max, True)
        return leaf >= 0


def make_caster(
    vertices: np.ndarray,
    faces: np.ndarray,
    backend: Backend = "auto",
    device: torch.device | str = "cpu",
    *,
    triangles: torch.Tensor | None = None,
) -> RayCaster:
    """The ray caster for ``backend`` (``auto``: ``cuda`` on a CUDA device, else ``embree``); ``triangles``
    ([F, 3, 3] on ``device``) saves the cuda backend gathering them again."""
    device = torch.device(device)
    if backend == "auto":
        backend = "cuda" if device.type == "cuda" else "embree"
    if backend == "embree":
        return EmbreeCaster(vertices, faces)
    if backend == "cuda":
        if device.type != "cuda":
            raise ConfigError("The cuda ray-casting backend needs device='cuda'.")
        return CudaCaster(vertices, faces, device, triangles)
    if backend == "brute":
        return BruteCaster(vertices, faces, device)
    raise ConfigError(f"Unknown ray-casting backend {backend!r}; choose auto, embree, cuda or brute.")
