"""Small file helpers shared by everything that writes and reads artifacts."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from subspace_hub._version import __version__
from subspace_hub.errors import CheckpointError

if TYPE_CHECKING:
    import torch


def atomic_write(target: str | os.PathLike[str], write: Callable[[Path], object], mode: int | None = None) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``target``, flush it to disk, then rename it over ``target``.

    Readers see the old file or the complete new one, never a half-written one, and after a crash (power loss
    included, hence the fsyncs of the file and of its folder) the file is either the old or the new one.
    ``mode``: the file's permissions (default: the usual ones under the umask). Temporary files are named
    ``.<name>.<random>.tmp``, so a cleanup of crashed writes can find them.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as written:  # `write` may have closed its own handle: fsync through a new one
            os.fsync(written.fileno())
        os.chmod(tmp_path, mode if mode is not None else 0o666 & ~_UMASK)  # mkstemp makes 0600 files
        os.replace(tmp_path, target)
        _fsync_folder(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object stored in ``path``.

    Raises:
        CheckpointError: the file cannot be read, is not JSON, or holds something else than an object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Cannot read {path}: {exc}. Fix or delete the file, or write it again.") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}.")
    return data


def read_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU.

    Raises:
        CheckpointError: the file is missing, corrupt or truncated.
    """
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises SafetensorError, OSError or ValueError depending on the damage
        raise CheckpointError(
            f"Cannot read {path}: {exc}. The file is missing, corrupt or truncated; download or save it again."
        ) from exc


def check_format_version(data: Mapping[str, Any], supported: int, *, source: str, what: str) -> int:
    """The ``format_version`` of a file subspace-hub wrote, checked against the newest this version reads.

    Raises:
        CheckpointError: the version is missing or not an integer (``source`` was not written by subspace-hub),
            or newer than ``supported`` (upgrade subspace-hub).
    """
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{source} has no valid format_version: it is not a {what} written by subspace-hub.")
    if version > supported:
        raise CheckpointError(
            f"{source} uses {what} format {version}; this subspace-hub ({__version__}) reads up to {supported}. "
            "Upgrade subspace-hub."
        )
    return version


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_umask() -> int:
    # Reading the umask means setting it; done once at import, since the registry server writes from many threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
