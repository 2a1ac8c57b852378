"""``subspace-hub data``: generate controlled-variation synthetic datasets."""

from __future__ import annotations

import click

from subspace_hub.cli.hub import pull_options, pull_repo
from subspace_hub.data.choices import CAMERA_MODES, FAMILIES, LAYOUTS
from subspace_hub.errors import ConfigError


def _resolution(value: str) -> tuple[int, int]:
    try:
        if "x" in value.lower():
            h, w = value.lower().split("x")
            return int(h), int(w)
        return int(value), int(value)
    except ValueError:
        raise ConfigError(f"--resolution expects N or HxW (e.g. 128 or 384x518), got {value!r}.") from None


@click.group("data")
def data() -> None:
    """Synthetic datasets in which one attribute varies."""


@data.command("generate")
@click.argument("family", type=click.Choice(FAMILIES))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write (resumes if it holds the same recipe).",
)
@click.option(
    "--datasets",
    "count",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Datasets (configs) of the family.",
)
@click.option("--scenes", type=click.IntRange(min=1), default=8, show_default=True, help="Scenes per dataset.")
@click.option("--views", type=click.IntRange(min=1), default=24, show_default=True, help="Views per scene.")
@click.option(
    "--resolution",
    default="518",
    show_default=True,
    help="N or HxW pixels; multiples of the backbone's patch (VGGT: 14; on a CPU e.g. 56x84 or 112x168).",
)
@click.option(
    "--backbone",
    default=None,
    help="Check the resolution fits this backbone before generating [default: vggt, when installed; 'none': no check].",
)
@click.option(
    "--camera",
    "camera_mode",
    type=click.Choice(CAMERA_MODES),
    default=CAMERA_MODES[0],
    show_default=True,
    help="Camera placement: orbit (the paper's spline paths), standard (MegaSynth's scattered views), micro.",
)
@click.option(
    "--layout",
    type=click.Choice(LAYOUTS),
    default=LAYOUTS[0],
    show_default=True,
    help="attribute (the paper's scenes: large and small boxes) or megasynth (full MegaSynth rooms).",
)
@click.option("--object-centred", is_flag=True, help="Leave the room out: the objects alone, against the sky.")
@click.option(
    "--geometry-jitter",
    type=click.FloatRange(0, 0.5),
    default=0.0,
    show_default=True,
    help="Texture family: 0 keeps the geometry fixed (experiment 1); e.g. 0.05 varies it slightly (experiment 2).",
)
@click.option("--seed", default=0, show_default=True, help="Family seed: everything follows from it.")
@click.option(
    "--test-fraction", default=0.1, show_default=True, help="Share of each dataset's scenes in the test split."
)
@click.option("--mesh-resolution", default=16, show_default=True, help="Cells per primitive face side (MegaSynth: 36).")
@click.option("--texture-size", default=128, show_default=True, help="Texture side in pixels.")
@click.option("--texture-pool", default=16, show_default=True, help="Textures per scene.")
@click.option(
    "--texture-folder",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Use your own texture images instead of procedural ones.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Rays per pixel for colour (a square number: 1, 4, 9, 16); 1 is aliased and 3-4x faster.",
)
@click.option("--shadows/--no-shadows", default=True, show_default=True, help="Trace shadow rays.")
@click.option(
    "--soft-shadows/--hard-shadows",
    default=True,
    show_default=True,
    help="Sample the sun's disc and the bulbs' spheres (penumbras) or treat them as points.",
)
@click.option(
    "--ambient-occlusion/--no-ambient-occlusion",
    default=True,
    show_default=True,
    help="Darken the ambient light in creases and corners.",
)
@click.option(
    "--views-per-record",
    type=click.IntRange(min=1),
    default=None,
    help="Split long paths into rows of this many views.",
)
@click.option(
    "--scenes-per-shard",
    type=click.IntRange(min=1),
    default=None,
    help="Scenes per parquet file (default: about 256 MB each); the unit of resuming.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: all CPUs).")
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda for the GPU renderer.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(
    family,
    out,
    count,
    scenes,
    views,
    resolution,
    backbone,
    camera_mode,
    layout,
    object_centred,
    geometry_jitter,
    seed,
    test_fraction,
    mesh_resolution,
    texture_size,
    texture_pool,
    texture_folder,
    samples,
    shadows,
    soft_shadows,
    ambient_occlusion,
    views_per_record,
    scenes_per_shard,
    workers,
    device,
    quiet,
) -> None:
    """Generate FAMILY datasets into --out, loadable with datasets.load_dataset(out, "<family>-000").

    \b
    Example:
      subspace-hub data generate texture --datasets 4 --scenes 64 --views 24 --resolution 518 --out data/texture
    """
    from subspace_hub.data.export import GenerationSpec
    from subspace_hub.data.export import generate as run

    height, width = _resolution(resolution)
    from subspace_hub.plugins import get_backbone_spec, list_components

    if backbone is None:
        backbone = "vggt" if "vggt" in list_components("backbone") else "none"
    if backbone != "none":
        get_backbone_spec(backbone).check_image_size(height, width)
    if device != "cpu":
        from subspace_hub.devices import check_device

        check_device(device)
    spec = GenerationSpec(
        family=family,
        datasets=count,
        scenes=scenes,
        views=views,
        height=height,
        width=width,
        camera_mode=camera_mode,
        layout=layout,
        object_centred=object_centred,
        geometry_jitter=geometry_jitter,
        seed=seed,
        test_fraction=test_fraction,
        mesh_resolution=mesh_resolution,
        texture_size=texture_size,
        texture_pool=texture_pool,
        texture_folder=texture_folder,
        samples=samples,
        shadows=shadows,
        soft_shadows=soft_shadows,
        ambient_occlusion=ambient_occlusion,
        views_per_record=views_per_record,
        scenes_per_shard=scenes_per_shard,
    )
    folder = run(spec, out, workers=workers, device=device, progress=not quiet)
    click.echo(f"Wrote {count} {family} dataset(s) x {scenes} scenes x {views} views to {folder}")


@data.command("export")
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A load option of the dataset (e.g. seed=3, categories=[human,chair]); repeatable.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (swapped in once the export is written).")
def export(name, out, options, overwrite) -> None:
    """Write the registered dataset NAME (any plugin's) to the folder OUT: parquet per split and a README card.

    \b
    Example:
      subspace-hub data export lfm2d-synthetic data/landmarks --option samples_per_category=512 --option seed=1
    """
    from subspace_hub.configuration import apply_overrides
    from subspace_hub.data.registered import export_registered

    folder = export_registered(name, out, apply_overrides({}, options), overwrite=overwrite)
    click.echo(f"Wrote {name} to {folder} (load it with datasets.load_dataset({str(folder)!r}))")


@data.command("preview")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option(
    "--out", default=None, type=click.Path(dir_okay=False), help="PNG to write [default: FOLDER/preview.png]."
)
@click.option(
    "--datasets", type=click.IntRange(min=1), default=4, show_default=True, help="The first N datasets (configs)."
)
@click.option("--scenes", type=click.IntRange(min=1), default=3, show_default=True, help="Scenes per dataset.")
@click.option("--views", type=click.IntRange(min=1), default=3, show_default=True, help="Views per scene.")
@click.option("--split", default="train", show_default=True, help="Split to show.")
def preview(folder, out, datasets, scenes, views, split) -> None:
    """Write a contact sheet of a generated FOLDER: per dataset, scenes x views as RGB, depth and normals."""
    from subspace_hub.data.preview import contact_sheet

    path = contact_sheet(folder, out, datasets=datasets, scenes=scenes, views=views, split=split)
    click.echo(f"Wrote {path}")


@data.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--tag", default=None, help="Version tag to create (refused if it exists).")
@click.option("--private", is_flag=True, help="Create the repo private (readable with a token only).")
@click.option("--allow-incomplete", is_flag=True, help="Publish a folder whose generation has not finished.")
def push(folder, repo_id, tag, private, allow_incomplete) -> None:
    """Publish a generated FOLDER as dataset repo REPO_ID (load it with datasets.load_dataset(REPO_ID, config))."""
    from subspace_hub.data.export import check_complete
    from subspace_hub.hub import push_folder

    if not allow_incomplete:
        check_complete(folder)
    pushed = push_folder(folder, repo_id, repo_type="dataset", tag=tag, private=private, message=f"Upload {folder}")
    click.echo(f"Pushed {pushed.describe()}")


@data.command("pull")
@click.argument("repo_id")
@pull_options
def pull(repo_id, revision, local_dir) -> None:
    """Download dataset repo REPO_ID from the configured endpoint and print where it lies."""
    pull_repo(repo_id, revision, "dataset", local_dir)
