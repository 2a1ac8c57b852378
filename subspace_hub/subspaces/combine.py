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
        total = sum(b.shape[1] for b in bases)
        Q = torch.empty(next(iter(rows)), total, dtype=dtype)  # filled left to right
        n = 0
        kept = dict.fromkeys(names, 0)
        for name, basis in zip(names, bases, strict=True):
            block = basis.to(dtype)
            norms = block.norm(dim=0)
            block = block[:, norms > 0] / norms[norms > 0]
            for _ in range(2):  # block Gram-Schmidt against the kept columns, twice (Kahan-Parlett)
                if n:
                    block = block - Q[:, :n] @ (Q[:, :n].T @ block)
            # Unpivoted Householder QR of the remainder: |R_jj| is how much of column j lies outside the span of
            # the columns before it, in order, as column-by-column Gram-Schmidt measures it. Dependent columns
            # are removed and the QR redone, so no kept column is orthogonalised against their noise.
            while True:
                q, r = torch.linalg.qr(block)
                keep = torch.zeros(block.shape[1], dtype=torch.bool)
                keep[: r.shape[0]] = r.diagonal().abs() > tol
                if bool(keep.all()):
                    break
                block = block[:, keep]
            count = block.shape[1]
            Q[:, n : n + count] = q
            n += count
            kept[name] = count
        return CombinedBasis(Q=Q[:, :n].to(bases[0].dtype), kept=kept, dropped=total - n)
    if method == "loewdin":
        X = torch.cat([b.to(dtype) for b in bases], dim=1)
        vals, vecs = torch.linalg.eigh(X.T @ X)
        keep = vals > tol**2
        if bool(keep.all()):
            Q = X @ (vecs / vals.sqrt()) @ vecs.T  # symmetric: column j stays closest to input column j
        else:
            Q = X @ (vecs[:, keep] / vals[keep].sqrt())
        return CombinedBasis(
            Q=Q.to(bases[0].dtype),
            kept={n: b.shape[1] for n, b in zip(names, bases, strict=True)},
            dropped=int((~keep).sum()),
        )
    raise ConfigError(f"Unknown combination method {method!r}; use 'qr' or 'loewdin'.")
