"""What a user chooses when extracting subspaces: the allocation strategies, the IRLS modes and
:class:`ExtractionSettings`, the one schema of ``subspace-hub extract``, registry entries and every bundle's
``extraction`` record. Importable without torch (the CLI offers these as choices)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from subspace_hub.errors import ConfigError

Strategy = Literal["uniform", "importance", "gap", "energy"]
STRATEGIES: tuple[str, ...] = ("uniform", "importance", "gap", "energy")
"""How d is chosen per module (see :mod:`.allocation`)."""
Mode = Literal["mean", "stack"]
MODES: tuple[str, ...] = ("mean", "stack")
"""``mean``: the paper's weighted-mean SVD; ``stack``: the stacked (Gram) variant (see :mod:`.extraction`)."""


@dataclass(frozen=True)
class ExtractionSettings:
    """How subspaces are extracted: the one schema of ``subspace-hub extract``, registry entries (``extraction:``)
    and the ``extraction`` record of every bundle."""

    d: int = 16
    """Dimension per module (``uniform``) or the budget the other allocations distribute."""
    allocation: Strategy = "uniform"
    """``uniform``, ``importance``, ``gap`` or ``energy`` (see :mod:`.allocation`)."""
    alpha: float = 1.0
    """Robustness exponent of :func:`shared_subspace`: 2 is least squares, 1 down-weights outlier LoRAs."""
    mode: Mode = "mean"
    """``mean`` (the paper's weighted-mean SVD) or ``stack``."""
    max_iter: int = 20
    tol: float = 1e-6
    targets: tuple[str, ...] = ()
    """Module-name regexes (``re.fullmatch``) to restrict the extraction to; empty: every adapted module."""
    min_dim: int = 1
    max_dim: int | None = None
    energy: float = 0.95
    """The spectral energy fraction of the ``energy`` allocation."""

    def __post_init__(self) -> None:
        problems = []
        if self.d < 1:
            problems.append(f"d must be at least 1, got {self.d}")
        if self.alpha <= 0:
            problems.append(f"alpha must be positive, got {self.alpha}")
        if self.max_iter < 1:
            problems.append(f"max_iter must be at least 1, got {self.max_iter}")
        if self.min_dim < 0 or (self.max_dim is not None and self.max_dim < max(self.min_dim, 1)):
            problems.append(f"need 0 <= min_dim <= max_dim, got {self.min_dim} and {self.max_dim}")
        if not 0 < self.energy <= 1:
            problems.append(f"energy must be in (0, 1], got {self.energy}")
        for pattern in self.targets:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"target {pattern!r} is not a regular expression ({exc})")
        if problems:
            raise ConfigError("Invalid extraction settings: " + "; ".join(problems) + ".")
