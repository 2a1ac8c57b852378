"""Synthetic-data throughput: views per second of the renderer (scene already built) and of whole generation
(scene building, rendering, PNG encoding, parquet writing) on MegaSynth rooms with 50+ primitives and standard
cameras.

``--quality full`` renders colour as ``data generate`` does by default (4 samples a pixel, ambient occlusion, soft
shadows); ``--quality fast`` as ``--samples 1 --no-ambient-occlusion --hard-shadows`` (the cost of the geometry
and one shaded ray a pixel, as the renderer did before 2026-11-30).

Usage (repository root)::

    PYTHONPATH=. python benchmarks/bench_render.py --device cpu --resolution 128 518 --quality full fast --json out.json
    PYTHONPATH=. python benchmarks/bench_render.py --device cuda --resolution 518 --json out.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Any

import torch
from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path

from subspace_hub.data.export import GenerationSpec, generate
from subspace_hub.data.render import Renderer, RenderSettings
from subspace_hub.data.scene import SceneRecipe, generate_scene


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


QUALITIES = {
    "full": RenderSettings(),
    "fast": RenderSettings(samples=1, ambient_occlusion=False, soft_shadows=False),
}


def render_rate(
    scenes: list, size: int, views: int, device: str, settings: RenderSettings, to_host: bool = True
) -> dict[str, Any]:
    """Views/s rendering ``views`` views of each prebuilt scene (the renderer, its BVH and uploads included);
    ``to_host=False`` leaves the results on the GPU."""
    batch = max(1, (1 << 22 if device.startswith("cuda") else 1 << 20) // (size * size))
    Renderer(scenes[0], device=device, settings=settings).render(size, size, slice(0, 1))  # warm-up (kernel compile)
    sync(device)
    start = time.perf_counter()
    setup = 0.0
    for scene in scenes:
        t0 = time.perf_counter()
        renderer = Renderer(scene, device=device, settings=settings)
        sync(device)
        setup += time.perf_counter() - t0
        for first in range(0, views, batch):
            part = slice(first, min(first + batch, views))
            renderer.render(size, size, part) if to_host else renderer.render_tensors(size, size, part)
    sync(device)
    seconds = time.perf_counter() - start
    total = views * len(scenes)
    return {
        "views": total,
        "seconds": seconds,
        "views_per_s": total / seconds,
        "renderer_setup_s_per_scene": setup / len(scenes),
    }


def generation_rate(
    size: int, scenes: int, views: int, workers: int | None, device: str, settings: RenderSettings
) -> dict[str, Any]:
    spec = GenerationSpec(
        "texture",
        datasets=1,
        scenes=scenes,
        views=views,
        height=size,
        width=size,
        camera_mode="standard",
        layout="megasynth",
        seed=0,
        test_fraction=0.0,
        samples=settings.samples,
        shadows=settings.shadows,
        ambient_occlusion=settings.ambient_occlusion,
        soft_shadows=settings.soft_shadows,
        scenes_per_shard=1,
    )
    folder = tempfile.mkdtemp(prefix="bench-render-")
    try:
        start = time.perf_counter()
        generate(spec, folder, workers=workers, device=device, progress=False)
        seconds = time.perf_counter() - start
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs) / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"views": scenes * views, "seconds": seconds, "views_per_s": scenes * views / seconds, "megabytes": size_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, nargs="+", default=[128, 518])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--views", type=int, default=48, help="views per scene (MegaSynth renders 48)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--quality", nargs="+", choices=sorted(QUALITIES), default=["full"])
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    report: dict[str, Any] = {
        **header(args.device),
        "qualities": {name: QUALITIES[name].__dict__ for name in args.quality},
    }
    t0 = time.perf_counter()
    scenes = [
        generate_scene(
            SceneRecipe(i, i + 1, i + 2, i + 3, i + 4, views=args.views, camera_mode="standard", layout="megasynth")
        )
        for i in range(args.scenes)
    ]
    report["scene_build_s_per_scene"] = (time.perf_counter() - t0) / args.scenes
    report["primitives_per_scene"] = [s.stats["primitives"] for s in scenes]
    report["triangles_per_scene"] = [s.stats["triangles"] for s in scenes]
    print(
        f"scenes: {report['primitives_per_scene']} primitives, {report['triangles_per_scene']} triangles, built in "
        f"{report['scene_build_s_per_scene']:.2f} s each",
        flush=True,
    )
    for quality in args.quality:
        settings = QUALITIES[quality]
        for size in args.resolution:
            entry: dict[str, Any] = {"render": render_rate(scenes, size, args.views, args.device, settings)}
            print(
                f"{quality} {size}x{size} render ({torch.get_num_threads()} torch threads): "
                f"{entry['render']['views_per_s']:.1f} views/s",
                flush=True,
            )
            if args.device.startswith("cuda"):
                entry["render_on_device"] = render_rate(scenes, size, args.views, args.device, settings, to_host=False)
                print(
                    f"{quality} {size}x{size} render, results left on the GPU: "
                    f"{entry['render_on_device']['views_per_s']:.0f} views/s",
                    flush=True,
                )
            if not args.skip_generation:
                entry["generate"] = generation_rate(size, args.scenes, args.views, args.workers, args.device, settings)
                print(
                    f"{quality} {size}x{size} whole generation: {entry['generate']['views_per_s']:.1f} views/s "
                    f"({entry['generate']['megabytes']:.0f} MB)",
                    flush=True,
                )
            report[f"{quality}_{size}"] = entry
    finish(report, args.json)


if __name__ == "__main__":
    main()
