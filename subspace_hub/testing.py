"""Conformance checks for plugin authors: call them from your own tests.

Each ``check_*`` function takes a registered name or a spec object and raises
:class:`~subspace_hub.errors.ConformanceError` (an ``AssertionError``) naming the component and the broken
rule. The ``*Tests`` classes wrap them as pytest test classes::

    from subspace_hub.testing import BackboneTests, MetricTests, PluginTests

    class TestMyBackbone(BackboneTests):
        backbone = "my-backbone"
        config = "tiny"          # a preset or dict small enough for a CPU

    class TestMyMetric(MetricTests):
        metric = "my-metric"

    class TestMyPlugin(PluginTests):
        plugin = "my-plugin"     # the entry-point name

Everything runs on the CPU in float32 with the spec's own ``example_batch``.
"""

from __future__ import annotations

import math
import numbers
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

from subspace_hub.adapters import attach_adapter, load_adapter, merge_adapter, save_adapter
from subspace_hub.backbones import build_backbone, build_info
from subspace_hub.data.sources import pick_split
from subspace_hub.errors import ConfigError, ConformanceError, SpecError, SubspaceHubError
from subspace_hub.interchange import LANDMARK_KEYS, REQUIRED_KEYS, is_landmark_sample
from subspace_hub.plugins import get_host, list_plugins
from subspace_hub.specs import AdapterSpec, BackboneSpec, DatasetSpec, MetricSpec

__all__ = [
    "AdapterTests",
    "BackboneTests",
    "DatasetTests",
    "MetricTests",
    "PluginTests",
    "check_adapter",
    "check_adapter_lifecycle",
    "check_backbone",
    "check_backbone_builds",
    "check_backbone_checkpoint",
    "check_backbone_loss",
    "check_backbone_meta",
    "check_backbone_runs",
    "check_backbone_targets",
    "check_dataset",
    "check_metric",
    "check_plugin",
    "tiny_dataset",
]


def _spec(kind: str, spec_type: type, value: Any) -> Any:
    if isinstance(value, spec_type):
        return value
    if isinstance(value, str):
        return get_host().get(kind, value)
    raise TypeError(f"expected a {kind} name or {spec_type.__name__}, got {type(value).__name__}")


def _fail(what: str, message: str) -> ConformanceError:
    return ConformanceError(f"{what}: {message}")


def _tensors(value: Any, path: str = "outputs") -> Iterable[tuple[str, Any]]:
    import torch

    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tensors(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{path}[{index}]")


def _assert_finite(what: str, value: Any, label: str) -> None:
    found = False
    for path, tensor in _tensors(value, label):
        found = True
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise _fail(what, f"{path} has non-finite values")
    if not found:
        raise _fail(what, f"{label} holds no tensors")


# -- backbones ----------------------------------------------------------------------------------------------


def _build(spec: BackboneSpec, config: Any, device: Any = None) -> Any:
    try:
        return build_backbone(spec, config, device=device)
    except ConfigError as exc:
        raise _fail(f"backbone {spec.name!r}", str(exc)) from exc


def check_backbone_builds(backbone: str | BackboneSpec, config: Any = None) -> Any:
    """``build`` returns an ``nn.Module`` with parameters, and two builds have the same state-dict layout."""
    spec = _spec("backbone", BackboneSpec, backbone)
    what = f"backbone {spec.name!r}"
    model = _build(spec, config)
    if not any(True for _ in model.parameters()):
        raise _fail(what, "the model has no parameters")
    first = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    second = {k: tuple(v.shape) for k, v in _build(spec, config).state_dict().items()}
    if first != second:
        raise _fail(what, "two builds with the same config have different state-dict keys or shapes")
    return model


def check_backbone_targets(backbone: str | BackboneSpec, config: Any = None) -> None:
    """Every target group and the default targets match Linear/Conv2d modules outside the frozen parts,
    and every frozen pattern matches a module."""
    from subspace_hub.adapters.targets import frozen_module_names, resolve_targets

    spec = _spec("backbone", BackboneSpec, backbone)
    what = f"backbone {spec.name!r}"
    model = _build(spec, config)
    if not spec.target_groups:
        raise _fail(what, "declares no target_groups, so adapters cannot find its layers")
    for group in spec.target_groups:
        try:
            resolve_targets(model, [group], spec=spec)
        except SubspaceHubError as exc:
            raise _fail(what, f"target group {group!r}: {exc}") from exc
    if spec.default_targets:
        resolve_targets(model, None, spec=spec)
    for pattern in spec.frozen:
        if not frozen_module_names(model, [pattern]):
            raise _fail(what, f"frozen pattern {pattern!r} matches no module")


def check_backbone_runs(backbone: str | BackboneSpec, config: Any = None) -> Any:
    """``example_batch`` runs through ``forward`` with finite outputs; ``predict`` returns finite tensors."""
    import torch

    spec = _spec("backbone", BackboneSpec, backbone)
    what = f"backbone {spec.name!r}"
    if spec.example_batch is None:
        raise _fail(what, "defines no example_batch, so nothing can check that it runs; add one (a tiny CPU batch)")
    model = _build(spec, config).eval()
    batch = spec.example_batch(model)
    with torch.no_grad():
        outputs = spec.run(model, batch)
    _assert_finite(what, outputs, "outputs")
    if spec.predict is not None:
        predictions = spec.predictions(outputs, batch)
        if not isinstance(predictions, Mapping):
            raise _fail(what, f"predict() returned {type(predictions).__name__}, not a mapping")
        _assert_finite(what, predictions, "predictions")
    return outputs


def check_backbone_loss(backbone: str | BackboneSpec, config: Any = None) -> None:
    """``loss`` is a finite scalar whose gradient reaches trainable parameters and never frozen ones."""
    import torch

    from subspace_hub.adapters.targets import freeze_modules

    spec = _spec("backbone", BackboneSpec, backbone)
    what = f"backbone {spec.name!r}"
    if spec.loss is None:
        return
    if spec.example_batch is None:
        raise _fail(what, "defines a loss but no example_batch to evaluate it on")
    model = _build(spec, config).train()
    frozen = set(freeze_modules(model, spec.frozen))
    batch = spec.example_batch(model)
    try:
        total = spec.task_loss(spec.run(model, batch), batch)
    except SpecError as exc:
        raise _fail(what, str(exc)) from exc
    if not isinstance(total, torch.Tensor) or total.ndim != 0:
        raise _fail(what, "the loss must be a scalar tensor")
    if not bool(total.isfinite()):
        raise _fail(what, f"the loss is not finite ({float(total)})")
    total.backward()
    reached = [n for n, p in model.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)]
    if not reached:
        raise _fail(what, "the loss gradient reaches no parameter")
    for name, param in model.named_parameters():
        if param.grad is not None and not bool(param.grad.isfinite().all()):
            raise _fail(what, f"the gradient of {name} is not finite")
    leaked = sorted(frozen & set(reached))
    if leaked:
        raise _fail(what, f"frozen parameters received gradients: {leaked[:5]}")


def check_backbone_checkpoint(backbone: str | BackboneSpec, config: Any = None) -> None:
    """Saving as ``config.json`` + ``model.safetensors`` and loading strictly into a fresh build reproduces
    the outputs exactly."""
    import torch

    from subspace_hub.backbones.checkpoint import load_state_dict_strict, read_config, read_state_dict, save_checkpoint

    spec = _spec("backbone", BackboneSpec, backbone)
    what = f"backbone {spec.name!r}"
    model = _build(spec, config).eval()
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(model, folder, build_info(model).config)
        fresh = _build(spec, read_config(folder)).eval()
        state = read_state_dict(folder)
        if spec.convert_state_dict is not None:
            state = spec.convert_state_dict(state)
        load_state_dict_strict(fresh, state, source=f"{what} checkpoint")
    if spec.example_batch is None:
        return
    batch = spec.example_batch(model)
    with torch.no_grad():
        expected = list(_tensors(spec.run(model, batch)))
        actual = list(_tensors(spec.run(fresh, batch)))
    for (path, a), (_, b) in zip(expected, actual, strict=True):
        if not torch.equal(a, b):
            raise _fail(
                what, f"{path} differs after a save/load round trip (max diff {float((a - b).abs().max()):.3g})"
            )


def check_backbone_meta(backbone: str | BackboneSpec, config: Any = None) -> int:
    """The backbone builds on the meta device (no memory, for parameter counts at full scale); returns the
    number of parameters."""
    spec = _spec("backbone", BackboneSpec, backbone)
    try:
        model = _build(spec, config, device="meta")
    except Exception as exc:
        if isinstance(exc, SubspaceHubError):
            raise
        raise _fail(
            f"backbone {spec.name!r}", f"build() fails on the meta device: {type(exc).__name__}: {exc}"
        ) from exc
    return sum(p.numel() for p in model.parameters())


def check_backbone(backbone: str | BackboneSpec, config: Any = None) -> None:
    """All backbone checks: builds, targets, runs, loss, checkpoint round trip, meta-device build."""
    for check in (
        check_backbone_builds,
        check_backbone_targets,
        check_backbone_runs,
        check_backbone_loss,
        check_backbone_checkpoint,
        check_backbone_meta,
    ):
        check(backbone, config)


# -- adapters -----------------------------------------------------------------------------------------------


def check_adapter(adapter: str | AdapterSpec, backbone: str = "reference", config: Any = None, **options: Any) -> None:
    """The method attaches to ``backbone``, leaves some but not all parameters trainable, keeps the
    backbone's frozen parts frozen, and one optimiser step on the backbone's loss changes the outputs."""
    import torch

    from subspace_hub.adapters.targets import frozen_module_names

    spec = _spec("adapter", AdapterSpec, adapter)
    what = f"adapter {spec.name!r} on backbone {backbone!r}"
    backbone_spec = _spec("backbone", BackboneSpec, backbone)
    if backbone_spec.example_batch is None or backbone_spec.loss is None:
        raise _fail(what, "the backbone needs example_batch and loss for this check")
    torch.manual_seed(0)
    base = _build(backbone_spec, config)
    modules = dict(base.named_modules())
    frozen_ids = {
        id(p) for prefix in frozen_module_names(base, backbone_spec.frozen) for p in modules[prefix].parameters()
    }
    example = dict(spec.example_options(base)) if spec.example_options is not None else {}
    model = spec.attach(base, **{**example, **options})
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise _fail(what, "no parameter is trainable after attach()")
    for name, param in trainable:
        if id(param) in frozen_ids:
            raise _fail(what, f"{name} is trainable but lies in a frozen part of the backbone")
    batch = backbone_spec.example_batch(base)
    model.eval()
    with torch.no_grad():
        before = [t.clone() for _, t in _tensors(backbone_spec.run(model, batch))]
    model.train()
    backbone_spec.task_loss(backbone_spec.run(model, batch), batch).backward()
    optimizer = torch.optim.SGD([p for _, p in trainable], lr=1e-2)
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after = [t for _, t in _tensors(backbone_spec.run(model, batch))]
    if all(torch.equal(a, b) for a, b in zip(before, after, strict=True)):
        raise _fail(what, "an optimiser step on the trainable parameters does not change the outputs")


def _max_difference(
    what: str, first: list[tuple[str, Any]], second: list[tuple[str, Any]], label: str, atol: float
) -> None:
    import torch

    for (path, a), (_, b) in zip(first, second, strict=True):
        if a.shape != b.shape:
            raise _fail(what, f"{label}: {path} has shape {tuple(b.shape)}, expected {tuple(a.shape)}")
        if a.is_floating_point():
            scale = 1.0 + float(a.abs().max()) if a.numel() else 1.0
            diff = float((a - b).abs().max()) if a.numel() else 0.0
            if not diff <= atol * scale:
                raise _fail(what, f"{label}: {path} differs by {diff:.3g} (allowed {atol:g} x (1 + max|output|))")
        elif not torch.equal(a, b):
            raise _fail(what, f"{label}: {path} differs")


def check_adapter_lifecycle(
    adapter: str,
    backbone: str = "reference",
    config: Any = None,
    *,
    steps: int = 10,
    lr: float = 1e-3,
    atol: float = 1e-5,
    **options: Any,
) -> dict[str, float]:
    """The whole life of an adapter on ``backbone``, as a user goes through it:

    1. :func:`~subspace_hub.attach_adapter` and ``steps`` Adam steps on the backbone's loss for its example batch,
       with the method's ``regularizer`` and ``after_step`` (e.g. AdaLoRA's); the loss goes down.
    2. :func:`~subspace_hub.save_adapter`, then :func:`~subspace_hub.load_adapter` into a freshly built backbone
       with the same base weights: the outputs match the trained model's.
    3. :func:`~subspace_hub.merge_adapter`: the plain merged backbone gives the same outputs.

    Outputs match when every tensor is within ``atol * (1 + max|output|)``. Returns the losses before and after
    training (``{"loss_before": ..., "loss_after": ...}``).
    """
    import torch

    spec = _spec("adapter", AdapterSpec, adapter)
    what = f"adapter {spec.name!r} on backbone {backbone!r}"
    backbone_spec = _spec("backbone", BackboneSpec, backbone)
    if backbone_spec.example_batch is None or backbone_spec.loss is None:
        raise _fail(what, "the backbone needs example_batch and loss for this check")

    def fresh_base() -> Any:
        torch.manual_seed(0)  # the same base weights every time, as a pretrained checkpoint would give
        return _build(backbone_spec, config)

    def task_loss(model: Any) -> Any:
        return backbone_spec.task_loss(backbone_spec.run(model, batch), batch)

    def outputs(model: Any) -> list[tuple[str, Any]]:
        model.eval()
        with torch.no_grad():
            return [(path, t.clone()) for path, t in _tensors(backbone_spec.run(model, batch))]

    base = fresh_base()
    batch = backbone_spec.example_batch(base)
    example = dict(spec.example_options(base)) if spec.example_options is not None else {}
    model = attach_adapter(base, spec.name, **{**example, **options})
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    model.eval()
    with torch.no_grad():
        loss_before = float(task_loss(model))
    for step in range(steps):
        model.train()
        loss = task_loss(model)
        if spec.regularizer is not None:
            loss = loss + spec.regularizer(model)
        loss.backward()
        optimizer.step()
        if spec.after_step is not None:
            spec.after_step(model, step)
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        loss_after = float(task_loss(model))
    if not loss_after < loss_before:
        raise _fail(what, f"{steps} training steps did not lower the loss ({loss_before:.6g} -> {loss_after:.6g})")
    trained = outputs(model)

    with tempfile.TemporaryDirectory() as folder:
        save_adapter(model, folder)
        reloaded = load_adapter(folder, model=fresh_base())
        _max_difference(what, trained, outputs(reloaded), "reloaded into a fresh backbone", atol)
    merged = merge_adapter(model)
    leftover = [n for n, _ in merged.named_modules() if n.rpartition(".")[2] in {"base_layer", "lora_A", "core"}]
    if leftover:
        raise _fail(what, f"merge_adapter left adapter modules in the model (e.g. {leftover[0]})")
    _max_difference(what, trained, outputs(merged), "merged", atol)
    return {"loss_before": loss_before, "loss_after": loss_after}


# -- metrics ------------------------------------------------------------------------------------------------


def _scores(what: str, spec: MetricSpec, value: Any) -> dict[str, float]:
    if spec.outputs:
        if not isinstance(value, Mapping):
            raise _fail(
                what, f"compute() must return a dict with keys {list(spec.outputs)}, got {type(value).__name__}"
            )
        missing = [k for k in spec.outputs if k not in value]
        if missing:
            raise _fail(what, f"compute() result lacks the declared outputs {missing}")
        items = {k: value[k] for k in spec.outputs}
    else:
        items = {spec.name: value}
    scores = {}
    for key, item in items.items():
        if hasattr(item, "item") and getattr(item, "ndim", 0) == 0:
            item = item.item()
        if not isinstance(item, numbers.Real) or isinstance(item, bool):
            raise _fail(what, f"{key} must be a real number, got {type(item).__name__}")
        if not math.isfinite(float(item)):
            raise _fail(what, f"{key} is not finite ({item})")
        scores[key] = float(item)
    return scores


def check_metric(metric: str | MetricSpec) -> None:
    """The metric declares its direction, returns finite numbers (with the declared output keys), and scores
    its example's ``better`` prediction better than its ``worse`` one."""
    spec = _spec("metric", MetricSpec, metric)
    what = f"metric {spec.name!r}"
    if spec.higher_is_better is None:
        raise _fail(what, "higher_is_better is not declared; set it to True or False")
    if spec.example is None:
        raise _fail(
            what, "defines no example, so its direction cannot be checked; add example=lambda: MetricExample(...)"
        )
    example = spec.example()
    better = _scores(what, spec, spec.compute(example.better, example.reference, **example.kwargs))
    worse = _scores(what, spec, spec.compute(example.worse, example.reference, **example.kwargs))
    for key in better:
        higher = spec.direction(key)
        if (1.0 if higher else -1.0) * (better[key] - worse[key]) < 0:
            raise _fail(
                what,
                f"{key} scores the better prediction {better[key]:.6g} and the worse {worse[key]:.6g}, which "
                "contradicts "
                f"higher_is_better={higher} for it",
            )
    if all(better[k] == worse[k] for k in better):
        raise _fail(what, "the example's better and worse predictions get the same score")


# -- datasets -----------------------------------------------------------------------------------------------


def check_dataset(dataset: str | DatasetSpec, **load_options: Any) -> Mapping[str, Any]:
    """``load`` yields samples in the interchange format with consistent shapes and valid values; returns the
    first sample."""
    import numpy as np

    spec = _spec("dataset", DatasetSpec, dataset)
    what = f"dataset {spec.name!r}"
    sample = next(iter(pick_split(spec.load(**load_options), source=what, first=True)))
    if is_landmark_sample(sample):
        return _check_landmark_sample(what, sample)
    missing = [k for k in REQUIRED_KEYS if k not in sample]
    if missing:
        raise _fail(what, f"samples lack {missing}")
    depth = np.asarray(sample["depth"])
    mask = np.asarray(sample["mask"])
    if depth.ndim != 3:
        raise _fail(what, f"depth must be [S, H, W], got shape {depth.shape}")
    s, h, w = depth.shape
    images = sample["images"]
    if len(images) != s:
        raise _fail(what, f"{len(images)} images but {s} depth maps")
    first = np.asarray(images[0])
    if first.shape not in {(h, w, 3), (3, h, w)}:
        raise _fail(what, f"image shape {first.shape} does not match depth {h}x{w}")
    expected = {"mask": (s, h, w), "intrinsics": (s, 3, 3), "extrinsics": (s, 3, 4)}
    for key, shape in expected.items():
        got = np.asarray(sample[key]).shape
        if got != shape:
            raise _fail(what, f"{key} must have shape {shape}, got {got}")
    if mask.dtype != np.bool_:
        raise _fail(what, f"mask must be boolean, got {mask.dtype}")
    if not np.isfinite(depth).all() or (depth < 0).any():
        raise _fail(what, "depth must be finite and >= 0 (0 where invalid)")
    if (depth[mask] <= 0).any():
        raise _fail(what, "mask marks pixels whose depth is 0 as valid")
    for key in ("intrinsics", "extrinsics"):
        if not np.isfinite(np.asarray(sample[key], dtype=np.float64)).all():
            raise _fail(what, f"{key} has non-finite values")
    return sample


def _check_landmark_sample(what: str, sample: Mapping[str, Any]) -> Mapping[str, Any]:
    """A landmark record: its keys, shapes and values (interchange module docstring)."""
    import numpy as np

    missing = [k for k in LANDMARK_KEYS if k not in sample]
    if missing:
        raise _fail(what, f"landmark samples lack {missing}")
    points = np.asarray(sample["landmarks2d"], dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise _fail(what, f"landmarks2d must be [N, 2], got shape {points.shape}")
    n = points.shape[0]
    visible = np.asarray(sample["visible"])
    if visible.shape != (n,) or visible.dtype != np.bool_:
        raise _fail(what, f"visible must be bool [{n}], got {visible.dtype} {visible.shape}")
    if not np.isfinite(points[visible]).all():
        raise _fail(what, "landmarks2d has non-finite values at visible landmarks")
    if not visible.any():
        raise _fail(what, "a sample without any visible landmark")
    if not isinstance(sample["category"], numbers.Integral) and np.asarray(sample["category"]).dtype.kind not in "iu":
        raise _fail(what, f"category must be an integer, got {sample['category']!r}")
    expected = {"valid": (n,), "landmarks": (n, 3), "adjacency": (n, n)}
    for key, shape in expected.items():
        if sample.get(key) is not None and np.asarray(sample[key]).shape != shape:
            raise _fail(what, f"{key} must have shape {shape}, got {np.asarray(sample[key]).shape}")
    if sample.get("valid") is not None and (visible & ~np.asarray(sample["valid"], dtype=bool)).any():
        raise _fail(what, "a padding slot (valid false) is marked visible")
    return sample


def tiny_dataset(
    out: Any,
    *,
    height: int,
    width: int,
    family: str = "texture",
    scenes: int = 3,
    views: int = 4,
    seed: int = 0,
    datasets: int = 1,
) -> Any:
    """A small generated dataset (``datasets`` configs, ``{family}-000`` on, each with a train split and a test
    split of one scene) at ``height`` x ``width`` pixels (pick multiples of your backbone's patch size), for
    training and evaluation tests; returns the folder."""
    from subspace_hub.data.export import GenerationSpec, generate

    spec = GenerationSpec(
        family,
        datasets=datasets,
        seed=seed,
        scenes=scenes,
        views=views,
        height=height,
        width=width,
        mesh_resolution=4,
        texture_size=32,
        texture_pool=4,
        test_fraction=1 / scenes,
    )
    return generate(spec, out, workers=1, progress=False)


# -- whole plugins ------------------------------------------------------------------------------------------


def check_plugin(name: str) -> None:
    """The plugin ``name`` (its entry-point name) is loaded and every component it registers passes its check.

    Backbones are checked with their default preset and adapters on the builtin ``reference`` backbone; datasets
    with ``load()`` and no options.
    """

    infos = [p for p in list_plugins() if p.name == name]
    if not infos:
        raise ConformanceError(
            f"plugin {name!r} is not installed (no entry point of group 'subspace_hub' has that name)"
        )
    info = infos[0]
    if info.failed:
        raise ConformanceError(f"plugin {name!r} failed to load: {info.error}")
    checks = {"backbone": check_backbone, "adapter": check_adapter, "metric": check_metric, "dataset": check_dataset}
    for kind, names in info.components.items():
        for component in names:
            checks[kind](component)


# -- pytest classes -----------------------------------------------------------------------------------------


class BackboneTests:
    """Subclass with ``backbone = "name"`` (and optionally ``config``) to run every backbone check as a test."""

    backbone: str
    config: Any = None

    def test_builds(self) -> None:
        check_backbone_builds(self.backbone, self.config)

    def test_targets(self) -> None:
        check_backbone_targets(self.backbone, self.config)

    def test_example_runs(self) -> None:
        check_backbone_runs(self.backbone, self.config)

    def test_loss_backward(self) -> None:
        check_backbone_loss(self.backbone, self.config)

    def test_checkpoint_round_trip(self) -> None:
        check_backbone_checkpoint(self.backbone, self.config)

    def test_meta_device_build(self) -> None:
        check_backbone_meta(self.backbone, self.config)


class AdapterTests:
    """Subclass with ``adapter = "name"`` (optionally ``backbone``, ``config``, ``options``)."""

    adapter: str
    backbone: str = "reference"
    config: Any = None
    options: Mapping[str, Any] = {}

    def test_attach_and_train(self) -> None:
        check_adapter(self.adapter, self.backbone, self.config, **dict(self.options))

    def test_train_save_load_merge(self) -> None:
        check_adapter_lifecycle(self.adapter, self.backbone, self.config, **dict(self.options))


class MetricTests:
    """Subclass with ``metric = "name"``."""

    metric: str

    def test_metric_conforms(self) -> None:
        check_metric(self.metric)


class DatasetTests:
    """Subclass with ``dataset = "name"`` and optionally ``load_options``."""

    dataset: str
    load_options: Mapping[str, Any] = {}

    def test_samples_conform(self) -> None:
        check_dataset(self.dataset, **dict(self.load_options))


class PluginTests:
    """Subclass with ``plugin = "entry-point name"``: the plugin is installed, loads, and its components conform."""

    plugin: str

    def test_plugin_is_installed(self) -> None:

        names = {p.name: p for p in list_plugins()}
        assert self.plugin in names, f"plugin {self.plugin!r} not found; installed: {sorted(names)}"
        assert not names[self.plugin].failed, f"plugin {self.plugin!r} failed: {names[self.plugin].error}"

    def test_components_conform(self) -> None:
        check_plugin(self.plugin)
