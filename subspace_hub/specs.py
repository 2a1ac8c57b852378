"""The declarative objects that plugins register: one spec per backbone, adapter method, dataset and metric.

A plugin builds a spec and passes it to the ``register`` callable its hook receives (see
:mod:`subspace_hub.hookspecs`). Only ``name`` and the main callable are required; every other field has a
default that means "not provided". Specs are frozen dataclasses validated on construction, so a malformed spec
fails where it is written, with a :class:`~subspace_hub.errors.SpecError` that names the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any

from subspace_hub.errors import ConfigError, SpecError

SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
"""Component and plugin names: lowercase ASCII letters and digits, words joined by single ``-`` or ``_``."""

MAX_NAME_LENGTH = 64


def is_slug(name: object) -> bool:
    """Whether ``name`` is a valid lowercase slug (see :data:`SLUG_PATTERN`, at most 64 characters)."""
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and SLUG_PATTERN.fullmatch(name) is not None


def validate_slug(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid lowercase slug, else raise :class:`SpecError` saying why.

    >>> validate_slug("vggt-tiny")
    'vggt-tiny'
    """
    if not isinstance(name, str):
        raise SpecError(f"{what} must be a string, got {type(name).__name__}.")
    if not is_slug(name):
        suggestion = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "my-component"
        raise SpecError(
            f"{what} {name!r} is not a valid slug: use lowercase letters and digits joined by single '-' or '_' "
            f"(at most {MAX_NAME_LENGTH} characters), e.g. {suggestion[:MAX_NAME_LENGTH]!r}."
        )
    return name


def _require_callable(owner: str, fname: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise SpecError(f"{owner}.{fname} must be callable, got {type(value).__name__}.")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _compile_patterns(owner: str, fname: str, patterns: Mapping[str, str] | tuple[str, ...]) -> None:
    values = patterns.values() if isinstance(patterns, Mapping) else patterns
    for pattern in values:
        if not isinstance(pattern, str):
            raise SpecError(f"{owner}.{fname}: patterns must be strings, got {pattern!r}.")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SpecError(f"{owner}.{fname}: invalid regular expression {pattern!r}: {exc}.") from None


@dataclass(frozen=True)
class BackboneSpec:
    """A model that adapters can be attached to and that metrics can evaluate.

    Module-name patterns (``target_groups``, ``frozen``) are regular expressions matched with
    :func:`re.fullmatch` against the names of ``model.named_modules()``.

    >>> spec = BackboneSpec("toy", build=lambda config: torch.nn.Linear(4, 4))  # doctest: +SKIP
    """

    name: str
    """Unique lowercase slug, e.g. ``"vggt"``; what users pass to :func:`subspace_hub.load_backbone`."""

    build: Callable[[dict[str, Any]], Any]
    """``build(config) -> torch.nn.Module`` with randomly initialised weights. ``config`` is a plain dict: a
    preset from ``presets``, the ``config.json`` of a checkpoint, or what the user passed; an empty dict means
    the defaults. Building must not download anything."""

    _: KW_ONLY

    description: str = ""
    """One line shown by ``subspace-hub plugins``."""

    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Named configurations, e.g. ``{"vggt-1b": {...}, "vggt-tiny": {...}}``;
    ``load_backbone(name, config="vggt-tiny")`` selects one by name."""

    default_preset: str | None = None
    """The preset used when no config is given; ``None`` means ``build({})``."""

    weights: Mapping[str, str] = field(default_factory=dict)
    """Named pretrained weights: name -> a checkpoint folder (e.g. shipped with the plugin) or a Hub repo id;
    ``load_backbone(name, pretrained="<weights name>")`` loads them."""

    target_groups: Mapping[str, str] = field(default_factory=dict)
    """Named groups of adapter targets: group name -> module-name regex. Every matched module must be an
    ``nn.Linear`` or ``nn.Conv2d``. Example: ``{"qkv": r"blocks\\.\\d+\\.attn\\.qkv"}``."""

    default_targets: tuple[str, ...] = ()
    """Group names adapted when the user names no targets (the backbone's fine-tuning set)."""

    frozen: tuple[str, ...] = ()
    """Module-name regexes whose parameters stay frozen under every adapter method, full fine-tuning
    included (e.g. a pretrained image encoder)."""

    convert_state_dict: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Optional ``convert_state_dict(state_dict) -> state_dict`` applied to a checkpoint before the strict
    load, to map legacy key layouts onto the model's."""

    example_batch: Callable[[Any], Mapping[str, Any]] | None = None
    """``example_batch(model) -> batch``: a small CPU batch for smoke tests and conformance checks, in the
    multi-view interchange format (``images`` [B, S, 3, H, W] in [0, 1], ``depth``, ``mask``, ...)."""

    forward: Callable[[Any, Mapping[str, Any]], Any] | None = None
    """``forward(model, batch) -> outputs``; ``None`` means ``model(batch["images"])``. Callers use :meth:`run`."""

    loss: Callable[[Any, Mapping[str, Any]], Any] | None = None
    """``loss(outputs, batch)`` -> a scalar tensor, or a dict of scalar tensors whose ``"loss"`` entry is the
    total that training minimises (the other entries are logged). Callers use :meth:`loss_terms` /
    :meth:`task_loss`."""

    predict: Callable[[Any, Mapping[str, Any]], Mapping[str, Any]] | None = None
    """``predict(outputs, batch) -> predictions`` that metrics read, with interchange-format keys
    (``depth`` [B, S, H, W], ``extrinsics`` [B, S, 3, 4], ``intrinsics`` [B, S, 3, 3], ``world_points``, ...);
    ``None`` means the outputs as they are. Callers use :meth:`predictions`."""

    license: str | None = None
    """SPDX-style licence of the pretrained weights this backbone loads, e.g. ``"cc-by-nc-4.0"``."""

    homepage: str | None = None
    """Where users read about the model."""

    image_multiple: int | Callable[[Mapping[str, Any]], int] | None = None
    """What image heights and widths must be multiples of (the patch size), or ``image_multiple(config)``; lets
    ``data generate``, ``train`` and ``evaluate`` refuse unusable images before any work starts."""

    def check_image_size(self, height: int, width: int, config: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`ConfigError` when ``height`` x ``width`` images do not fit this backbone (see
        :attr:`image_multiple`), naming sizes that do."""
        multiple = self.image_multiple(dict(config or {})) if callable(self.image_multiple) else self.image_multiple
        if not multiple or (height % multiple == 0 and width % multiple == 0):
            return

        def near(side: int) -> str:
            low = max(multiple, side // multiple * multiple)
            return f"{low} or {low + multiple}" if low != side else str(side)

        raise ConfigError(
            f"Images of {height} x {width} pixels do not fit backbone {self.name!r}: its sides must be multiples of "
            f"{multiple} (the patch size). Use e.g. {near(height)} x {near(width)} (--resolution HxW)."
        )

    def run(self, model: Any, batch: Mapping[str, Any]) -> Any:
        """The model's outputs for ``batch``: :attr:`forward`, or ``model(batch["images"])`` when it is ``None``."""
        if self.forward is not None:
            return self.forward(model, batch)
        return model(batch["images"])

    def loss_terms(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, Any]:
        """:attr:`loss` as a dict of scalar tensors whose ``"loss"`` entry is the total to minimise.

        Raises:
            ConfigError: the backbone declares no loss, so it cannot be trained.
            SpecError: ``loss`` returned a dict without ``"loss"``.
        """
        if self.loss is None:
            raise ConfigError(f"Backbone {self.name!r} declares no loss, so it cannot be trained.")
        result = self.loss(outputs, batch)
        if not isinstance(result, Mapping):
            return {"loss": result}
        if "loss" not in result:
            raise SpecError(f"BackboneSpec {self.name!r}: loss() returned a dict without the 'loss' entry (the total).")
        return dict(result)

    def task_loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """The scalar total of :meth:`loss_terms`."""
        return self.loss_terms(outputs, batch)["loss"]

    def predictions(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """What metrics read: :attr:`predict`, or the outputs themselves when it is ``None``."""
        if self.predict is not None:
            return self.predict(outputs, batch)
        return outputs

    def __post_init__(self) -> None:
        validate_slug(self.name, "BackboneSpec.name")
        _require_callable("BackboneSpec", "build", self.build)
        for fname in ("convert_state_dict", "example_batch", "forward", "loss", "predict"):
            _require_callable("BackboneSpec", fname, getattr(self, fname), optional=True)
        multiple = self.image_multiple
        positive_int = isinstance(multiple, int) and not isinstance(multiple, bool) and multiple >= 1
        if not (multiple is None or callable(multiple) or positive_int):
            raise SpecError(f"BackboneSpec {self.name!r}: image_multiple must be a positive int or a callable.")
        object.__setattr__(self, "presets", _frozen_mapping({k: dict(v) for k, v in dict(self.presets).items()}))
        object.__setattr__(self, "target_groups", _frozen_mapping(self.target_groups))
        object.__setattr__(self, "weights", _frozen_mapping(self.weights))
        object.__setattr__(self, "default_targets", tuple(self.default_targets))
        object.__setattr__(self, "frozen", tuple(self.frozen))
        if self.default_preset is not None and self.default_preset not in self.presets:
            raise SpecError(
                f"BackboneSpec {self.name!r}: default_preset {self.default_preset!r} is not one of the presets "
                f"({', '.join(self.presets) or 'none defined'})."
            )
        _compile_patterns(f"BackboneSpec {self.name!r}", "target_groups", self.target_groups)
        _compile_patterns(f"BackboneSpec {self.name!r}", "frozen", self.frozen)
        unknown = [g for g in self.default_targets if g not in self.target_groups]
        if unknown:
            raise SpecError(
                f"BackboneSpec {self.name!r}: default_targets names unknown groups {unknown}; "
                f"known groups: {', '.join(self.target_groups) or 'none'}."
            )


@dataclass(frozen=True)
class AdapterSpec:
    """A parameter-efficient fine-tuning method (LoRA, PiSSA, subspace, ...).

    ``attach(model, **options)`` prepares ``model`` for training with this method and returns the model to
    train (the same object or a wrapper such as a ``PeftModel``); afterwards exactly the method's parameters
    have ``requires_grad=True``. The optional callables let :func:`subspace_hub.save_adapter`,
    :func:`subspace_hub.load_adapter`, :func:`subspace_hub.merge_adapter` and training loops treat every method
    the same way.
    """

    name: str
    """Unique lowercase slug, e.g. ``"lora"``; what users pass to :func:`subspace_hub.attach_adapter`."""

    attach: Callable[..., Any]
    """``attach(model, **options) -> model``."""

    _: KW_ONLY

    description: str = ""
    """One line shown by ``subspace-hub plugins``."""

    save: Callable[[Any, Any], None] | None = None
    """``save(model, folder)``: write what :attr:`load` needs to rebuild the adapted model on a fresh backbone."""

    load: Callable[..., Any] | None = None
    """``load(base_model, folder) -> model``: the inverse of :attr:`save`, on a freshly built backbone."""

    merge: Callable[[Any], Any] | None = None
    """``merge(model) -> nn.Module``: fold the adapter into the backbone's weights (no inference overhead)."""

    regularizer: Callable[[Any], Any] | None = None
    """``regularizer(model) -> scalar tensor`` added to the task loss each step (e.g. AdaLoRA's orthogonality)."""

    after_step: Callable[[Any, int], None] | None = None
    """``after_step(model, step)``: called after ``optimizer.step()`` and before ``zero_grad()`` (e.g. AdaLoRA's
    rank allocation, which reads the gradients)."""

    example_options: Callable[[Any], Mapping[str, Any]] | None = None
    """``example_options(model) -> options`` that make ``attach`` work on any backbone in a smoke test (e.g. a
    small random subspace bundle); used by :func:`subspace_hub.testing.check_adapter`."""

    training_state: Callable[[Any], Mapping[str, Any]] | None = None
    """``training_state(model) -> {name: tensor}``: what the method keeps during training besides parameters and
    optimizer (e.g. AdaLoRA's importance scores), so a checkpointed run resumes exactly."""

    load_training_state: Callable[[Any, Mapping[str, Any]], None] | None = None
    """``load_training_state(model, state)``: the inverse of :attr:`training_state`."""

    def __post_init__(self) -> None:
        validate_slug(self.name, "AdapterSpec.name")
        _require_callable("AdapterSpec", "attach", self.attach)
        for fname in (
            "save",
            "load",
            "merge",
            "regularizer",
            "after_step",
            "example_options",
            "training_state",
            "load_training_state",
        ):
            _require_callable("AdapterSpec", fname, getattr(self, fname), optional=True)


@dataclass(frozen=True)
class DatasetSpec:
    """A source of multi-view samples in the interchange format (see DESIGN.md, Conventions)."""

    name: str
    """Unique lowercase slug, e.g. ``"megasynth-texture"``."""

    load: Callable[..., Any]
    """``load(**options)`` -> a ``datasets.Dataset``/``DatasetDict`` or any iterable of samples with
    ``scene_id``, ``images``, ``depth``, ``mask``, ``intrinsics``, ``extrinsics``."""

    _: KW_ONLY

    description: str = ""
    """One line shown by ``subspace-hub plugins``."""

    configs: tuple[str, ...] = ()
    """Names of the dataset's configurations (``datasets`` configs), if it has several."""

    license: str | None = None
    """Licence of the data."""

    def __post_init__(self) -> None:
        validate_slug(self.name, "DatasetSpec.name")
        _require_callable("DatasetSpec", "load", self.load)
        object.__setattr__(self, "configs", tuple(self.configs))


@dataclass(frozen=True)
class MetricExample:
    """Inputs for the conformance check of a metric: ``better`` must score better than ``worse``."""

    reference: Any
    """The ground truth, passed as the second argument of ``compute``."""

    better: Any
    """A prediction closer to the reference."""

    worse: Any
    """A prediction further from the reference."""

    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``compute`` (e.g. a mask)."""


@dataclass(frozen=True)
class MetricSpec:
    """An evaluation metric. The spec is callable: ``spec(pred, gt, **kw)`` is ``spec.compute(pred, gt, **kw)``."""

    name: str
    """Unique lowercase slug, e.g. ``"abs_rel"``."""

    compute: Callable[..., Any]
    """``compute(prediction, reference, **options)`` -> a float, or a dict of floats named by ``outputs``."""

    higher_is_better: bool | Mapping[str, bool] | None = None
    """Direction of the numbers ``compute`` returns: one bool for all, or a bool per output key (e.g. accuracy
    down, normal consistency up); ``None`` means undeclared (tables then show no arrow, and
    :func:`subspace_hub.testing.check_metric` fails)."""

    _: KW_ONLY

    outputs: tuple[str, ...] = ()
    """Keys of the dict ``compute`` returns; empty when it returns a single number."""

    description: str = ""
    """One line shown by ``subspace-hub plugins``."""

    unit: str = ""
    """Unit of the numbers, e.g. ``"scene units"`` or ``"dB"``."""

    example: Callable[[], MetricExample] | None = None
    """``example() -> MetricExample`` used by the conformance check of the declared direction."""

    inputs: Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[Any, Any, Mapping[str, Any]]] | None = None
    """``inputs(predictions, sample) -> (prediction, reference, options)``: what ``compute`` receives when
    ``subspace-hub evaluate`` scores a backbone's predictions (see :attr:`BackboneSpec.predict`) against a
    dataset sample, both in the interchange format with a leading batch dimension of 1. ``None``: the metric is
    only called directly."""

    def __post_init__(self) -> None:
        validate_slug(self.name, "MetricSpec.name")
        _require_callable("MetricSpec", "compute", self.compute)
        _require_callable("MetricSpec", "example", self.example, optional=True)
        _require_callable("MetricSpec", "inputs", self.inputs, optional=True)
        object.__setattr__(self, "outputs", tuple(self.outputs))
        direction = self.higher_is_better
        if isinstance(direction, Mapping):
            if not all(isinstance(v, bool) for v in direction.values()):
                raise SpecError(f"MetricSpec {self.name!r}: higher_is_better must map output names to True or False.")
            unknown = sorted(set(direction) - set(self.outputs))
            missing = sorted(set(self.outputs) - set(direction))
            if unknown or missing:
                raise SpecError(
                    f"MetricSpec {self.name!r}: higher_is_better must name exactly the outputs; "
                    + (f"unknown: {unknown}" if unknown else f"missing: {missing}")
                )
            object.__setattr__(self, "higher_is_better", MappingProxyType(dict(direction)))
        elif direction is not None and not isinstance(direction, bool):
            raise SpecError(
                f"MetricSpec {self.name!r}: higher_is_better must be True, False, a mapping per output, or None."
            )

    def direction(self, output: str | None = None) -> bool | None:
        """Whether higher is better for ``output`` (or for the metric's single number)."""
        if isinstance(self.higher_is_better, Mapping):
            return self.higher_is_better.get(output or self.name)
        return self.higher_is_better

    def __call__(self, prediction: Any, reference: Any, **options: Any) -> Any:
        return self.compute(prediction, reference, **options)


SPEC_TYPES: Mapping[str, type] = MappingProxyType(
    {"backbone": BackboneSpec, "adapter": AdapterSpec, "dataset": DatasetSpec, "metric": MetricSpec}
)
"""Component kind -> the spec class registered under it."""
