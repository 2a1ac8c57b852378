"""Dict -> dataclass configs with errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from subspace_hub.configuration import from_dict, to_dict
from subspace_hub.errors import ConfigError


@dataclass(frozen=True)
class Head:
    layers: tuple[int, ...] = (4, 11)
    activation: Literal["exp", "relu"] = "exp"


@dataclass(frozen=True)
class Model:
    dim: int = 8
    ratio: float = 4.0
    name: str | None = None
    head: Head = field(default_factory=Head)


def test_round_trip_with_nested_dataclass_and_json_lists():
    cfg = from_dict(Model, {"dim": 16, "ratio": 2, "head": {"layers": [1, 2, 3]}})
    assert cfg == Model(dim=16, ratio=2.0, head=Head(layers=(1, 2, 3)))
    assert isinstance(cfg.ratio, float)
    assert from_dict(Model, to_dict(cfg)) == cfg
    assert to_dict(cfg)["head"]["layers"] == [1, 2, 3]


def test_unknown_field_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"Unknown Model field\(s\): 'dimm' \(did you mean 'dim'\?\)"):
        from_dict(Model, {"dimm": 3})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dim": "8"}, "Model.dim must be an integer, got str '8'"),
        ({"dim": True}, "Model.dim must be an integer"),
        ({"ratio": "x"}, "Model.ratio must be a number"),
        ({"head": {"activation": "tanh"}}, "Model.head.activation must be one of 'exp', 'relu', got 'tanh'"),
        ({"head": {"layers": [1, "a"]}}, r"Model.head.layers\[1\] must be an integer"),
        ({"head": 3}, "Model.head must be a mapping"),
    ],
)
def test_wrong_types_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Model, data)


def test_none_and_non_mapping():
    assert from_dict(Model, None) == Model()
    with pytest.raises(ConfigError, match="must be a mapping"):
        from_dict(Model, [1, 2])


def test_missing_required_field():
    @dataclass
    class Required:
        path: str

    with pytest.raises(ConfigError, match=r"Required.path is required"):
        from_dict(Required, {})


@dataclass
class Inner:
    rate: float = 1.0


@dataclass
class Outer:
    name: str
    inner: Inner
    count: int = 1


def test_every_problem_is_collected_when_asked():
    problems: list[str] = []
    assert (
        from_dict(Outer, {"inner": {"rate": "fast", "ratee": 2}, "count": "x", "extra": 1}, problems=problems) is None
    )
    text = " | ".join(problems)
    assert "Unknown Outer field(s): 'extra'" in text and "Outer.name is required" in text
    assert "Outer.count must be an integer" in text and "Outer.inner.rate must be a number" in text
    assert "'ratee' (did you mean 'rate'?)" in text and len(problems) == 5
