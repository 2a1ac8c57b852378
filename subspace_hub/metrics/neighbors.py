"""Nearest neighbours in 3D: a KD-tree (scipy) for CPU tensors, chunked brute force in torch for GPU tensors.

Both return exact Euclidean distances in float64. The brute-force path ranks candidates with a float32 matrix
product on centred coordinates and recomputes the winners' distances exactly, so a returned distance is exact
for the returned neighbour; only near-ties closer than float32 resolution may pick the other candidate.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Backend = Literal["auto", "kdtree", "brute"]

_BRUTE_ELEMENTS = {"cuda": 2**27, "cpu": 2**22}  # distance-matrix elements per chunk (512 MiB / 16 MiB in float32)


class NeighborIndex:
    """An index over reference points [M, 3] answering k-nearest-neighbour queries.

    >>> index = NeighborIndex(torch.rand(1000, 3, dtype=torch.float64))
    >>> distances, indices = index.query(torch.rand(10, 3, dtype=torch.float64))
    """

    def __init__(self, points: torch.Tensor, backend: Backend = "auto") -> None:
        if backend == "auto":
            backend = "kdtree" if points.device.type == "cpu" else "brute"
        if backend not in ("kdtree", "brute"):
            raise ValueError(f"backend must be 'auto', 'kdtree' or 'brute', got {backend!r}")
        self.points = points
        self.backend = backend
        self._tree = None
        if backend == "kdtree":
            from scipy.spatial import cKDTree

            # Unbalanced trees without compaction build several times faster on large clouds and query as fast.
            self._tree = cKDTree(points.cpu().numpy(), balanced_tree=False, compact_nodes=False)

    def __len__(self) -> int:
        return self.points.shape[0]

    def query(self, queries: torch.Tensor, k: int = 1, distance_upper_bound: float = math.inf) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances and indices of the ``k`` nearest reference points of each query point.

        Returns [N] tensors for ``k == 1`` and [N, k] otherwise, on the queries' device. Neighbours farther than
        ``distance_upper_bound`` come back with distance ``inf`` and index ``-1``; ``k`` is capped at the number
        of reference points.
        """
        k = min(k, len(self))
        if self._tree is not None:
            distances, indices = self._tree.query(queries.cpu().numpy(), k=k, distance_upper_bound=distance_upper_bound, workers=-1)
            distances = torch.from_numpy(distances).to(queries.device)
            indices = torch.from_numpy(indices).to(queries.device)
            indices[~torch.isfinite(distances)] = -1
            return distances, indices
        return self._brute(queries, k, distance_upper_bound)

    def _brute(self, queries: torch.Tensor, k: int, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
        refs = self.points.to(queries.device)
        centre = refs.mean(dim=0)
        refs32 = (refs - centre).float()
        ref_sq = refs32.square().sum(dim=1)
        budget = _BRUTE_ELEMENTS["cuda" if queries.device.type == "cuda" else "cpu"]
        ref_chunk = min(len(refs32), max(budget // 1024, 1))
        query_chunk = max(budget // ref_chunk, 1)
        all_dist, all_idx = [], []
        for q0 in range(0, queries.shape[0], query_chunk):
            q = queries[q0 : q0 + query_chunk]
            q32 = (q - centre).float()
            q_sq = q32.square().sum(dim=1, keepdim=True)
            best_d = best_i = None
            for r0 in range(0, len(refs32), ref_chunk):
                scores = q_sq + ref_sq[None, r0 : r0 + ref_chunk] - 2.0 * (q32 @ refs32[r0 : r0 + ref_chunk].T)
                d, i = scores.topk(min(k, scores.shape[1]), dim=1, largest=False)
                i = i + r0
                if best_d is None:
                    best_d, best_i = d, i
                else:
                    d, order = torch.cat([best_d, d], dim=1).topk(k, dim=1, largest=False)
                    best_i = torch.cat([best_i, i], dim=1).gather(1, order)
                    best_d = d
            exact = (q[:, None, :] - refs[best_i]).norm(dim=-1)  # float64, for the chosen neighbours
            exact, order = exact.sort(dim=1)
            all_dist.append(exact)
            all_idx.append(best_i.gather(1, order))
        distances, indices = torch.cat(all_dist), torch.cat(all_idx)
        if math.isfinite(bound):
            far = distances > bound
            distances = distances.masked_fill(far, math.inf)
            indices = indices.masked_fill(far, -1)
        if k == 1:
            return distances[:, 0], indices[:, 0]
        return distances, indices
