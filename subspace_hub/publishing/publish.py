"""Publishing a registry entry's bundle as a versioned Hub repo, and pulling one.

``push`` validates the built bundle against its entry, renders the model card with the bundle's figures, uploads
everything in one commit and tags it ``v<version>``; an existing tag is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from subspace_hub.errors import ConfigError
from subspace_hub.hub.client import HubClient, Pushed, default_client
from subspace_hub.publishing.entries import REGISTRY_DIR, check_bundle, load_entry


def stage(
    name: str,
    *,
    registry: str | os.PathLike[str] = REGISTRY_DIR,
    bundle: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str],
) -> Path:
    """Write the repo contents of entry ``name`` into ``out``: the bundle files, README.md (the card),
    ``figures/`` and the entry itself (``registry.yaml``). Raises :class:`ConfigError` on any mismatch."""
    from subspace_hub.publishing.cards import render_card
    from subspace_hub.subspaces import SubspaceBundle
    from subspace_hub.subspaces.report import write_report

    entry, base = load_entry(name, registry)
    folder = Path(bundle) if bundle is not None else entry.bundle_path(base)
    if not folder.is_dir():
        raise ConfigError(
            f"No built bundle for {name} at {folder}; extract it first (subspace-hub extract ... --out {folder}) or "
            "pass --bundle."
        )
    built = SubspaceBundle.load(folder)
    problems = check_bundle(entry, built)
    if problems:
        raise ConfigError(f"The bundle at {folder} does not match registry entry {name}: " + "; ".join(problems) + ".")
    card_path = entry.card_path(base)
    if not card_path.is_file():
        raise ConfigError(f"Registry entry {name} names the card {card_path}, which does not exist.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        if item.is_file() and item.name != "README.md":
            shutil.copy2(item, out / item.name)
    report = write_report(built, out / "figures", progress=False)
    # write_report lists its files relative to figures/; the card links them from the repo root
    figures = sorted(f"figures/{f}" for f in report.get("files", []) if str(f).endswith(".png"))
    (out / "README.md").write_text(render_card(entry, built, card_path.read_text(), figures))
    registry_file = Path(registry) / f"{name}.yaml"
    shutil.copy2(registry_file, out / "registry.yaml")
    return out


def push(
    name: str,
    *,
    version: str | None = None,
    registry: str | os.PathLike[str] = REGISTRY_DIR,
    bundle: str | os.PathLike[str] | None = None,
    repo_id: str | None = None,
    client: HubClient | None = None,
) -> Pushed:
    """Publish entry ``name`` as ``repo_id`` (default: the entry's) tagged ``v<version>`` (default: the entry's),
    through ``client`` (default: :func:`subspace_hub.hub.default_client`)."""
    entry, _ = load_entry(name, registry)
    version = version or entry.version
    with tempfile.TemporaryDirectory(prefix=f"subspace-hub-push-{name}-") as scratch:
        folder = stage(name, registry=registry, bundle=bundle, out=scratch)
        return (client or default_client()).push_folder(
            folder,
            repo_id or entry.repo_id,
            tag=f"v{version.removeprefix('v')}",
            message=f"{name} v{version.removeprefix('v')}",
        )


def pull(
    repo_id: str,
    *,
    revision: str | None = None,
    repo_type: str = "model",
    out: str | os.PathLike[str] | None = None,
    client: HubClient | None = None,
) -> Path:
    """Download a repo (default: into the huggingface_hub cache); returns the folder."""
    return (client or default_client()).download(repo_id, revision, repo_type=repo_type, local_dir=out)
