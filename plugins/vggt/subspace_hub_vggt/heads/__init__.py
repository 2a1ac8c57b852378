"""VGGT prediction heads: camera (iterative pose refinement), DPT (depth, points, track features), tracker."""

from subspace_hub_vggt.heads.camera import CameraHead
from subspace_hub_vggt.heads.dpt import DPTHead
from subspace_hub_vggt.heads.track import TrackHead

__all__ = ["CameraHead", "DPTHead", "TrackHead"]
