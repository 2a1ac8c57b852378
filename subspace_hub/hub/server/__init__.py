"""The Hub-compatible registry server: :mod:`.app` (HTTP), :mod:`.storage` (repos, blobs, commits, refs) and
:mod:`.auth` (tokens). It depends on nothing else of subspace-hub but the error family, file helpers and the
repo-id rule, so it can run alone (``subspace-hub registry serve``)."""

from subspace_hub.hub.server.app import RegistryServer, serve

__all__ = ["RegistryServer", "serve"]
