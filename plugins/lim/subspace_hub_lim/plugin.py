"""The ``lrm`` and ``lim`` backbones: how subspace-hub builds, adapts, trains and evaluates them.

``lrm`` reads multi-view samples in the interchange format (``images`` [B, S, 3, H, W], ``intrinsics``,
``extrinsics``; ``depth`` and ``mask`` for its loss): the first ``input_views`` views are its inputs, every view is
rendered. ``lim`` reads sequence records, one record a sequence holding keyframe after keyframe, ``cameras`` views
each (``S = keyframes x cameras``; train with all of them, ``--views S-S``); a training forward draws a source and
a target keyframe 2, 3 or 4 apart and a keyframe between them (methods.md C), scores LIM's triplane there against
the frozen LRM's and, with ``causal_weight > 0``, adds the causal second hop.

Adapter target groups (module-name regexes; ``(?P<layer>)`` allows ``layers=`` selection). ``lrm``: ``cross``,
``attn``, ``mlp`` and ``blocks`` (all three) of its blocks, ``head``. ``lim``: ``features``, ``image``, ``attn``,
``mlp`` and ``blocks`` (all four) of the LIM blocks, ``head``; the LRM inside a LIM stays frozen under every method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from subspace_hub import BackboneSpec, DatasetSpec, hookimpl
from subspace_hub_lim.config import PRESETS, LIMConfig
from subspace_hub_lim.data import load_sequences
from subspace_hub_lim.losses import lim_loss, lrm_loss
from subspace_hub_lim.model import LIM, LRM

_LAYER = r"(?P<layer>\d+)"
_PROJECTIONS = r"(q|k|v|proj)"


def _groups(prefix: str, attentions: tuple[str, ...]) -> dict[str, str]:
    groups = {name: rf"{prefix}blocks\.{_LAYER}\.{name}\.{_PROJECTIONS}" for name in attentions}
    groups["mlp"] = rf"{prefix}blocks\.{_LAYER}\.mlp\.fc[12]"
    groups["blocks"] = rf"{prefix}blocks\.{_LAYER}\.(({'|'.join(attentions)})\.{_PROJECTIONS}|mlp\.fc[12])"
    groups["head"] = rf"{prefix}head\.upsample"
    return groups


def _config(model: torch.nn.Module) -> LIMConfig:
    for module in model.modules():
        if isinstance(module, LRM | LIM):
            return module.config
    raise TypeError(f"{type(model).__name__} holds no LRM or LIM model.")


def lrm_forward(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Reconstruct from the first ``input_views`` views of each sample and render every view."""
    inputs = slice(0, min(_config(model).input_views, batch["images"].shape[1]))
    return model(
        batch["images"][:, inputs],
        batch["intrinsics"][:, inputs],
        batch["extrinsics"][:, inputs],
        batch["intrinsics"],
        batch["extrinsics"],
    )


def lrm_predict(outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``images`` [B, S, 3, H, W] (composited on black, as the plugin's data), ``depth`` and ``mask`` [B, S, H, W]."""
    return {"images": outputs["rgb"].clamp(0, 1), "depth": outputs["depth"], "mask": outputs["mask"] > 0.5}


def keyframe_views(batch: Mapping[str, Any], config: LIMConfig, keyframe: int, *, held_out: bool = False) -> dict:
    """The input views (or, with ``held_out``, the held-out views) of ``keyframe`` of each sequence in ``batch``."""
    start = keyframe * config.cameras
    end = start + config.input_views
    views = slice(end, start + config.cameras) if held_out else slice(start, end)
    return {k: batch[k][:, views] for k in ("images", "intrinsics", "extrinsics", "depth", "mask") if k in batch}


def draw_keyframes(keyframes: int) -> tuple[int, int, int]:
    """(source, between, target) keyframes from torch's generator: a gap of 2, 3 or 4 (at most ``keyframes - 1``)
    and a keyframe strictly between."""
    if keyframes < 3:
        raise ValueError(f"LIM trains on sequences of at least 3 keyframes; a record holds {keyframes}.")
    gaps = [g for g in (2, 3, 4) if g <= keyframes - 1]
    gap = gaps[int(torch.randint(len(gaps), ()))]
    source = int(torch.randint(keyframes - gap, ()))
    return source, source + 1 + int(torch.randint(gap - 1, ())), source + gap


def lim_forward(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
    """One training (or scoring) step of LIM on sequence records: ``batch["keyframe_triple"]`` [3] (source,
    between, target) if given, else drawn by :func:`draw_keyframes`."""
    lim = next(m for m in model.modules() if isinstance(m, LIM))
    config = lim.config
    count = batch["images"].shape[1] // config.cameras
    if batch.get("keyframe_triple") is not None:
        source, between, target = (int(k) for k in batch["keyframe_triple"])
    else:
        source, between, target = draw_keyframes(count)
    first, middle, last = (keyframe_views(batch, config, k) for k in (source, between, target))
    b = batch["images"].shape[0]
    alpha = torch.full((b,), (between - source) / (target - source), device=batch["images"].device)
    with torch.no_grad():  # the frozen LRM: features of the source, tokens of the target, the pseudo ground truth
        tokens, features = lim.keyframe(first["images"], first["intrinsics"], first["extrinsics"])
        next_tokens = lim.lrm.tokenizer(last["images"], last["intrinsics"], last["extrinsics"])
        teacher = lim.lrm.head(lim.lrm.encode(middle["images"], middle["intrinsics"], middle["extrinsics"])[0])
    triplane, _, _ = lim.interpolate(tokens, features, next_tokens, alpha)  # adapters sit inside `lim`'s modules
    outputs: dict[str, Any] = {"triplane": triplane, "teacher": teacher, "alpha": alpha}
    if model.training and config.causal_weight > 0:
        first_hop = alpha * torch.rand(b, device=alpha.device)
        hop, hop_features, hop_tokens = lim.interpolate(tokens, features, next_tokens, first_hop)
        second_hop = (alpha - first_hop) / (1.0 - first_hop)
        outputs["causal"] = lim.interpolate(hop_tokens, hop_features, next_tokens, second_hop)[0]
        outputs["causal_target"] = triplane.detach() if config.causal_stop_gradient else triplane
        outputs["causal_weight"] = config.causal_weight
    return outputs


def _cameras(views: int, radius: float = 2.5, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``views`` cameras on a ring at ``radius`` looking at the origin (OpenCV axes): intrinsics, extrinsics."""
    extrinsics = []
    for i in range(views):
        angle = 2 * math.pi * i / views
        position = torch.tensor([radius * math.cos(angle), 0.6, radius * math.sin(angle)])
        forward = -position / position.norm()
        right = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0]))
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        rotation = torch.stack([right, down, forward])
        extrinsics.append(torch.cat([rotation, (-rotation @ position)[:, None]], dim=1))
    focal = 1.2 * size
    intrinsics = torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    return intrinsics.expand(views, 3, 3).clone(), torch.stack(extrinsics)


def _views_batch(model: torch.nn.Module, views: int, seed: int) -> dict[str, torch.Tensor]:
    """``views`` views of a sphere (radius 0.5-0.7, centre near the origin, drawn from ``seed``) coloured by its
    normals on black, with exact depth and mask: a sample every view of which agrees with the others."""
    from subspace_hub_lim.model import camera_rays

    config = _config(model)
    generator = torch.Generator().manual_seed(seed)
    size = config.image_size
    intrinsics, extrinsics = _cameras(views, size=size)
    radius = 0.5 + 0.2 * float(torch.rand((), generator=generator))
    centre = (torch.rand(3, generator=generator) - 0.5) * 0.4
    origins, directions, cosine = camera_rays(intrinsics, extrinsics, size, size)
    offset = origins - centre
    b = (offset * directions).sum(-1)
    discriminant = b.square() - (offset.square().sum(-1) - radius**2)
    mask = discriminant > 0
    distance = torch.where(mask, -b - discriminant.clamp(min=0).sqrt(), torch.zeros_like(b))
    normals = (offset + distance[..., None] * directions) / radius
    images = ((normals * 0.5 + 0.5) * mask[..., None]).permute(0, 3, 1, 2)
    return {
        "images": images[None],
        "depth": (distance * cosine * mask)[None],
        "mask": mask[None],
        "intrinsics": intrinsics[None],
        "extrinsics": extrinsics[None],
    }


def lrm_example_batch(model: torch.nn.Module, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """One sample of ``cameras`` random views on a ring of cameras around the scene box."""
    return _views_batch(model, _config(model).cameras, seed)


def lim_example_batch(model: torch.nn.Module, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """One sequence record of 3 keyframes (``3 x cameras`` random views) and its keyframes (0, 1, 2)."""
    config = _config(model)
    batch = _views_batch(model, 3 * config.cameras, seed)
    batch["extrinsics"] = batch["extrinsics"].reshape(1, 3, config.cameras, 3, 4)[:, [0, 0, 0]].reshape(1, -1, 3, 4)
    batch["keyframe_triple"] = torch.tensor([0, 1, 2])
    return batch


def _size(config: Mapping[str, Any]) -> int:
    return int(config.get("patch_size", LIMConfig().patch_size))


LRM_SPEC = BackboneSpec(
    "lrm",
    build=lambda config: LRM(LIMConfig.from_dict(config)),
    description="LRM: multi-view images with Pluecker rays -> a triplane -> volume-rendered RGB, depth and mask",
    presets=PRESETS,
    default_preset="lim-small",
    target_groups=_groups("", ("cross", "attn")),
    default_targets=("blocks",),
    example_batch=lrm_example_batch,
    forward=lrm_forward,
    loss=lrm_loss,
    predict=lrm_predict,
    license="apache-2.0",
    homepage="https://remysabathier.github.io/lim.github.io/",
    image_multiple=_size,
)
"""The LRM backbone spec."""

LIM_SPEC = BackboneSpec(
    "lim",
    build=lambda config: LIM(LIMConfig.from_dict(config)),
    description="LIM: the triplane of an LRM at any time between two keyframes (triplane + causal losses)",
    presets=PRESETS,
    default_preset="lim-small",
    target_groups=_groups("", ("features", "image", "attn")),
    default_targets=("blocks",),
    frozen=("lrm",),
    example_batch=lim_example_batch,
    forward=lim_forward,
    loss=lim_loss,
    license="apache-2.0",
    homepage="https://remysabathier.github.io/lim.github.io/",
    image_multiple=_size,
)
"""The LIM backbone spec (its LRM, ``lrm.*``, frozen)."""


DATASET = DatasetSpec(
    "lim-synthetic-4d",
    load_sequences,
    description="turning, twisting object-centred scenes over keyframes, a ring of cameras: RGB, depth, mask, XYZ",
    license="cc0-1.0",
)
"""The 4D synthetic data the plugin registers."""


@hookimpl
def register_backbones(register):
    register(LRM_SPEC)
    register(LIM_SPEC)


@hookimpl
def register_datasets(register):
    register(DATASET)
