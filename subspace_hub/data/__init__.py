"""Controlled-variation synthetic data, and finding samples in any dataset.

- :mod:`.families` / :mod:`.export`: attribute-family datasets (``texture``, ``geometry``, ``camera``,
  ``lighting``) generated into folders ``datasets.load_dataset`` reads (``subspace-hub data generate``);
- :mod:`.scene`, :mod:`.layout`, :mod:`.shapes`, :mod:`.textures`, :mod:`.cameras`, :mod:`.lights`: MegaSynth-style
  procedural scenes; :mod:`.render` / :mod:`.raycast`: the renderer (Embree on CPU, a BVH kernel on GPU);
- :func:`load_samples` (:mod:`.sources`): samples of a registered dataset, a folder or a Hub dataset repo;
  :class:`ViewGroups` (:mod:`.views`): groups of views of one scene as tensors, for training.

The sample format itself (:func:`sample_to_batch`) is :mod:`subspace_hub.interchange`, shared with metrics and
backbones.
"""

from subspace_hub.data.sources import load_samples, pick_split
from subspace_hub.interchange import sample_to_batch

__all__ = ["ViewGroups", "load_samples", "pick_split", "sample_to_batch"]


def __getattr__(name: str):
    if name == "ViewGroups":  # torch.utils.data only when asked for
        from subspace_hub.data.views import ViewGroups

        return ViewGroups
    raise AttributeError(name)
