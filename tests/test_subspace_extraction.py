"""shared_subspace: planted recovery, robustness, equivalence with a dense implementation, invariances."""

from __future__ import annotations

import pytest
import torch

from subspace_hub.errors import ConfigError, ShapeMismatchError
from subspace_hub.subspaces import orthogonality_eigenvalues, principal_angles, shared_subspace

F64 = torch.float64


def orthonormal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(rows, cols, generator=gen, dtype=F64))[0]


def complement(basis: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x - basis @ (basis.T @ x)


def planted(
    n: int = 10,
    out: int = 48,
    inn: int = 40,
    d: int = 4,
    rank: int = 8,
    *,
    noise: float = 0.0,
    outliers: int = 0,
    seed: int = 0,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
    """N LoRAs sharing span(U0) x span(V0) (singular values 4..2) plus weaker private parts orthogonal to it
    (norm 0.3) and optional Gaussian noise. The first ``outliers`` LoRAs come from a corrupted dataset: they share
    one wrong rank-``rank`` update of strength 12 (plus 1% jitter), consistent enough to survive averaging.
    Every pair is given in a random gauge (B X, X^-1 A)."""
    gen = torch.Generator().manual_seed(seed)
    U0, V0 = orthonormal(out, d, gen), orthonormal(inn, d, gen)
    U_bad, V_bad = orthonormal(out, rank, gen), orthonormal(inn, rank, gen)
    strengths = torch.linspace(4.0, 2.0, d, dtype=F64)
    factors = []
    for i in range(n):
        if i < outliers:
            B = 12.0 * U_bad + 0.12 * torch.randn(out, rank, generator=gen, dtype=F64)
            A = V_bad.T
        else:
            core = torch.diag(strengths) + 0.1 * torch.randn(d, d, generator=gen, dtype=F64)
            private_b = orthonormal(out, rank - d, gen)
            private_b = torch.linalg.qr(complement(U0, private_b))[0]
            private_a = torch.linalg.qr(complement(V0, orthonormal(inn, rank - d, gen)))[0]
            B = torch.cat([U0 @ core, 0.3 * private_b / (rank - d) ** 0.5], dim=1)
            A = torch.cat([V0.T, private_a.T], dim=0)
            if noise:
                B = B + noise * torch.randn(B.shape, generator=gen, dtype=F64)
        gauge = torch.randn(rank, rank, generator=gen, dtype=F64) + 3 * torch.eye(rank, dtype=F64)
        factors.append((B @ gauge, torch.linalg.solve(gauge, A)))
    return factors, U0, V0


def max_angle(A: torch.Tensor, B: torch.Tensor) -> float:
    return float(principal_angles(A, B).max())


@pytest.mark.parametrize("mode", ["mean", "stack"])
def test_planted_subspace_is_recovered_exactly_without_noise(mode):
    factors, U0, V0 = planted()
    result = shared_subspace(factors, 4, mode=mode)
    assert max_angle(result.U, U0) < 1e-6
    assert max_angle(result.V, V0) < 1e-6
    torch.testing.assert_close(result.U.T @ result.U, torch.eye(4, dtype=F64))
    torch.testing.assert_close(result.V.T @ result.V, torch.eye(4, dtype=F64))


@pytest.mark.parametrize("mode", ["mean", "stack"])
def test_alpha_1_resists_outlier_loras_better_than_alpha_2(mode):
    factors, U0, V0 = planted(n=10, outliers=2, noise=0.01, seed=1)  # 20% outliers
    robust = shared_subspace(factors, 4, mode=mode, alpha=1.0, max_iter=50)
    plain = shared_subspace(factors, 4, mode=mode, alpha=2.0)
    robust_angle = max(max_angle(robust.U, U0), max_angle(robust.V, V0))
    plain_angle = max(max_angle(plain.U, U0), max_angle(plain.V, V0))
    assert plain_angle > 0.5  # least squares follows the outliers
    assert robust_angle < 0.05 and robust_angle < plain_angle / 10
    assert robust.weights[:2].max() < 0.1 * robust.weights[2:].min()  # the outliers are down-weighted


def dense_reference(factors, d, alpha, mode, max_iter=20, tol=1e-6):
    """The algorithm on materialised updates with full SVDs/eigendecompositions, as a check."""
    dW = [b @ a for b, a in factors]
    n = len(dW)
    eps = 1e-6 * sum(float(w.norm()) for w in dW) / n
    weights = torch.ones(n, dtype=F64)
    history = []
    V = None
    for iteration in range(1, max_iter + 1):
        if mode == "mean":
            mean = sum(w * x for w, x in zip(weights, dW, strict=True)) / weights.sum()
            U_full, s, Vh = torch.linalg.svd(mean)
            U, S, V = U_full[:, :d], s[:d], Vh[:d].T
            residuals = torch.stack([torch.linalg.norm(x - (U * S) @ V.T) for x in dW])
        else:

            def top(gram):
                return torch.linalg.eigh(gram).eigenvectors[:, -d:].flip(1)

            def sweep(U, V, weights=weights):
                U = top(sum(w * x @ V @ V.T @ x.T for w, x in zip(weights, dW, strict=True)))
                V = top(sum(w * x.T @ U @ U.T @ x for w, x in zip(weights, dW, strict=True)))
                return U, V

            def captured(UV, weights=weights):
                return sum(w * torch.linalg.norm(UV[0].T @ x @ UV[1]) ** 2 for w, x in zip(weights, dW, strict=True))

            fresh = (
                top(sum(w * x @ x.T for w, x in zip(weights, dW, strict=True))),
                top(sum(w * x.T @ x for w, x in zip(weights, dW, strict=True))),
            )
            candidates = [sweep(*fresh)] + ([sweep(U, V)] if V is not None else [])
            U, V = max(candidates, key=captured)
            residuals = torch.stack([torch.linalg.norm(x - U @ U.T @ x @ V @ V.T) for x in dW])
            S = None
        history.append(float(((residuals**2 + eps**2) ** (alpha / 2)).sum()))
        if alpha == 2.0 or (iteration > 1 and abs(history[-2] - history[-1]) < tol * history[-2]):
            break
        if iteration < max_iter:
            weights = (residuals**2 + eps**2) ** ((alpha - 2) / 2)
            weights = weights * n / weights.sum()
    return U, V, S, weights, residuals, iteration


@pytest.mark.parametrize("mode", ["mean", "stack"])
@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0])
def test_equivalent_to_a_dense_reference(mode, alpha):
    factors, _, _ = planted(n=6, out=20, inn=16, d=3, rank=5, noise=0.05, outliers=1, seed=2)
    result = shared_subspace(factors, 3, mode=mode, alpha=alpha)
    U, V, S, weights, residuals, iterations = dense_reference(factors, 3, alpha, mode)
    assert result.iterations == iterations
    torch.testing.assert_close(result.U @ result.U.T, U @ U.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.V @ result.V.T, V @ V.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.weights, weights, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(result.residuals, residuals, atol=1e-6, rtol=1e-6)
    if S is not None:
        torch.testing.assert_close(result.S, S, atol=1e-6, rtol=1e-6)
        mean = sum(b @ a for b, a in factors) / len(factors)
        dense_spectrum = torch.linalg.svdvals(mean)[: len(result.spectrum)]
        torch.testing.assert_close(result.spectrum, dense_spectrum, atol=1e-7 * float(dense_spectrum[0]), rtol=1e-8)


def test_spectrum_shows_the_cliff_at_the_shared_rank():
    factors, _, _ = planted(n=10, d=4)
    spectrum = shared_subspace(factors, 4).spectrum
    assert spectrum[3] / spectrum[4] > 5 * max(spectrum[j] / spectrum[j + 1] for j in range(4, 10))


@pytest.mark.parametrize("mode", ["mean", "stack"])
def test_invariances(mode):
    factors, _, _ = planted(n=8, noise=0.05, outliers=1, seed=3)
    base = shared_subspace(factors, 4, mode=mode)

    def same(other, order=None):
        torch.testing.assert_close(other.U @ other.U.T, base.U @ base.U.T, atol=1e-9, rtol=0)
        torch.testing.assert_close(other.V @ other.V.T, base.V @ base.V.T, atol=1e-9, rtol=0)
        expected = base.weights if order is None else base.weights[order]
        torch.testing.assert_close(other.weights, expected, atol=1e-9, rtol=1e-9)

    scaled = shared_subspace([(7.5 * b, a) for b, a in factors], 4, mode=mode)
    same(scaled)
    torch.testing.assert_close(scaled.S, 7.5 * base.S, rtol=1e-9, atol=0)
    order = torch.randperm(len(factors), generator=torch.Generator().manual_seed(0))
    same(shared_subspace([factors[i] for i in order], 4, mode=mode), order)
    gen = torch.Generator().manual_seed(4)
    gauges = [torch.randn(8, 8, generator=gen, dtype=F64) + 4 * torch.eye(8, dtype=F64) for _ in factors]
    same(
        shared_subspace(
            [(b @ x, torch.linalg.solve(x, a)) for (b, a), x in zip(factors, gauges, strict=True)], 4, mode=mode
        )
    )


def test_results_are_deterministic_and_sign_normalised():
    factors, _, _ = planted(seed=5)
    first, second = shared_subspace(factors, 4), shared_subspace(factors, 4)
    assert torch.equal(first.U, second.U) and torch.equal(first.V, second.V)
    peaks = first.U.gather(0, first.U.abs().argmax(0, keepdim=True))
    assert torch.all(peaks > 0)


def test_orthogonality_measure():
    gen = torch.Generator().manual_seed(6)
    Q = orthonormal(30, 6, gen)
    A, B = Q[:, :3], Q[:, 3:]
    torch.testing.assert_close(
        orthogonality_eigenvalues(A, A @ torch.randn(3, 3, generator=gen, dtype=F64)),
        torch.zeros(3, dtype=F64),
        atol=1e-12,
        rtol=0,
    )
    torch.testing.assert_close(orthogonality_eigenvalues(A, B), torch.ones(3, dtype=F64), atol=1e-12, rtol=0)
    mixed = torch.cat([A[:, :1], B[:, :2]], dim=1)  # shares exactly one direction with A
    torch.testing.assert_close(
        orthogonality_eigenvalues(A, mixed), torch.tensor([0.0, 1.0, 1.0], dtype=F64), atol=1e-12, rtol=0
    )
    angle = 0.3
    tilted = torch.cos(torch.tensor(angle, dtype=F64)) * A[:, :1] + torch.sin(torch.tensor(angle, dtype=F64)) * B[:, :1]
    torch.testing.assert_close(principal_angles(A[:, :1], tilted), torch.tensor([angle], dtype=F64))
    tiny = 1e-9 * B[:, :1] + A[:, :1]
    assert 0 < float(principal_angles(A[:, :1], tiny)) < 2e-9  # small angles stay accurate


def test_bad_input_is_explained():
    factors, _, _ = planted(n=3)
    with pytest.raises(ConfigError, match="d=17 exceeds the 17|d=25 exceeds"):
        shared_subspace(factors, 25)
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        shared_subspace(factors, 2, alpha=0)
    with pytest.raises(ConfigError, match="mode must be 'mean' or 'stack'"):
        shared_subspace(factors, 2, mode="median")
    with pytest.raises(ConfigError, match="at least one"):
        shared_subspace([], 2)
    with pytest.raises(ShapeMismatchError, match="B's columns must equal A's rows"):
        shared_subspace([(torch.randn(5, 3), torch.randn(4, 6))], 1)
    with pytest.raises(ShapeMismatchError, match="LoRA 1 updates a 5x7 matrix, LoRA 0 a 5x6 one"):
        shared_subspace([(torch.randn(5, 3), torch.randn(3, 6)), (torch.randn(5, 3), torch.randn(3, 7))], 1)
    bad = torch.randn(5, 3)
    bad[0, 0] = float("nan")
    with pytest.raises(ConfigError, match="LoRA 0 has non-finite values"):
        shared_subspace([(bad, torch.randn(3, 6))], 1)


def test_tol_zero_runs_every_iteration_and_alpha_2_one():
    factors, _, _ = planted(noise=0.1, outliers=2, seed=7)
    assert shared_subspace(factors, 4, tol=0.0, max_iter=13).iterations == 13
    assert shared_subspace(factors, 4, alpha=2.0, max_iter=13).iterations == 1
    result = shared_subspace(factors, 4, tol=1e-10, max_iter=200)
    assert result.converged and result.iterations < 200
    assert all(
        b <= a * (1 + 1e-9) for a, b in zip(result.objective, result.objective[1:], strict=False)
    )  # IRLS descends


def test_the_signed_pair_still_reconstructs_the_mean_update():
    """Signing U's columns must sign V's the same way: U diag(S) V^T stays the (rank-d) mean update."""
    gen = torch.Generator().manual_seed(7)
    U0, V0 = orthonormal(20, 3, gen), orthonormal(16, 3, gen)
    factors = [(U0 @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=F64)) * s, V0.T) for s in (0.5, 1.0, 1.5)]
    mean = sum(B @ A for B, A in factors) / 3
    for mode in ("mean", "stack"):
        result = shared_subspace(factors, 3, alpha=2.0, mode=mode)
        assert torch.all(result.U.gather(0, result.U.abs().argmax(0, keepdim=True)) > 0)
        core = result.U.T @ mean @ result.V
        torch.testing.assert_close(result.U @ core @ result.V.T, mean)
    result = shared_subspace(factors, 3, alpha=2.0, mode="mean")
    torch.testing.assert_close((result.U * result.S) @ result.V.T, mean)


def test_stack_singular_values_of_identical_updates_are_those_of_one():
    gen = torch.Generator().manual_seed(8)
    U0, V0 = orthonormal(12, 3, gen), orthonormal(10, 3, gen)
    one = (U0 @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=F64)), V0.T)
    result = shared_subspace([one] * 4, 3, alpha=2.0, mode="stack")
    torch.testing.assert_close(result.S, torch.tensor([3.0, 2.0, 1.0], dtype=F64))
    torch.testing.assert_close(result.spectrum[:3], torch.tensor([3.0, 2.0, 1.0], dtype=F64))


def random_loras(ranks, out: int, inn: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(out, r, generator=gen, dtype=F64), torch.randn(r, inn, generator=gen, dtype=F64)) for r in ranks
    ]


def projector(basis: torch.Tensor) -> torch.Tensor:
    return basis @ basis.T


# out x in: the B stack rank-deficient (wide cores), the A stack rank-deficient (tall cores), both full (square)
SHAPES = [(6, 30), (30, 6), (40, 40)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ranks", [(3, 3, 3), (2, 3, 5), (4, 2, 4)])
def test_reduced_cores_rebuild_every_update_and_least_squares_is_the_mean_updates_svd(shape, ranks):
    """Whatever the QR of each factor stack (Cholesky for a full-rank stack, Householder for a deficient one) and
    whether the ranks are equal or not: Q_B K_i Q_A^T gives back every B_i A_i, and with alpha = 2 the result is
    the top-d singular triplets of the plain mean update, after one iteration, with the first spectrum."""
    from subspace_hub.subspaces.extraction import reduce_factors

    out, inn = shape
    factors = random_loras(ranks, out, inn)
    cores = reduce_factors(factors)
    k_b, k_a = cores.K.shape[1:]
    assert (k_b, k_a) == (min(out, sum(ranks)), min(inn, sum(ranks)))
    right = cores.apply_Q_A(torch.eye(k_a, dtype=F64))
    for i, (b, a) in enumerate(factors):
        torch.testing.assert_close(cores.apply_Q_B(cores.K[i]) @ right.T, b @ a, atol=1e-10, rtol=0)
    d = 4
    result = shared_subspace(factors, d, alpha=2.0)
    u, s, vh = torch.linalg.svd(sum(b @ a for b, a in factors) / len(factors))
    torch.testing.assert_close(result.S, s[:d], atol=1e-10, rtol=0)
    torch.testing.assert_close(projector(result.U), projector(u[:, :d]), atol=1e-9, rtol=0)
    torch.testing.assert_close(projector(result.V), projector(vh[:d].T), atol=1e-9, rtol=0)
    torch.testing.assert_close(result.U.T @ result.U, torch.eye(d, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(result.spectrum, s[: min(k_b, k_a)], atol=1e-9, rtol=0)
    assert result.iterations == 1 and result.converged is True and result.weights.tolist() == [1.0] * len(ranks)
    assert result.mode == "mean" and result.alpha == 2.0 and result.d == d


def test_both_qr_paths_agree_and_an_ill_conditioned_stack_stays_orthonormal(monkeypatch):
    """A well-conditioned stack takes the Cholesky QR, which loses orthogonality like cond^2: forcing Householder
    gives the same subspace, and a stack of condition 1e7 at a large scale goes to Householder by itself."""
    from subspace_hub.subspaces.extraction import _OrthonormalFactor

    factors = random_loras((3, 3), 40, 40, seed=1)
    cholesky = shared_subspace(factors, 3)
    monkeypatch.setattr(_OrthonormalFactor, "MIN_DIAGONAL_RATIO", 2.0)  # no Cholesky factor passes
    householder = shared_subspace(factors, 3)
    monkeypatch.undo()
    torch.testing.assert_close(cholesky.U, householder.U, atol=1e-10, rtol=0)
    torch.testing.assert_close(cholesky.V, householder.V, atol=1e-10, rtol=0)
    gen = torch.Generator().manual_seed(2)
    q = torch.linalg.qr(torch.randn(40, 6, generator=gen, dtype=F64))[0]
    mix = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=F64))[0]
    stack = 1e3 * (q * torch.tensor([1, 1, 1, 1, 1, 1e-7], dtype=F64)) @ mix  # the B stack: cond 1e7
    a = torch.randn(6, 40, generator=gen, dtype=F64)
    ill = [(stack[:, :3], a[:3]), (stack[:, 3:], a[3:])]
    result = shared_subspace(ill, 6, alpha=2.0)  # every direction, the weak one included
    # (a Cholesky QR of this stack would be off by about eps * cond^2 = 1e-2)
    torch.testing.assert_close(result.U.T @ result.U, torch.eye(6, dtype=F64), atol=1e-9, rtol=0)


def test_options_boundaries_record_and_messages():
    """The smallest allowed max_iter and d, d at the span's size, the eps default and floor, the weights that
    produced the basis, convergence relative to the objective's scale, the record of a run, and every message."""
    from subspace_hub.subspaces.extraction import reduce_factors

    factors, _, _ = planted(n=4, noise=0.1, outliers=1, seed=3)
    one = shared_subspace(factors, 1, max_iter=1)
    assert one.iterations == 1 and one.converged is False and len(one.objective) == 1 and one.d == 1
    assert shared_subspace(factors, 32, alpha=2.0).d == 32  # d = the 32 dimensions 4 rank-8 LoRAs span
    with pytest.raises(ConfigError, match=r"^max_iter must be >= 1, got 0\.$"):
        shared_subspace(factors, 2, max_iter=0)
    for d in (0, 2.0):
        with pytest.raises(ConfigError, match=rf"^d must be a positive integer, got {d!r}\.$"):
            shared_subspace(factors, d)
    with pytest.raises(ConfigError, match=r"^d=33 exceeds the 32 dimensions the 4 LoRAs span for this matrix"):
        shared_subspace(factors, 33)
    # eps: the default is 1e-6 x the mean update norm; the objective and the weights use it as written
    norms = torch.stack([torch.linalg.matrix_norm(b @ a) for b, a in factors])
    default = shared_subspace(factors, 3, tol=0.0, max_iter=2)
    explicit = shared_subspace(factors, 3, tol=0.0, max_iter=2, eps=1e-6 * float(norms.mean()))
    assert default.objective == explicit.objective
    first = shared_subspace(factors, 3, max_iter=1, eps=0.5)
    assert first.objective[0] == pytest.approx(float(((first.residuals**2 + 0.25) ** 0.5).sum()), rel=1e-12)
    second = shared_subspace(factors, 3, tol=0.0, max_iter=2, eps=0.5, alpha=1.5)
    w = (first.residuals**2 + 0.25) ** -0.25
    torch.testing.assert_close(second.weights, w * 4 / w.sum(), atol=1e-12, rtol=0)
    squares = shared_subspace(factors, 3, alpha=2.0, eps=0.5)
    assert squares.objective[0] == pytest.approx(float((squares.residuals**2).sum() + 4 * 0.25), rel=1e-12)
    zero = [(torch.zeros(6, 2, dtype=F64), torch.zeros(2, 5, dtype=F64))] * 3
    assert shared_subspace(zero, 1, max_iter=1).objective == [pytest.approx(3e-12, rel=1e-9)]  # floor 1e-12
    # identical LoRAs: the weights cannot change, so the objective repeats at once and the run stops after two
    same = shared_subspace([factors[1]] * 3, 3)
    assert same.iterations == 2 and same.converged is True
    # the tolerance is relative: scaling every update scales the objective and changes nothing else
    small = shared_subspace([(1e-4 * b, a) for b, a in factors], 3, tol=1e-6)
    large = shared_subspace(factors, 3, tol=1e-6)
    assert small.iterations == large.iterations > 2
    assert small.objective[-1] == pytest.approx(1e-4 * large.objective[-1], rel=1e-6)
    record = shared_subspace(factors, 2, mode="stack", alpha=1.5, tol=0.0, max_iter=3, dtype=torch.float32)
    assert record.mode == "stack" and record.alpha == 1.5 and len(record.objective) == 3 and record.converged is False
    assert record.U.dtype == record.V.dtype == record.S.dtype == torch.float32
    cores = shared_subspace(reduce_factors(factors), 2)
    plain = shared_subspace(factors, 2)
    assert torch.equal(cores.U, plain.U) and torch.equal(cores.S, plain.S)


def test_malformed_factors_are_named():
    good = (torch.randn(5, 3), torch.randn(3, 6))
    with pytest.raises(ConfigError, match=r"^shared_subspace needs at least one \(B, A\) pair of LoRA factors\.$"):
        shared_subspace([], 1)
    with pytest.raises(ConfigError, match=r"^factors\[1\] must be a \(B, A\) pair, got tuple\.$"):
        shared_subspace([good, (*good, good[0])], 1)
    with pytest.raises(ConfigError, match=r"^factors\[0\] must be a \(B, A\) pair, got str\.$"):
        shared_subspace(["BA"], 1)
    with pytest.raises(ShapeMismatchError, match=r"^LoRA 1: B and A must be matrices, got shapes \[5\] and \[3, 6\]"):
        shared_subspace([good, (torch.randn(5), torch.randn(3, 6))], 1)
    with pytest.raises(ShapeMismatchError, match=r"got shapes \[5, 3\] and \[3\]\.$"):
        shared_subspace([(torch.randn(5, 3), torch.randn(3))], 1)
    with pytest.raises(
        ShapeMismatchError,
        match=r"Pass factors in PEFT orientation \(dW = B @ A, B = lora_B.weight, A = lora_A.weight\)\.$",
    ):
        shared_subspace([(torch.randn(5, 3), torch.randn(6, 3))], 1)
    with pytest.raises(ShapeMismatchError, match=r"all LoRAs of one module must have the same shape\.$"):
        shared_subspace([good, (torch.randn(4, 3), torch.randn(3, 6))], 1)
    bad_a = torch.randn(3, 6)
    bad_a[1, 2] = float("inf")
    with pytest.raises(ConfigError, match=r"^LoRA 1 has non-finite values; the adapter is corrupt or diverged\.$"):
        shared_subspace([good, (torch.randn(5, 3), bad_a)], 1)
