"""Backbones: loading by name, checkpoints on disk, and the builtin reference backbone."""

from subspace_hub.backbones.loading import BuildInfo, build_info, load_backbone, save_backbone, spec_of

__all__ = ["BuildInfo", "build_info", "load_backbone", "save_backbone", "spec_of"]
