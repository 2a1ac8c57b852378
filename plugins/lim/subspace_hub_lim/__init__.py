"""LIM and its LRM for subspace-hub: reconstruct a triplane from posed views, interpolate it between keyframes.

import subspace_hub

lrm = subspace_hub.load_backbone("lrm", config="lim-tiny")
lim = subspace_hub.load_backbone("lim", config="lim-tiny")
"""

from subspace_hub_lim.config import PRESETS, LIMConfig
from subspace_hub_lim.losses import lim_loss, lrm_loss
from subspace_hub_lim.model import (
    LIM,
    LRM,
    camera_rays,
    lim_from_lrm,
    plucker,
    render_rays,
    sample_triplane,
    time_encoding,
)

__version__ = "0.1.0"

__all__ = [
    "LIM",
    "LRM",
    "PRESETS",
    "LIMConfig",
    "__version__",
    "camera_rays",
    "lim_from_lrm",
    "lim_loss",
    "lrm_loss",
    "plucker",
    "render_rays",
    "sample_triplane",
    "time_encoding",
]
