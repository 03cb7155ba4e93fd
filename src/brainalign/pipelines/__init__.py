"""Kedro pipelines: thin nodes (nodes.py) around brainalign.core, wiring only (pipeline.py)."""
