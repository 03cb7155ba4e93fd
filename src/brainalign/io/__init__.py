"""Kedro datasets and readers for published dataset layouts."""
from .datasets import NpyStoriesDataset, StudyDataset

__all__ = ["NpyStoriesDataset", "StudyDataset"]
