"""Kedro datasets and readers for published dataset layouts."""
from .datasets import ModelDirectory, ModelDirectoryDataset, NiftiDataset, NpyStoriesDataset, StudyDataset

__all__ = ["ModelDirectory", "ModelDirectoryDataset", "NiftiDataset", "NpyStoriesDataset", "StudyDataset"]
