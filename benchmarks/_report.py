"""What every benchmark records: the machine, torch, the date and the command; and how it writes its report."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from typing import Any


def header(device: str = "cpu") -> dict[str, Any]:
    """``machine`` (the GPU's name, or the CPU with its threads), ``torch``, ``python``, ``date``, ``command``."""
    import torch

    if str(device).startswith("cuda"):
        machine = torch.cuda.get_device_name()
    else:
        cpu = platform.processor() or platform.machine()
        machine = f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    return {
        "machine": machine,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(portable(arg) for arg in sys.argv),
    }


def portable(value: Any) -> Any:
    """``value`` with every absolute path in it (an argument, ``--opt=/path``, or a path among other text) cut to its
    last component: a report names the files it read and wrote, not the folders of the machine it ran on."""
    if not isinstance(value, str):
        return value
    return re.sub(r"(?<![\w.])/(?:[^\s=/]+/)*([^\s=/]+)/?", r"\1", value)


def finish(report: dict[str, Any], path: str | None) -> None:
    """Print the report as JSON and, with ``path``, write it there (numpy scalars become floats)."""
    text = json.dumps(report, indent=1, default=float)
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
