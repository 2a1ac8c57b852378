"""Hook specifications: the functions a subspace-hub plugin may implement.

This module holds specifications only. A plugin is a module (or any object) whose functions are marked
with :data:`subspace_hub.hookimpl` and named like the hooks below; it becomes visible to subspace-hub through
an entry point of group ``subspace_hub`` in its distribution's ``pyproject.toml``::

    [project.entry-points.subspace_hub]
    my-backbone = "subspace_hub_my_backbone"

Every hook receives a ``register`` callable and calls it once per component; the return value of a hook is
ignored (returning something else than ``None`` is reported as a plugin error, because it usually means
``register`` was forgotten). Implementations may accept a subset of the arguments, so new arguments can be
added to a hook without breaking existing plugins. ``register`` hooks are plain functions: wrappers
(``wrapper=True``/``hookwrapper=True``) are rejected.

A plugin that raises inside a hook is skipped as a whole (none of its components are kept) and reported by
``subspace-hub plugins``; ``SUBSPACE_HUB_STRICT_PLUGINS=1`` turns that into an error. Registering a name that
another plugin already registered for the same kind is an error naming both distributions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from subspace_hub.specs import AdapterSpec, BackboneSpec, DatasetSpec, MetricSpec

PROJECT_NAME = "subspace_hub"
"""The pluggy project name, also the entry-point group third-party plugins are published under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------------------------------
# Component registration hooks. Called once per process, lazily, the first time a component is looked up.
# ---------------------------------------------------------------------------------------------------------------


@hookspec
def register_backbones(register: Callable[[BackboneSpec], None]) -> None:
    """Register backbones: models that adapters attach to and metrics evaluate.

    :param register: Call ``register(spec)`` with a :class:`~subspace_hub.specs.BackboneSpec` for each backbone
        the plugin provides. ``spec.name`` must be unique among all installed plugins.
    :returns: Nothing; the return value must be ``None``.

    The ``build`` callable must construct the model without downloading anything; pretrained weights are
    loaded afterwards by :func:`subspace_hub.load_backbone` from a local folder or Hub repo holding
    ``config.json`` + ``model.safetensors``, with strict key checks.

    Example::

        from subspace_hub import BackboneSpec, hookimpl

        @hookimpl
        def register_backbones(register):
            register(BackboneSpec(
                "tiny-mlp",
                build=lambda config: TinyMLP(**config),
                target_groups={"mlp": r"fc[12]"},
                default_targets=("mlp",),
            ))
    """


@hookspec
def register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register fine-tuning methods that :func:`subspace_hub.attach_adapter` can apply to any backbone.

    :param register: Call ``register(spec)`` with an :class:`~subspace_hub.specs.AdapterSpec` for each method.
    :returns: Nothing; the return value must be ``None``.

    ``spec.attach(model, **options)`` receives the backbone model and the user's options (``targets`` names
    backbone target groups or module-name regexes) and returns the model to train, with exactly the method's
    parameters trainable.

    Example::

        from subspace_hub import AdapterSpec, hookimpl

        def attach_bitfit(model, **options):
            for name, param in model.named_parameters():
                param.requires_grad_(name.endswith("bias"))
            return model

        @hookimpl
        def register_adapters(register):
            register(AdapterSpec("bitfit", attach_bitfit, description="train biases only"))
    """


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets that yield multi-view samples in the interchange format.

    :param register: Call ``register(spec)`` with a :class:`~subspace_hub.specs.DatasetSpec` for each dataset.
    :returns: Nothing; the return value must be ``None``.

    A sample holds ``scene_id``, ``images`` (S RGB images), ``depth`` (float32 [S, H, W], 0 where invalid),
    ``mask`` (bool [S, H, W]), ``intrinsics`` (float32 [S, 3, 3], pixels) and ``extrinsics`` (float32 [S, 3, 4],
    camera-from-world, OpenCV axes), optionally ``normals`` and ``world_points``; any backbone consumes it.

    Example::

        from subspace_hub import DatasetSpec, hookimpl

        @hookimpl
        def register_datasets(register):
            register(DatasetSpec("my-scans", load=lambda split="train", **kw: load_my_scans(split)))
    """


@hookspec
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register evaluation metrics that :func:`subspace_hub.get_metric` resolves by name.

    :param register: Call ``register(spec)`` with a :class:`~subspace_hub.specs.MetricSpec` for each metric.
    :returns: Nothing; the return value must be ``None``.

    ``spec.compute(prediction, reference, **options)`` returns a float, or a dict of floats whose keys are
    ``spec.outputs``; ``spec.higher_is_better`` declares the direction. Bad input (empty, NaN, mismatched
    shapes) should raise a :class:`~subspace_hub.errors.SubspaceHubError`, never return NaN.

    Example::

        from subspace_hub import MetricSpec, hookimpl

        def mae(pred, gt):
            return float((pred - gt).abs().mean())

        @hookimpl
        def register_metrics(register):
            register(MetricSpec("mae", mae, higher_is_better=False))
    """
