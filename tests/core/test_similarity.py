"""Similarity of representations (core.similarity): RSA against scipy's pdist and spearmanr, linear
CKA against the direct n x n HSIC formula and its invariances."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import ortho_group, spearmanr

from brainalign.core.similarity import linear_cka, rdm, rsa, rsa_from_rdms, similarity_table


def _hsic_cka(X, Y):
    """CKA = tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)) with the centring matrix H, K = XX^T, L = YY^T."""
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T
    KH, LH = K @ H, L @ H
    return np.trace(KH @ LH) / np.sqrt(np.trace(KH @ KH) * np.trace(LH @ LH))


@pytest.fixture
def reps():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 12))
    Y = np.tanh(X @ rng.standard_normal((12, 7))) + 0.5 * rng.standard_normal((60, 7))
    return X, Y


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_rdm_and_rsa_match_scipy(reps, metric):
    X, Y = reps
    np.testing.assert_allclose(rdm(X, metric), pdist(X, metric), atol=1e-12)
    ref = spearmanr(pdist(X, metric), pdist(Y, metric))[0]
    assert rsa(X, Y, metric) == pytest.approx(ref, abs=1e-12)
    assert 0.1 < ref < 0.99                                 # a value the test can miss


def test_rsa_with_ties_matches_spearmanr():
    d1 = np.array([1.0, 2.0, 2.0, 3.0, 0.5, 0.5, 4.0])
    d2 = np.array([0.3, 0.1, 0.2, 0.9, 0.9, 0.4, 0.8])
    assert rsa_from_rdms(d1, d2) == pytest.approx(spearmanr(d1, d2)[0], abs=1e-12)


def test_rsa_invariant_to_monotone_transform(reps):
    X, Y = reps
    d = rdm(X)
    assert rsa_from_rdms(d, np.exp(5 * d)) == pytest.approx(1.0, abs=1e-12)
    assert rsa_from_rdms(d, -d) == pytest.approx(-1.0, abs=1e-12)
    assert rsa_from_rdms(rdm(X), rdm(Y)) == pytest.approx(rsa_from_rdms(np.log1p(rdm(X)), rdm(Y) ** 3), abs=1e-12)


@pytest.mark.parametrize("n, px, py", [(80, 10, 6), (20, 30, 40)])     # feature form and Gram form
def test_linear_cka_matches_hsic_formula(n, px, py):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, px)) + 3.0
    Y = X[:, :min(px, py)] @ rng.standard_normal((min(px, py), py)) + rng.standard_normal((n, py)) - 1.0
    ref = _hsic_cka(X, Y)
    assert linear_cka(X, Y) == pytest.approx(ref, abs=1e-10)
    assert 0.05 < ref < 0.999


def test_linear_cka_invariances(reps):
    X, Y = reps
    base = linear_cka(X, Y)
    Q = ortho_group.rvs(X.shape[1], random_state=2)
    assert linear_cka(X @ Q, Y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(7.5 * X, Y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X + 10.0, Y) == pytest.approx(base, abs=1e-10)           # column centring
    scaled = X * np.r_[np.full(6, 10.0), np.full(6, 0.1)]                     # anisotropic scaling
    assert abs(linear_cka(scaled, Y) - base) > 1e-3


def test_linear_cka_large_n_without_gram_matrices():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10_000, 50))
    Y = X[:, :20] + rng.standard_normal((10_000, 20))
    # reference for large n through the identity tr(KHLH) = ||Y_c^T X_c||_F^2, independent of
    # the code path: compute with the covariance matrices from np.cov
    c = np.cov(np.c_[X, Y], rowvar=False)
    cxy, cxx, cyy = c[:50, 50:], c[:50, :50], c[50:, 50:]
    ref = np.sum(cxy ** 2) / (np.linalg.norm(cxx) * np.linalg.norm(cyy))
    assert linear_cka(X, Y) == pytest.approx(ref, abs=1e-10)


def test_similarity_table(reps):
    X, Y = reps
    full = similarity_table(X, Y)
    assert full == {"rsa": pytest.approx(rsa(X, Y)), "cka": pytest.approx(linear_cka(X, Y)),
                    "n_items": 60, "n_items_rsa": 60}
    sub = similarity_table(X, Y, max_items=25, seed=4)
    assert sub["n_items_rsa"] == 25 and sub["n_items"] == 60
    assert sub["cka"] == pytest.approx(full["cka"])                           # CKA uses every item
    assert sub == similarity_table(X, Y, max_items=25, seed=4)                # fixed by the seed
    assert sub["rsa"] != similarity_table(X, Y, max_items=25, seed=5)["rsa"]


def test_similarity_bad_input():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((10, 4))
    with pytest.raises(ValueError, match="different item counts: X has 10 rows, Y has 9"):
        rsa(X, X[:9])
    with pytest.raises(ValueError, match="different item counts"):
        linear_cka(X, X[:9])
    with pytest.raises(ValueError, match="at least 3 are needed"):
        rsa(X[:2], X[:2])
    with pytest.raises(ValueError, match="at least 2 are needed"):
        rdm(X[:1])
    Xc = X.copy()
    Xc[[2, 5]] = 1.0
    with pytest.raises(ValueError, match="2 of 10 items have constant feature vectors"):
        rsa(Xc, X)
    with pytest.raises(ValueError, match="unknown RDM metric"):
        rdm(X, "cosine-ish")
    with pytest.raises(ValueError, match="Y is constant across items"):
        linear_cka(X, np.ones((10, 3)))
    with pytest.raises(ValueError, match="different lengths"):
        rsa_from_rdms(np.arange(6.0), np.arange(3.0))
    with pytest.raises(ValueError, match="RDM is constant"):
        rsa_from_rdms(np.ones(6), np.arange(6.0))
    with pytest.raises(ValueError, match="max_items must be >= 3"):
        similarity_table(X, X, max_items=2)
