"""The Hub side: huggingface_hub as the one client (:mod:`.client`), the Hub-compatible registry server
(:mod:`.server`, :mod:`.storage`, :mod:`.auth`), registry entries (:mod:`.registry`), model cards (:mod:`.cards`)
and publishing (:mod:`.publish`)."""

from subspace_hub.hub.client import (
    Endpoint,
    Pushed,
    api,
    configure_clients,
    download,
    endpoint,
    home,
    is_repo_id,
    load_dataset,
    push_folder,
)

__all__ = [
    "Endpoint",
    "Pushed",
    "api",
    "configure_clients",
    "download",
    "endpoint",
    "home",
    "is_repo_id",
    "load_dataset",
    "push_folder",
]
