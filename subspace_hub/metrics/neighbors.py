"""Exact nearest neighbours in 3D: a KD-tree (pykdtree, on ``torch.get_num_threads()`` OpenMP threads) or chunked
brute force in torch.

``auto`` takes the KD-tree for CPU and CUDA tensors alike (CUDA queries travel to the CPU and the answers
back): measured on an H100 against 16 CPU threads (BENCHMARKS.md), brute force on the GPU needs 22.6 s for one
nearest-neighbour pass over 1M x 1M points where the tree needs well under a second, because a 3-wide distance
computation is bound by memory traffic, not arithmetic. ``brute`` keeps everything on the tensors' device
(useful for small clouds inside GPU code); it computes float64 distances on centred coordinates.

pykdtree rather than scipy's ``cKDTree``: the same exact answers (float64 throughout), about 1.8x faster for the
one-neighbour queries of ICP and chamfer distances and 1.1x for the 30-neighbour queries of normals (2 cores,
BENCHMARKS.md).
"""

from __future__ import annotations

import math
import os
from typing import Literal

import numpy as np
import torch

Backend = Literal["auto", "kdtree", "brute"]

_BRUTE_ELEMENTS = {"cuda": 2**28, "cpu": 2**22}  # distance-matrix elements per chunk (1 GiB / 16 MiB in float32)
_SORT_QUERIES_FROM = 50_000


def morton_order(points: np.ndarray) -> np.ndarray:
    """A permutation putting [N, 3] points in Z-order (21 bits per axis): neighbours in space end up close."""
    low, high = points.min(axis=0), points.max(axis=0)
    cells = ((points - low) / np.maximum(high - low, 1e-300) * (2**21 - 1)).astype(np.uint64)

    def spread(x: np.ndarray) -> np.ndarray:  # insert two zero bits between the 21 bits of x
        x = (x | (x << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
        x = (x | (x << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
        x = (x | (x << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
        x = (x | (x << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
        return (x | (x << np.uint64(2))) & np.uint64(0x1249249249249249)

    codes = spread(cells[:, 0]) | (spread(cells[:, 1]) << np.uint64(1)) | (spread(cells[:, 2]) << np.uint64(2))
    return np.argsort(codes, kind="stable")


_CONTROLLER = None
_FORKED = False


def _after_fork_in_child() -> None:
    global _FORKED
    _FORKED = True


# GNU OpenMP is not fork-safe: a child forked after its parent ran a parallel region hangs in its first one with more
# than one thread (a DataLoader worker, a fork-based process pool). Forked children query on one thread.
os.register_at_fork(after_in_child=_after_fork_in_child)


def _openmp_threads(threads: int):
    """A context in which OpenMP libraries (pykdtree's) use ``threads`` threads (one in a forked child), restored
    on exit."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1 if _FORKED else threads, user_api="openmp")


class NeighborIndex:
    """An index over reference points [M, 3] answering k-nearest-neighbour queries.

    >>> index = NeighborIndex(torch.rand(1000, 3, dtype=torch.float64))
    >>> distances, indices = index.query(torch.rand(10, 3, dtype=torch.float64))
    """

    def __init__(self, points: torch.Tensor, backend: Backend = "auto") -> None:
        if backend == "auto":
            backend = "kdtree"
        if backend not in ("kdtree", "brute"):
            raise ValueError(f"backend must be 'auto', 'kdtree' or 'brute', got {backend!r}")
        self.points = points
        self.backend = backend
        self._tree = None
        self._order: torch.Tensor | None = None
        if backend == "kdtree":
            from pykdtree.kdtree import KDTree

            self._tree = KDTree(np.ascontiguousarray(points.detach().cpu().numpy(), dtype=np.float64))

    def __len__(self) -> int:
        return self.points.shape[0]

    def query(
        self,
        queries: torch.Tensor,
        k: int = 1,
        distance_upper_bound: float = math.inf,
        *,
        sort: bool = True,
        order: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances and indices of the ``k`` nearest reference points of each query point.

        Returns [N] tensors for ``k == 1`` and [N, k] otherwise, on the queries' device. Neighbours at
        ``distance_upper_bound`` or farther come back with distance ``inf`` and index ``-1``; ``k`` is capped at the
        number of reference points. Large query sets are asked in spatial order (a Z-curve): ``order`` gives that
        permutation of the queries when the caller has it (e.g. another index's :meth:`spatial_order` over the same
        points), ``sort=False`` asks them as they are (queries already in spatial order).
        """
        k = min(k, len(self))
        if self._tree is None:
            return self._brute(queries, k, distance_upper_bound)
        array = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float64)
        if order is not None:
            order = order.cpu().numpy()
        elif sort and len(array) >= _SORT_QUERIES_FROM:
            # Queries in spatial order walk the tree with far fewer cache misses (about 2x faster on 1M points).
            order = morton_order(array)
        distances, indices = self._ask(array if order is None else array[order], k, distance_upper_bound)
        indices = indices.astype(np.int64)
        if order is not None:
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            distances, indices = distances[inverse], indices[inverse]
        distances = torch.from_numpy(distances).to(queries.device)
        indices = torch.from_numpy(indices).to(queries.device)
        if math.isfinite(distance_upper_bound):
            indices[~torch.isfinite(distances)] = -1
        return distances, indices

    def neighbors(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """Indices [N, k] (int32 or int64) of the ``k`` nearest reference points of queries already in spatial
        order, nearest first, without their distances: the lean path of normal estimation."""
        k = min(k, len(self))
        if self._tree is None:
            return self._brute(queries, k, math.inf)[1].reshape(queries.shape[0], k)
        array = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float64)
        _, indices = self._ask(array, k, math.inf, squared=True)
        # pykdtree answers uint32 below 2**32 points: below 2**31 the same bits are a valid int32 index (index_select
        # takes int32), which saves a widening pass over the N x k answers
        narrow = indices.dtype == np.uint32 and len(self) < 2**31
        indices = indices.view(np.int32) if narrow else indices.astype(np.int64)
        return torch.from_numpy(indices).reshape(len(array), k).to(queries.device)

    def _ask(self, array: np.ndarray, k: int, bound: float, squared: bool = False) -> tuple[np.ndarray, np.ndarray]:
        # As many threads as torch may use: processes that share the cores (torch.set_num_threads) stay in their share.
        with _openmp_threads(torch.get_num_threads()):
            return self._tree.query(
                array, k=k, distance_upper_bound=None if math.isinf(bound) else bound, sqr_dists=squared
            )

    def spatial_order(self) -> torch.Tensor:
        """A permutation of the reference points in which neighbours are close (Z-order; computed once)."""
        if self._order is None:
            self._order = torch.from_numpy(morton_order(self.points.detach().cpu().numpy())).to(self.points.device)
        return self._order

    def _brute(self, queries: torch.Tensor, k: int, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
        refs = self.points.to(queries.device)
        centre = refs.mean(dim=0)
        refs_c = refs - centre  # centred coordinates keep |q|^2 + |r|^2 - 2 q.r accurate
        ref_sq = refs_c.square().sum(dim=1)
        budget = _BRUTE_ELEMENTS["cuda" if queries.device.type == "cuda" else "cpu"]
        ref_chunk = min(len(refs_c), max(budget // 1024, 1))
        query_chunk = max(budget // ref_chunk, 1)
        all_dist, all_idx = [], []
        for q0 in range(0, queries.shape[0], query_chunk):
            q = queries[q0 : q0 + query_chunk]
            q_c = q - centre
            q_sq = q_c.square().sum(dim=1, keepdim=True)
            best_d = best_i = None
            for r0 in range(0, len(refs_c), ref_chunk):
                scores = q_sq + ref_sq[None, r0 : r0 + ref_chunk] - 2.0 * (q_c @ refs_c[r0 : r0 + ref_chunk].T)
                d, i = scores.topk(min(k, scores.shape[1]), dim=1, largest=False)
                i = i + r0
                if best_d is None:
                    best_d, best_i = d, i
                else:
                    d, order = torch.cat([best_d, d], dim=1).topk(k, dim=1, largest=False)
                    best_i = torch.cat([best_i, i], dim=1).gather(1, order)
                    best_d = d
            exact = (q[:, None, :] - refs[best_i]).norm(dim=-1)  # the chosen neighbours' distances, directly
            exact, order = exact.sort(dim=1)
            all_dist.append(exact)
            all_idx.append(best_i.gather(1, order))
        distances, indices = torch.cat(all_dist), torch.cat(all_idx)
        if math.isfinite(bound):
            far = distances >= bound  # as the tree (and scipy's cKDTree): a neighbour at the bound is out
            distances = distances.masked_fill(far, math.inf)
            indices = indices.masked_fill(far, -1)
        if k == 1:
            return distances[:, 0], indices[:, 0]
        return distances, indices
