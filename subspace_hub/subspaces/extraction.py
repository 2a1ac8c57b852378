"""The shared subspace of an ensemble of LoRA updates of one weight matrix (the method's Eq. 1-3).

Given N LoRA updates ``dW_i = B_i @ A_i`` (PEFT orientation; ``B_i`` out x r_i, ``A_i`` r_i x in), find
orthonormal ``U`` (out x d) and ``V`` (in x d) minimising the robust objective

    J = sum_i (||dW_i - U C_i V^T||_F^2 + eps^2) ** (alpha / 2)

by iteratively reweighted least squares: weights ``w_i = (e_i^2 + eps^2) ** ((alpha - 2) / 2)`` from the residuals
``e_i``, then a weighted least-squares basis update, until the relative change of J is below ``tol``.

- ``mode="mean"`` (the paper): one shared core, C_i = C. The weighted LS step is the truncated SVD of the
  weighted mean ``sum w_i dW_i / sum w_i``; U, V are its top-d singular vectors and S its singular values.
- ``mode="stack"`` (methods.md A.3): per-LoRA cores C_i = U^T dW_i V. U and V are the top-d eigenvectors of the
  weighted Gram matrices ``sum w_i dW_i V V^T dW_i^T`` and ``sum w_i dW_i^T U U^T dW_i`` (first pass without the
  projectors, i.e. the left/right singular vectors of the stacked ``[sqrt(w_i) dW_i]``). It keeps directions
  the LoRAs share as a span even when their coefficients disagree.

Nothing of size out x in is ever formed. The stacked factors ``[B_1 .. B_N]`` (out x R) and
``[A_1^T .. A_N^T]`` (in x R), R = sum r_i, are QR-factorised once (in float64), so that
``dW_i = Q_B K_i Q_A^T`` with orthonormal Q_B, Q_A and R x R cores ``K_i = R_B[:, i] R_A[:, i]^T``; every IRLS
step is a dense decomposition of an R x R matrix, and the bases come out as ``U = Q_B P``, ``V = Q_A T``.
Results are deterministic: each singular-vector pair is signed so that the largest-magnitude entry of the
U column is positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from subspace_hub.errors import ConfigError, ShapeMismatchError
from subspace_hub.subspaces.settings import Mode


@dataclass
class SharedSubspace:
    """Result of :func:`shared_subspace` for one weight matrix."""

    U: torch.Tensor
    """[out, d] orthonormal output-side basis."""

    V: torch.Tensor
    """[in, d] orthonormal input-side basis."""

    S: torch.Tensor
    """[d] singular values: of the weighted mean update (``mean``), or the RMS energy of the weighted stack per
    direction (``stack``)."""

    weights: torch.Tensor
    """[N] final IRLS weights, normalised to sum to N (all 1 for alpha = 2)."""

    residuals: torch.Tensor
    """[N] ``||dW_i - U C_i V^T||_F`` at the solution."""

    iterations: int
    """IRLS iterations run."""

    converged: bool
    """Whether the relative change of the objective fell below ``tol`` within ``max_iter``."""

    spectrum: torch.Tensor
    """Singular values of the first-iteration matrix, descending: of the plain mean update (``mean``), or of the
    stacked updates ``[dW_1 .. dW_N]`` divided by sqrt(N) (``stack``, so N identical updates give the spectrum of
    one). The cliff in these curves reveals the shared rank."""

    objective: list[float] = field(default_factory=list)
    """J after each iteration."""

    mode: Mode = "mean"
    alpha: float = 1.0

    @property
    def d(self) -> int:
        return self.U.shape[1]


class _OrthonormalFactor:
    """An implicit orthonormal basis Q of the column span of a stacked factor X [m, R], with X = Q @ R_factor.

    Well-conditioned stacks use a Cholesky factor of the Gram matrix (BLAS-3, several times faster than Householder
    QR); (nearly) rank-deficient ones, common when LoRAs share directions, use Householder reflectors.
    Q is never formed: :meth:`apply` returns ``Q @ P``.
    """

    # Cholesky-QR loses orthogonality like eps * cond(X)^2: 1e-4 bounds that by about 1e-8.
    MIN_DIAGONAL_RATIO = 1e-4

    def __init__(self, X: torch.Tensor) -> None:
        L, info = torch.linalg.cholesky_ex(X.T @ X)
        diagonal = torch.diagonal(L)
        self.reflectors: tuple[torch.Tensor, torch.Tensor] | None = None
        if int(info) == 0 and float(diagonal.min()) > self.MIN_DIAGONAL_RATIO * float(diagonal.max()):
            self.X, self.R = X, L.T
        else:
            a, tau = torch.geqrf(X)
            self.X, self.R = None, torch.triu(a[: min(X.shape)])
            self.reflectors = (a, tau)

    def apply(self, P: torch.Tensor) -> torch.Tensor:
        """``Q @ P`` for P [k, d] (k = rows of R) -> [m, d]."""
        if self.reflectors is None:
            return self.X @ torch.linalg.solve_triangular(self.R, P, upper=True)
        a, tau = self.reflectors
        padded = torch.zeros(a.shape[0], P.shape[1], dtype=a.dtype)
        padded[: P.shape[0]] = P
        return torch.ormqr(a, tau, padded)


@dataclass
class FactorCores:
    """The N updates of one matrix in reduced coordinates: ``dW_i = Q_B @ K[i] @ Q_A.T`` with orthonormal
    Q_B (span of the B factors) and Q_A (span of the A factors, transposed), kept implicit."""

    K: torch.Tensor
    """[N, k_B, k_A] cores (k_B = min(out, R), k_A = min(in, R))."""

    basis_B: _OrthonormalFactor
    basis_A: _OrthonormalFactor

    norms: torch.Tensor
    """[N] ``||dW_i||_F``."""

    def apply_Q_B(self, P: torch.Tensor) -> torch.Tensor:
        """``Q_B @ P`` for P [k_B, d] -> [out, d]."""
        return self.basis_B.apply(P)

    def apply_Q_A(self, T: torch.Tensor) -> torch.Tensor:
        """``Q_A @ T`` for T [k_A, d] -> [in, d]."""
        return self.basis_A.apply(T)


def _check_factors(factors: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[int, int]:
    if len(factors) == 0:
        raise ConfigError("shared_subspace needs at least one (B, A) pair of LoRA factors.")
    out_dim = in_dim = None
    for i, pair in enumerate(factors):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigError(f"factors[{i}] must be a (B, A) pair, got {type(pair).__name__}.")
        b, a = pair
        if b.ndim != 2 or a.ndim != 2:
            raise ShapeMismatchError(
                f"LoRA {i}: B and A must be matrices, got shapes {list(b.shape)} and {list(a.shape)}."
            )
        if b.shape[1] != a.shape[0]:
            raise ShapeMismatchError(
                f"LoRA {i}: B is {list(b.shape)} and A is {list(a.shape)}; B's columns must equal A's rows (the rank). "
                "Pass factors in PEFT orientation (dW = B @ A, B = lora_B.weight, A = lora_A.weight)."
            )
        if out_dim is None:
            out_dim, in_dim = b.shape[0], a.shape[1]
        elif (b.shape[0], a.shape[1]) != (out_dim, in_dim):
            raise ShapeMismatchError(
                f"LoRA {i} updates a {b.shape[0]}x{a.shape[1]} matrix, LoRA 0 a {out_dim}x{in_dim} one; all LoRAs of "
                "one "
                "module must have the same shape."
            )
    return int(out_dim), int(in_dim)


def _raise_for_nonfinite(factors: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for i, (b, a) in enumerate(factors):
        if not (torch.isfinite(b).all() and torch.isfinite(a).all()):
            raise ConfigError(f"LoRA {i} has non-finite values; the adapter is corrupt or diverged.")


def reduce_factors(
    factors: Sequence[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype = torch.float64
) -> FactorCores:
    """Reduce N (B_i, A_i) pairs to small cores in orthonormal coordinates (see :class:`FactorCores`)."""
    _check_factors(factors)
    ranks = [b.shape[1] for b, _ in factors]
    basis_b = _OrthonormalFactor(torch.cat([b for b, _ in factors], dim=1).to(dtype))
    basis_a = _OrthonormalFactor(torch.cat([a for _, a in factors], dim=0).to(dtype).T)
    if len(set(ranks)) == 1:  # one batched product for equal ranks (the usual ensemble)
        n, r = len(ranks), ranks[0]
        left = basis_b.R.reshape(-1, n, r).permute(1, 0, 2)
        right = basis_a.R.reshape(-1, n, r).permute(1, 2, 0)
        K = left @ right
    else:
        blocks = torch.split(torch.arange(sum(ranks)), ranks)
        K = torch.stack([basis_b.R[:, idx] @ basis_a.R[:, idx].T for idx in blocks])
    if not bool(torch.isfinite(K).all()):
        _raise_for_nonfinite(factors)
    return FactorCores(K=K, basis_B=basis_b, basis_A=basis_a, norms=torch.linalg.matrix_norm(K))


def _signed(U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip basis-vector pairs so that each column of U has a positive largest-magnitude entry."""
    idx = U.abs().argmax(dim=0)
    sign = torch.sign(U[idx, torch.arange(U.shape[1])])
    sign[sign == 0] = 1
    return U * sign, V * sign


def _top_singular(M: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-d singular triplets (P, s, T) of a small dense matrix and all its singular values (descending), from
    the eigendecomposition of its smaller Gram matrix (half the cost of an SVD; in float64 the top directions are
    exact to rounding, the smallest singular values to about eps * s_max^2 / s)."""
    wide = M.shape[0] <= M.shape[1]
    vals, vecs = torch.linalg.eigh(M @ M.T if wide else M.T @ M)
    spectrum = vals.flip(0).clamp(min=0).sqrt()
    top, s = vecs[:, -d:].flip(1), spectrum[:d]
    other = (M.T @ top if wide else M @ top) / s.clamp(min=torch.finfo(M.dtype).tiny)
    return (top, s, other, spectrum) if wide else (other, s, top, spectrum)


def _top_eigvecs(G: torch.Tensor, d: int) -> torch.Tensor:
    """The eigenvectors [k, d] of the d largest eigenvalues (descending) of a symmetric PSD matrix G [k, k]."""
    return torch.linalg.eigh(G)[1][:, -d:].flip(1)


def _stack_fresh(K: torch.Tensor, weights: torch.Tensor, d: int) -> torch.Tensor:
    """A projector-free input-side basis [k_A, d]: the top-d eigenvectors of the weighted right Gram (the stacked
    updates' right singular vectors); a sweep from it finds the matching output side."""
    return _top_eigvecs(torch.einsum("n,nji,njk->ik", weights, K, K), d)


def _stack_sweep(K: torch.Tensor, weights: torch.Tensor, T: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One alternating least-squares sweep from the input-side basis T: U given V, then V given the new U."""
    KT = K @ T
    P = _top_eigvecs(torch.einsum("n,nid,njd->ij", weights, KT, KT), d)
    PK = P.T @ K
    T = _top_eigvecs(torch.einsum("n,ndi,ndj->ij", weights, PK, PK), d)
    return P, T


def _weights(residuals: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    w = (residuals**2 + eps**2) ** ((alpha - 2.0) / 2.0)
    return w * (len(w) / w.sum())


def _objective(residuals: torch.Tensor, alpha: float, eps: float) -> float:
    return float(((residuals**2 + eps**2) ** (alpha / 2.0)).sum())


def shared_subspace(
    factors: Sequence[tuple[torch.Tensor, torch.Tensor]] | FactorCores,
    d: int,
    *,
    alpha: float = 1.0,
    mode: Mode = "mean",
    max_iter: int = 20,
    tol: float = 1e-6,
    eps: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> SharedSubspace:
    """Robust shared subspace of N LoRA updates of one weight matrix.

    Args:
        factors: N pairs ``(B_i, A_i)`` with ``dW_i = B_i @ A_i`` (``B_i`` out x r_i, ``A_i`` r_i x in; fold the
            LoRA scaling ``lora_alpha / r`` into ``B_i``), or the result of :func:`reduce_factors`.
        d: Subspace dimension (at most the dimension the LoRAs span).
        alpha: Robustness exponent of the objective: 2 is least squares, 1 (default) a Frobenius "median"
            that down-weights outlier LoRAs.
        mode: ``"mean"`` (the paper's weighted-mean SVD) or ``"stack"`` (per-LoRA cores, weighted Grams).
        max_iter: Maximum IRLS iterations (each one basis update and one weight update).
        tol: Stop when the relative change of the objective is below this (0: always run ``max_iter``).
        eps: Residual floor of the weights; default ``1e-6 * mean_i ||dW_i||_F``.
        dtype: Accumulation dtype (float64 by default; results are returned in it).

    Returns:
        A :class:`SharedSubspace`.

    Raises:
        ConfigError, ShapeMismatchError: invalid factors, ``d`` or options.

    >>> result = shared_subspace([(B1, A1), (B2, A2)], d=8)  # doctest: +SKIP
    >>> result.U.shape, result.V.shape
    (torch.Size([3072, 8]), torch.Size([1024, 8]))
    """
    if mode not in ("mean", "stack"):
        raise ConfigError(f"mode must be 'mean' or 'stack', got {mode!r}.")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0 (2 = least squares, 1 = robust), got {alpha}.")
    if max_iter < 1:
        raise ConfigError(f"max_iter must be >= 1, got {max_iter}.")
    cores = factors if isinstance(factors, FactorCores) else reduce_factors(factors, dtype)
    K = cores.K
    n, k_b, k_a = K.shape
    available = min(k_b, k_a)
    if not isinstance(d, int) or d < 1:
        raise ConfigError(f"d must be a positive integer, got {d!r}.")
    if d > available:
        raise ConfigError(
            f"d={d} exceeds the {available} dimensions the {n} LoRAs span for this matrix; use d <= {available}."
        )
    if eps is None:
        eps = 1e-6 * float(cores.norms.mean()) or 1e-12
    weights = torch.ones(n, dtype=K.dtype)
    history: list[float] = []
    converged = False
    spectrum: torch.Tensor  # set by the first iteration (max_iter >= 1)
    T: torch.Tensor | None = None
    for iteration in range(1, max_iter + 1):
        if mode == "mean":
            mean = torch.einsum("n,nij->ij", weights, K) / weights.sum()
            P, S, T, all_values = _top_singular(mean, d)
            if iteration == 1:
                spectrum = all_values
            approx = (P * S) @ T.T
            residuals = torch.linalg.matrix_norm(K - approx)
        else:
            if iteration == 1:
                stacked = K.permute(1, 0, 2).reshape(k_b, n * k_a)
                spectrum = torch.linalg.svdvals(stacked) / n**0.5
            # Refine the previous basis and a fresh projector-free one by one alternating sweep each and keep the
            # better: the sweep alone can never bring back a direction missing from both bases (a local minimum).
            candidates = [_stack_sweep(K, weights, _stack_fresh(K, weights, d), d)]
            if T is not None:
                candidates.append(_stack_sweep(K, weights, T, d))
            P, T = max(candidates, key=lambda pt: float(torch.einsum("n,nij->", weights, (pt[0].T @ K @ pt[1]) ** 2)))
            core = P.T @ K @ T  # [N, d, d]
            residuals = torch.linalg.matrix_norm(K - P @ core @ T.T)
            energy = torch.linalg.svdvals((weights.sqrt()[:, None, None] * core).permute(1, 0, 2).reshape(d, n * d))
            S = energy / weights.sum().sqrt()
        history.append(_objective(residuals, alpha, eps))
        if alpha == 2.0:
            converged = True  # weights stay 1: the first least-squares solution is the answer
            break
        if iteration > 1 and abs(history[-2] - history[-1]) < tol * max(abs(history[-2]), 1e-300):
            converged = True
            break
        if iteration < max_iter:  # the returned weights are the ones that produced the returned basis
            weights = _weights(residuals, alpha, eps)
    U, V = _signed(cores.apply_Q_B(P), cores.apply_Q_A(T))
    return SharedSubspace(
        U=U,
        V=V,
        S=S,
        weights=weights,
        residuals=residuals,
        iterations=iteration,
        converged=converged,
        spectrum=spectrum,
        objective=history,
        mode=mode,
        alpha=alpha,
    )
