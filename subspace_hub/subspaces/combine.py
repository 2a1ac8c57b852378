"""Several attributes' bases of one module -> one orthonormal basis for fine-tuning.

- ``qr`` (default): ordered Gram-Schmidt with re-orthogonalisation and deflation, a rank-revealing QR that keeps
  the attributes in the order given: the first attribute's span is kept exactly, and each later column is
  dropped when less than ``tol`` of it lies outside the span of the columns kept so far.
- ``loewdin``: symmetric (Loewdin) orthogonalisation ``X (X^T X)^(-1/2)``, the orthonormal basis closest to the
  stacked columns in Frobenius norm, independent of the attribute order; near-dependent directions (eigenvalue of
  ``X^T X`` below ``tol^2``) are dropped (canonical orthogonalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from subspace_hub.errors import ConfigError, ShapeMismatchError

Method = Literal["qr", "loewdin"]


@dataclass
class CombinedBasis:
    """An orthonormal basis built from several attribute bases."""

    Q: torch.Tensor
    """[m, k] orthonormal columns."""

    kept: dict[str, int]
    """Attribute -> columns it contributed (``qr``), or its column count (``loewdin``)."""

    dropped: int
    """Columns removed as (nearly) dependent."""


def combine_bases(
    bases: Sequence[torch.Tensor], names: Sequence[str] | None = None, *, method: Method = "qr", tol: float = 1e-6
) -> CombinedBasis:
    """Combine bases [m, d_i] (each orthonormal) into one orthonormal [m, k] basis, k <= sum d_i.

    Raises:
        ShapeMismatchError: bases with different row counts.
    """
    if not bases:
        raise ConfigError("combine_bases needs at least one basis.")
    names = list(names) if names is not None else [str(i) for i in range(len(bases))]
    rows = {b.shape[0] for b in bases}
    if len(rows) != 1:
        raise ShapeMismatchError(f"Bases must have the same number of rows to be combined, got {sorted(rows)}.")
    dtype = torch.float64
    if method == "qr":
        kept_cols: list[torch.Tensor] = []
        kept = {name: 0 for name in names}
        for name, basis in zip(names, bases, strict=True):
            for column in basis.to(dtype).T:
                norm0 = column.norm()
                if norm0 == 0:
                    continue
                v = column / norm0
                for _ in range(2):  # twice is enough (Kahan-Parlett)
                    if kept_cols:
                        Q = torch.stack(kept_cols, dim=1)
                        v = v - Q @ (Q.T @ v)
                remaining = v.norm()
                if remaining > tol:
                    kept_cols.append(v / remaining)
                    kept[name] += 1
        total = sum(b.shape[1] for b in bases)
        Q = torch.stack(kept_cols, dim=1) if kept_cols else torch.zeros(next(iter(rows)), 0, dtype=dtype)
        return CombinedBasis(Q=Q.to(bases[0].dtype), kept=kept, dropped=total - Q.shape[1])
    if method == "loewdin":
        X = torch.cat([b.to(dtype) for b in bases], dim=1)
        vals, vecs = torch.linalg.eigh(X.T @ X)
        keep = vals > tol**2
        if bool(keep.all()):
            Q = X @ (vecs / vals.sqrt()) @ vecs.T  # symmetric: column j stays closest to input column j
        else:
            Q = X @ (vecs[:, keep] / vals[keep].sqrt())
        return CombinedBasis(
            Q=Q.to(bases[0].dtype), kept={n: b.shape[1] for n, b in zip(names, bases, strict=True)}, dropped=int((~keep).sum())
        )
    raise ConfigError(f"Unknown combination method {method!r}; use 'qr' or 'loewdin'.")
