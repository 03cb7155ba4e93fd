"""core/metrics.py against scipy.stats.pearsonr and sklearn.metrics.r2_score."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import r2_score as sk_r2

from brainalign.core.encoding.metrics import loso_isc, pearson_r, r2_score


def _data(seed=0, n=50, t=6):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, t)) * rng.uniform(0.1, 10, t) + rng.normal(0, 50, t)
    b = 0.5 * a + rng.standard_normal((n, t)) * 3
    return a, b


def test_pearson_r_matches_scipy():
    a, b = _data()
    b[:, 3] = -b[:, 3]  # a negative correlation too
    got = pearson_r(a, b)
    ref = np.array([stats.pearsonr(a[:, j], b[:, j])[0] for j in range(a.shape[1])])
    assert got.shape == (a.shape[1],) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, atol=1e-10, rtol=0)


def test_pearson_r_float32_input_and_1d():
    a, b = _data(1)
    got = pearson_r(a.astype(np.float32), b.astype(np.float32))
    ref = np.array([stats.pearsonr(a[:, j].astype(np.float32).astype(np.float64),
                                   b[:, j].astype(np.float32).astype(np.float64))[0]
                    for j in range(a.shape[1])])
    np.testing.assert_allclose(got, ref, atol=1e-10)
    got1 = pearson_r(a[:, 0], b[:, 0])
    assert got1.shape == (1,)
    assert got1[0] == pytest.approx(stats.pearsonr(a[:, 0], b[:, 0])[0], abs=1e-10)


def test_pearson_r_constant_column_is_zero_not_nan():
    """Documented: zero variance in either input gives r = 0, never NaN."""
    a, b = _data(2)
    a[:, 1] = 3.0
    b[:, 4] = -1.0
    got = pearson_r(a, b)
    assert np.isfinite(got).all()
    assert got[1] == 0.0 and got[4] == 0.0
    ok = [0, 2, 3, 5]
    ref = [stats.pearsonr(a[:, j], b[:, j])[0] for j in ok]
    np.testing.assert_allclose(got[ok], ref, atol=1e-10)


def test_pearson_r_perfect_and_shape_mismatch():
    x = np.linspace(0, 1, 20)[:, None]
    assert pearson_r(x, 3 * x + 2)[0] == pytest.approx(1.0, abs=1e-12)
    assert pearson_r(x, -x)[0] == pytest.approx(-1.0, abs=1e-12)
    assert abs(pearson_r(x, 3 * x + 2)[0]) <= 1.0
    with pytest.raises(ValueError, match="shapes"):
        pearson_r(np.zeros((5, 2)), np.zeros((5, 3)))


def test_r2_matches_sklearn():
    a, b = _data(3)
    got = r2_score(a, b)
    np.testing.assert_allclose(got, sk_r2(a, b, multioutput="raw_values"), atol=1e-10, rtol=0)
    # a bad prediction gives a negative R^2, as in sklearn
    bad = a[::-1] * 2
    np.testing.assert_allclose(r2_score(a, bad), sk_r2(a, bad, multioutput="raw_values"),
                               atol=1e-10)
    assert (r2_score(a, bad) < 0).any()
    assert r2_score(a[:, 0], b[:, 0])[0] == pytest.approx(sk_r2(a[:, 0], b[:, 0]), abs=1e-10)


def test_r2_constant_truth_is_zero():
    """Documented: 0 where y_true has zero variance (sklearn would give 1.0 for a perfect
    prediction and 0.0 otherwise with force_finite=True)."""
    a, b = _data(4)
    a[:, 2] = 5.0
    got = r2_score(a, b)
    assert got[2] == 0.0 and np.isfinite(got).all()
    ok = [0, 1, 3, 4, 5]
    np.testing.assert_allclose(got[ok], sk_r2(a[:, ok], b[:, ok], multioutput="raw_values"),
                               atol=1e-10)
    assert r2_score(a, a)[2] == 0.0


def test_loso_isc_matches_manual_loop():
    rng = np.random.default_rng(5)
    shared = rng.standard_normal((60, 5))
    subs = [shared * rng.uniform(0.5, 2, 5) + rng.standard_normal((60, 5)) * (s + 1)
            for s in range(4)]
    got = loso_isc(subs)
    assert got.shape == (4, 5)
    for s in range(4):
        others = np.mean([subs[o] for o in range(4) if o != s], axis=0)
        for j in range(5):
            assert got[s, j] == pytest.approx(stats.pearsonr(subs[s][:, j], others[:, j])[0],
                                              abs=1e-10)


def test_loso_isc_two_subjects_and_errors():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
    got = loso_isc([a, b])
    ref = [stats.pearsonr(a[:, j], b[:, j])[0] for j in range(3)]
    np.testing.assert_allclose(got[0], ref, atol=1e-10)
    np.testing.assert_allclose(got[1], ref, atol=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        loso_isc([a])


def test_loso_isc_constant_target_is_zero():
    rng = np.random.default_rng(7)
    subs = [rng.standard_normal((30, 3)) for _ in range(3)]
    for s in subs:
        s[:, 1] = 2.0
    got = loso_isc(subs)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[:, 1], 0.0)


def test_pearson_r_inexact_constant_column_is_still_about_zero():
    """A constant column whose mean is not exact in floating point (0.1, 4.2) is not caught by
    the ``den > 0`` test, but its centred values are all the same tiny number, so r stays at
    roundoff level (documented as 0)."""
    rng = np.random.default_rng(8)
    a = np.tile(rng.uniform(1, 1000, 20), (300, 1))
    b = rng.standard_normal((300, 20))
    assert np.abs(pearson_r(a, b)).max() < 1e-10
    assert np.abs(pearson_r(b, a)).max() < 1e-10


def test_r2_inexact_constant_truth_is_zero():
    rng = np.random.default_rng(9)
    a = np.tile(rng.uniform(1, 1000, 20), (300, 1))
    b = rng.standard_normal((300, 20))
    np.testing.assert_array_equal(r2_score(a, b), 0.0)


def test_loso_isc_in_target_batches_reads_only_batches_and_matches_scipy():
    from brainalign.core.encoding.ridge import StackedRows

    rng = np.random.default_rng(7)
    shared = rng.standard_normal((40, 23))
    subs = [shared + rng.standard_normal((40, 23)) * (s + 1) for s in range(3)]
    seen = []

    class Recorder:
        def __init__(self, a):
            self.a, self.shape, self.dtype = a, a.shape, a.dtype

        def __getitem__(self, key):
            seen.append(len(np.arange(self.shape[1])[key[1]]))
            return self.a[key]

    # each subject's responses as two "stories" read lazily through a column subset
    cols = rng.permutation(23)[:17]
    views = [StackedRows([Recorder(x[:25]), Recorder(x[25:])], ["a", "b"], columns=cols) for x in subs]
    got = loso_isc(views, target_batch=5)
    assert got.shape == (3, 17) and max(seen) <= 5
    for s in range(3):
        others = np.mean([subs[o][:, cols] for o in range(3) if o != s], axis=0)
        ref = [stats.pearsonr(subs[s][:, cols[j]], others[:, j])[0] for j in range(17)]
        np.testing.assert_allclose(got[s], ref, atol=1e-10)
    with pytest.raises(ValueError, match="one shape"):
        loso_isc([subs[0], subs[1][:30]])


def _backend_case(seed=11, n=80):
    """Columns: plain, offset far from zero (1e4), small scale, exact constant, inexact constant
    (0.1), and a prediction that is constant where the truth is not."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, 6))
    b = 0.6 * a + rng.standard_normal((n, 6))
    a[:, 1] += 1e4
    b[:, 1] += 1e4 - 3.0
    a[:, 2] *= 1e-3
    a[:, 3] = 2.0
    a[:, 4] = 0.1
    b[:, 5] = 7.0
    return a, b


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_backend_metrics_on_torch_tensors_match_scipy_and_sklearn(dtype, device):
    """pearson_r and r2_score are written once over the himalaya backend: on torch tensors (CPU,
    or CUDA when present) they give scipy's and sklearn's values, r = R² = 0 for constant
    columns, and a float64 tensor on the inputs' device."""
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    a, b = _backend_case()
    a, b = a.astype(dtype), b.astype(dtype)
    ta, tb = torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)
    r, r2 = pearson_r(ta, tb), r2_score(ta, tb)
    assert isinstance(r, torch.Tensor) and r.device.type == device and r.dtype == torch.float64
    assert isinstance(r2, torch.Tensor) and r2.device.type == device
    r, r2 = r.cpu().numpy(), r2.cpu().numpy()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for j in (0, 1, 2):
        assert r[j] == pytest.approx(stats.pearsonr(a64[:, j], b64[:, j])[0], abs=1e-9)
    np.testing.assert_allclose(r2[[0, 1, 2, 5]], sk_r2(a64[:, [0, 1, 2, 5]], b64[:, [0, 1, 2, 5]],
                                                       multioutput="raw_values"), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(r[3:], 0.0)  # constant truth (exact, inexact) or prediction
    np.testing.assert_array_equal(r2[3:5], 0.0)
    # the same numbers as the numpy inputs give, and a named backend gives them too
    np.testing.assert_allclose(r, pearson_r(a, b), atol=1e-12)
    np.testing.assert_allclose(r2, r2_score(a, b), atol=1e-12)
    np.testing.assert_allclose(pearson_r(a, b, backend="torch").numpy(), pearson_r(a, b), atol=1e-12)


def test_is_constant_on_torch_tensors_ignores_nan_as_numpy():
    torch = pytest.importorskip("torch")
    from brainalign.core.encoding.metrics import is_constant

    a, _ = _backend_case()
    a[5, 0] = np.nan  # NaN ignored: column 0 stays non-constant
    a[:, 5] = np.nan  # all NaN: not constant
    a[7, 3] = np.nan  # constant apart from a NaN
    want = is_constant(a)
    got = is_constant(torch.as_tensor(a))
    assert isinstance(want, np.ndarray) and isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(want, [False, False, False, True, True, False])
