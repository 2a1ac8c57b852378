"""Checking a ``--device`` before any work starts."""

from __future__ import annotations

import re

from subspace_hub.errors import ConfigError

_DEVICE = re.compile(r"(cpu|cuda|mps)(:\d+)?")


def check_device(device: str) -> str:
    """``device`` if this machine and this torch build can use it, else a :class:`ConfigError` saying why.

    >>> check_device("cpu")
    'cpu'
    """
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"Unknown device {device!r}: use cpu, cuda, cuda:N or mps.")
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "has no CUDA support (a CPU build)" if torch.version.cuda is None else "sees no GPU"
            raise ConfigError(f"--device {device}: this torch {torch.__version__} {build}; use --device cpu.")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) are visible.")
    if device.startswith("mps") and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available here; use --device cpu.")
    return device
