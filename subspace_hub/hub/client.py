"""Where Hub calls go, and the calls themselves: huggingface_hub is the one client for every endpoint.

- ``SUBSPACE_HUB_ENDPOINT`` set: that URL (a registry server of this project, or ``https://huggingface.co``),
  with ``SUBSPACE_HUB_TOKEN`` (or huggingface_hub's own token) for writes;
- unset: the embedded registry under ``SUBSPACE_HUB_HOME`` (default ``~/.cache/subspace-hub``), served by the same
  server code on 127.0.0.1 from a thread of this process, with a local token created on first use. No network.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subspace_hub.errors import CheckpointNotFoundError, SubspaceHubError

ENDPOINT_ENV = "SUBSPACE_HUB_ENDPOINT"
TOKEN_ENV = "SUBSPACE_HUB_TOKEN"
HOME_ENV = "SUBSPACE_HUB_HOME"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_LOCAL_USER = "local"


class HubUnavailableError(SubspaceHubError):
    """The Hub endpoint cannot be reached or refused the request."""


def home() -> Path:
    """``SUBSPACE_HUB_HOME`` (default ``~/.cache/subspace-hub``)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "subspace-hub").expanduser()


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str | None
    embedded: bool

    def describe(self) -> str:
        return f"the embedded registry at {home() / 'registry'}" if self.embedded else self.url


_embedded: dict[Path, tuple[Any, str]] = {}
_embedded_lock = threading.Lock()


def embedded_registry() -> tuple[str, str]:
    """Start (once per process and root) the registry over ``SUBSPACE_HUB_HOME/registry``; (url, token)."""
    from subspace_hub.hub.auth import TokenBook
    from subspace_hub.hub.server import RegistryServer

    root = home() / "registry"
    with _embedded_lock:
        if root not in _embedded:
            root.mkdir(parents=True, exist_ok=True)
            token_file = root / "local-token"
            if not token_file.is_file():
                from subspace_hub.fileio import atomic_write

                token = TokenBook.load(root).add(_LOCAL_USER, write=("*",))
                atomic_write(token_file, lambda p: p.write_text(token), mode=0o600)
            server = RegistryServer(root, "127.0.0.1", 0)
            server.start()
            _embedded[root] = (server, token_file.read_text().strip())
        server, token = _embedded[root]
    return server.url, token


def endpoint() -> Endpoint:
    """The endpoint every Hub call of subspace-hub uses (see the module docstring)."""
    url = os.environ.get(ENDPOINT_ENV)
    if url:
        return Endpoint(url.rstrip("/"), os.environ.get(TOKEN_ENV) or None, False)
    url, token = embedded_registry()
    return Endpoint(url, token, True)


def _prepare_client(url: str) -> None:
    """Our registry never offers Xet; stop huggingface_hub from switching LFS uploads to it."""
    if "huggingface.co" not in url:
        from huggingface_hub import constants

        constants.HF_HUB_DISABLE_XET = True


def api(target: Endpoint | None = None) -> Any:
    """A ``huggingface_hub.HfApi`` for ``target`` (default: :func:`endpoint`)."""
    from huggingface_hub import HfApi

    target = target or endpoint()
    _prepare_client(target.url)
    return HfApi(endpoint=target.url, token=target.token)


def is_repo_id(text: str) -> bool:
    """Whether ``text`` has the ``namespace/name`` form of a Hub repo id."""
    return bool(_REPO_ID.fullmatch(text))


@contextlib.contextmanager
def _translated(repo_id: str, revision: str | None, target: Endpoint) -> Iterator[None]:
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hint = (
        ""
        if not target.embedded
        else f" (looked in {target.describe()}; set {ENDPOINT_ENV}=https://huggingface.co for the public Hub)"
    )
    try:
        yield
    except RevisionNotFoundError as exc:
        raise CheckpointNotFoundError(f"Hub repo {repo_id!r} has no revision {revision!r}{hint}.") from exc
    except RepositoryNotFoundError as exc:
        raise CheckpointNotFoundError(f"No Hub repo {repo_id!r} (or no access to it; check your token){hint}.") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise CheckpointNotFoundError(f"Cannot download {repo_id!r} from {target.describe()}: {exc}") from exc


def download(
    repo_id: str,
    revision: str | None = None,
    *,
    allow_patterns: Sequence[str] | None = None,
    repo_type: str = "model",
    local_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """A local snapshot of ``repo_id`` at ``revision`` (only files matching ``allow_patterns``).

    Raises:
        CheckpointNotFoundError: the repo or revision does not exist, or cannot be reached.
    """
    import huggingface_hub

    target = endpoint()
    _prepare_client(target.url)
    with _translated(repo_id, revision, target):
        return Path(
            huggingface_hub.snapshot_download(
                repo_id,
                revision=revision,
                repo_type=repo_type,
                allow_patterns=list(allow_patterns) if allow_patterns else None,
                endpoint=target.url,
                token=target.token,
                local_dir=local_dir,
            )
        )


@dataclass(frozen=True)
class Pushed:
    """Where a push landed."""

    repo_id: str
    repo_type: str
    commit: str
    tag: str | None
    endpoint: Endpoint

    def describe(self) -> str:
        where = f"{self.repo_id}@{self.tag}" if self.tag else self.repo_id
        return f"{where} (commit {self.commit[:12]}, {self.repo_type} repo) on {self.endpoint.describe()}"


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    repo_type: str = "model",
    tag: str | None = None,
    message: str | None = None,
    private: bool = False,
    allow_existing_tag: bool = False,
) -> Pushed:
    """Upload ``folder`` as one commit on ``main`` of ``repo_id`` (created if needed) and tag it.

    Raises:
        SubspaceHubError: the tag already exists (a published version is never rewritten), or the endpoint
            refused the push.
    """
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    target = endpoint()
    client = api(target)
    folder = Path(folder)
    try:
        client.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if tag is not None:
            existing = {t.name for t in client.list_repo_refs(repo_id, repo_type=repo_type).tags}
            if tag in existing and not allow_existing_tag:
                raise SubspaceHubError(
                    f"{repo_id} already has a tag {tag!r} on {target.describe()}; published versions are immutable, "
                    "choose a new version."
                )
        operations = [
            CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        ]
        info = client.create_commit(
            repo_id, operations, commit_message=message or f"Upload {folder.name}", repo_type=repo_type
        )
        commit = info.oid
        if tag is not None:
            client.create_tag(repo_id, tag=tag, revision=commit, repo_type=repo_type, exist_ok=allow_existing_tag)
    except HfHubHTTPError as exc:
        raise HubUnavailableError(f"Pushing {repo_id} to {target.describe()} failed: {exc}") from exc
    return Pushed(repo_id, repo_type, commit, tag, target)


def configure_clients() -> Endpoint:
    """Point this process's huggingface_hub, datasets, transformers and PEFT at the configured endpoint, so calls
    like ``PeftModel.from_pretrained("org/x")`` reach the registry; returns the endpoint. Those libraries read
    ``HF_ENDPOINT`` at import; this sets the values they derive from it. For a separate program, exporting
    ``HF_ENDPOINT`` (and ``HF_HUB_DISABLE_XET=1``) before it starts is the plain way."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    target = endpoint()
    _prepare_client(target.url)
    # The values huggingface_hub derives from HF_ENDPOINT at import time.
    constants.ENDPOINT = target.url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = target.url + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_URL_HOSTS = frozenset(constants.HF_URL_HOSTS | {urlsplit(target.url).hostname})
    from huggingface_hub import hf_api

    hf_api.api.endpoint = target.url  # the module-level client behind file_exists, model_info, ...
    os.environ["HF_ENDPOINT"] = target.url
    if target.token:
        os.environ["HF_TOKEN"] = target.token
    import sys

    if "datasets" in sys.modules:
        sys.modules["datasets"].config.HF_ENDPOINT = target.url
    return target


def load_dataset(
    repo_id: str,
    config: str | None = None,
    *,
    split: str | None = None,
    revision: str | None = None,
    streaming: bool = False,
    **options: Any,
) -> Any:
    """``datasets.load_dataset`` on a dataset repo of the configured endpoint.

    Without ``streaming`` huggingface_hub downloads the repo first. With it, the config's parquet files (from the
    repo card's ``configs:``) are streamed over HTTP with Range requests from the endpoint's resolve URLs pinned
    to the revision's commit: this works in any process, whatever endpoint datasets read at import.
    """
    import datasets

    target = endpoint()
    if not streaming:
        folder = download(repo_id, revision, repo_type="dataset")
        return datasets.load_dataset(str(folder), config, split=split, **options)
    import fnmatch

    import yaml
    from huggingface_hub import hf_hub_download

    client = api(target)
    with _translated(repo_id, revision, target):
        sha = client.dataset_info(repo_id, revision=revision).sha
        readme = Path(
            hf_hub_download(
                repo_id, "README.md", repo_type="dataset", revision=sha, endpoint=target.url, token=target.token
            )
        ).read_text()
        files = client.list_repo_files(repo_id, repo_type="dataset", revision=sha)
    header = yaml.safe_load(readme.split("---")[1]) if readme.startswith("---") else {}
    configs = {c["config_name"]: c for c in (header or {}).get("configs", [])}
    if not configs:
        raise CheckpointNotFoundError(
            f"Dataset repo {repo_id!r} declares no configs in its README; stream it with datasets directly."
        )
    name = config or next(iter(configs))
    if name not in configs:
        raise CheckpointNotFoundError(f"Dataset repo {repo_id!r} has no config {name!r}; it has {', '.join(configs)}.")
    base = f"{target.url}/datasets/{repo_id}/resolve/{sha}/"
    data_files = {
        item["split"]: [base + f for f in sorted(files) if fnmatch.fnmatch(f, item["path"])]
        for item in configs[name]["data_files"]
    }
    storage = {"client_kwargs": {"headers": {"Authorization": f"Bearer {target.token}"}}} if target.token else None
    return datasets.load_dataset(
        "parquet", data_files=data_files, split=split, streaming=True, storage_options=storage, **options
    )
