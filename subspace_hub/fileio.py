"""Small file helpers shared by everything that writes artifacts."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(target: Path, write: Callable[[Path], object], mode: int | None = None) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``target``, then rename it over ``target``: readers see
    the old file or the complete new one, never a half-written one. ``mode``: the file's permissions (default:
    the usual ones under the umask)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, mode if mode is not None else 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
