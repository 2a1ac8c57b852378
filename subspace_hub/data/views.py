"""A PyTorch view of generated datasets: each item is a group of views of one scene."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from subspace_hub.errors import ConfigError


class ViewGroups(torch.utils.data.Dataset):
    """``views`` views of one scene per item, as tensors: ``images`` [S, 3, H, W] float in [0, 1], ``depth``
    [S, H, W], ``mask`` [S, H, W] bool, ``normals`` [S, H, W, 3], ``intrinsics`` [S, 3, 3], ``extrinsics``
    [S, 3, 4], plus ``scene_id`` and ``view_ids``. Views are a random subset of the scene's (sorted, drawn from
    ``seed`` and the item index, so an epoch is reproducible); set ``epoch`` to draw new subsets.

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

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        available = len(row["depth"])
        if available < self.views:
            raise ConfigError(
                f"Scene {row['scene_id']} has {available} views in its record; {self.views} were asked for."
            )
        rng = np.random.default_rng([self.seed, self.epoch, index])
        chosen = np.sort(rng.choice(available, self.views, replace=False))
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
