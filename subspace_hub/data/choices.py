"""The names a user picks from when generating data, importable without numpy (the CLI offers them as choices)."""

FAMILIES: tuple[str, ...] = ("texture", "geometry", "camera", "lighting")
"""Attribute families: in a dataset of family ``texture`` only the textures vary from scene to scene, and so on."""

CAMERA_MODES: tuple[str, ...] = ("orbit", "standard", "micro")
"""Camera placements (see :mod:`subspace_hub.data.cameras`); the first is the default."""

LAYOUTS: tuple[str, ...] = ("attribute", "megasynth")
"""Room layouts (see :mod:`subspace_hub.data.layout`): the paper's attribute scenes (the default) or MegaSynth's."""

GEOMETRY_GROUPS = 9
"""The paper's geometry datasets cycle through 9 groups of box and primitive counts."""
