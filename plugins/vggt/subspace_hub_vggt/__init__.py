"""subspace-hub-vggt: VGGT (Visual Geometry Grounded Transformer) as a subspace-hub backbone.

A clean re-implementation whose state dicts use the official key format, so ``facebook/VGGT-1B``
(``config.json`` + ``model.safetensors``) loads with strict key checks::

    import subspace_hub
    model = subspace_hub.load_backbone("vggt", pretrained="path/to/VGGT-1B")   # or config="vggt-tiny"
"""

from subspace_hub_vggt.config import PRESETS, VGGTConfig
from subspace_hub_vggt.losses import VGGTLossConfig, vggt_loss
from subspace_hub_vggt.model import VGGT

__version__ = "0.1.0"
__all__ = ["PRESETS", "VGGT", "VGGTConfig", "VGGTLossConfig", "__version__", "vggt_loss"]
