"""Orchestration: compositions of the capabilities (data, adapters, subspaces, metrics, publishing) into the
runs users start: :mod:`.train` (the training loop), :mod:`.evaluate` (a backbone over a dataset with metrics)
and :mod:`.quickstart` (the whole method on a laptop). Nothing below this package imports it."""
