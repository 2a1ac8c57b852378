"""The Hub transport: :class:`HubClient` (huggingface_hub against one endpoint, :mod:`.client`), the repo-id rule
(:mod:`.repo_id`) and the Hub-compatible registry server (:mod:`.server`). Publishing registry entries, which
needs the subspace code, lives a layer up in :mod:`subspace_hub.publishing`."""

from subspace_hub.hub.client import (
    Endpoint,
    HubClient,
    Pushed,
    configure_clients,
    default_client,
    download,
    endpoint,
    home,
    load_dataset,
    push_folder,
)
from subspace_hub.hub.repo_id import is_repo_id, parse_repo_id

__all__ = [
    "Endpoint",
    "HubClient",
    "Pushed",
    "configure_clients",
    "default_client",
    "download",
    "endpoint",
    "home",
    "is_repo_id",
    "load_dataset",
    "parse_repo_id",
    "push_folder",
]
