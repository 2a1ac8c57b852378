"""A linear BVH (Karras 2012) over triangles, built in NumPy, for the GPU ray caster.

Triangles are sorted along a 30-bit Morton curve of their centroids; internal node i of the n - 1 covers a
contiguous range of sorted leaves and splits it where the highest differing bit of the (code, index) keys
changes. Every step runs vectorised over all nodes (a few tens of passes), so 200K triangles build in well
under a second on one core. Each internal node stores the boxes of both children, so traversal tests two boxes
per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BVH:
    """Arrays for traversal. Children ``>= 0`` are internal nodes, ``< 0`` leaves ``~child`` (sorted order)."""

    children: np.ndarray
    """[n - 1, 2] int32."""
    boxes: np.ndarray
    """[n - 1, 2, 2, 3] float32: (left, right) x (min, max) x xyz."""
    order: np.ndarray
    """[n] int64: sorted leaf -> original triangle index."""

    @property
    def size(self) -> int:
        return len(self.order)


def _spread(x: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the 10 low bits of x (uint64)."""
    x = (x | (x << np.uint64(16))) & np.uint64(0x030000FF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x0300F00F)
    x = (x | (x << np.uint64(4))) & np.uint64(0x030C30C3)
    return (x | (x << np.uint64(2))) & np.uint64(0x09249249)


def _highest_bit(x: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of each uint64 (-1 for 0)."""
    x = x.copy()
    position = np.zeros(x.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        high = (x >> np.uint64(shift)) != 0
        x = np.where(high, x >> np.uint64(shift), x)
        position += np.where(high, shift, 0)
    return np.where(x != 0, position, -1)


def build_bvh(triangles: np.ndarray) -> BVH:
    """Build over triangles [n, 3, 3] (n >= 2)."""
    n = len(triangles)
    if n < 2:
        triangles = np.concatenate([triangles, triangles[:1]])  # a duplicate leaf keeps the tree well-formed
        n = 2
    low_t, high_t = triangles.min(axis=1), triangles.max(axis=1)
    centroids = (low_t + high_t) / 2
    low, high = centroids.min(axis=0), centroids.max(axis=0)
    cells = ((centroids - low) / np.maximum(high - low, 1e-30) * 1023).astype(np.uint64)
    codes = (_spread(cells[:, 0]) << np.uint64(2)) | (_spread(cells[:, 1]) << np.uint64(1)) | _spread(cells[:, 2])
    order = np.argsort(codes, kind="stable")
    keys = (codes[order] << np.uint64(32)) | np.arange(n, dtype=np.uint64)  # unique: ties broken by position

    def delta(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Common prefix length of keys i and j; -1 where j is out of range."""
        inside = (j >= 0) & (j < n)
        jj = np.clip(j, 0, n - 1)
        return np.where(inside, 63 - _highest_bit(keys[i] ^ keys[jj]), -1)

    i = np.arange(n - 1)
    d = np.where(delta(i, i + 1) - delta(i, i - 1) >= 0, 1, -1)
    delta_min = delta(i, i - d)
    l_max = np.full(n - 1, 2, dtype=np.int64)
    grow = delta(i, i + l_max * d) > delta_min
    while grow.any():
        l_max = np.where(grow, l_max * 2, l_max)
        grow = grow & (delta(i, i + l_max * d) > delta_min)
    length = np.zeros(n - 1, dtype=np.int64)
    step = l_max // 2
    while (step > 0).any():
        take = (step > 0) & (delta(i, i + (length + step) * d) > delta_min)
        length = np.where(take, length + step, length)
        step = step // 2
    j = i + length * d
    delta_node = delta(i, j)
    split = np.zeros(n - 1, dtype=np.int64)
    step = length.copy()
    while True:
        step = (step + 1) // 2
        take = delta(i, i + (split + step) * d) > delta_node
        split = np.where(take, split + step, split)
        if (step <= 1).all():
            break
    gamma = i + split * d + np.minimum(d, 0)
    first, last = np.minimum(i, j), np.maximum(i, j)
    left = np.where(first == gamma, ~gamma, gamma)
    right = np.where(last == gamma + 1, ~(gamma + 1), gamma + 1)
    children = np.stack([left, right], axis=1).astype(np.int64)

    # Boxes bottom-up: node depths from the root, then one vectorised pass per level, deepest first.
    depth = np.full(n - 1, -1, dtype=np.int64)
    depth[0] = 0
    frontier = np.array([0])
    level = 0
    while len(frontier):
        kids = children[frontier].ravel()
        kids = kids[kids >= 0]
        level += 1
        depth[kids] = level
        frontier = kids
    leaf_boxes = np.stack([low_t[order], high_t[order]], axis=1)  # [n, 2, 3]
    node_boxes = np.zeros((n - 1, 2, 3))
    boxes = np.zeros((n - 1, 2, 2, 3))
    for lvl in range(depth.max(), -1, -1):
        nodes = np.nonzero(depth == lvl)[0]
        for side in (0, 1):
            child = children[nodes, side]
            is_leaf = child < 0
            box = np.where(is_leaf[:, None, None], leaf_boxes[np.where(is_leaf, ~child, 0)], node_boxes[np.where(is_leaf, 0, child)])
            boxes[nodes, side] = box
        node_boxes[nodes, 0] = np.minimum(boxes[nodes, 0, 0], boxes[nodes, 1, 0])
        node_boxes[nodes, 1] = np.maximum(boxes[nodes, 0, 1], boxes[nodes, 1, 1])
    return BVH(children.astype(np.int32), boxes.astype(np.float32), order)
