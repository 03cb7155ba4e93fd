"""brain_tuning: per brain-tuning method (``brain``, ``brain-permuted``) one backbone tuned per
outer fold to predict the tuned subjects' responses -> a per-fold model directory (a ``tuned``
condition of embedding -> encoding) and the training history."""
from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
