"""Backbones: loading by name, checkpoints on disk, and the builtin reference backbone."""

from subspace_hub.backbones.loading import build_backbone, load_backbone, rebuild_backbone, save_backbone, spec_of
from subspace_hub.provenance import BuildInfo, build_info

__all__ = ["BuildInfo", "build_backbone", "build_info", "load_backbone", "rebuild_backbone", "save_backbone", "spec_of"]
