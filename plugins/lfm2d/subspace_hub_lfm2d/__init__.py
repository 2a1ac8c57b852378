"""2D-LFM for subspace-hub: lift 2D landmarks of any category to 3D, trained with 2D supervision only.

import subspace_hub

model = subspace_hub.load_backbone("lfm2d", config="lfm2d-tiny")
"""

from subspace_hub_lfm2d.config import PRESETS, LFM2DConfig
from subspace_hub_lfm2d.losses import (
    canonical_loss,
    canonical_views,
    lfm2d_loss,
    orthographic_procrustes,
    random_rotations,
    reprojection_loss,
)
from subspace_hub_lfm2d.model import LFM2D, laplacian_phi, rff_phi

__version__ = "0.1.0"

__all__ = [
    "LFM2D",
    "PRESETS",
    "LFM2DConfig",
    "__version__",
    "canonical_loss",
    "canonical_views",
    "laplacian_phi",
    "lfm2d_loss",
    "orthographic_procrustes",
    "random_rotations",
    "reprojection_loss",
    "rff_phi",
]
