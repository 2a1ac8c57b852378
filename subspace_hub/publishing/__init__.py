"""Publishing subspace bundles: registry entries (:mod:`.entries`, the ``registry/<name>.yaml`` recipes), model
cards (:mod:`.cards`) and ``push``/``pull`` of versioned Hub repos (:mod:`.publish`) over the transport of
:mod:`subspace_hub.hub`."""

from subspace_hub.publishing.entries import RegistryEntry, check_bundle, list_entries, load_entry, parse_entry
from subspace_hub.publishing.publish import pull, push, stage

__all__ = ["RegistryEntry", "check_bundle", "list_entries", "load_entry", "parse_entry", "pull", "push", "stage"]
