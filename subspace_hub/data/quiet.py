"""``datasets``' own progress bars, off for a while: the generator, the loaders and the training engine show bars
of their own (or none, when asked to be quiet)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def datasets_quiet(quiet: bool = True) -> Iterator[None]:
    """``datasets``' own progress bars off inside the block (when ``quiet``), as they were afterwards."""
    import datasets

    was_enabled = datasets.utils.logging.is_progress_bar_enabled()
    if quiet:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if quiet and was_enabled:
            datasets.enable_progress_bars()
