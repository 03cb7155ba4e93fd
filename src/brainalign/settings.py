"""Kedro project settings."""
import os
import warnings

# Warnings known to be harmless, filtered before Kedro builds the config loader and the nodes run
# (docs/architecture.md, "Logs and progress", says why each is harmless):
# - Kedro 1.7 registers its own resolvers (globals, runtime_params, oc.env) with omegaconf 2.4's
#   deprecated register_new_resolver(); only Kedro can move to register_resolver()
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning,
                        module=r"kedro\.config\.omegaconf_config")
# - nilearn's vol_to_surf averages the samples of each fsaverage5 vertex; a vertex whose samples all
#   lie outside the score image's field of view gets NaN (no data, not drawn) and numpy says so
warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning,
                        module=r"nilearn\.surface\.surface")
# - nilearn's view_img with threshold 1e-6 (which hides the voxels without a score, 0): when no
#   resampled voxel is within the threshold there is nothing to hide and the page shows every voxel
warnings.filterwarnings("ignore", message=r"Threshold given was .*, but the data has no values below",
                        category=UserWarning)
# Namespaced template pipelines (subject.condition.layer_k) put dots in dataset names on purpose:
# that is Kedro's own namespacing, so its advice against dots is noise here.
warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")

from kedro.config import OmegaConfigLoader  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from .hooks import GridHook, MlflowHook  # noqa: E402
from .progress import GridProgress, plain_console_when_redirected  # noqa: E402

HOOKS = (GridHook(), MlflowHook(), GridProgress())

# `kedro run > run.log` (or a pipe): whole plain lines instead of rich's 80-column table
plain_console_when_redirected()


def _env(name, default=None):
    """``${env:NAME,default}``: an environment variable (dataset roots, tracking URI)."""
    return os.environ.get(name, default)


# registered here with omegaconf's register_resolver(); Kedro would register custom_resolvers with
# the deprecated register_new_resolver() (it skips a name that is already registered)
OmegaConf.register_resolver("env", _env, replace=True)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # environments override single keys of base (deep merge), not whole top-level blocks
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    # ${env:NAME,default} reads an environment variable (dataset roots, tracking URI)
    "custom_resolvers": {"env": _env},
}
