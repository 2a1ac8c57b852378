"""Jinja templates of the cards subspace-hub writes (rendered with huggingface_hub's ``RepoCard.from_template``)."""

from pathlib import Path

TEMPLATES = Path(__file__).parent
MODEL_CARD = TEMPLATES / "subspace_model_card.md"
"""The model card of a published subspace bundle."""
DATASET_CARD = TEMPLATES / "synthetic_dataset_card.md"
"""The dataset card of a generated synthetic attribute family."""
ADAPTER_CARD = TEMPLATES / "adapter_card.md"
"""The README of a saved adapter folder."""
RUN_CARD = TEMPLATES / "run_card.md"
"""The README of a training run folder."""
REGISTERED_DATASET_CARD = TEMPLATES / "registered_dataset_card.md"
"""The dataset card of a registered dataset exported with ``subspace-hub data export``."""
