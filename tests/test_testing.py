"""The conformance checks plugin authors rely on must pass good components and catch broken ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subspace_hub import BackboneSpec, DatasetSpec, MetricExample, MetricSpec
from subspace_hub.errors import ConformanceError
from subspace_hub.testing import (
    PluginTests,
    check_backbone,
    check_backbone_checkpoint,
    check_backbone_loss,
    check_backbone_meta,
    check_backbone_runs,
    check_backbone_targets,
    check_dataset,
    check_metric,
    check_plugin,
)


class Net(torch.nn.Module):
    def __init__(self, nan: bool = False):
        super().__init__()
        self.enc = torch.nn.Linear(3, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.out = torch.nn.Linear(4, 1)
        self.nan = nan

    def forward(self, images):
        x = self.out(self.norm(self.enc(images.mean(dim=(-1, -2)))))
        return {"depth": x * float("nan") if self.nan else x}


def batch(model):
    return {"images": torch.rand(1, 2, 3, 4, 4), "target": torch.zeros(1, 2, 1)}


def loss(outputs, b):
    return ((outputs["depth"] - b["target"]) ** 2).mean()


def spec(**overrides):
    fields = {
        "build": lambda config: Net(**config),
        "target_groups": {"enc": "enc", "out": "out"},
        "default_targets": ("enc",),
        "example_batch": batch,
        "loss": loss,
    }
    fields.update(overrides)
    return BackboneSpec("net", **fields)


def test_a_good_backbone_passes():
    check_backbone(spec())


def test_target_group_on_a_non_linear_module_fails():
    with pytest.raises(ConformanceError, match=r"target group 'norm'.*not Linear or Conv2d: norm \(LayerNorm\)"):
        check_backbone_targets(spec(target_groups={"norm": "norm"}, default_targets=()))


def test_target_group_matching_nothing_fails():
    with pytest.raises(ConformanceError, match="target group 'dec'"):
        check_backbone_targets(spec(target_groups={"dec": "decoder"}, default_targets=()))


def test_frozen_pattern_matching_nothing_fails():
    with pytest.raises(ConformanceError, match="frozen pattern 'encoder' matches no module"):
        check_backbone_targets(spec(frozen=("encoder",)))


def test_missing_example_and_non_finite_outputs_fail():
    with pytest.raises(ConformanceError, match="defines no example_batch"):
        check_backbone_runs(spec(example_batch=None))
    with pytest.raises(ConformanceError, match=r"outputs\['depth'\] has non-finite values"):
        check_backbone_runs(spec(build=lambda config: Net(nan=True)))


def test_loss_checks():
    with pytest.raises(ConformanceError, match="must be a scalar tensor"):
        check_backbone_loss(spec(loss=lambda o, b: (o["depth"] - b["target"]) ** 2))
    with pytest.raises(ConformanceError, match="without the 'loss' entry"):
        check_backbone_loss(spec(loss=lambda o, b: {"total": loss(o, b)}))
    with pytest.raises(ConformanceError, match="reaches no parameter"):
        check_backbone_loss(spec(loss=lambda o, b: torch.zeros((), requires_grad=True)))
    check_backbone_loss(spec(frozen=("enc",)))  # gradients stop at frozen parameters


def test_nondeterministic_structure_and_checkpoint_drift_fail():
    flip = iter(range(100))
    with pytest.raises(ConformanceError, match="different state-dict keys or shapes"):
        check_backbone(spec(build=lambda config: torch.nn.Linear(3, 1 + next(flip) % 2)))

    class Drifting(Net):
        def forward(self, images):
            return {"depth": super().forward(images)["depth"] + torch.rand(())}

    with pytest.raises(ConformanceError, match="differs after a save/load round trip"):
        check_backbone_checkpoint(spec(build=lambda config: Drifting()))


def test_meta_build_failure_is_reported():
    def build(config):
        model = Net()
        model.enc.weight.detach().numpy()  # reads the values, which the meta device does not have
        return model

    with pytest.raises(ConformanceError, match="fails on the meta device"):
        check_backbone_meta(spec(build=build))


def mae(pred, gt):
    return float(abs(pred - gt))


def test_metric_checks():
    example = lambda: MetricExample(reference=0.0, better=0.1, worse=1.0)  # noqa: E731
    check_metric(MetricSpec("mae", mae, higher_is_better=False, example=example))
    with pytest.raises(ConformanceError, match="contradicts higher_is_better=True"):
        check_metric(MetricSpec("mae", mae, higher_is_better=True, example=example))
    with pytest.raises(ConformanceError, match="higher_is_better is not declared"):
        check_metric(MetricSpec("mae", mae, example=example))
    with pytest.raises(ConformanceError, match="defines no example"):
        check_metric(MetricSpec("mae", mae, higher_is_better=False))
    with pytest.raises(ConformanceError, match="is not finite"):
        check_metric(MetricSpec("nan", lambda p, g: float("nan"), higher_is_better=False, example=example))
    with pytest.raises(ConformanceError, match="get the same score"):
        check_metric(MetricSpec("const", lambda p, g: 1.0, higher_is_better=False, example=example))
    multi = MetricSpec(
        "pair", lambda p, g: {"a": mae(p, g)}, higher_is_better=False, outputs=("a", "b"), example=example
    )
    with pytest.raises(ConformanceError, match=r"lacks the declared outputs \['b'\]"):
        check_metric(multi)


def sample(s=2, h=4, w=5, **overrides):
    data = {
        "scene_id": "scene-0",
        "images": [np.zeros((h, w, 3), np.uint8) for _ in range(s)],
        "depth": np.ones((s, h, w), np.float32),
        "mask": np.ones((s, h, w), bool),
        "intrinsics": np.tile(np.eye(3, dtype=np.float32), (s, 1, 1)),
        "extrinsics": np.tile(np.eye(3, 4, dtype=np.float32), (s, 1, 1)),
    }
    data.update(overrides)
    return data


def test_dataset_checks():
    check_dataset(DatasetSpec("ok", load=lambda: [sample()]))
    check_dataset(DatasetSpec("splits", load=lambda: {"train": [sample()]}))
    cases = {
        "samples lack \\['mask'\\]": {k: v for k, v in sample().items() if k != "mask"},
        "extrinsics must have shape": sample(extrinsics=np.zeros((2, 4, 4), np.float32)),
        "mask must be boolean": sample(mask=np.ones((2, 4, 5), np.uint8)),
        "depth must be finite": sample(depth=np.full((2, 4, 5), np.nan, np.float32)),
        "mask marks pixels whose depth is 0": sample(depth=np.zeros((2, 4, 5), np.float32)),
        "3 images but 2 depth maps": sample(images=[np.zeros((4, 5, 3))] * 3),
    }
    for message, bad in cases.items():
        with pytest.raises(ConformanceError, match=message):
            check_dataset(DatasetSpec("bad", load=lambda bad=bad: [bad]))


def test_check_plugin_on_an_installed_distribution(distributions, good_plugin):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin(), entry_point="tiny")
    check_plugin("tiny")
    with pytest.raises(ConformanceError, match="plugin 'nope' is not installed"):
        check_plugin("nope")


class TestBuiltinBackbonesPluginConforms(PluginTests):
    plugin = "subspace_hub.builtin.backbones"


class TestBuiltinAdaptersPluginConforms(PluginTests):
    plugin = "subspace_hub.builtin.adapters"
