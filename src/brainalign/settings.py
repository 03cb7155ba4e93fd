"""Kedro project settings."""
import os

from kedro.config import OmegaConfigLoader

from .hooks import GridHook, MlflowHook

HOOKS = (GridHook(), MlflowHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # environments override single keys of base (deep merge), not whole top-level blocks
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    # ${env:NAME,default} reads an environment variable (dataset roots, tracking URI)
    "custom_resolvers": {"env": lambda name, default=None: os.environ.get(name, default)},
}
