"""Hub calls through huggingface_hub, the one client for every endpoint: :class:`HubClient`.

A client is bound to one endpoint and token. :meth:`HubClient.from_environment` picks them the documented way:

- ``SUBSPACE_HUB_ENDPOINT`` set: that URL (a registry server of this project, or ``https://huggingface.co``),
  with ``SUBSPACE_HUB_TOKEN`` (or huggingface_hub's own token) for writes;
- unset: the embedded registry under ``SUBSPACE_HUB_HOME`` (default ``~/.cache/subspace-hub``), served by the same
  server code on 127.0.0.1 from a thread of this process, with a local token created on first use. No network.

The module functions (:func:`download`, :func:`push_folder`, :func:`load_dataset`, ...) call a client made that
way at the moment of the call, so a test or a script that changes the environment is followed; code that talks
to a given endpoint makes its own ``HubClient(url, token)``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from subspace_hub.errors import CheckpointNotFoundError, HubUnavailableError, PublishError
from subspace_hub.fileio import atomic_write
from subspace_hub.hub.repo_id import parse_repo_id

ENDPOINT_ENV = "SUBSPACE_HUB_ENDPOINT"
TOKEN_ENV = "SUBSPACE_HUB_TOKEN"
HOME_ENV = "SUBSPACE_HUB_HOME"
_LOCAL_USER = "local"
_DOWNLOAD_CHUNK = 256 << 10  # bytes: see HubClient._prepare
_SOCKET_READ = 256 << 10  # bytes: see HubClient._prepare


def home() -> Path:
    """``SUBSPACE_HUB_HOME`` (default ``~/.cache/subspace-hub``)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "subspace-hub").expanduser()


@dataclass(frozen=True)
class Endpoint:
    """Where Hub calls go: a base URL, the token sent with them, and whether it is the embedded registry."""

    url: str
    token: str | None = None
    embedded_root: Path | None = None
    """The registry folder when this is the embedded registry of this process, else ``None``."""

    @property
    def embedded(self) -> bool:
        return self.embedded_root is not None

    def describe(self) -> str:
        return f"the embedded registry at {self.embedded_root}" if self.embedded_root is not None else self.url


_embedded: dict[Path, tuple[Any, str]] = {}
_embedded_lock = threading.Lock()


def embedded_registry(root: Path | None = None) -> Endpoint:
    """Start (once per process and root) the registry server over ``root`` (default ``SUBSPACE_HUB_HOME/registry``)
    on 127.0.0.1 and return its endpoint, with the local token that may write every namespace."""
    from subspace_hub.hub.server import RegistryServer
    from subspace_hub.hub.server.auth import TokenBook

    root = (root or home() / "registry").resolve()
    with _embedded_lock:
        if root not in _embedded:
            root.mkdir(parents=True, exist_ok=True)
            token_file = root / "local-token"
            if not token_file.is_file():
                token = TokenBook.load(root).add(_LOCAL_USER, write=("*",), read=("*",))
                atomic_write(token_file, lambda p: p.write_text(token), mode=0o600)
            server = RegistryServer(root, "127.0.0.1", 0)
            server.start()
            _embedded[root] = (server, token_file.read_text().strip())
        server, token = _embedded[root]
    return Endpoint(server.url, token, root)


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


class HubClient:
    """huggingface_hub calls against one endpoint.

    Args:
        endpoint: Base URL of a Hub-compatible server (``https://huggingface.co``, ``http://lab:8080``), or an
            :class:`Endpoint`.
        token: Sent with every call; ``None`` reads public repos only (or uses huggingface_hub's own token).

    >>> client = HubClient("http://127.0.0.1:8080", token="shub_...")  # doctest: +SKIP
    >>> folder = client.download("my-lab/vggt-texture", revision="v1.0.0")  # doctest: +SKIP
    """

    def __init__(self, endpoint: str | Endpoint, token: str | None = None) -> None:
        if isinstance(endpoint, Endpoint):
            self.endpoint = endpoint if token is None else Endpoint(endpoint.url, token, endpoint.embedded_root)
        else:
            self.endpoint = Endpoint(endpoint.rstrip("/"), token)

    @classmethod
    def from_environment(cls) -> HubClient:
        """The client the module docstring describes: ``SUBSPACE_HUB_ENDPOINT``, else the embedded registry."""
        url = os.environ.get(ENDPOINT_ENV)
        if url:
            return cls(url, os.environ.get(TOKEN_ENV) or None)
        return cls(embedded_registry())

    def __repr__(self) -> str:
        return f"HubClient({self.endpoint.describe()!r})"

    def describe(self) -> str:
        return self.endpoint.describe()

    @property
    def cache_dir(self) -> Path | None:
        """Where downloads from this endpoint are cached: huggingface_hub's own cache for the public Hub, a folder
        of this endpoint under ``SUBSPACE_HUB_HOME/hf-cache`` for any other (the cache is keyed by repo id only, so
        a registry's ``my-lab/x`` must never be served for the public Hub's, or the other way round)."""
        if urlsplit(self.endpoint.url).hostname in ("huggingface.co", "hf.co"):
            return None
        if self.endpoint.embedded:
            return home() / "hf-cache" / "embedded"
        return home() / "hf-cache" / re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(self.endpoint.url).netloc)

    @property
    def api(self) -> Any:
        """A ``huggingface_hub.HfApi`` for this endpoint and token."""
        from huggingface_hub import HfApi

        self._prepare()
        return HfApi(endpoint=self.endpoint.url, token=self.endpoint.token)

    def _prepare(self) -> None:
        """Our registry never offers Xet: stop huggingface_hub from switching LFS uploads to it. And download in
        chunks of at most 256 KiB read from the socket 256 KiB at a time: huggingface_hub builds each chunk it
        writes from its HTTP library's socket reads (64 KiB by default); of 64 KiB to 10 MiB (its default) a chunk
        that stays in the core's cache pulled a bundle over a fast link fastest, about twice as fast as 10 MiB, and
        256 KiB socket reads pulled it about 20 % faster than 64 KiB ones (BENCHMARKS.md, registry)."""
        from huggingface_hub import constants

        constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, _DOWNLOAD_CHUNK)
        _widen_socket_reads()
        if "huggingface.co" not in self.endpoint.url:
            constants.HF_HUB_DISABLE_XET = True

    @contextlib.contextmanager
    def _translated(self, repo_id: str, revision: str | None) -> Iterator[None]:
        """huggingface_hub's download errors -> :class:`CheckpointNotFoundError` that says where we looked."""
        from huggingface_hub.errors import (
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        hint = ""
        if self.endpoint.embedded:
            hint = f" (looked in {self.describe()}; set {ENDPOINT_ENV}=https://huggingface.co for the public Hub)"
        try:
            yield
        except RevisionNotFoundError as exc:
            raise CheckpointNotFoundError(f"Hub repo {repo_id!r} has no revision {revision!r}{hint}.") from exc
        except RepositoryNotFoundError as exc:
            raise CheckpointNotFoundError(
                f"No Hub repo {repo_id!r} (or no access to it; check your token){hint}."
            ) from exc
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
            raise CheckpointNotFoundError(f"Cannot download {repo_id!r} from {self.describe()}: {exc}") from exc

    def download(
        self,
        repo_id: str,
        revision: str | None = None,
        *,
        allow_patterns: Sequence[str] | None = None,
        repo_type: str = "model",
        local_dir: str | os.PathLike[str] | None = None,
    ) -> Path:
        """A local snapshot of ``repo_id`` at ``revision`` (only files matching ``allow_patterns``).

        Raises:
            InvalidRepoIdError: ``repo_id`` is not ``namespace/name``.
            CheckpointNotFoundError: the repo or revision does not exist, or cannot be reached.
        """
        import huggingface_hub

        parse_repo_id(repo_id)
        self._prepare()
        with self._translated(repo_id, revision):
            folder = huggingface_hub.snapshot_download(
                repo_id,
                revision=revision,
                repo_type=repo_type,
                allow_patterns=list(allow_patterns) if allow_patterns else None,
                endpoint=self.endpoint.url,
                token=self.endpoint.token,
                local_dir=local_dir,
                cache_dir=self.cache_dir,
                # one file per core: every download thread runs Python for each socket read, and huggingface_hub's
                # 8 threads on 2 cores pulled a bundle about half as fast as 2 (BENCHMARKS.md, registry)
                max_workers=min(8, max(2, os.cpu_count() or 1)),
            )
        return Path(folder)

    def push_folder(
        self,
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

        Files and folders whose names start with ``.`` are left out.

        Raises:
            PublishError: the tag already exists (a published version is never rewritten).
            HubUnavailableError: the endpoint refused the push or cannot be reached.
        """
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.errors import HfHubHTTPError

        parse_repo_id(repo_id)
        client = self.api
        folder = Path(folder)
        files = [
            path
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        ]
        # Each operation hashes its file (sha256) when it is made; hashlib lets go of the GIL, so threads hash
        # the files of a bundle on every core at once.
        with ThreadPoolExecutor(max_workers=max(1, min(len(files), os.cpu_count() or 1))) as pool:
            operations = list(
                pool.map(lambda path: CommitOperationAdd(path.relative_to(folder).as_posix(), str(path)), files)
            )
        try:
            client.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
            if tag is not None and not allow_existing_tag:
                existing = {t.name for t in client.list_repo_refs(repo_id, repo_type=repo_type).tags}
                if tag in existing:
                    raise PublishError(
                        f"{repo_id} already has a tag {tag!r} on {self.describe()}; published versions are "
                        "immutable, choose a new version."
                    )
            message = message or f"Upload {folder.name}"
            info = client.create_commit(repo_id, operations, commit_message=message, repo_type=repo_type)
        except HfHubHTTPError as exc:
            raise HubUnavailableError(f"Pushing {repo_id} to {self.describe()} failed: {exc}") from exc
        if tag is not None:
            self._tag(client, repo_id, tag, info.oid, repo_type, allow_existing_tag)
        return Pushed(repo_id, repo_type, info.oid, tag, self.endpoint)

    def _tag(self, client: Any, repo_id: str, tag: str, commit: str, repo_type: str, exist_ok: bool) -> None:
        """Tag the commit a push just made; a transient failure is retried, since the commit already landed."""
        from huggingface_hub.errors import HfHubHTTPError

        for attempt in range(3):
            try:
                client.create_tag(repo_id, tag=tag, revision=commit, repo_type=repo_type, exist_ok=exist_ok)
                return
            except HfHubHTTPError as exc:
                error = exc
                time.sleep(0.5 * 2**attempt)
        raise PublishError(
            f"The commit {commit[:12]} landed on {repo_id} ({self.describe()}) but tagging it {tag!r} failed: {error}. "
            f"Tag that commit (huggingface_hub: HfApi(endpoint=...).create_tag({repo_id!r}, tag={tag!r}, "
            f"revision={commit[:12]!r})) rather than pushing again, which would add a second commit."
        )

    def load_dataset(
        self,
        repo_id: str,
        config: str | None = None,
        *,
        split: str | None = None,
        revision: str | None = None,
        streaming: bool = False,
        **options: Any,
    ) -> Any:
        """``datasets.load_dataset`` on a dataset repo of this endpoint.

        Without ``streaming`` the repo is downloaded first. With it, the config's parquet files (from the repo
        card's ``configs:``) are streamed over HTTP with Range requests from the endpoint's resolve URLs pinned to
        the revision's commit: this works in any process, whatever endpoint ``datasets`` read at import.
        """
        import datasets

        if not streaming:
            folder = self.download(repo_id, revision, repo_type="dataset")
            return datasets.load_dataset(str(folder), config, split=split, **options)
        from huggingface_hub import DatasetCard, hf_hub_download

        client = self.api
        with self._translated(repo_id, revision):
            sha = client.dataset_info(repo_id, revision=revision).sha
            readme = hf_hub_download(
                repo_id,
                "README.md",
                repo_type="dataset",
                revision=sha,
                endpoint=self.endpoint.url,
                token=self.endpoint.token,
                cache_dir=self.cache_dir,
            )
            files = client.list_repo_files(repo_id, repo_type="dataset", revision=sha)
        header = DatasetCard.load(readme).data.to_dict()
        configs = {c["config_name"]: c for c in header.get("configs") or []}
        if not configs:
            raise CheckpointNotFoundError(
                f"Dataset repo {repo_id!r} declares no configs in its README; stream it with datasets directly."
            )
        name = config or next(iter(configs))
        if name not in configs:
            raise CheckpointNotFoundError(
                f"Dataset repo {repo_id!r} has no config {name!r}; it has {', '.join(configs)}."
            )
        base = f"{self.endpoint.url}/datasets/{repo_id}/resolve/{sha}/"
        data_files = {
            item["split"]: [base + f for f in sorted(files) if fnmatch.fnmatch(f, item["path"])]
            for item in configs[name]["data_files"]
        }
        token = self.endpoint.token
        storage = {"client_kwargs": {"headers": {"Authorization": f"Bearer {token}"}}} if token else None
        return datasets.load_dataset(
            "parquet", data_files=data_files, split=split, streaming=True, storage_options=storage, **options
        )

    def configure_libraries(self) -> Endpoint:
        """Point this process's huggingface_hub, datasets, transformers and PEFT at this endpoint, so calls like
        ``PeftModel.from_pretrained("org/x")`` reach it; returns the endpoint. Those libraries read
        ``HF_ENDPOINT`` at import; this sets the values they derive from it. For a separate program, exporting
        ``HF_ENDPOINT`` (and ``HF_HUB_DISABLE_XET=1``) before it starts is the plain way."""
        from huggingface_hub import constants, hf_api

        url = self.endpoint.url
        self._prepare()
        # The values huggingface_hub derives from HF_ENDPOINT at import time.
        constants.ENDPOINT = url
        constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
        constants.HF_URL_HOSTS = frozenset(constants.HF_URL_HOSTS | {urlsplit(url).hostname})
        hf_api.api.endpoint = url  # the module-level client behind file_exists, model_info, ...
        os.environ["HF_ENDPOINT"] = url
        if self.cache_dir is not None:  # and a cache of its own, as for our own downloads
            constants.HF_HUB_CACHE = str(self.cache_dir)
            os.environ["HF_HUB_CACHE"] = str(self.cache_dir)
        if self.endpoint.token:
            os.environ["HF_TOKEN"] = self.endpoint.token
        if "datasets" in sys.modules:  # datasets keeps its own copy, read at its import
            sys.modules["datasets"].config.HF_ENDPOINT = url
        return self.endpoint


# -- the module functions: the client the environment configures, at the moment of the call ---------------------


def default_client() -> HubClient:
    """:meth:`HubClient.from_environment`, which every module function below uses."""
    return HubClient.from_environment()


def endpoint() -> Endpoint:
    """The endpoint of :func:`default_client`."""
    return default_client().endpoint


def _widen_socket_reads() -> None:
    """Raise the socket read size of huggingface_hub's HTTP/1.1 connections (httpcore2 under huggingface_hub 2,
    httpcore under 1) to :data:`_SOCKET_READ`, never lowering it. A class setting, so process-wide: it only sets
    how much one ``recv`` may return."""
    for name in ("httpcore2._sync.http11", "httpcore._sync.http11"):
        try:
            connection = importlib.import_module(name).HTTP11Connection
        except (ImportError, AttributeError):
            continue
        if isinstance(getattr(connection, "READ_NUM_BYTES", None), int):
            connection.READ_NUM_BYTES = max(connection.READ_NUM_BYTES, _SOCKET_READ)


def download(repo_id: str, revision: str | None = None, **options: Any) -> Path:
    """:meth:`HubClient.download` on :func:`default_client`."""
    return default_client().download(repo_id, revision, **options)


def push_folder(folder: str | os.PathLike[str], repo_id: str, **options: Any) -> Pushed:
    """:meth:`HubClient.push_folder` on :func:`default_client`."""
    return default_client().push_folder(folder, repo_id, **options)


def load_dataset(repo_id: str, config: str | None = None, **options: Any) -> Any:
    """:meth:`HubClient.load_dataset` on :func:`default_client`."""
    return default_client().load_dataset(repo_id, config, **options)


def configure_clients() -> Endpoint:
    """:meth:`HubClient.configure_libraries` on :func:`default_client`."""
    return default_client().configure_libraries()
