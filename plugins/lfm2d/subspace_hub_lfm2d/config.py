"""2D-LFM configuration (shared/reference/methods.md B.2): every architectural field, typed, with presets from a
CPU-sized ``lfm2d-tiny`` to the paper's size (``lfm2d-paper``, about 25 M parameters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from subspace_hub.configuration import from_dict, to_dict
from subspace_hub.errors import ConfigError

PhiKind = Literal["rff", "laplacian", "none"]
PhiLayers = Literal["all", "input", "every_second", "first_last"]
PHI_LAYERS: tuple[str, ...] = ("all", "input", "every_second", "first_last")


@dataclass(frozen=True)
class LFM2DConfig:
    """Sizes and switches of :class:`subspace_hub_lfm2d.model.LFM2D`."""

    dim: int = 512
    """Token width D."""

    depth: int = 8
    """Transformer layers."""

    heads: int = 8
    """Attention heads (``dim`` must be divisible by it)."""

    mlp_ratio: float = 4.0
    """MLP hidden width / ``dim``."""

    max_landmarks: int = 64
    """N_max: every category's landmarks are padded to it."""

    categories: int = 64
    """Size of the learnable category embedding table."""

    tpe_features: int = 64
    """Random Fourier features of the 2D coordinates (TPE), before their projection to ``dim``."""

    tpe_sigma: float = 1.0
    """Standard deviation of the TPE's fixed Gaussian frequencies (coordinates are roughly unit-scaled)."""

    phi: PhiKind = "rff"
    """Correspondence encoding of landmark identity: ``rff`` (deterministic inverse-Gaussian-CDF spectrum),
    ``laplacian`` (eigenvectors of the sample's skeleton graph, ``batch["adjacency"]``) or ``none`` (a plain
    permutation-equivariant transformer, the paper's Proposition 1)."""

    phi_sigma: float = 2.5
    """sigma of the ``rff`` spectrum (the paper's best)."""

    phi_layers: PhiLayers = "all"
    """Where Phi is added to queries and keys: every layer (the paper), the input only, every second layer, or the
    first and last layers (the paper's ablation)."""

    phi_on_values: bool = False
    """Also add Phi to the values (the project page's figure; the paper's text adds it to Q and K only)."""

    canonical_weight: float = 1.0
    """Weight of C3DPO's canonicalisation loss (methods.md B.3) beside the 2D loss: in training, each predicted
    shape is turned by a random rotation, projected, and lifted again, and the second lift must give the first
    shape back. The 2D loss alone is minimised exactly by lifting every view flat (the 2D points with zero depth),
    which this term rules out; 0 trains on the 2D loss alone (the paper's loss as written)."""

    supervision: Literal["2d", "3d"] = "2d"
    """``2d``: the paper's training, 2D landmarks only. ``3d``: a control for benchmarks, not a way to train 2D-LFM:
    the loss reads the samples' 3D shapes (``batch["landmarks"]``) and scores the prediction after the similarity
    that fits it best, which bounds what the architecture and data allow a single view to recover."""

    shape_basis: int = 0
    """0: a linear head lifts each landmark token to 3D (methods.md B.2). K > 0: a low-rank shape head, the
    non-rigid structure-from-motion prior of C3DPO (methods.md B.3): each category has a mean shape and K basis
    shapes (learnt), and the tokens, pooled over the visible landmarks, give the K coefficients, so every prediction
    lies in a K-dimensional family of canonical shapes. An assumption beyond the 2D-LFM notes, which name no head."""

    seed: int = 0
    """Seed of the TPE's fixed frequencies (part of the config so a checkpoint rebuilds the same encoding)."""

    def __post_init__(self) -> None:
        problems = []
        if self.dim < 1 or self.depth < 1 or self.heads < 1:
            problems.append(f"dim, depth and heads must be positive, got {self.dim}, {self.depth}, {self.heads}")
        elif self.dim % self.heads or self.dim % 2:
            problems.append(f"dim ({self.dim}) must be even and divisible by heads ({self.heads})")
        if self.phi not in ("rff", "laplacian", "none"):
            problems.append(f"phi must be rff, laplacian or none, got {self.phi!r}")
        if self.phi_layers not in PHI_LAYERS:
            problems.append(f"phi_layers must be one of {', '.join(PHI_LAYERS)}, got {self.phi_layers!r}")
        if self.supervision not in ("2d", "3d"):
            problems.append(f"supervision must be 2d or 3d, got {self.supervision!r}")
        if self.shape_basis < 0:
            problems.append(f"shape_basis must be >= 0, got {self.shape_basis}")
        if not self.canonical_weight >= 0:
            problems.append(f"canonical_weight must be >= 0, got {self.canonical_weight}")
        if self.max_landmarks < 1 or self.categories < 1 or self.tpe_features < 2 or self.tpe_features % 2:
            problems.append("max_landmarks and categories must be positive and tpe_features even and >= 2")
        if problems:
            raise ConfigError("Invalid 2D-LFM config: " + "; ".join(problems) + ".")

    def phi_in_layer(self, layer: int) -> bool:
        """Whether Phi is added to the queries and keys of ``layer`` (0-based)."""
        if self.phi == "none":
            return False
        if self.phi_layers == "all":
            return True
        if self.phi_layers == "every_second":
            return layer % 2 == 0
        if self.phi_layers == "first_last":
            return layer in (0, self.depth - 1)
        return False  # "input": added to the input tokens only

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LFM2DConfig:
        return from_dict(cls, data, what="2D-LFM config")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


PRESETS: Mapping[str, Mapping[str, Any]] = {
    # the paper's size: 8 layers of width 512 (methods.md B.2: 6-24 layers, D = 256-1024, about 25 M parameters)
    "lfm2d-paper": LFM2DConfig().to_dict(),
    "lfm2d-small": LFM2DConfig(dim=128, depth=6, heads=8, max_landmarks=32, categories=16).to_dict(),
    "lfm2d-tiny": LFM2DConfig(dim=32, depth=2, heads=2, max_landmarks=32, categories=4, tpe_features=16).to_dict(),
}
"""Named configurations for ``load_backbone("lfm2d", config=...)``."""
