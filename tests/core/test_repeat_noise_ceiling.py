"""core.metrics.repeat_noise_ceiling against a planted signal and the closed form of Schoppe et al.

For repeats ``r_n = s + e_n`` with ``Var(s) = 1`` and independent noise of variance ``v``, the
mean over ``N`` repeats has variance ``1 + v / N`` and covariance 1 with ``s``, so its correlation
with the signal (the ceiling of a perfect model) is ``sqrt(1 / (1 + v / N))``.
"""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.core.encoding.metrics import repeat_noise_ceiling


def _planted(n_repeats, noise_var, n_samples=20000, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n_samples, len(noise_var)))
    s = (s - s.mean(0)) / s.std(0)
    noise = rng.standard_normal((n_repeats, n_samples, len(noise_var))) * np.sqrt(noise_var)
    return s, s[None] + noise


@pytest.mark.parametrize("n_repeats", [2, 5, 10])
def test_planted_signal_matches_analytic_ceiling(n_repeats):
    v = np.array([0.1, 0.5, 1.0, 4.0, 16.0])
    s, reps = _planted(n_repeats, v, seed=n_repeats)
    got = repeat_noise_ceiling(reps.astype(np.float32))
    analytic = np.sqrt(1.0 / (1.0 + v / n_repeats))
    assert got.shape == (len(v),)
    np.testing.assert_allclose(got, analytic, atol=0.02)
    # and the realised correlation of the mean response with the planted signal (numpy)
    realised = np.array([np.corrcoef(reps.mean(0)[:, j], s[:, j])[0, 1] for j in range(len(v))])
    np.testing.assert_allclose(got, realised, atol=0.02)


def test_equals_schoppe_closed_form_on_small_data():
    # CC_max^2 = (N Var(mean) - mean_n Var(r_n)) / ((N - 1) Var(mean)), Schoppe et al. 2016 eq. (8)
    rng = np.random.default_rng(3)
    n = 4
    reps = rng.standard_normal((n, 40, 6)) + 2.0 * rng.standard_normal((1, 40, 6)) * np.array([0, .2, .5, 1, 2, 4])
    mean = reps.mean(0)
    var_mean = mean.var(0, ddof=1)
    mean_var = reps.var(1, ddof=1).mean(0)
    ratio = (n * var_mean - mean_var) / ((n - 1) * var_mean)
    expected = np.sqrt(np.clip(ratio, 0, 1))
    np.testing.assert_allclose(repeat_noise_ceiling(reps), expected, atol=1e-12)
    np.testing.assert_allclose(repeat_noise_ceiling(reps, target_batch=4), expected, atol=1e-12)


def test_pure_noise_near_zero_identical_repeats_one_constant_zero():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((6, 20000, 20))
    got = repeat_noise_ceiling(noise)
    # the explainable share of variance (CC_max^2) is 0 up to sampling error (sd about
    # sqrt(2 / T) = 0.01 here); about half the estimates are negative and clipped to 0
    assert (got >= 0).all() and (got ** 2 < 0.05).all()
    assert 3 <= (got == 0).sum() <= 17
    s = rng.standard_normal((200, 2))
    same = np.repeat(s[None], 3, axis=0)
    np.testing.assert_allclose(repeat_noise_ceiling(same), 1.0, atol=1e-9)
    const = np.full((3, 50, 1), 7.0)
    assert repeat_noise_ceiling(const)[0] == 0.0


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="at least 2 repeats"):
        repeat_noise_ceiling(np.zeros((1, 10, 2)))
    with pytest.raises(ValueError, match="n_repeats, n_samples, n_targets"):
        repeat_noise_ceiling(np.zeros((10, 2)))
    x = np.random.default_rng(0).standard_normal((3, 10, 4))
    x[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="column 3"):
        repeat_noise_ceiling(x)
