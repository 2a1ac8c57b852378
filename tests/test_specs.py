"""Spec validation: malformed specs fail where they are written, naming the field."""

from __future__ import annotations

import pytest

from subspace_hub import AdapterSpec, BackboneSpec, DatasetSpec, MetricSpec
from subspace_hub.errors import SpecError
from subspace_hub.specs import validate_slug


@pytest.mark.parametrize("name", ["vggt", "vggt-tiny", "abs_rel", "lfm2d", "r16", "a-b_c"])
def test_valid_slugs(name):
    assert validate_slug(name) == name


@pytest.mark.parametrize("name", ["VGGT", "my model", "-x", "x-", "a--b", "", "a.b", "ü", "x" * 65])
def test_invalid_slugs_explain_the_rule(name):
    with pytest.raises(SpecError, match="lowercase letters and digits"):
        validate_slug(name)


def test_invalid_slug_error_suggests_a_fix():
    with pytest.raises(SpecError, match="e.g. 'my-model'"):
        BackboneSpec("My Model", build=dict)


def test_non_string_name():
    with pytest.raises(SpecError, match="must be a string"):
        MetricSpec(3, compute=lambda p, g: 0.0)


def test_callables_are_checked():
    with pytest.raises(SpecError, match="BackboneSpec.build must be callable"):
        BackboneSpec("x", build="not callable")
    with pytest.raises(SpecError, match="BackboneSpec.loss must be callable"):
        BackboneSpec("x", build=dict, loss=3)
    with pytest.raises(SpecError, match="AdapterSpec.attach must be callable"):
        AdapterSpec("x", attach=None)
    with pytest.raises(SpecError, match="DatasetSpec.load must be callable"):
        DatasetSpec("x", load=[])


def test_backbone_spec_cross_checks():
    with pytest.raises(SpecError, match="default_preset 'big' is not one of the presets"):
        BackboneSpec("x", build=dict, presets={"tiny": {}}, default_preset="big")
    with pytest.raises(SpecError, match=r"default_targets names unknown groups \['mlp'\]"):
        BackboneSpec("x", build=dict, target_groups={"attn": "a"}, default_targets=("mlp",))
    with pytest.raises(SpecError, match="invalid regular expression"):
        BackboneSpec("x", build=dict, target_groups={"bad": "blocks[("})
    with pytest.raises(SpecError, match="frozen: invalid regular expression"):
        BackboneSpec("x", build=dict, frozen=("(",))


def test_specs_are_immutable_and_copy_their_mappings():
    groups = {"mlp": "fc1"}
    spec = BackboneSpec("x", build=dict, target_groups=groups)
    groups["attn"] = "qkv"
    assert dict(spec.target_groups) == {"mlp": "fc1"}
    with pytest.raises(TypeError):
        spec.target_groups["new"] = "y"
    with pytest.raises(AttributeError):
        spec.name = "y"


def test_metric_spec_is_callable_and_checks_direction_type():
    spec = MetricSpec("mae", lambda p, g, scale=1.0: abs(p - g) * scale, higher_is_better=False)
    assert spec(3.0, 1.0, scale=2.0) == 4.0
    assert MetricSpec("undeclared", lambda p, g: 0.0).higher_is_better is None
    with pytest.raises(SpecError, match="higher_is_better must be True, False, a mapping per output, or None"):
        MetricSpec("x", lambda p, g: 0.0, higher_is_better="yes")


def test_metric_directions_per_output():
    spec = MetricSpec("recon", lambda p, g: {"acc": 0.0, "nc": 1.0}, {"acc": False, "nc": True}, outputs=("acc", "nc"))
    assert spec.direction("acc") is False and spec.direction("nc") is True
    assert MetricSpec("mae", lambda p, g: 0.0, False).direction() is False
    with pytest.raises(SpecError, match=r"must name exactly the outputs; missing: \['nc'\]"):
        MetricSpec("recon", lambda p, g: {}, {"acc": False}, outputs=("acc", "nc"))
    with pytest.raises(SpecError, match=r"unknown: \['comp'\]"):
        MetricSpec("recon", lambda p, g: {}, {"acc": False, "comp": False}, outputs=("acc",))


def test_only_name_and_callable_are_positional():
    with pytest.raises(TypeError):
        BackboneSpec("x", dict, "a description")  # everything after build is keyword-only
