"""The ``lfm2d`` backbone: how subspace-hub builds, adapts, trains and evaluates 2D-LFM.

Adapter target groups (module-name regexes; ``(?P<layer>)`` allows ``layers=`` selection): ``attn.q``, ``attn.k``,
``attn.v``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2`` (one projection type in every layer), ``attention`` and ``mlp``
(all of each kind), ``blocks`` (every projection of every layer, the default), ``embedding`` (the coordinate and
TPE projections) and ``head`` (the 3D output layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from subspace_hub import BackboneSpec, DatasetSpec, hookimpl
from subspace_hub_lfm2d.config import PRESETS, LFM2DConfig
from subspace_hub_lfm2d.data import load_landmarks
from subspace_hub_lfm2d.losses import canonical_views, lfm2d_loss
from subspace_hub_lfm2d.model import LFM2D

_LAYER = r"(?P<layer>\d+)"


def _target_groups() -> dict[str, str]:
    groups = {}
    for name in ("q", "k", "v", "proj"):
        groups[f"attn.{name}"] = rf"blocks\.{_LAYER}\.attn\.{name}"
    for name in ("fc1", "fc2"):
        groups[f"mlp.{name}"] = rf"blocks\.{_LAYER}\.mlp\.{name}"
    groups["attention"] = rf"blocks\.{_LAYER}\.attn\.(q|k|v|proj)"
    groups["mlp"] = rf"blocks\.{_LAYER}\.mlp\.fc[12]"
    groups["blocks"] = rf"blocks\.{_LAYER}\.(attn\.(q|k|v|proj)|mlp\.fc[12])"
    groups["embedding"] = r"embed\.(coords|tpe)"
    groups["head"] = r"head"
    return groups


def build(config: Mapping[str, Any]) -> LFM2D:
    """``BackboneSpec.build``: a randomly initialised :class:`LFM2D` from a config dict."""
    return LFM2D(LFM2DConfig.from_dict(config))


def _lfm2d_config(model: torch.nn.Module) -> LFM2DConfig:
    """The config of the :class:`LFM2D` inside ``model`` (bare, wrapped by PEFT, or by accelerate / DDP)."""
    for module in model.modules():
        if isinstance(module, LFM2D):
            return module.config
    raise TypeError(f"{type(model).__name__} holds no LFM2D model.")


def forward(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
    """Run on a batch of landmark samples: ``landmarks2d`` [B, N, 2], ``visible`` [B, N], ``category`` [B], and
    optionally ``valid`` [B, N] (real slots, not padding) and ``adjacency`` [B, N, N].

    In training (``model.training``) with ``canonical_weight > 0``, the model also lifts a randomly rotated view
    of each predicted shape (:func:`~subspace_hub_lfm2d.losses.canonical_views`); ``outputs["canonical"]`` carries
    that second lift for the loss. A model configured with ``supervision="3d"`` (a benchmark's control) passes the
    batch's 3D ``landmarks`` on as ``outputs["target3d"]`` instead."""
    valid, adjacency = batch.get("valid"), batch.get("adjacency")
    visible, category = batch["visible"].bool(), batch["category"].long()
    outputs = model(batch["landmarks2d"].float(), visible, category, valid, adjacency)
    config = _lfm2d_config(model)
    if config.supervision == "3d":
        if batch.get("landmarks") is None:
            raise ValueError("supervision='3d' needs batch['landmarks'] [B, N, 3], the samples' 3D shapes.")
        outputs["target3d"] = batch["landmarks"]
        return outputs
    weight = config.canonical_weight
    if model.training and weight > 0:
        weights = visible if valid is None else visible & valid.bool()
        view, target = canonical_views(outputs["landmarks"].float(), weights)
        lifted = model(view, visible, category, valid, adjacency)["landmarks"]
        outputs["canonical"] = {"lifted": lifted, "target": target, "weights": weights, "weight": weight}
    return outputs


def predict(outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Interchange predictions: ``landmarks`` [B, N, 3] (for ``mpjpe`` / ``pa_mpjpe`` against the sample's 3D
    landmarks, which training never reads)."""
    return {"landmarks": outputs["landmarks"].float()}


def example_batch(model: LFM2D, *, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Orthographic views of random 3D shapes: 2D inputs, visibility (one hidden landmark), padding in the second
    sample, and the 3D shapes for evaluation."""
    generator = torch.Generator().manual_seed(seed)
    n = min(8, model.config.max_landmarks)
    shapes = torch.randn(batch_size, n, 3, generator=generator)
    rotation = torch.linalg.qr(torch.randn(batch_size, 3, 3, generator=generator))[0]
    landmarks2d = (shapes @ rotation.transpose(1, 2))[..., :2]
    visible = torch.ones(batch_size, n, dtype=torch.bool)
    visible[:, 0] = False
    valid = torch.ones(batch_size, n, dtype=torch.bool)
    valid[-1, -2:] = False
    return {
        "landmarks2d": landmarks2d,
        "visible": visible,
        "valid": valid,
        "category": torch.arange(batch_size) % model.config.categories,
        "landmarks": shapes,
    }


SPEC = BackboneSpec(
    "lfm2d",
    build=build,
    description="2D-LFM: lifting 2D landmarks of any category to 3D with 2D supervision only (Phi correspondence)",
    presets=PRESETS,
    default_preset="lfm2d-small",
    target_groups=_target_groups(),
    default_targets=("blocks",),
    example_batch=example_batch,
    forward=forward,
    loss=lfm2d_loss,
    predict=predict,
    license="apache-2.0",
    homepage="https://2dlfm.github.io",
)
"""The backbone spec the plugin registers."""


DATASET = DatasetSpec(
    "lfm2d-synthetic",
    load_landmarks,
    description="procedural landmark categories (skeletons, rigid templates): 2D views for training, 3D to evaluate",
    license="cc0-1.0",
)
"""The synthetic landmark data the plugin registers."""


@hookimpl
def register_backbones(register):
    register(SPEC)


@hookimpl
def register_datasets(register):
    register(DATASET)
