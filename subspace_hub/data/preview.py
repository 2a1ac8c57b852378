"""A contact sheet of a generated folder: for each dataset, a few scenes and views as RGB, depth and normals, so
a user looks at the data before training on it (``subspace-hub data preview FOLDER``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from subspace_hub.errors import ConfigError


def colour_depth(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[H, W] z-depth -> [H, W, 3] uint8: near is bright, far dark (inverse depth, normalised per view); black
    where nothing was hit."""
    if not mask.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    inverse = np.where(mask, 1.0 / np.maximum(depth, 1e-9), 0.0)
    low, high = np.percentile(inverse[mask], [2, 98])
    scaled = np.clip((inverse - low) / max(high - low, 1e-12), 0, 1)
    # A warm ramp (black -> purple -> orange -> yellow), readable in print and for colour-blind readers.
    ramp = np.stack([np.clip(1.6 * scaled, 0, 1), np.clip(1.6 * scaled - 0.6, 0, 1), 0.5 * np.sin(np.pi * scaled)], -1)
    return np.where(mask[..., None], ramp * 255 + 0.5, 0).astype(np.uint8)


def colour_normals(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[H, W, 3] unit world normals -> [H, W, 3] uint8 as (n + 1) / 2; black where nothing was hit."""
    return np.where(mask[..., None], (normals + 1) / 2 * 255 + 0.5, 0).clip(0, 255).astype(np.uint8)


def contact_sheet(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    datasets: int = 4,
    scenes: int = 3,
    views: int = 3,
    split: str = "train",
    tile: int = 160,
) -> Path:
    """Write a PNG grid of ``folder`` (made by ``subspace-hub data generate``): one block per dataset (its first
    ``datasets``), one row per scene (its first ``scenes``), and for each of its first ``views`` views the RGB
    image, the depth and the normals. Returns the PNG's path (default: ``FOLDER/preview.png``).

    Raises:
        ConfigError: ``folder`` is not a generated folder, or ``split`` is not one of its splits.
    """
    import datasets as hf_datasets
    from PIL import Image, ImageDraw

    from subspace_hub.data.export import RECIPE_FILE, configs_of

    root = Path(folder)
    if not (root / RECIPE_FILE).is_file():
        raise ConfigError(f"{root} is not a folder made by `subspace-hub data generate` (no {RECIPE_FILE}).")
    if datasets < 1 or scenes < 1 or views < 1:
        raise ConfigError(f"datasets, scenes and views must be at least 1, got {datasets}, {scenes} and {views}.")
    from subspace_hub.data.quiet import datasets_quiet
    from subspace_hub.data.sources import load_samples

    blocks = []
    for config in configs_of(root)[:datasets]:
        with datasets_quiet():
            rows = load_samples(str(root), split, config, allow_incomplete=True)
        rows = rows.select(range(min(scenes, len(rows)))) if isinstance(rows, hf_datasets.Dataset) else rows
        lines = []
        for row in rows.with_format("numpy"):
            tiles = []
            for v in range(min(views, len(row["depth"]))):
                image = np.asarray(row["images"][v])
                mask = np.asarray(row["mask"][v])
                for part in (image, colour_depth(row["depth"][v], mask), colour_normals(row["normals"][v], mask)):
                    size = (tile, tile * part.shape[0] // part.shape[1])
                    tiles.append(np.asarray(Image.fromarray(part).resize(size)))
            lines.append(np.concatenate(tiles, axis=1))
        width = max(line.shape[1] for line in lines)
        label = Image.new("RGB", (width, 22), "white")
        ImageDraw.Draw(label).text((6, 5), f"{config}  ({split}: RGB | depth | normals per view)", fill="black")
        blocks.append(np.asarray(label))
        blocks.extend(np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines)
    width = max(block.shape[1] for block in blocks)
    sheet = np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks])
    path = Path(out) if out is not None else root / "preview.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path
