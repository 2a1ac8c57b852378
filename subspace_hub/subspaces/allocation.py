"""How many dimensions each module's subspace gets.

- ``uniform``: the same ``d`` everywhere (the paper's main experiments).
- ``importance``: the supplement's effective-rank allocation ``d_l = d * floor(ER_l / mean ER)`` with
  ``ER = (||W||_F / ||W||_2)^2``, computed from the first-iteration spectrum of the module's attribute update
  (the matrix its subspace is extracted from). The floor gives 0 for modules below the average effective rank;
  they get ``min_dim`` dimensions instead (default 1, so every targeted module keeps a subspace and
  SubspaceAdapter's parameter count stays predictable); ``min_dim=0`` keeps the literal formula and those
  modules get no subspace.
- ``gap``: per module, the position of the largest spectral cliff ``argmax_j s_j / s_{j+1}`` within
  ``[min_dim, max_dim]``.
- ``energy``: per module, the smallest d whose singular values hold ``energy`` of the squared total.

Every result is capped at the dimension the LoRAs span.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from subspace_hub.errors import ConfigError
from subspace_hub.subspaces.settings import STRATEGIES, Strategy


def effective_rank(spectrum: torch.Tensor) -> float:
    """``(||W||_F / ||W||_2)^2`` from singular values: between 1 (rank one) and the rank (flat spectrum)."""
    s = spectrum.double()
    top = float(s.max()) if s.numel() else 0.0
    return float((s**2).sum()) / top**2 if top > 0 else 0.0


def spectral_gap_dim(spectrum: torch.Tensor, min_dim: int = 1, max_dim: int | None = None) -> int:
    """d in [min_dim, max_dim] maximising ``s_d / s_{d+1}`` (the cliff after the d-th singular value)."""
    s = spectrum.double()
    max_dim = min(max_dim or len(s) - 1, len(s) - 1)
    if max_dim < min_dim:
        return min(min_dim, len(s))
    ratios = s[min_dim - 1 : max_dim] / s[min_dim : max_dim + 1].clamp(min=torch.finfo(torch.float64).tiny)
    return min_dim + int(torch.argmax(ratios))


def energy_dim(spectrum: torch.Tensor, energy: float = 0.95) -> int:
    """Smallest d with ``sum_{j<=d} s_j^2 >= energy * sum_j s_j^2``."""
    if not 0 < energy <= 1:
        raise ConfigError(f"energy must be in (0, 1], got {energy}.")
    power = spectrum.double() ** 2
    cumulative = torch.cumsum(power, 0) / power.sum().clamp(min=torch.finfo(torch.float64).tiny)
    return int(torch.searchsorted(cumulative, torch.tensor(energy - 1e-12, dtype=torch.float64))) + 1


def allocate_dims(
    spectra: Mapping[str, torch.Tensor],
    strategy: Strategy = "uniform",
    d: int = 16,
    *,
    min_dim: int = 1,
    max_dim: int | None = None,
    energy: float = 0.95,
    available: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Dimension per module.

    Args:
        spectra: Module -> first-iteration singular values (descending).
        strategy: ``uniform``, ``importance``, ``gap`` or ``energy`` (module docstring).
        d: The uniform dimension / the global budget of ``importance``.
        min_dim: Lower bound (``importance``: what floor-0 modules get; ``gap``: smallest cliff position).
        max_dim: Upper bound (default: what the LoRAs span).
        energy: Fraction for ``energy``.
        available: Module -> dimensions the LoRAs span (default: the spectrum length).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"Unknown allocation {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    if d < 1 or min_dim < 0:
        raise ConfigError(f"d must be >= 1 and min_dim >= 0, got d={d}, min_dim={min_dim}.")
    caps = {m: (available or {}).get(m, len(s)) for m, s in spectra.items()}
    if max_dim is not None:
        caps = {m: min(c, max_dim) for m, c in caps.items()}
    if strategy == "uniform":
        dims = dict.fromkeys(spectra, d)
    elif strategy == "importance":
        ranks = {m: effective_rank(s) for m, s in spectra.items()}
        mean = sum(ranks.values()) / max(len(ranks), 1)
        dims = {m: d * int(r / mean) if mean > 0 else d for m, r in ranks.items()}
        dims = {m: v if v > 0 else min_dim for m, v in dims.items()}
    elif strategy == "gap":
        dims = {m: spectral_gap_dim(s, max(min_dim, 1), caps[m]) for m, s in spectra.items()}
    else:
        dims = {m: energy_dim(s, energy) for m, s in spectra.items()}
    return {m: min(v, caps[m]) for m, v in dims.items()}
