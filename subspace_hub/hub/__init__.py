"""Hub access through huggingface_hub: the one client for every endpoint."""

from subspace_hub.hub.client import download, endpoint, is_repo_id

__all__ = ["download", "endpoint", "is_repo_id"]
