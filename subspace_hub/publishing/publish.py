"""Publishing a registry entry's bundle as a versioned Hub repo, and pulling one.

``push`` validates the built bundle against its entry, renders the model card with the bundle's figures, uploads
everything in one commit and tags it ``v<version>``; an existing tag is never overwritten.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from subspace_hub.configuration import to_dict
from subspace_hub.errors import ConfigError
from subspace_hub.hub.client import HubClient, Pushed, default_client
from subspace_hub.hub.repo_id import parse_repo_id
from subspace_hub.publishing.entries import REGISTRY_DIR, SEMVER, RegistryEntry, check_bundle, load_entry


def normalize_version(version: str) -> str:
    """``1.2.0`` from ``1.2.0`` or ``v1.2.0``; a :class:`ConfigError` for anything but a semantic version, raised
    before anything is sent (a bad tag name would otherwise fail only after the commit landed)."""
    text = str(version).strip().removeprefix("v")
    if not SEMVER.fullmatch(text):
        raise ConfigError(f"Version {version!r} is not semantic (MAJOR.MINOR.PATCH, e.g. 1.0.0 or 1.1.0-rc.1).")
    return text


def publishable_info(info: dict[str, Any], entry: RegistryEntry, bundle: Path) -> dict[str, Any]:
    """The bundle's provenance as the public repo shows it: source paths relative to the build folder (never a
    path of the publishing machine) and the entry's backbone where the bundle recorded none."""
    public = dict(info)
    public["backbone"] = public.get("backbone") or entry.backbone.name
    sources = {}
    for attribute, records in (public.get("sources") or {}).items():
        sources[attribute] = []
        for record in records:
            record = dict(record)
            if record.get("path"):
                path = Path(record["path"])
                try:
                    record["path"] = path.resolve().relative_to(bundle.resolve().parent).as_posix()
                except ValueError:
                    record["path"] = path.name
            sources[attribute].append(record)
    public["sources"] = sources
    return public


def stage(
    name: str,
    *,
    registry: str | os.PathLike[str] = REGISTRY_DIR,
    bundle: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str],
    version: str | None = None,
) -> Path:
    """Write the repo contents of entry ``name`` into ``out``: the bundle, README.md (the card), ``figures/`` and
    the entry itself (``registry.yaml``), all at ``version`` (default: the entry's).

    Raises:
        ConfigError: a bad version, no built bundle, a bundle that does not fit the entry, or a missing card.
    """
    from subspace_hub.publishing.cards import render_card
    from subspace_hub.subspaces.bundle import SubspaceBundle
    from subspace_hub.subspaces.report import write_report

    entry, base = load_entry(name, registry)
    entry = dataclasses.replace(entry, version=normalize_version(version or entry.version))
    folder = Path(bundle) if bundle is not None else entry.bundle_path(base)
    if not folder.is_dir():
        raise ConfigError(
            f"No built bundle for {name} at {folder}; build it first (subspace-hub build {name}) or pass --bundle."
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
    built.info = publishable_info(built.info, entry, folder)
    built.save(out)
    report = write_report(built, out / "figures", progress=False)
    # write_report lists its files relative to figures/; the card links them from the repo root
    figures = sorted(f"figures/{f}" for f in report.get("files", []) if str(f).endswith(".png"))
    (out / "README.md").write_text(render_card(entry, built, card_path.read_text(), figures))
    (out / "registry.yaml").write_text(yaml.safe_dump(to_dict(entry), sort_keys=False))
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
    through ``client`` (default: :func:`subspace_hub.hub.default_client`): one commit and its tag.

    Everything that can be checked is checked before anything is sent (the entry, the version, the bundle, the
    card, the repo id, that the tag is new), and the card, ``registry.yaml`` and the tag all state ``version``."""
    entry, _ = load_entry(name, registry)
    version = normalize_version(version or entry.version)
    target = repo_id or entry.repo_id
    parse_repo_id(target)
    with tempfile.TemporaryDirectory(prefix=f"subspace-hub-push-{name}-") as scratch:
        folder = stage(name, registry=registry, bundle=bundle, out=scratch, version=version)
        return (client or default_client()).push_folder(folder, target, tag=f"v{version}", message=f"{name} v{version}")


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
