"""Controlled-variation synthetic data and the interchange format.

- :mod:`.families` / :mod:`.export`: attribute-family datasets (``texture``, ``geometry``, ``camera``,
  ``lighting``) generated into folders ``datasets.load_dataset`` reads (``subspace-hub data generate``);
- :mod:`.scene`, :mod:`.layout`, :mod:`.shapes`, :mod:`.textures`, :mod:`.cameras`, :mod:`.lights`: MegaSynth-style
  procedural scenes; :mod:`.render` / :mod:`.raycast`: the renderer (Embree on CPU, a BVH kernel on GPU);
- :func:`sample_to_batch`, :func:`load_samples`, :class:`ViewGroups`: samples as tensors.
"""

from subspace_hub.data.interchange import sample_to_batch
from subspace_hub.data.loading import load_samples

__all__ = ["ViewGroups", "load_samples", "sample_to_batch"]


def __getattr__(name: str):
    if name == "ViewGroups":  # torch.utils.data only when asked for
        from subspace_hub.data.loader import ViewGroups

        return ViewGroups
    raise AttributeError(name)
