"""A linear BVH (Karras 2012) over triangles, built with vectorised torch ops on the CPU or the GPU.

Triangles are sorted along a 30-bit Morton curve of their centroids; internal node i of the n - 1 covers a
contiguous range of sorted leaves and splits it where the highest differing bit of the (code, position) keys
changes. Every step runs over all nodes at once (a few tens of passes, each over the nodes still searching), so a
scene of 200K triangles builds in milliseconds on a GPU. Each internal node stores the boxes of both children,
so traversal tests two boxes per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class BVH:
    """Arrays for traversal. Children ``>= 0`` are internal nodes, ``< 0`` leaves ``~child`` (sorted order)."""

    children: torch.Tensor
    """[n - 1, 2] int32."""
    boxes: torch.Tensor
    """[n - 1, 2, 2, 3] float32: (left, right) x (min, max) x xyz."""
    order: torch.Tensor
    """[n] int64: sorted leaf -> triangle index."""

    @property
    def size(self) -> int:
        return len(self.order)


def _spread(x: torch.Tensor) -> torch.Tensor:
    """Insert two zero bits between each of the 10 low bits of x (int64)."""
    x = (x | (x << 16)) & 0x030000FF
    x = (x | (x << 8)) & 0x0300F00F
    x = (x | (x << 4)) & 0x030C30C3
    return (x | (x << 2)) & 0x09249249


def _highest_bit(x: torch.Tensor) -> torch.Tensor:
    """Index of the highest set bit of non-negative int64 values (-1 for 0): frexp on the two 32-bit halves,
    each exact in float64."""
    high = (x >> 32).double()
    low = (x & 0xFFFFFFFF).double()
    high_bit = torch.frexp(high).exponent.long() - 1
    low_bit = torch.frexp(low).exponent.long() - 1
    return torch.where(high > 0, high_bit + 32, torch.where(low > 0, low_bit, torch.full_like(low_bit, -1)))


def _sorted_keys(tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triangle bounds, the Morton order of their centroids (30-bit codes) and the sorted, unique 62-bit keys
    ``code << 32 | position``."""
    low_t, high_t = tri.min(dim=1).values, tri.max(dim=1).values
    centroids = (low_t + high_t) / 2
    low, high = centroids.min(dim=0).values, centroids.max(dim=0).values
    cells = ((centroids - low) / (high - low).clamp(min=1e-30) * 1023).long()
    codes = (_spread(cells[:, 0]) << 2) | (_spread(cells[:, 1]) << 1) | _spread(cells[:, 2])
    codes, order = torch.sort(codes, stable=True)
    keys = (codes << 32) | torch.arange(len(tri), device=tri.device)
    return low_t, high_t, order, keys.contiguous()


def build_bvh(triangles: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> BVH:
    """Build over triangles [n, 3, 3] (n >= 2) on ``device`` (default: the triangles' device, or the CPU). On a
    GPU with CuPy the hierarchy and boxes come from two CUDA kernels (:func:`_build_cuda`)."""
    tri = torch.as_tensor(triangles)
    tri = tri.to(device=device if device is not None else tri.device, dtype=torch.float64)
    n = len(tri)
    if n < 2:
        raise ValueError("a BVH needs at least two triangles")
    dev = tri.device
    if dev.type == "cuda" and _cupy() is not None:
        return _build_cuda(tri)
    low_t, high_t, order, keys = _sorted_keys(tri)

    def delta(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Common prefix length of keys i and j; -1 where j is out of range."""
        inside = (j >= 0) & (j < n)
        jj = j.clamp(0, n - 1)
        return torch.where(inside, 63 - _highest_bit(keys[i] ^ keys[jj]), torch.full_like(j, -1))

    i = torch.arange(n - 1, device=dev)
    d = torch.where(delta(i, i + 1) - delta(i, i - 1) >= 0, 1, -1)
    delta_min = delta(i, i - d)
    # Fixed pass counts instead of "until done" loops: nothing waits for the GPU until the tree is finished.
    passes = max(1, (n - 1).bit_length()) + 1
    l_max = torch.full((n - 1,), 2, dtype=torch.long, device=dev)
    for _ in range(passes):  # double an upper bound of the range length
        l_max = torch.where(delta(i, i + l_max * d) > delta_min, l_max * 2, l_max)
    length = torch.zeros(n - 1, dtype=torch.long, device=dev)
    for k in range(1, passes + 2):  # binary search of the length below that bound
        step = l_max >> k
        take = (step > 0) & (delta(i, i + (length + step) * d) > delta_min)
        length = torch.where(take, length + step, length)
    j = i + length * d
    delta_node = delta(i, j)
    # Split: the last leaf sharing more than delta_node bits with node i (Karras' do-while, unrolled).
    split = torch.zeros(n - 1, dtype=torch.long, device=dev)
    for k in range(1, passes + 2):
        step = (length + (1 << k) - 1) >> k  # ceil(length / 2^k)
        previous = (length + (1 << (k - 1)) - 1) >> (k - 1)
        take = ((previous > 1) | (k == 1)) & (delta(i, i + (split + step) * d) > delta_node)
        split = torch.where(take, split + step, split)
    gamma = i + split * d + torch.clamp(d, max=0)
    first, last = torch.minimum(i, j), torch.maximum(i, j)
    left = torch.where(first == gamma, ~gamma, gamma)
    right = torch.where(last == gamma + 1, ~(gamma + 1), gamma + 1)
    children = torch.stack([left, right], dim=1)

    # Each child covers a contiguous run of sorted leaves ([first, gamma] and [gamma + 1, last]), so its box is
    # a range minimum/maximum over the leaf boxes: a sparse table answers all of them at once.
    leaf_low = _round(low_t[order].float(), -math.inf)
    leaf_high = _round(high_t[order].float(), math.inf)
    lows, highs = [leaf_low], [leaf_high]
    while 2 ** len(lows) <= n:
        half = 2 ** (len(lows) - 1)
        lows.append(torch.minimum(lows[-1][:-half], lows[-1][half:]))
        highs.append(torch.maximum(highs[-1][:-half], highs[-1][half:]))

    def range_box(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """[m, 2, 3] box of sorted leaves a..b (inclusive)."""
        level = _highest_bit(b - a + 1)
        out = torch.empty((len(a), 2, 3), dtype=torch.float32, device=dev)
        for k in range(len(lows)):  # gather per level; each range uses exactly one level
            rows = torch.nonzero(level == k)[:, 0] if dev.type == "cpu" else None
            if rows is None:
                mask = (level == k)[:, None]
                lo = torch.minimum(
                    lows[k][a.clamp(max=len(lows[k]) - 1)], lows[k][(b - 2**k + 1).clamp(0, len(lows[k]) - 1)]
                )
                hi = torch.maximum(
                    highs[k][a.clamp(max=len(highs[k]) - 1)], highs[k][(b - 2**k + 1).clamp(0, len(highs[k]) - 1)]
                )
                out[:, 0] = torch.where(mask, lo, out[:, 0])
                out[:, 1] = torch.where(mask, hi, out[:, 1])
            elif len(rows):
                ra, rb = a[rows], b[rows] - 2**k + 1
                out[rows, 0] = torch.minimum(lows[k][ra], lows[k][rb])
                out[rows, 1] = torch.maximum(highs[k][ra], highs[k][rb])
        return out

    boxes = torch.stack([range_box(first, gamma), range_box(gamma + 1, last)], dim=1)
    return BVH(children.int(), boxes, order)


def _round(x: torch.Tensor, towards: float) -> torch.Tensor:
    """float32 values nudged one ulp towards ``towards``: boxes converted from float64 stay conservative."""
    return torch.nextafter(x, torch.full_like(x, towards))


def _cupy():
    try:
        import cupy

        return cupy
    except ImportError:
        return None


_BUILD_KERNELS = r"""
__device__ __forceinline__ int prefix(const long long* keys, int n, int i, int j) {
    if (j < 0 || j >= n) return -1;
    return __clzll(keys[i] ^ keys[j]);
}

extern "C" __global__ void internal_nodes(const long long* keys, const int n, int* children, int* parents) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n - 1) return;
    const int d = (prefix(keys, n, i, i + 1) - prefix(keys, n, i, i - 1)) >= 0 ? 1 : -1;
    const int delta_min = prefix(keys, n, i, i - d);
    int l_max = 2;
    while (prefix(keys, n, i, i + l_max * d) > delta_min) l_max *= 2;
    int l = 0;
    for (int t = l_max / 2; t >= 1; t /= 2)
        if (prefix(keys, n, i, i + (l + t) * d) > delta_min) l += t;
    const int j = i + l * d;
    const int delta_node = prefix(keys, n, i, j);
    int s = 0, t = l;
    do {
        t = (t + 1) / 2;
        if (prefix(keys, n, i, i + (s + t) * d) > delta_node) s += t;
    } while (t > 1);
    const int gamma = i + s * d + min(d, 0);
    const int left = min(i, j) == gamma ? ~gamma : gamma;
    const int right = max(i, j) == gamma + 1 ? ~(gamma + 1) : gamma + 1;
    children[2 * i] = left;
    children[2 * i + 1] = right;
    parents[left >= 0 ? left : n - 1 + ~left] = i;
    parents[right >= 0 ? right : n - 1 + ~right] = i;
}

extern "C" __global__ void node_boxes(const float* leaf_boxes, const int* children, const int* parents, const int n,
                                      float* boxes, int* arrivals) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    float lo[3], hi[3];
    for (int a = 0; a < 3; ++a) { lo[a] = leaf_boxes[6 * k + a]; hi[a] = leaf_boxes[6 * k + 3 + a]; }
    int code = ~k, slot = n - 1 + k;
    while (true) {  // climb while this thread is the second to reach a node
        const int p = parents[slot];
        const int side = children[2 * p] == code ? 0 : 1;
        float* mine = boxes + 12 * p + 6 * side;
        for (int a = 0; a < 3; ++a) { mine[a] = lo[a]; mine[3 + a] = hi[a]; }
        __threadfence();
        if (atomicAdd(arrivals + p, 1) == 0) return;
        __threadfence();
        const volatile float* other = boxes + 12 * p + 6 * (1 - side);
        for (int a = 0; a < 3; ++a) { lo[a] = fminf(lo[a], other[a]); hi[a] = fmaxf(hi[a], other[3 + a]); }
        if (p == 0) return;
        code = p; slot = p;
    }
}
"""
_KERNELS: dict[str, object] = {}


def _build_cuda(tri: torch.Tensor) -> BVH:
    """Karras' construction in one CUDA thread per internal node, boxes bottom-up by the second thread to reach
    each node; the Morton codes and their sort are torch ops."""
    cupy = _cupy()
    if not _KERNELS:
        module = cupy.RawModule(code=_BUILD_KERNELS)
        _KERNELS.update(internal=module.get_function("internal_nodes"), boxes=module.get_function("node_boxes"))
    n = len(tri)
    dev = tri.device
    low_t, high_t, order, keys = _sorted_keys(tri)
    children = torch.empty((n - 1, 2), dtype=torch.int32, device=dev)
    parents = torch.empty(2 * n - 1, dtype=torch.int32, device=dev)
    leaf_boxes = torch.stack(
        [_round(low_t[order].float(), -math.inf), _round(high_t[order].float(), math.inf)], dim=1
    ).contiguous()
    boxes = torch.empty((n - 1, 2, 2, 3), dtype=torch.float32, device=dev)
    arrivals = torch.zeros(n - 1, dtype=torch.int32, device=dev)
    threads = 256
    view = cupy.from_dlpack
    with cupy.cuda.Device(dev.index or 0):
        _KERNELS["internal"](
            ((n - 1 + threads - 1) // threads,), (threads,), (view(keys), np.int32(n), view(children), view(parents))
        )
        _KERNELS["boxes"](
            ((n + threads - 1) // threads,),
            (threads,),
            (view(leaf_boxes), view(children), view(parents), np.int32(n), view(boxes), view(arrivals)),
        )
    return BVH(children, boxes, order)
