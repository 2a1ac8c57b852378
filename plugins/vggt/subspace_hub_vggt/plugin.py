"""The ``vggt`` backbone: how subspace-hub builds, adapts, trains and evaluates VGGT.

Adapter target groups (module-name regexes; ``(?P<layer>)`` allows ``layers=`` selection):

- ``frame.qkv``, ``frame.proj``, ``frame.fc1``, ``frame.fc2`` (and ``global.*``): one linear type in every frame
  (global) attention block; ``frame.attn``, ``frame.mlp``, ``frame``, ``global``, ``aggregator`` combine them;
- ``camera_head``: the linears of the camera head (trunk blocks, pose embedding, adaLN modulation, pose MLP);
- ``depth_head`` / ``point_head``: the convolutions of a DPT head (the transposed upsampling convolutions excluded);
- ``paper`` (the default): aggregator + camera head + depth head, the set the attribute-subspace paper
  fine-tunes (LoRA counts of its tables). The DINO patch embedding stays frozen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from subspace_hub import BackboneSpec, hookimpl
from subspace_hub_vggt.config import PRESETS, VGGTConfig
from subspace_hub_vggt.geometry import depth_to_world_points, pose_encoding_to_extrinsics_intrinsics
from subspace_hub_vggt.losses import vggt_loss
from subspace_hub_vggt.model import VGGT

_LAYER = r"(?P<layer>\d+)"
_LINEARS = {"qkv": r"attn\.qkv", "proj": r"attn\.proj", "fc1": r"mlp\.fc1", "fc2": r"mlp\.fc2"}
_ALL_LINEARS = r"(attn\.(qkv|proj)|mlp\.fc[12])"
_CAMERA = r"camera_head\.(trunk\.{layer}\." + _ALL_LINEARS + r"|embed_pose|poseLN_modulation\.1|pose_branch\.fc[12])"
_DPT_CONVS = (
    r"(projects\.\d+|resize_layers\.3|scratch\.(layer[1-4]_rn|refinenet[1-4]\.(out_conv|resConfUnit[12]\.conv[12])"
    r"|output_conv1|output_conv2\.[02]))"
)


def _target_groups() -> dict[str, str]:
    groups: dict[str, str] = {}
    for kind in ("frame", "global"):
        prefix = rf"aggregator\.{kind}_blocks\.{_LAYER}\."
        for name, pattern in _LINEARS.items():
            groups[f"{kind}.{name}"] = prefix + pattern
        groups[f"{kind}.attn"] = prefix + r"attn\.(qkv|proj)"
        groups[f"{kind}.mlp"] = prefix + r"mlp\.fc[12]"
        groups[kind] = prefix + _ALL_LINEARS
    groups["aggregator"] = rf"aggregator\.(frame|global)_blocks\.{_LAYER}\.{_ALL_LINEARS}"
    groups["camera_head"] = _CAMERA.format(layer=_LAYER)
    groups["depth_head"] = rf"depth_head\.{_DPT_CONVS}"
    groups["point_head"] = rf"point_head\.{_DPT_CONVS}"
    # One pattern may name the layer group once: in "paper", layers= selects aggregator blocks.
    camera_any_layer = _CAMERA.format(layer=r"\d+")
    groups["paper"] = rf"({groups['aggregator']}|{camera_any_layer}|depth_head\.{_DPT_CONVS})"
    return groups


def build(config: Mapping[str, Any]) -> VGGT:
    """``BackboneSpec.build``: a randomly initialised :class:`VGGT` from a config dict."""
    return VGGT(VGGTConfig.from_dict(config))


def forward(model: VGGT, batch: Mapping[str, Any]) -> dict[str, Any]:
    """Run on a batch; on CUDA the trunk runs under bf16 autocast (heads as ``model.head_precision`` says)."""
    images = batch["images"]
    use_bf16 = images.is_cuda and torch.cuda.is_bf16_supported()
    context = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    with context:
        return model(images, batch.get("query_points"))


def predict(outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Interchange predictions: ``depth`` [B, S, H, W], ``depth_conf``, predicted ``extrinsics``/``intrinsics``
    (from the pose encoding) and ``world_points`` [B, S, H, W, 3] unprojected from the depth head with the
    predicted cameras (the paper's protocol), plus ``world_points_head`` when the point head is enabled."""
    predictions: dict[str, torch.Tensor] = {}
    image_hw = tuple(batch["images"].shape[-2:])
    if "depth" in outputs:
        predictions["depth"] = outputs["depth"][..., 0].float()
        predictions["depth_conf"] = outputs["depth_conf"].float()
    if "pose_enc" in outputs:
        extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(outputs["pose_enc"].float(), image_hw)
        predictions["extrinsics"], predictions["intrinsics"] = extrinsics, intrinsics
        if "depth" in predictions:
            predictions["world_points"] = depth_to_world_points(predictions["depth"], extrinsics, intrinsics)
    if "world_points" in outputs:
        predictions["world_points_head"] = outputs["world_points"].float()
        predictions["world_points_conf"] = outputs["world_points_conf"].float()
    return predictions


def example_batch(model: VGGT, *, batch_size: int = 1, views: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random non-square batch (2x3 patches per view) with a plane in front of slightly moved cameras."""
    p = model.config.patch_size
    height, width = 2 * p, 3 * p
    gen = torch.Generator().manual_seed(seed)
    focal = float(width)
    intrinsics = torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    extrinsics = torch.zeros(views, 3, 4)
    extrinsics[:, :, :3] = torch.eye(3)
    extrinsics[:, 0, 3] = -0.1 * torch.arange(views, dtype=torch.float32)  # cameras step along +x
    depth = 2.0 + 0.1 * torch.rand(batch_size, views, height, width, generator=gen)
    return {
        "images": torch.rand(batch_size, views, 3, height, width, generator=gen),
        "depth": depth,
        "mask": torch.ones(batch_size, views, height, width, dtype=torch.bool),
        "intrinsics": intrinsics.expand(batch_size, views, 3, 3).clone(),
        "extrinsics": extrinsics.expand(batch_size, views, 3, 4).clone(),
    }


SPEC = BackboneSpec(
    "vggt",
    build=build,
    description="VGGT (Visual Geometry Grounded Transformer), checkpoint-compatible with facebook/VGGT-1B",
    presets=PRESETS,
    default_preset="vggt-1b",
    weights={
        "vggt-1b": "facebook/VGGT-1B",
        # trained by plugins/vggt/recipes/vggt-tiny-synthetic.yaml; its card is the README.md beside it
        "vggt-tiny-synthetic": str(Path(__file__).parent / "checkpoints" / "vggt-tiny-synthetic"),
    },
    target_groups=_target_groups(),
    default_targets=("paper",),
    frozen=(r"aggregator\.patch_embed",),
    example_batch=example_batch,
    forward=forward,
    loss=vggt_loss,
    predict=predict,
    license="cc-by-nc-4.0",
    image_multiple=lambda config: int(config.get("patch_size", 14)),
    homepage="https://github.com/facebookresearch/vggt",
)
"""The backbone spec the plugin registers."""


@hookimpl
def register_backbones(register):
    register(SPEC)
