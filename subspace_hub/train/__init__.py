"""Training loops for adapters on registered backbones (:func:`fit`)."""

from subspace_hub.train.loop import TrainResult, fit

__all__ = ["TrainResult", "fit"]
