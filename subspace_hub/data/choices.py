"""The names a user picks from when generating data, importable without numpy (the CLI offers them as choices)."""

FAMILIES: tuple[str, ...] = ("texture", "geometry", "camera", "lighting")
"""Attribute families: in a dataset of family ``texture`` only the textures vary from scene to scene, and so on."""

CAMERA_MODES: tuple[str, ...] = ("standard", "orbit", "micro")
"""Camera placements (see :mod:`subspace_hub.data.cameras`)."""
