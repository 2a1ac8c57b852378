"""Comparing subspaces: principal angles and the paper's orthogonality eigenvalues.

The paper (Eq. 4) measures how disentangled two attributes' subspaces are by the smallest eigenvalue of a
generalised eigenproblem, 1 meaning orthogonal. For column spaces with orthonormal bases Q and Q' its lower
eigenvalues are ``1 - cos(theta_j)`` over the principal angles theta_j (methods.md A.3), so identical spaces give
0 and orthogonal ones 1, independent of the bases' scale and gauge.
"""

from __future__ import annotations

import re

import torch


def _orthonormal(X: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(X.double())[0]


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spaces of A [m, p] and B [m, q].

    Cosines come from ``svd(Qa^T Qb)`` and sines from ``svd(Qb - Qa Qa^T Qb)``; small angles are taken from the
    sines, large ones from the cosines, which keeps both accurate (Bjorck-Golub).
    """
    Qa, Qb = _orthonormal(A), _orthonormal(B)
    if Qa.shape[1] < Qb.shape[1]:
        Qa, Qb = Qb, Qa
    cos = torch.linalg.svdvals(Qa.T @ Qb).clamp(max=1.0)  # descending: smallest angles first
    sin = torch.linalg.svdvals(Qb - Qa @ (Qa.T @ Qb)).clamp(max=1.0).flip(0)  # ascending
    angles = torch.where(cos**2 < 0.5, torch.arccos(cos), torch.arcsin(sin))
    return angles


def orthogonality_eigenvalues(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``1 - cos(theta_j)`` for the principal angles between col(A) and col(B), ascending, in [0, 1]:
    0 where the spaces share a direction, 1 where they are orthogonal. The first entry is the paper's measure."""
    return 1.0 - torch.cos(principal_angles(A, B))


_LAYER = re.compile(r"\.(\d+)\.")


def module_group(module: str) -> tuple[str, int]:
    """Split a module name into its group (the first block index replaced by ``*``) and that index.

    >>> module_group("aggregator.frame_blocks.7.attn.qkv")
    ('aggregator.frame_blocks.*.attn.qkv', 7)
    """
    found = _LAYER.search(f".{module}.")
    if not found:
        return module, 0
    start, end = found.span(1)
    return (f".{module}."[:start] + "*" + f".{module}."[end:])[1:-1], int(found.group(1))
