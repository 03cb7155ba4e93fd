"""The MLflow hook's metric filter: non-finite values are left out by name, never logged."""
import math

from brainalign.hooks import finite_metrics


def test_finite_metrics_drops_nan_and_inf_by_name():
    kept, dropped = finite_metrics({"r.base.layer_1.mean": 0.25, "noise mean r": math.nan,
                                    "x": math.inf, "n_subjects_excluded": 1})
    assert kept == {"r.base.layer_1.mean": 0.25, "n_subjects_excluded": 1.0}
    assert dropped == ["noise mean r", "x"]
    kept, _ = finite_metrics({"a b": 1.5})
    assert kept == {"a_b": 1.5}
