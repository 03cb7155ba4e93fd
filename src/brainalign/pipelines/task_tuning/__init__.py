"""task_tuning: one cell per task x tuning method -> a tuned model directory (a ``tuned``
condition of embedding -> encoding) and a results row."""
from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
