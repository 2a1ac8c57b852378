"""PyTorch views of generated datasets for training: groups of views of one scene (:class:`ViewGroups`), and the
deterministic, resumable order in which training reads them (:class:`BatchPlan`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from subspace_hub.errors import ConfigError


class ViewGroups(torch.utils.data.Dataset):
    """Groups of views of one scene, as tensors: ``images`` [S, 3, H, W] float in [0, 1], ``depth`` [S, H, W],
    ``mask`` [S, H, W] bool, ``normals`` [S, H, W, 3], ``intrinsics`` [S, 3, 3], ``extrinsics`` [S, 3, 4], plus
    ``scene_id`` and ``view_ids``.

    ``dataset[i]`` draws ``views`` views of scene ``i``; ``dataset[i, s]`` draws ``s`` of them (how training varies
    the number of frames per sample). Views are a random subset of the scene's, sorted, drawn from ``seed``, the
    item and ``epoch`` only, so any item can be read again identically; set ``epoch`` to draw new subsets.

    >>> rows = datasets.load_dataset("data/texture", "texture-000", split="train")  # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(ViewGroups(rows, views=8), batch_size=2)  # doctest: +SKIP
    """

    def __init__(self, rows: Any, views: int = 8, *, seed: int = 0) -> None:
        if views < 1:
            raise ConfigError(f"views must be at least 1, got {views}.")
        self.rows = rows.with_format("numpy") if hasattr(rows, "with_format") else rows
        self.views = views
        self.seed = seed
        self.epoch = 0
        column_names = getattr(rows, "column_names", None) or []
        # One column read (no image decoding) tells how many views each record holds.
        self.view_counts: list[int] | None = (
            [len(ids) for ids in rows["view_ids"]] if "view_ids" in column_names else None
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, views = key if isinstance(key, tuple) else (key, self.views)
        row = self.rows[index]
        available = len(row["depth"])
        if available < views:
            raise ConfigError(f"Scene {row['scene_id']} has {available} views in its record; {views} were asked for.")
        entropy = (
            [self.seed, self.epoch, index] if not isinstance(key, tuple) else [self.seed, self.epoch, index, views]
        )
        chosen = np.sort(np.random.default_rng(entropy).choice(available, views, replace=False))
        images = np.asarray(row["images"])[chosen]
        return {
            "scene_id": str(row["scene_id"]),
            "view_ids": torch.as_tensor(np.asarray(row["view_ids"])[chosen]),
            "images": torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0,
            "depth": torch.from_numpy(np.asarray(row["depth"])[chosen]),
            "mask": torch.from_numpy(np.asarray(row["mask"])[chosen]),
            "normals": torch.from_numpy(np.asarray(row["normals"])[chosen]),
            "intrinsics": torch.from_numpy(np.asarray(row["intrinsics"])[chosen]),
            "extrinsics": torch.from_numpy(np.asarray(row["extrinsics"])[chosen]),
        }


class LandmarkRecords(torch.utils.data.Dataset):
    """Landmark records (one 2D view of a set of landmarks each, see :mod:`subspace_hub.interchange`) as tensors:
    ``landmarks2d`` [N, 2], ``visible`` and ``valid`` [N] bool, ``category`` (long), and when present ``landmarks``
    [N, 3] and ``adjacency`` [N, N]. Indexed like :class:`ViewGroups` (``dataset[i]`` or ``dataset[i, views]``, the
    views ignored), so the training engine batches both kinds with one :class:`BatchPlan` (one "view" a sample, a
    batch of ``max_images`` samples)."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows.with_format("numpy") if hasattr(rows, "with_format") else rows
        self.view_counts: list[int] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index = key[0] if isinstance(key, tuple) else key
        row = self.rows[index]
        points = torch.as_tensor(np.asarray(row["landmarks2d"], dtype=np.float32))
        n = points.shape[0]
        item: dict[str, Any] = {
            "scene_id": row.get("scene_id", str(index)),
            "landmarks2d": points,
            "visible": torch.as_tensor(np.asarray(row["visible"], dtype=bool)),
            "valid": torch.as_tensor(np.asarray(row["valid"], dtype=bool))
            if row.get("valid") is not None
            else torch.ones(n, dtype=torch.bool),
            "category": torch.as_tensor(int(np.asarray(row["category"])), dtype=torch.long),
        }
        for key_ in ("landmarks", "adjacency"):
            if row.get(key_) is not None:
                item[key_] = torch.as_tensor(np.asarray(row[key_], dtype=np.float32))
        return item


@dataclass(frozen=True)
class Batch:
    """One training batch: which scenes, and how many views of each."""

    number: int
    """Position in the plan (0-based); the sampler state a checkpoint records."""
    items: tuple[int, ...]
    views: int


@dataclass(frozen=True)
class BatchPlan:
    """The endless, deterministic sequence of training batches over a dataset of ``items`` scenes.

    Batch ``n`` draws its number of views S uniformly from ``[min_views, max_views]`` (VGGT trains on 3-16 frames
    a sample), takes ``max(1, max_images // S)`` scenes (a cap on images a step, so memory stays flat while S
    varies) from a stream of epoch permutations, and lowers S to the fewest views any of them holds. Everything
    follows from ``seed``: a run resumed at batch ``n`` reads exactly what the uninterrupted run read.
    """

    items: int
    min_views: int
    max_views: int
    max_images: int
    seed: int = 0
    view_counts: Sequence[int] | None = None
    """Views held by each scene's record; ``None``: assume ``max_views`` are there."""

    def __post_init__(self) -> None:
        if self.items < 1:
            raise ConfigError("The training data holds no scene.")
        if not 1 <= self.min_views <= self.max_views:
            raise ConfigError(f"Need 1 <= min_views <= max_views, got {self.min_views} and {self.max_views}.")
        if self.max_images < self.min_views:
            raise ConfigError(
                f"max_images ({self.max_images}) must allow one sample of min_views ({self.min_views}) images."
            )

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 0x5EED, epoch]).permutation(self.items)

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate()

    def iterate(self, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...``; the ones before ``start`` are skipped without reading any data."""
        epoch, order, cursor, number = 0, self.epoch_order(0), 0, 0
        while True:
            views = int(np.random.default_rng([self.seed, 0xB47C, number]).integers(self.min_views, self.max_views + 1))
            size = max(1, self.max_images // views)
            items = []
            while len(items) < size:
                if cursor == len(order):
                    epoch, order, cursor = epoch + 1, self.epoch_order(epoch + 1), 0
                take = min(size - len(items), len(order) - cursor)
                items.extend(int(i) for i in order[cursor : cursor + take])
                cursor += take
            if self.view_counts is not None:
                views = min(views, *(self.view_counts[i] for i in items))
            if number >= start:
                yield Batch(number, tuple(items), views)
            number += 1


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of samples with equal shapes into a batch ([B, S, ...]); ``scene_id`` becomes a list."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
