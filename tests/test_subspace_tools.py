"""Dimension allocation and the combination of attribute bases."""

from __future__ import annotations

import pytest
import torch

from subspace_hub.errors import ConfigError, ShapeMismatchError
from subspace_hub.subspaces import allocate_dims, combine_bases, effective_rank, energy_dim, spectral_gap_dim
from subspace_hub.subspaces.analysis import module_group

F64 = torch.float64


def test_effective_rank():
    assert effective_rank(torch.ones(7)) == pytest.approx(7.0)
    assert effective_rank(torch.tensor([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_rank(torch.tensor([2.0, 1.0])) == pytest.approx(1.25)
    assert effective_rank(torch.zeros(3)) == 0.0


def test_gap_and_energy_dims():
    spectrum = torch.tensor([10.0, 9.0, 8.0, 0.5, 0.4, 0.1])
    assert spectral_gap_dim(spectrum) == 3
    assert spectral_gap_dim(spectrum, min_dim=4) == 5  # the best cliff at or after 4
    assert spectral_gap_dim(spectrum, max_dim=2) == 2
    assert energy_dim(spectrum, 0.99) == 3
    assert energy_dim(spectrum, 1.0) == 6
    with pytest.raises(ConfigError, match="energy must be in"):
        energy_dim(spectrum, 1.5)


def test_uniform_importance_gap_energy_allocations():
    flat, peaked = torch.ones(32), torch.tensor([10.0] + [0.1] * 31)
    spectra = {"a": flat, "b": flat, "c": peaked, "d": peaked}
    assert allocate_dims(spectra, "uniform", 16) == dict.fromkeys(spectra, 16)
    # effective ranks 32, 32, ~1.3, ~1.3: mean ~16.7 -> floor(1.9) = 1 for a/b, floor(0.08) = 0 for c/d
    assert allocate_dims(spectra, "importance", 8) == {"a": 8, "b": 8, "c": 1, "d": 1}
    assert allocate_dims(spectra, "importance", 8, min_dim=0) == {"a": 8, "b": 8, "c": 0, "d": 0}
    assert allocate_dims(spectra, "gap", 16)["c"] == 1
    assert allocate_dims({"x": torch.tensor([5.0, 4, 3, 0.1, 0.1])}, "energy", 16, energy=0.95) == {"x": 3}
    # capped at what the LoRAs span and at max_dim
    assert allocate_dims({"x": flat}, "uniform", 64, available={"x": 20}) == {"x": 20}
    assert allocate_dims({"x": flat}, "uniform", 64, max_dim=10) == {"x": 10}
    with pytest.raises(ConfigError, match="Unknown allocation 'greedy'"):
        allocate_dims(spectra, "greedy", 8)


def orthonormal(rows, cols, seed):
    return torch.linalg.qr(torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=F64))[0]


def test_qr_combination_keeps_the_first_attribute_and_drops_dependent_columns():
    texture, geometry = orthonormal(40, 4, 0), orthonormal(40, 4, 1)
    overlapping = torch.cat([texture[:, :2], orthonormal(40, 2, 2)], dim=1)  # shares 2 directions with texture
    combined = combine_bases([texture, geometry, overlapping], ["texture", "geometry", "camera"])
    Q = combined.Q
    assert Q.shape == (40, 10) and combined.dropped == 2
    assert combined.kept == {"texture": 4, "geometry": 4, "camera": 2}
    torch.testing.assert_close(Q.T @ Q, torch.eye(10, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(Q[:, :4] @ Q[:, :4].T, texture @ texture.T, atol=1e-12, rtol=0)  # first span intact
    for basis in (texture, geometry, overlapping):  # every input lies in the combined span
        torch.testing.assert_close(Q @ (Q.T @ basis), basis, atol=1e-10, rtol=0)


def test_loewdin_is_order_free_and_closest():
    a, b = orthonormal(30, 3, 3), orthonormal(30, 3, 4)
    first = combine_bases([a, b], method="loewdin").Q
    second = combine_bases([b, a], method="loewdin").Q
    torch.testing.assert_close(first.T @ first, torch.eye(6, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(first[:, :3], second[:, 3:], atol=1e-12, rtol=0)  # same columns, reordered
    qr = combine_bases([a, b]).Q
    X = torch.cat([a, b], dim=1)
    assert torch.linalg.norm(first - X) <= torch.linalg.norm(qr - X) + 1e-12
    dependent = combine_bases([a, a], method="loewdin")
    assert dependent.Q.shape == (30, 3) and dependent.dropped == 3


def test_combination_errors():
    with pytest.raises(ShapeMismatchError, match="same number of rows"):
        combine_bases([torch.eye(3), torch.eye(4)])
    with pytest.raises(ConfigError, match="Unknown combination method"):
        combine_bases([torch.eye(3)], method="svd")


def test_module_groups():
    assert module_group("aggregator.global_blocks.23.mlp.fc2") == ("aggregator.global_blocks.*.mlp.fc2", 23)
    assert module_group("camera_head.trunk.0.attn.qkv") == ("camera_head.trunk.*.attn.qkv", 0)
    assert module_group("head") == ("head", 0)


def test_allocation_defaults_edges_and_messages():
    spectra = {"a": torch.ones(32), "b": torch.tensor([10.0] + [0.1] * 31)}
    assert allocate_dims(spectra) == {"a": 16, "b": 16}  # uniform, d = 16
    assert energy_dim(torch.tensor([3.0, 2.0, 1.0]), 0.7) == 2  # squares 9, 4, 1: 9/14 < 0.7 <= 13/14
    assert energy_dim(torch.tensor([1.0] * 20)) == 19  # default 0.95 of equal energies
    assert allocate_dims({"x": torch.tensor([1.0] * 20)}, "energy") == {"x": 19}
    assert spectral_gap_dim(torch.tensor([10.0, 1.0, 0.9, 0.8])) == 1  # default min_dim 1
    assert spectral_gap_dim(torch.tensor([3.0, 2.0, 1.0]), min_dim=5) == 3  # no room for a cliff: capped
    assert effective_rank(torch.zeros(0)) == 0.0
    # importance: one module alone gets d; an all-zero spectrum next to a rank-one one gets min_dim, the other 2d
    assert allocate_dims({"x": torch.tensor([2.0, 1.0] + [0.0] * 6)}, "importance", 4) == {"x": 4}
    mixed = {"zero": torch.zeros(8), "one": torch.tensor([1.0] + [0.0] * 7)}
    assert allocate_dims(mixed, "importance", 3, min_dim=1) == {"zero": 1, "one": 6}
    assert allocate_dims({"z": torch.zeros(8)}, "importance", 3) == {"z": 3}  # nothing to rank: d
    assert allocate_dims({"x": torch.tensor([2.0, 1.0])}, "importance", 1, min_dim=0) == {"x": 1}
    assert allocate_dims(spectra, "uniform", 1, min_dim=0) == {"a": 1, "b": 1}  # the smallest valid settings
    with pytest.raises(ConfigError, match=r"d must be >= 1 and min_dim >= 0, got d=0, min_dim=1\."):
        allocate_dims(spectra, "uniform", 0)
    with pytest.raises(ConfigError, match=r"got d=4, min_dim=-1"):
        allocate_dims(spectra, "uniform", 4, min_dim=-1)
    with pytest.raises(ConfigError, match="energy must be in"):
        energy_dim(torch.ones(3), 0.0)
    with pytest.raises(ConfigError, match="use one of uniform, importance, gap, energy"):
        allocate_dims(spectra, "greedy", 8)
