"""decoding: brain targets -> stimulus features, per ROI and network (pairwise matching accuracy)."""
from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
