"""Generating attribute-family datasets into a folder that ``datasets.load_dataset(folder, config)`` reads.

Layout::

    out/
      README.md                     dataset card: `configs:` header, licence, every generation parameter
      recipe.json                   the same parameters, machine-readable (checked when resuming)
      texture-000/train-00000-of-00004.parquet ...
      texture-000/test-00000-of-00001.parquet

One config per dataset of the family; its scenes split into ``train`` and ``test`` (the last ``test_fraction``
of the scenes). One parquet row holds one scene's views (``views_per_record`` splits long paths into several
rows with the same ``scene_id``): PNG images, z-depth, mask, normals and cameras, so a loader can sample 4-16
views of a scene from one row.

Shards are written to a temporary file and renamed, and a shard that exists is never redone: an interrupted
generation resumes where it stopped. Every scene is rebuilt from its own seeds, so the bytes do not depend on
the order, the number of workers or interruptions.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from subspace_hub._version import __version__
from subspace_hub.data.choices import CAMERA_MODES, LAYOUTS
from subspace_hub.data.families import FAMILIES, SEED_KEYS, DatasetRecipe
from subspace_hub.errors import ConfigError
from subspace_hub.fileio import atomic_write, read_json_object
from subspace_hub.templates import DATASET_CARD

RECIPE_FILE = "recipe.json"
LICENSE = "cc0-1.0"


@dataclass(frozen=True)
class GenerationSpec:
    """What ``subspace-hub data generate`` makes: ``datasets`` datasets of ``family``, each with ``scenes`` scenes."""

    family: str
    datasets: int = 1
    scenes: int = 8
    views: int = 24
    height: int = 518
    """Pixels; 518 is VGGT's training resolution (37 patches of 14). Pick multiples of your backbone's patch."""
    width: int = 518
    camera_mode: str = "orbit"
    seed: int = 0
    test_fraction: float = 0.1
    mesh_resolution: int = 16
    texture_size: int = 128
    texture_pool: int = 16
    texture_folder: str | None = None
    layout: str = "attribute"
    """``attribute`` (the paper's attribute scenes) or ``megasynth`` (MegaSynth's full rooms)."""
    object_centred: bool = False
    """Leave the room shell out (objects against the sky), in every family."""
    geometry_jitter: float = 0.0
    """Texture family only: 0 is the paper's experiment 1 (geometry fixed), > 0 its experiment 2 (e.g. 0.05)."""
    samples: int = 4
    """Rays per pixel for colour (a square number; 1: the pixel centre only, aliased)."""
    shadows: bool = True
    ambient_occlusion: bool = True
    soft_shadows: bool = True
    views_per_record: int | None = None
    scenes_per_shard: int | None = None

    def __post_init__(self) -> None:
        problems = []  # every problem at once, so a recipe is fixed in one go
        if self.family not in FAMILIES:
            problems.append(f"unknown attribute family {self.family!r}; choose from {', '.join(FAMILIES)}")
        for name in ("datasets", "scenes", "views"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.height < 8 or self.width < 8:
            problems.append(f"images must be at least 8 x 8 pixels, got {self.height} x {self.width}")
        if not 0 <= self.test_fraction < 1:
            problems.append(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.layout not in LAYOUTS:
            problems.append(f"unknown layout {self.layout!r}; choose from {', '.join(LAYOUTS)}")
        if self.camera_mode not in CAMERA_MODES:
            problems.append(f"unknown camera mode {self.camera_mode!r}; choose from {', '.join(CAMERA_MODES)}")
        if self.geometry_jitter and self.family != "texture":
            problems.append("geometry_jitter applies to the texture family only (its experiment 2)")
        elif not 0 <= self.geometry_jitter <= 0.5:
            problems.append(f"geometry_jitter must be in [0, 0.5], got {self.geometry_jitter}")
        if self.samples < 1 or math.isqrt(self.samples) ** 2 != self.samples:
            problems.append(f"samples must be a square number (1, 4, 9, 16, ...), got {self.samples}")
        if problems:
            raise ConfigError("Invalid data generation settings: " + "; ".join(problems) + ".")

    def render_settings(self) -> Any:
        """The :class:`~subspace_hub.data.render.RenderSettings` of this generation."""
        from subspace_hub.data.render import RenderSettings

        return RenderSettings(
            samples=self.samples,
            shadows=self.shadows,
            ambient_occlusion=self.ambient_occlusion,
            soft_shadows=self.soft_shadows,
        )

    def dataset(self, index: int) -> DatasetRecipe:
        return DatasetRecipe(
            self.family,
            index,
            self.seed,
            self.scenes,
            self.views,
            self.camera_mode,
            self.mesh_resolution,
            self.texture_size,
            self.texture_pool,
            self.texture_folder,
            self.layout,
            self.object_centred,
            self.geometry_jitter,
        )

    def splits(self) -> dict[str, list[int]]:
        """Scene numbers of each split: the last ``ceil(test_fraction * scenes)`` scenes are ``test``."""
        test = min(math.ceil(self.test_fraction * self.scenes), self.scenes - 1) if self.test_fraction > 0 else 0
        out = {"train": list(range(self.scenes - test))}
        if test:
            out["test"] = list(range(self.scenes - test, self.scenes))
        return out

    def shard_size(self) -> int:
        """Scenes per parquet shard: about 256 MB of uncompressed depth, mask and normals per shard."""
        if self.scenes_per_shard:
            return self.scenes_per_shard
        per_scene = self.views * self.height * self.width * (4 + 1 + 12 + 3)
        return max(1, min(64, (256 << 20) // per_scene))

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": 1, "library": "subspace-hub", "library_version": __version__, **asdict(self)}

    def fingerprint(self) -> str:
        """16 hex digits of the sha256 of :meth:`to_dict`: the data is a function of the recipe, so equal
        fingerprints mean equal bytes."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Shard:
    """One parquet file: these scenes of one dataset's split."""

    config: str
    dataset_index: int
    split: str
    number: int
    total: int
    scenes: tuple[int, ...]

    def path(self, root: Path) -> Path:
        return root / self.config / f"{self.split}-{self.number:05d}-of-{self.total:05d}.parquet"


def plan(spec: GenerationSpec) -> list[Shard]:
    shards = []
    size = spec.shard_size()
    for index in range(spec.datasets):
        config = spec.dataset(index).name
        for split, scenes in spec.splits().items():
            chunks = [tuple(scenes[i : i + size]) for i in range(0, len(scenes), size)]
            shards += [Shard(config, index, split, n, len(chunks), chunk) for n, chunk in enumerate(chunks)]
    return shards


def features(spec: GenerationSpec) -> Any:
    import datasets

    h, w = spec.height, spec.width
    return datasets.Features(
        {
            "scene_id": datasets.Value("string"),
            "view_ids": datasets.Sequence(datasets.Value("int32")),
            "images": datasets.Sequence(datasets.Image()),
            "depth": datasets.Array3D((None, h, w), "float32"),
            "mask": datasets.Array3D((None, h, w), "bool"),
            "normals": datasets.Array4D((None, h, w, 3), "float32"),
            "intrinsics": datasets.Array3D((None, 3, 3), "float32"),
            "extrinsics": datasets.Array3D((None, 3, 4), "float32"),
            "seeds": {k: datasets.Value("int64") for k in SEED_KEYS},
        }
    )


def _png(image: np.ndarray) -> dict[str, Any]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return {"bytes": buffer.getvalue(), "path": None}


def scene_rows(
    spec: GenerationSpec,
    dataset: DatasetRecipe,
    number: int,
    scene: Any = None,
    *,
    backend: str = "auto",
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Render scene ``number`` of ``dataset`` (built here unless given) into its rows: one, or one per
    ``views_per_record`` views. Images stay raw uint8 arrays; :func:`write_rows` encodes them."""
    from subspace_hub.data.render import render_scene
    from subspace_hub.data.scene import generate_scene

    recipe = dataset.scene(number)
    scene = scene if scene is not None else generate_scene(recipe)
    settings = spec.render_settings()
    views = render_scene(scene, spec.height, spec.width, backend=backend, device=device, settings=settings)
    step = spec.views_per_record or spec.views
    seeds = {k: v for k, v in recipe.to_dict().items() if k.endswith("_seed")}
    rows = []
    for start in range(0, spec.views, step):
        part = slice(start, start + step)
        rows.append(
            {
                "scene_id": f"{dataset.name}/scene-{number:05d}",
                "view_ids": list(range(spec.views))[part],
                "images": views.images[part],
                "depth": views.depth[part],
                "mask": views.mask[part],
                "normals": views.normals[part],
                "intrinsics": views.intrinsics[part],
                "extrinsics": views.extrinsics[part],
                "seeds": seeds,
            }
        )
    return rows


def write_rows(spec: GenerationSpec, shard: Shard, rows: list[dict[str, Any]], root: Path) -> int:
    """Encode the images as PNG and write the shard's parquet file atomically; returns the number of views."""
    import datasets

    encoded = [{**row, "images": [_png(image) for image in row["images"]]} for row in rows]
    target = shard.path(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_list(encoded, features=features(spec))
    atomic_write(target, lambda tmp: table.to_parquet(str(tmp)))
    return len(shard.scenes) * spec.views


def write_shard(spec: GenerationSpec, shard: Shard, root: Path, *, backend: str = "auto", device: str = "cpu") -> int:
    """Build, render and write one shard (the CPU path: one worker process per shard)."""
    dataset = spec.dataset(shard.dataset_index)
    rows = [row for number in shard.scenes for row in scene_rows(spec, dataset, number, backend=backend, device=device)]
    return write_rows(spec, shard, rows, root)


def _build_scene(recipe: Any) -> Any:
    from subspace_hub.data.scene import generate_scene

    return generate_scene(recipe)


def _generate_on_gpu(
    spec: GenerationSpec, todo: list[Shard], root: Path, workers: int, device: str, backend: str, bar: Any
) -> None:
    """The GPU pipeline: worker processes build scenes ahead, the GPU renders them in order, threads encode
    and write shards (PNG and parquet writing release the GIL)."""
    jobs = [(shard, number) for shard in todo for number in shard.scenes]
    with (
        _worker_pool(workers) as builders,
        ThreadPoolExecutor(max(2, workers // 2)) as writers,
    ):
        ahead: deque = deque()
        submitted = 0

        def refill() -> None:
            nonlocal submitted
            while submitted < len(jobs) and len(ahead) < 2 * workers:  # bounded: scenes are large
                shard, number = jobs[submitted]
                ahead.append(builders.submit(_build_scene, spec.dataset(shard.dataset_index).scene(number)))
                submitted += 1

        pending = []
        refill()
        for shard in todo:
            dataset = spec.dataset(shard.dataset_index)
            rows = []
            for number in shard.scenes:
                scene = ahead.popleft().result()
                refill()
                rows += scene_rows(spec, dataset, number, scene, backend=backend, device=device)
            pending.append(writers.submit(write_rows, spec, shard, rows, root))
            while pending and pending[0].done():
                bar.update(pending.pop(0).result())
        for future in pending:
            bar.update(future.result())


def shard_done(spec: GenerationSpec, shard: Shard, root: Path) -> bool:
    """The shard's file exists and is a complete parquet file with the expected rows."""
    path = shard.path(root)
    if not path.is_file():
        return False
    import pyarrow.parquet as pq

    try:
        rows = pq.read_metadata(str(path)).num_rows
    except Exception:
        return False
    per_scene = math.ceil(spec.views / (spec.views_per_record or spec.views))
    return rows == len(shard.scenes) * per_scene


def _worker_init() -> None:
    import datasets
    import torch

    torch.set_num_threads(1)  # one process per core; torch's own threads would oversubscribe
    datasets.disable_progress_bars()  # a spawned worker does not inherit the caller's datasets_quiet()


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for scene building and rendering, each running torch single-threaded.

    Fork where there is one (Linux): spawn would re-import the caller's ``__main__``; single-threaded torch in the
    workers keeps a forked child away from the parent's OpenMP pool.
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_worker_init)


def _run_shard(args: tuple[GenerationSpec, Shard, str]) -> tuple[Shard, int]:
    spec, shard, root = args
    return shard, write_shard(spec, shard, Path(root))


def generate(
    spec: GenerationSpec,
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    device: str = "cpu",
    backend: str = "auto",
    progress: bool = True,
) -> Path:
    """Generate (or finish generating) ``spec`` into ``out``; returns the folder.

    Raises:
        ConfigError: ``out`` already holds a different recipe.
    """
    from tqdm.auto import tqdm

    from subspace_hub.data.quiet import datasets_quiet

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    recipe_path = root / RECIPE_FILE
    wanted = spec.to_dict()
    if recipe_path.is_file():
        existing = json.loads(recipe_path.read_text())
        if {k: v for k, v in existing.items() if k != "library_version"} != {
            k: v for k, v in wanted.items() if k != "library_version"
        }:
            raise ConfigError(
                f"{root} already holds datasets of another recipe ({RECIPE_FILE}); choose another folder or delete it."
            )
    atomic_write(recipe_path, lambda p: p.write_text(json.dumps(wanted, indent=2) + "\n"))
    for stale in root.glob("*/.*.tmp"):
        stale.unlink()
    shards = plan(spec)
    todo = [s for s in shards if not shard_done(spec, s, root)]
    total_views = sum(len(s.scenes) for s in shards) * spec.views
    done_views = total_views - sum(len(s.scenes) for s in todo) * spec.views
    with (
        # datasets' own bars (one per parquet shard written) would bury ours; turned back on as they were after
        datasets_quiet(),
        tqdm(
            total=total_views, initial=done_views, unit="view", desc=f"{spec.family} datasets", disable=not progress
        ) as bar,
    ):
        if device != "cpu" and todo:
            _generate_on_gpu(spec, todo, root, workers or os.cpu_count() or 1, device, backend, bar)
        elif (workers or os.cpu_count() or 1) <= 1 or len(todo) <= 1:
            for shard in todo:
                bar.update(write_shard(spec, shard, root, backend=backend, device=device))
        else:
            with _worker_pool(workers or os.cpu_count() or 1) as pool:
                for _, views in pool.map(_run_shard, [(spec, s, str(root)) for s in todo]):
                    bar.update(views)
    write_card(spec, root)
    return root


def _dataset_settings(dataset: DatasetRecipe) -> str:
    """What a dataset draws for itself, for the card: its geometry group, its camera ranges, its jitter."""
    parts = []
    if dataset.geometry_group is not None:
        parts.append(f"geometry group {dataset.geometry_group}")
    (low, high), spread = dataset.camera_ranges()
    if dataset.camera_mode == "orbit":
        parts.append(f"orbit distance {low:.2f}-{high:.2f} D, target spread {spread:.2f}")
    if dataset.geometry_jitter:
        parts.append(f"geometry jitter {dataset.geometry_jitter} (experiment 2)")
    return "; ".join(parts) or "-"


def write_card(spec: GenerationSpec, root: Path) -> Path:
    """README.md from :data:`subspace_hub.templates.DATASET_CARD`: the ``configs:`` header the Hub and ``datasets``
    read, the licence, how to load it and every generation parameter."""
    from huggingface_hub import DatasetCard, DatasetCardData

    recipes = [spec.dataset(i) for i in range(spec.datasets)]
    data = DatasetCardData(
        license=LICENSE,
        pretty_name=f"subspace-hub synthetic {spec.family} family",
        tags=["synthetic", "multi-view", "depth", "3d", "megasynth", "subspace-hub", f"attribute-{spec.family}"],
        task_categories=["depth-estimation"],
        configs=[
            {
                "config_name": d.name,
                "data_files": [{"split": split, "path": f"{d.name}/{split}-*.parquet"} for split in spec.splits()],
                # `datasets` caches a local folder by its name and these config entries only, so two folders of the
                # same name would share (stale) arrow caches; the recipe's fingerprint here tells them apart.
                "description": f"{spec.family} dataset {d.name}, recipe {spec.fingerprint()}",
            }
            for d in recipes
        ],
    )
    card = DatasetCard.from_template(
        data,
        template_path=str(DATASET_CARD),
        family=spec.family,
        datasets=spec.datasets,
        first_config=recipes[0].name,
        views=spec.views,
        height=spec.height,
        width=spec.width,
        camera_mode=spec.camera_mode,
        shared_seeds={d.name: ", ".join(f"{k}={v}" for k, v in d.shared_seeds().items()) for d in recipes},
        dataset_settings={d.name: _dataset_settings(d) for d in recipes},
        layout_description=(
            ("objects without a room, " if spec.object_centred else "")
            + ("the paper's attribute rooms" if spec.layout == "attribute" else "MegaSynth rooms")
        ),
        samples=spec.samples,
        soft_shadows=spec.soft_shadows,
        ambient_occlusion=spec.ambient_occlusion,
        recipe=yaml.safe_dump(spec.to_dict(), sort_keys=False).strip(),
        texture_folder=spec.texture_folder,
        subspace_hub_version=__version__,
    )
    path = root / "README.md"
    atomic_write(path, lambda p: p.write_text(str(card)))
    return path


def recipe_of(root: str | os.PathLike[str]) -> GenerationSpec:
    """The :class:`GenerationSpec` a generated folder was made from (its ``recipe.json``)."""
    recipe = read_json_object(Path(root) / RECIPE_FILE)
    return GenerationSpec(**{k: v for k, v in recipe.items() if k in GenerationSpec.__dataclass_fields__})


def configs_of(root: str | os.PathLike[str]) -> Sequence[str]:
    """The config names of a generated folder (from its recipe)."""
    spec = recipe_of(root)
    return [spec.dataset(i).name for i in range(spec.datasets)]


def missing_shards(root: str | os.PathLike[str]) -> list[Shard]:
    """The shards of a generated folder that are not (completely) written: an interrupted generation's."""
    root = Path(root)
    spec = recipe_of(root)
    return [shard for shard in plan(spec) if not shard_done(spec, shard, root)]


def check_complete(root: str | os.PathLike[str]) -> None:
    """Raise :class:`ConfigError` if ``root`` is a generation that has not finished (some shard or the card is
    missing): its parquet files alone would read as a dataset with scenes missing, or configs merged."""
    root = Path(root)
    if not (root / RECIPE_FILE).is_file():
        return
    missing = missing_shards(root)
    if missing or not (root / "README.md").is_file():
        total = len(plan(recipe_of(root)))
        raise ConfigError(
            f"{root} is an unfinished generation ({len(missing)} of {total} shards missing"
            + ("" if missing else ", no card")
            + "): run the same `subspace-hub data generate` command again to finish it, or allow an incomplete "
            "folder (--allow-incomplete; allow_incomplete=True in Python)."
        )


__all__ = [
    "GenerationSpec",
    "Shard",
    "configs_of",
    "features",
    "generate",
    "plan",
    "scene_rows",
    "write_card",
    "write_rows",
    "write_shard",
]
