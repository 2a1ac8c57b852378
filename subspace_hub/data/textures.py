"""Procedural textures: the material pool of the synthetic scenes.

MegaSynth samples its materials from MatSynth, which cannot be downloaded here, so textures come from procedural
families (noise, marble, wood, checker, stripes, bricks, cells, dots), each drawn with a random palette,
frequency and orientation; a folder of the user's own images can replace them. Everything is deterministic in
the seed. Textures are float32 [T, T, 3] in [0, 1], tileable (periodic) so they repeat without seams.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from subspace_hub.errors import ConfigError

FAMILIES: tuple[str, ...] = ("noise", "marble", "wood", "checker", "stripes", "bricks", "cells", "dots")


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """n colours around a random hue (HSV sampled, then converted), float32 [n, 3]."""
    hue = (rng.random() + rng.normal(0, 0.08, n)) % 1.0
    sat = np.clip(rng.uniform(0.15, 0.85) + rng.normal(0, 0.1, n), 0, 1)
    val = np.clip(rng.uniform(0.3, 0.95, n), 0, 1)
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)]
    return np.array([table[k][c][j] for j, k in enumerate(i) for c in range(3)], dtype=np.float32).reshape(n, 3)


@lru_cache(maxsize=32)
def _wrap_upsample_map(cells: int, size: int) -> np.ndarray:
    """[size, cells] matrix M with M @ lattice @ M.T the periodic cubic upsampling of a cells x cells lattice."""
    from scipy.ndimage import zoom

    columns = []
    for k in range(cells):
        unit = np.zeros(cells + 4)  # the lattice with a 2-cell periodic border on each side
        unit[2 + k] = 1.0
        if k >= cells - 2:
            unit[2 + k - cells] = 1.0
        if k < 2:
            unit[2 + k + cells] = 1.0
        up = zoom(unit, size / cells, order=3, mode="grid-wrap", grid_mode=True)
        offset = int(round(2 * size / cells))
        columns.append(up[offset : offset + size])
    return np.stack(columns, axis=1)


def _periodic_noise(rng: np.random.Generator, size: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    """Tileable fractal value noise in [0, 1]: periodic cubic upsamplings of random lattices over octaves."""
    total = np.zeros((size, size), dtype=np.float64)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        cells = base * 2**octave
        if cells > size:
            break
        m = _wrap_upsample_map(cells, size)
        total += amplitude * (m @ rng.random((cells, cells)) @ m.T)
        norm += amplitude
        amplitude *= 0.5
    total /= norm
    return (total - total.min()) / max(total.max() - total.min(), 1e-9)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size) + 0.5) / size
    return np.meshgrid(coords, coords, indexing="xy")


def _mix(colours: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Piecewise-linear colour ramp through ``colours`` at t in [0, 1]."""
    t = np.clip(t, 0, 1) * (len(colours) - 1)
    i = np.minimum(np.floor(t).astype(int), len(colours) - 2)
    f = (t - i)[..., None]
    return colours[i] * (1 - f) + colours[i + 1] * f


def procedural_texture(seed: int, size: int = 128, family: str | None = None) -> np.ndarray:
    """One texture [size, size, 3] float32 in [0, 1] of ``family`` (random family when ``None``)."""
    rng = np.random.default_rng(seed)
    family = family or FAMILIES[int(rng.integers(len(FAMILIES)))]
    if family not in FAMILIES:
        raise ConfigError(f"Unknown texture family {family!r}; choose from {', '.join(FAMILIES)}.")
    colours = _palette(rng, 4)
    x, y = _grid(size)
    k = int(rng.integers(2, 9))  # repetitions per tile (integers keep it periodic)
    if family == "noise":
        value = _periodic_noise(rng, size)
    elif family == "marble":
        value = 0.5 + 0.5 * np.sin(2 * np.pi * (k * x + 4 * _periodic_noise(rng, size)))
    elif family == "wood":
        rings = k * np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2 * 0.1) * 4 + 2 * _periodic_noise(rng, size)
        value = rings - np.floor(rings)
    elif family == "checker":
        value = ((np.floor(k * x) + np.floor(k * y)) % 2).astype(np.float64) * 0.8 + 0.2 * _periodic_noise(rng, size, 3)
    elif family == "stripes":
        angle_x, angle_y = (int(v) for v in rng.integers(0, 4, 2))
        phase = (angle_x + 1) * k * x + angle_y * k * y
        value = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * phase)) * 0.8 + 0.1 * _periodic_noise(rng, size, 3)
    elif family == "bricks":
        rows = k
        row = np.floor(y * rows)
        shifted = x * (k // 2 + 1) + 0.5 * (row % 2)
        mortar = (np.minimum(shifted % 1, 1 - shifted % 1) < 0.04) | (
            np.minimum((y * rows) % 1, 1 - (y * rows) % 1) < 0.06
        )
        value = np.where(mortar, 0.05, 0.5 + 0.4 * _periodic_noise(rng, size, 4))
    elif family == "cells":
        points = rng.random((k * k, 2))
        d = np.full((size, size), np.inf)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                px, py = points[:, 0] + dx, points[:, 1] + dy
                d = np.minimum(d, np.min((x[..., None] - px) ** 2 + (y[..., None] - py) ** 2, axis=-1))
        value = np.sqrt(d) * k
    else:  # dots
        cx, cy = (x * k) % 1 - 0.5, (y * k) % 1 - 0.5
        radius = rng.uniform(0.15, 0.4)
        value = (np.sqrt(cx**2 + cy**2) < radius).astype(np.float64) * 0.85 + 0.15 * _periodic_noise(rng, size, 3)
    return np.clip(_mix(colours, value), 0, 1).astype(np.float32)


def texture_pool(seed: int, count: int, size: int = 128, folder: str | Path | None = None) -> np.ndarray:
    """``count`` textures [count, size, size, 3]: procedural ones drawn from ``seed``, or images sampled (with
    the seed) from ``folder`` (PNG/JPEG, resized to size x size)."""
    if count < 1:
        raise ConfigError("A texture pool needs at least one texture.")
    rng = np.random.default_rng(seed)
    if folder is None:
        return np.stack([procedural_texture(int(s), size) for s in rng.integers(0, 2**63 - 1, count)])
    files = sorted(
        p
        for p in Path(folder).expanduser().iterdir()
        if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    )
    if not files:
        raise ConfigError(f"No texture images (.png/.jpg/...) in {folder}.")
    from PIL import Image

    chosen: Sequence[Path] = [files[int(i)] for i in rng.integers(0, len(files), count)]
    return np.stack(
        [
            np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
            / 255.0
            for f in chosen
        ]
    )
