"""Data in the interchange format: loading datasets by name, folder or Hub repo, and turning samples into tensors."""

from subspace_hub.data.interchange import sample_to_batch
from subspace_hub.data.loading import load_samples

__all__ = ["load_samples", "sample_to_batch"]
