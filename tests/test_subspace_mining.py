"""extract_bundle on hand-made LoRA state dicts: the span cap and its warning, each setting reaching the solver and
the allocation, modules an allocation leaves out, and the refusals' exact text."""

from __future__ import annotations

import os
import re

import pytest
import torch
from safetensors.torch import save_file

from subspace_hub.errors import ConfigError, ShapeMismatchError, SpecError
from subspace_hub.subspaces import extract_bundle, shared_subspace
from subspace_hub.subspaces.allocation import effective_rank


def _lora(seed: int, shapes: dict[str, tuple[int, int, int]], scales: dict[str, list[float]] | None = None):
    """A LoRA state dict: module -> (out, in, rank); ``scales`` sets the size of each rank-one term."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for module, (out, inp, rank) in shapes.items():
        B = torch.randn(out, rank, generator=generator)
        if scales and module in scales:
            B = B * torch.tensor(scales[module])
        state[f"base_model.model.{module}.lora_A.weight"] = torch.randn(rank, inp, generator=generator)
        state[f"base_model.model.{module}.lora_B.weight"] = B
    return state


def _factors(states, module):
    return [
        (s[f"base_model.model.{module}.lora_B.weight"], s[f"base_model.model.{module}.lora_A.weight"]) for s in states
    ]


def test_d_is_capped_at_what_the_loras_span_module_by_module_with_a_warning_that_counts_them():
    # spans: a min(1+1+2, 10, 10) = 4, b min(1+2+3, 5, 30) = 5, c min(6, 30, 3) = 3, d min(9, 30, 30) = 9 >= 8
    ranks = {"a": (1, 1, 2), "b": (1, 2, 3), "c": (2, 2, 2), "d": (3, 3, 3)}
    sizes = {"a": (10, 10), "b": (5, 30), "c": (30, 3), "d": (30, 30)}
    loras = [_lora(i, {m: (*sizes[m], ranks[m][i]) for m in ranks}) for i in range(3)]
    with pytest.warns(UserWarning) as caught:
        bundle = extract_bundle({"texture": loras}, d=8, progress=False)
    [warning] = caught
    assert str(warning.message) == (
        "texture: d=8 is more than its 3 LoRAs of rank 2 span on 3 of 4 modules, which get d=3, 4, 5: train more or "
        "higher-rank LoRAs for a larger d."
    )
    # it names the caller's line, not the library's (under mutmut its trampoline is a frame between the two)
    assert not warning.filename.endswith(os.path.join("subspaces", "mining.py"))
    assert warning.filename == __file__ or "MUTANT_UNDER_TEST" in os.environ
    subspaces = bundle.attributes["texture"]
    assert {m: s.d for m, s in subspaces.items()} == {"a": 4, "b": 5, "c": 3, "d": 8}
    assert subspaces["b"].U.shape == (5, 5) and subspaces["b"].V.shape == (30, 5)


def test_a_single_lora_is_an_ensemble_of_one():
    lora = _lora(0, {"m": (12, 9, 3)})
    with pytest.warns(UserWarning, match="its 1 LoRAs of rank 3 span on 1 of 1 modules, which get d=3"):
        bundle = extract_bundle({"texture": [lora]}, d=4, progress=False)
    sub = bundle.attributes["texture"]["m"]
    direct = shared_subspace(_factors([lora], "m"), 3)
    torch.testing.assert_close(sub.U, direct.U)
    torch.testing.assert_close(sub.V, direct.V)


def test_every_solver_setting_reaches_each_module():
    loras = [_lora(i, {"m": (16, 12, 2)}) for i in range(4)]
    factors = _factors(loras, "m")

    def same(a, b):
        return (a.iterations, a.converged) == (b.iterations, b.converged) and all(
            torch.allclose(x, y) for x, y in ((a.U, b.U), (a.weights, b.weights))
        )

    for options in ({"alpha": 2.0, "mode": "stack"}, {"max_iter": 2}, {"tol": 0.5}):
        sub = extract_bundle({"texture": loras}, d=3, progress=False, **options).attributes["texture"]["m"]
        expected = shared_subspace(factors, 3, **options)
        assert same(sub, expected), options
        # the test sees each setting: leaving any one out gives another result
        for name in options:
            assert not same(shared_subspace(factors, 3, **{k: v for k, v in options.items() if k != name}), expected)


def test_allocations_get_the_budget_and_bounds_and_modules_at_zero_are_left_out():
    # "flat": four equal directions (effective rank near 4); "spiky": one direction (effective rank near 1)
    shapes = {"flat": (20, 20, 4), "spiky": (20, 20, 4)}
    scales = {"flat": [1.0, 1.0, 1.0, 1.0], "spiky": [10.0, 0.01, 0.01, 0.01]}
    loras = [_lora(0, shapes, scales), _lora(0, shapes, scales)]  # identical: the mean update is each one
    spectra = {m: torch.linalg.svdvals(b @ a) for m, [(b, a), _] in ((m, _factors(loras, m)) for m in shapes)}
    ranks = {m: effective_rank(s) for m, s in spectra.items()}
    assert 2 * ranks["spiky"] < 2 * ranks["flat"] / 2 < ranks["spiky"] + ranks["flat"]  # floor(ER / mean): 1 and 0
    literal = extract_bundle({"texture": loras}, allocation="importance", d=1, min_dim=0, progress=False)
    assert {m: s.d for m, s in literal.attributes["texture"].items()} == {"flat": 1}
    budget = extract_bundle({"texture": loras}, allocation="importance", d=3, progress=False)
    assert {m: s.d for m, s in budget.attributes["texture"].items()} == {"flat": 3, "spiky": 1}
    capped = extract_bundle({"texture": loras}, allocation="importance", d=3, max_dim=2, min_dim=2, progress=False)
    assert {m: s.d for m, s in capped.attributes["texture"].items()} == {"flat": 2, "spiky": 2}
    energy = extract_bundle({"texture": loras}, allocation="energy", energy=0.99, progress=False)
    assert {m: s.d for m, s in energy.attributes["texture"].items()} == {"flat": 4, "spiky": 1}


def test_targets_none_means_every_module_and_unknown_settings_are_named():
    loras = [_lora(i, {"x.q": (8, 8, 2), "x.k": (8, 8, 2)}) for i in range(2)]
    bundle = extract_bundle({"texture": loras}, d=2, targets=None, progress=False)
    assert sorted(bundle.attributes["texture"]) == ["x.k", "x.q"]
    assert bundle.info["extraction"]["targets"] == []
    only = extract_bundle({"texture": loras}, d=2, targets=[r"x\.q"], progress=False)
    assert list(only.attributes["texture"]) == ["x.q"] and only.info["extraction"]["targets"] == ["x\\.q"]
    with pytest.raises(ConfigError) as error:
        extract_bundle({"texture": loras}, targets=["y", "z.*"], progress=False)
    assert str(error.value) == "Attribute 'texture': no adapted module matches the targets ['y', 'z.*']."
    with pytest.raises(ConfigError) as error:
        extract_bundle({"texture": loras}, d=2, rank=4, progress=False)
    assert str(error.value) == "extract_bundle got unknown setting(s) ['rank']; see ExtractionSettings."
    with pytest.raises(ConfigError) as error:
        extract_bundle({}, progress=False)
    assert str(error.value) == "No attributes given: pass e.g. {'texture': [lora_dir_1, lora_dir_2, ...]}."
    with pytest.raises(SpecError, match=r"^attribute name 'Texture' is not a valid slug"):
        extract_bundle({"Texture": loras}, progress=False)
    with pytest.raises(ConfigError) as error:
        extract_bundle({"texture": []}, progress=False)
    assert str(error.value) == "Attribute 'texture' has no LoRA adapters."


def test_loras_of_one_attribute_must_adapt_the_same_modules_and_shapes(tmp_path):
    base = {"m": (8, 6, 2)}
    other = {f"n{i}": (8, 6, 2) for i in range(5)}
    loras = [_lora(0, base | {"keep": (4, 4, 1)}), _lora(1, other | {"keep": (4, 4, 1)}), _lora(2, base)]
    with pytest.raises(ConfigError) as error:
        extract_bundle({"geometry": loras}, progress=False)
    assert str(error.value) == (
        "Attribute 'geometry': LoRA 1 (state dict) adapts other modules than LoRA 0 (missing ['m'], extra "
        "['n0', 'n1', 'n2']); train every LoRA of an attribute on the same targets."
    )
    files = []
    for i, state in enumerate([_lora(0, other), _lora(1, base)]):
        files.append(tmp_path / f"lora-{i}.safetensors")
        save_file(state, str(files[-1]))
    with pytest.raises(ConfigError) as error:
        extract_bundle({"geometry": files}, progress=False)
    assert str(error.value) == (
        f"Attribute 'geometry': LoRA 1 ({files[1]}) adapts other modules than LoRA 0 (missing ['n0', 'n1', 'n2'], "
        "extra ['m']); train every LoRA of an attribute on the same targets."
    )
    shapes = [_lora(0, {"m": (8, 6, 2)}), _lora(1, {"m": (8, 6, 2)}), _lora(2, {"m": (7, 5, 2)})]
    with pytest.raises(ShapeMismatchError) as error:
        extract_bundle({"geometry": shapes}, progress=False)
    assert str(error.value) == "Attribute 'geometry', module m: LoRA 2 updates a 7x5 matrix, LoRA 0 a 8x6 one."


def test_a_progress_bar_per_attribute_by_default(capsys):
    loras = [_lora(i, {f"m{j}": (6, 6, 1) for j in range(3)}) for i in range(2)]
    extract_bundle({"texture": loras, "geometry": loras}, d=1)
    err = capsys.readouterr().err
    # each bar runs to its end, counting modules
    assert re.search(r"extract texture: 100%.*3/3 \[.*module/s\]", err)
    assert re.search(r"extract geometry: 100%.*3/3 \[.*module/s\]", err)
    extract_bundle({"texture": loras}, d=1, progress=False)
    assert capsys.readouterr().err == ""
