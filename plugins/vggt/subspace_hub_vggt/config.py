"""VGGT configuration: every architectural field of the model, with the official defaults.

The top-level fields are those of the official ``config.json`` of ``facebook/VGGT-1B`` (``img_size``,
``patch_size``, ``embed_dim``, the ``enable_*`` switches), so that file loads as is; the nested sections expose
the sizes the official constructors fix internally (depths, heads, DPT channels, tracker sizes, layer indices,
activations). :data:`PRESETS` holds ``vggt-1b`` (the official model), ``vggt-tiny`` (a few MB, for tests and
the CPU quickstart) and ``vggt-small`` (23 M parameters, the reproduction study's base).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from subspace_hub.configuration import from_dict, to_dict
from subspace_hub.errors import ConfigError

DINO_VARIANTS: Mapping[str, Mapping[str, int]] = {
    "dinov2_vits14_reg": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "dinov2_vitb14_reg": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "dinov2_vitl14_reg": {"embed_dim": 1024, "depth": 24, "num_heads": 16},
    "dinov2_vitg2_reg": {"embed_dim": 1536, "depth": 40, "num_heads": 24},
}
"""The DINOv2-with-registers encoders VGGT can embed patches with (sizes of the public checkpoints)."""


@dataclass(frozen=True)
class DinoConfig:
    """Sizes of a DINOv2 ViT with registers used as patch embedding ("custom" DINO, e.g. tiny test models)."""

    embed_dim: int = 1024
    """Token width; must equal the top-level ``embed_dim``."""

    depth: int = 24
    """Transformer blocks."""

    num_heads: int = 16
    """Attention heads."""

    mlp_ratio: float = 4.0
    """MLP hidden width / ``embed_dim``."""

    init_values: float = 1.0
    """LayerScale initial value."""

    interpolate_antialias: bool = True
    """Antialias the bicubic resize of the learned position embedding to other image sizes."""

    interpolate_offset: float = 0.0
    """Legacy DINO offset added to the target grid size when resizing position embeddings (0: resize to the
    exact size)."""


@dataclass(frozen=True)
class AggregatorConfig:
    """The alternating frame/global attention trunk."""

    depth: int = 24
    """Number of frame blocks (and of global blocks)."""

    num_heads: int = 16
    """Attention heads of every block."""

    mlp_ratio: float = 4.0
    """MLP hidden width / ``embed_dim``."""

    num_register_tokens: int = 4
    """Register tokens per frame (also the DINO encoder's)."""

    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True

    patch_embed: str = "dinov2_vitl14_reg"
    """``"conv"`` (a single strided convolution), a key of :data:`DINO_VARIANTS`, or ``"dinov2"`` with ``dino``."""

    dino: DinoConfig | None = None
    """Sizes of the DINO encoder when ``patch_embed == "dinov2"``."""

    aa_order: tuple[str, ...] = ("frame", "global")
    """Order of the attention types within one step."""

    aa_block_size: int = 1
    """Blocks of one type run before switching to the other."""

    qk_norm: bool = True
    """LayerNorm on queries and keys (over the head dimension)."""

    rope_freq: float = 100.0
    """Base frequency of the 2D rotary position embedding; <= 0 disables RoPE."""

    init_values: float = 0.01
    """LayerScale initial value."""


@dataclass(frozen=True)
class CameraHeadConfig:
    """Iterative camera refinement on the camera tokens of the last layer."""

    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 0.01
    num_iterations: int = 4
    """Refinement steps; ``pose_enc_list`` holds one encoding per step."""

    pose_encoding_type: Literal["absT_quaR_FoV"] = "absT_quaR_FoV"
    trans_act: Literal["linear", "inv_log", "exp", "relu"] = "linear"
    quat_act: Literal["linear", "inv_log", "exp", "relu"] = "linear"
    fl_act: Literal["linear", "inv_log", "exp", "relu"] = "relu"


Activation = Literal["exp", "inv_log", "norm_exp", "norm", "relu", "sigmoid", "linear", "xy_inv_log"]
ConfActivation = Literal["expp1", "expp0", "sigmoid"]


@dataclass(frozen=True)
class DPTHeadConfig:
    """A DPT dense head reading four intermediate layers of the aggregator."""

    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)
    pos_embed: bool = True
    """Add sin-cos UV embeddings (scaled 0.1) to the projected and the fused feature maps."""

    activation: Activation = "exp"
    conf_activation: ConfActivation = "expp1"
    down_ratio: int = 1
    frames_chunk_size: int = 8
    """Frames decoded at a time (memory only; results are identical for any value; 0 = all at once)."""


@dataclass(frozen=True)
class TrackHeadConfig:
    """Feature DPT (stride 2) plus the iterative tracker (correlation pyramid + space/time transformer)."""

    features: int = 128
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)
    iters: int = 4
    predict_conf: bool = True
    stride: int = 2
    corr_levels: int = 7
    corr_radius: int = 4
    hidden_size: int = 384
    depth: int = 6
    """Time blocks (and space blocks) of the update transformer."""

    num_heads: int = 8
    num_virtual_tracks: int = 64
    mlp_ratio: float = 4.0
    max_scale: int = 518
    """Flows are divided by this (pixels) before entering the transformer."""


def _depth_head() -> DPTHeadConfig:
    return DPTHeadConfig(activation="exp")


def _point_head() -> DPTHeadConfig:
    return DPTHeadConfig(activation="inv_log")


@dataclass(frozen=True)
class VGGTConfig:
    """Full VGGT architecture. ``VGGTConfig()`` is VGGT-1B."""

    img_size: int = 518
    """Training image size; sets the DINO position-embedding grid (other sizes are interpolated)."""

    patch_size: int = 14
    embed_dim: int = 1024
    enable_camera: bool = True
    enable_depth: bool = True
    enable_point: bool = True
    enable_track: bool = True
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    depth_head: DPTHeadConfig = field(default_factory=_depth_head)
    point_head: DPTHeadConfig = field(default_factory=_point_head)
    track_head: TrackHeadConfig = field(default_factory=TrackHeadConfig)

    def __post_init__(self) -> None:
        agg = self.aggregator
        if self.embed_dim % agg.num_heads:
            raise ConfigError(
                f"embed_dim ({self.embed_dim}) must be divisible by aggregator.num_heads ({agg.num_heads})."
            )
        if (self.embed_dim // agg.num_heads) % 4 and agg.rope_freq > 0:
            raise ConfigError(
                "The head dimension must be a multiple of 4 for 2D RoPE (two rotary halves of even size)."
            )
        if agg.depth % agg.aa_block_size:
            raise ConfigError(
                f"aggregator.depth ({agg.depth}) must be divisible by aa_block_size ({agg.aa_block_size})."
            )
        if sorted(agg.aa_order) != ["frame", "global"]:
            raise ConfigError(f"aggregator.aa_order must order 'frame' and 'global', got {list(agg.aa_order)}.")
        if agg.patch_embed == "dinov2":
            if agg.dino is None:
                raise ConfigError('aggregator.patch_embed "dinov2" needs aggregator.dino with the encoder sizes.')
            if agg.dino.embed_dim != self.embed_dim:
                raise ConfigError(
                    f"aggregator.dino.embed_dim ({agg.dino.embed_dim}) must equal embed_dim ({self.embed_dim})."
                )
        elif agg.patch_embed in DINO_VARIANTS:
            width = DINO_VARIANTS[agg.patch_embed]["embed_dim"]
            if width != self.embed_dim:
                raise ConfigError(f"{agg.patch_embed} has width {width}, but embed_dim is {self.embed_dim}.")
        elif agg.patch_embed != "conv":
            raise ConfigError(
                f"Unknown aggregator.patch_embed {agg.patch_embed!r}; use 'conv', 'dinov2' or one of "
                f"{', '.join(DINO_VARIANTS)}."
            )
        for name in ("depth_head", "point_head", "track_head"):
            head = getattr(self, name)
            enabled = getattr(self, f"enable_{name.split('_')[0]}")
            bad = [i for i in head.intermediate_layer_idx if not 0 <= i < agg.depth]
            if enabled and bad:
                raise ConfigError(
                    f"{name}.intermediate_layer_idx {list(head.intermediate_layer_idx)} has layers outside "
                    f"0..{agg.depth - 1}."
                )

    @property
    def dino(self) -> DinoConfig | None:
        """The DINO encoder sizes, ``None`` for the conv patch embedding."""
        agg = self.aggregator
        if agg.patch_embed == "dinov2":
            return agg.dino
        if agg.patch_embed in DINO_VARIANTS:
            return DinoConfig(**DINO_VARIANTS[agg.patch_embed])
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> VGGTConfig:
        """Parse a (possibly partial) dict, e.g. the official ``config.json``; unknown keys are an error."""
        return from_dict(cls, data, what="VGGT config")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` reads back."""
        return to_dict(self)


_TINY_LAYERS = (0, 1, 2, 3)

PRESETS: Mapping[str, Mapping[str, Any]] = {
    "vggt-1b": VGGTConfig().to_dict(),
    "vggt-tiny": VGGTConfig(
        embed_dim=32,
        aggregator=AggregatorConfig(depth=4, num_heads=2, num_register_tokens=2, patch_embed="conv"),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=2),
        depth_head=DPTHeadConfig(features=16, out_channels=(16, 32, 64, 64), intermediate_layer_idx=_TINY_LAYERS),
        point_head=DPTHeadConfig(
            features=16, out_channels=(16, 32, 64, 64), intermediate_layer_idx=_TINY_LAYERS, activation="inv_log"
        ),
        track_head=TrackHeadConfig(
            features=16,
            out_channels=(16, 32, 64, 64),
            intermediate_layer_idx=_TINY_LAYERS,
            iters=2,
            corr_levels=3,
            corr_radius=2,
            hidden_size=32,
            depth=2,
            num_heads=2,
            num_virtual_tracks=4,
        ),
    ).to_dict(),
    # The reproduction study's base (benchmarks/reproduce): 23.6 M parameters (aggregator 15.0 M, camera head 6.4 M,
    # depth head 2.3 M): VGGT-1B's layout at a quarter of its depth and under a third of its width (6 frame + 6
    # global blocks of width 320, conv patch embedding) with the paper's fine-tuning heads (camera and depth; point
    # and track off); trainable from scratch on one GPU in minutes, and small enough (47 MB in bf16) to travel
    # between the calls of a GPU session.
    "vggt-small": VGGTConfig(
        embed_dim=320,
        enable_point=False,
        enable_track=False,
        aggregator=AggregatorConfig(depth=6, num_heads=5, num_register_tokens=4, patch_embed="conv"),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=5),
        depth_head=DPTHeadConfig(features=64, out_channels=(40, 80, 160, 320), intermediate_layer_idx=(1, 2, 4, 5)),
    ).to_dict(),
}
"""Named configurations for :func:`subspace_hub.load_backbone` (``config="vggt-tiny"``)."""
