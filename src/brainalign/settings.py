"""Kedro project settings."""
import os
import warnings

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

# Namespaced template pipelines (subject.condition.layer_k) put dots in dataset names on purpose:
# that is Kedro's own namespacing, so its advice against dots is noise here.
warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
