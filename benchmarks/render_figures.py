"""Before/after figures of the renderer: the same scenes (MegaSynth rooms, standard cameras) rendered by two
checkouts, side by side.

    PYTHONPATH=<old checkout> python benchmarks/render_figures.py views --out before.npz
    PYTHONPATH=. python benchmarks/render_figures.py views --out after.npz
    python benchmarks/render_figures.py compare before.npz after.npz --out docs/figures/render_before_after.png

The scene recipes are fixed here; a checkout whose SceneRecipe has a ``layout`` field is asked for MegaSynth's.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

SEEDS = (11, 22, 33)
VIEWS = (0, 1, 2, 3)


def render_views(size: int) -> tuple[np.ndarray, float]:
    from subspace_hub.data.render import render_scene
    from subspace_hub.data.scene import SceneRecipe, generate_scene

    fields = {f.name for f in dataclasses.fields(SceneRecipe)}
    rows, started = [], time.perf_counter()
    for seed in SEEDS:
        options = {"views": max(VIEWS) + 1, "camera_mode": "standard"}
        if "layout" in fields:
            options["layout"] = "megasynth"
        scene = generate_scene(SceneRecipe(seed, seed + 1, seed + 2, seed + 3, seed + 4, **options))
        rows.append(render_scene(scene, size, size).images[list(VIEWS)])
    return np.stack(rows), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    views = sub.add_parser("views", help="render the fixed scenes with the checkout on PYTHONPATH")
    views.add_argument("--size", type=int, default=224)
    views.add_argument("--out", required=True)
    compare = sub.add_parser("compare", help="stack two renderings: scene by scene, before above after")
    compare.add_argument("before")
    compare.add_argument("after")
    compare.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "views":
        images, seconds = render_views(args.size)
        np.savez_compressed(args.out, images=images, seconds=seconds)
        print(f"{args.out}: {images.shape}, {seconds:.1f} s")
        return
    from PIL import Image, ImageDraw

    before, after = np.load(args.before)["images"], np.load(args.after)["images"]
    size = before.shape[2]
    rows = []
    for scene in range(len(before)):
        for label, images in (("before", before[scene]), ("after", after[scene])):
            row = Image.fromarray(np.concatenate(list(images), axis=1))
            ImageDraw.Draw(row).text((6, 4), label, fill=(255, 255, 255))
            rows.append(np.asarray(row))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    Image.fromarray(np.concatenate(rows[:-1])).save(args.out)
    print(f"{args.out}: {len(before)} scenes x {len(VIEWS)} views at {size} px")


if __name__ == "__main__":
    main()
