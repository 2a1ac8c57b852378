"""LRM and LIM configuration (shared/reference/methods.md C): every architectural field, typed, with presets from
CPU-sized ``*-tiny`` to the paper's size. The paper's main PDF (token width, triplane size, parameter count) was not
available; the ``*-paper`` sizes follow the original LRM (1024-wide, 16 heads, 3 x 32 x 32 triplane tokens upsampled
to 3 x 64 x 64) and are documented assumptions, the block counts (LRM 12, LIM 6) are the paper's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from subspace_hub.configuration import from_dict, to_dict
from subspace_hub.errors import ConfigError

LIM_STREAMS = ("lrm-block", "lrm-output")
"""The values of ``LIMConfig.lim_stream``."""


@dataclass(frozen=True)
class LIMConfig:
    """Sizes of the LRM (image tokens -> triplane -> volume rendering) and of the LIM on top of it."""

    image_size: int = 256
    """Input images are ``image_size`` square (pixels); a multiple of ``patch_size``."""

    patch_size: int = 16
    """Side of the patches the image tokenizer embeds (RGB + Pluecker rays, 9 channels)."""

    dim: int = 1024
    """Token width."""

    heads: int = 16
    """Attention heads of every attention layer."""

    lrm_depth: int = 12
    """LRM blocks (the paper: 12)."""

    lim_depth: int = 6
    """LIM blocks (the paper: 6); block i reads the output of LRM block ``lrm_depth - lim_depth + i``."""

    mlp_ratio: float = 4.0
    """MLP hidden width / ``dim``."""

    triplane_tokens: int = 32
    """Each of the three planes is ``triplane_tokens`` x ``triplane_tokens`` learned tokens."""

    upsample: int = 2
    """Each plane token becomes ``upsample`` x ``upsample`` triplane texels (a linear map and a pixel shuffle)."""

    triplane_channels: int = 40
    """Feature channels of a triplane texel."""

    decoder_width: int = 64
    """Hidden width of the MLP that decodes a point's triplane feature into density and colour."""

    samples_per_ray: int = 48
    """Stratified samples along each ray inside the scene box (training jitters them, evaluation does not)."""

    bound: float = 1.0
    """The scene box is [-bound, bound]^3 (world units); the triplane covers it."""

    time_frequencies: int = 16
    """Sinusoid frequencies of the time encoding of alpha."""

    cameras: int = 6
    """Views of each keyframe in a sequence record (records hold keyframe after keyframe, ``cameras`` views each)."""

    input_views: int = 4
    """Of each keyframe's views, the first ``input_views`` are the LRM's inputs; the others are held out (rendered
    and scored, never seen)."""

    lim_stream: str = "lrm-block"
    """Where LIM's token stream starts from keyframe k: ``lrm-block``, the LRM's stream where LIM's first block sits
    (the input of LRM block ``lrm_depth - lim_depth``), so that the blocks copied from the LRM continue the LRM's
    computation instead of repeating its last blocks; ``lrm-output``, the LRM's output tokens. methods.md C does not
    say which; ``lrm-block`` starts closer to the teacher and scored higher in every paired run (BENCHMARKS.md)."""

    causal_weight: float = 1.0
    """Weight of LIM's causal consistency loss beside the triplane loss (0: the triplane loss alone)."""

    causal_stop_gradient: bool = True
    """Treat the one-hop triplane, the causal loss's target, as a constant, so the loss trains the two-hop path
    toward the one-hop answer and never the reverse. methods.md C leaves it open; with it LIM scored higher than
    with the gradient through both hops on all three case sets of both paired seeds, and tied the triplane loss
    alone on one-hop interpolation (BENCHMARKS.md, the H200 causal study)."""

    def __post_init__(self) -> None:
        problems = []
        if min(self.dim, self.heads, self.lrm_depth, self.lim_depth, self.triplane_tokens, self.upsample) < 1:
            problems.append("dim, heads, depths, triplane_tokens and upsample must be positive")
        elif self.dim % self.heads:
            problems.append(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.lim_depth > self.lrm_depth:
            problems.append(
                f"lim_depth ({self.lim_depth}) cannot exceed lrm_depth ({self.lrm_depth}): LIM reads its blocks"
            )
        if self.patch_size < 1 or self.image_size % self.patch_size:
            problems.append(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if not 1 <= self.input_views <= self.cameras:
            problems.append(f"input_views ({self.input_views}) must be between 1 and cameras ({self.cameras})")
        if self.lim_stream not in LIM_STREAMS:
            problems.append(f"lim_stream must be one of {LIM_STREAMS}, got {self.lim_stream!r}")
        if not self.causal_weight >= 0:
            problems.append(f"causal_weight must be >= 0, got {self.causal_weight}")
        if self.samples_per_ray < 2 or self.bound <= 0 or self.triplane_channels < 1 or self.decoder_width < 1:
            problems.append("samples_per_ray >= 2, bound > 0, triplane_channels and decoder_width >= 1 are needed")
        if problems:
            raise ConfigError("Invalid LIM config: " + "; ".join(problems) + ".")

    @property
    def plane_size(self) -> int:
        """Texels per side of each triplane plane."""
        return self.triplane_tokens * self.upsample

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LIMConfig:
        return from_dict(cls, data, what="LIM config")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


PRESETS: Mapping[str, Mapping[str, Any]] = {
    "lim-paper": LIMConfig().to_dict(),
    "lim-small": LIMConfig(
        image_size=64,
        patch_size=8,
        dim=256,
        heads=8,
        lrm_depth=8,
        lim_depth=4,
        triplane_tokens=8,
        triplane_channels=24,
        decoder_width=64,
        samples_per_ray=32,
    ).to_dict(),
    "lim-tiny": LIMConfig(
        image_size=32,
        patch_size=8,
        dim=64,
        heads=4,
        lrm_depth=4,
        lim_depth=2,
        triplane_tokens=4,
        triplane_channels=16,
        decoder_width=32,
        samples_per_ray=24,
        time_frequencies=4,
    ).to_dict(),
}
"""Named configurations, shared by the ``lrm`` and ``lim`` backbones (a LIM is built on the LRM of its config)."""
