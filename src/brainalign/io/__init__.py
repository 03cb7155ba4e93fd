"""Kedro datasets and readers for published dataset layouts."""
from .datasets import NiftiDataset, NpyStoriesDataset, StudyDataset

__all__ = ["NiftiDataset", "NpyStoriesDataset", "StudyDataset"]
