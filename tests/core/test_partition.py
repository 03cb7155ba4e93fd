"""Variance partitioning through banded ridge (core/encoding/partition.py).

References are independent of the module: himalaya's BandedRidgeCV / RidgeCV called directly on
arrays standardised here with numpy, with splits built here; sklearn's r2_score; planted
simulations with known drivers; the set-theory formulas of Lescroart et al. 2015 written out by
hand. Nothing is compared to the module's own earlier output.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import r2_score as sk_r2

from brainalign.core.encoding.partition import (PartitionResult, band_subsets, banded_cv_encoding,
                                                partition_table, partition_variance)

ALPHAS = np.logspace(-2, 5, 8)
N_ITER = 5


def _ar1(rng, shape, rho=0.5):
    """Autocorrelated noise (AR(1) along time) with unit variance."""
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = e[0]
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + np.sqrt(1 - rho ** 2) * e[t]
    return out


def _stories(n_stories, n_per):
    story = np.repeat(np.arange(n_stories), n_per)
    folds = [(np.flatnonzero(story != s), np.flatnonzero(story == s)) for s in range(n_stories)]
    return story, folds


# --------------------------------------------------------------------------- reference
def _zscore(train, test):
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd == 0, 1.0, sd)
    return (train - mu) / sd, (test - mu) / sd


def _loso_positions(story_train):
    order = list(dict.fromkeys(story_train.tolist()))
    return [(np.flatnonzero(story_train != s), np.flatnonzero(story_train == s)) for s in order]


def test_matches_himalaya_fold_by_fold():
    from himalaya.ridge import BandedRidgeCV, RidgeCV

    rng = np.random.default_rng(1)
    story, folds = _stories(4, 60)
    n = len(story)
    A = rng.standard_normal((n, 6)) * rng.uniform(0.5, 3, 6) + rng.uniform(-2, 2, 6)
    B = rng.standard_normal((n, 4))
    # band A given per fold (features fitted per fold): a different array in every fold
    A_folds = [A + 0.3 * f * rng.standard_normal(A.shape) for f in range(len(folds))]
    Y = (A @ rng.standard_normal((6, 5)) + B @ rng.standard_normal((4, 5))
         + 2 * rng.standard_normal((n, 5)) + 10.0)
    seed = 3
    res = banded_cv_encoding({"A": A_folds, "B": B}, Y, folds, story, alphas=ALPHAS, n_iter=N_ITER,
                             seed=seed, dtype="float64", return_predictions=True)
    assert isinstance(res, PartitionResult)
    assert res.bands == ("A", "B")

    for f, (train, test) in enumerate(folds):
        Atr, Ate = _zscore(A_folds[f][train], A_folds[f][test])
        Btr, Bte = _zscore(B[train], B[test])
        mu = Y[train].mean(0)
        Ytr, Yte = Y[train] - mu, Y[test] - mu
        cv = _loso_positions(story[train])

        joint = BandedRidgeCV(groups="input", cv=cv, random_state=seed,
                              solver_params=dict(n_iter=N_ITER, alphas=ALPHAS, progress_bar=False,
                                                 warn=False))
        joint.fit([Atr, Btr], Ytr)
        pred = np.asarray(joint.predict([Ate, Bte]))
        np.testing.assert_allclose(res.predictions["A+B"][test], pred + mu, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(res.fold_r2["A+B"][f], sk_r2(Yte, pred, multioutput="raw_values"),
                                   rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(res.fold_log10_alpha["A+B"][f],
                                   -np.asarray(joint.deltas_) / np.log(10), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(res.fold_alpha["A+B"][f], joint.best_alphas_, rtol=1e-6)
        r_ref = [np.corrcoef(Yte[:, j], pred[:, j])[0, 1] for j in range(Y.shape[1])]
        np.testing.assert_allclose(res.fold_r["A+B"][f], r_ref, rtol=1e-6, atol=1e-9)

        for name, (Xtr, Xte) in {"A": (Atr, Ate), "B": (Btr, Bte)}.items():
            single = RidgeCV(alphas=ALPHAS, cv=cv, solver_params=dict(warn=False))
            single.fit(Xtr, Ytr)
            p = np.asarray(single.predict(Xte))
            np.testing.assert_allclose(res.predictions[name][test], p + mu, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(res.fold_r2[name][f], sk_r2(Yte, p, multioutput="raw_values"),
                                       rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(res.fold_log10_alpha[name][f, 0],
                                       np.log10(single.best_alphas_), rtol=1e-9)

    table = partition_table(res)
    np.testing.assert_allclose(table["r2[A+B]"], res.fold_r2["A+B"].mean(0))
    assert list(table["target"]) == list(range(Y.shape[1]))


def test_test_fold_never_seen():
    """Changing a fold's test responses changes nothing that fold chose; its test features
    change only its predictions, not its penalties."""
    rng = np.random.default_rng(2)
    story, folds = _stories(4, 40)
    n = len(story)
    A, B = rng.standard_normal((n, 5)), rng.standard_normal((n, 3))
    Y = A @ rng.standard_normal((5, 4)) + B @ rng.standard_normal((3, 4)) + rng.standard_normal((n, 4))
    kw = dict(alphas=ALPHAS, n_iter=N_ITER, dtype="float64", return_predictions=True)
    base = banded_cv_encoding({"A": A, "B": B}, Y, folds[:1], story, **kw)
    test = folds[0][1]
    Y2, A2 = Y.copy(), A.copy()
    Y2[test] = 100 * Y2[test] + 50
    A2[test] = 30 * A2[test] - 7
    moved = banded_cv_encoding({"A": A2, "B": B}, Y2, folds[:1], story, **kw)
    for k in ("A", "B", "A+B"):
        np.testing.assert_array_equal(base.fold_log10_alpha[k], moved.fold_log10_alpha[k])
    np.testing.assert_allclose(base.predictions["B"][test], moved.predictions["B"][test], rtol=1e-10)


# --------------------------------------------------------------------------- planted
def test_planted_unique_variance():
    rng = np.random.default_rng(0)
    story, folds = _stories(4, 150)
    n = len(story)
    A, B = rng.standard_normal((n, 8)), rng.standard_normal((n, 8))
    k = 5
    sig_a = A @ rng.standard_normal((8, k))
    sig_b = B @ rng.standard_normal((8, k))
    sig_ab_a, sig_ab_b = A @ rng.standard_normal((8, k)), B @ rng.standard_normal((8, k))
    sig_ab = (sig_ab_a / sig_ab_a.std(0) + sig_ab_b / sig_ab_b.std(0)) / np.sqrt(2)  # half each
    S = np.c_[sig_a / sig_a.std(0), sig_b / sig_b.std(0), sig_ab]
    Y = S + _ar1(rng, S.shape)  # true R² 0.5 in every group, true shared variance 0
    res = banded_cv_encoding({"A": A, "B": B}, Y, folds, story, alphas=ALPHAS, n_iter=N_ITER, seed=0)
    t = partition_table(res)
    only_a, only_b, both = t.iloc[:k], t.iloc[k:2 * k], t.iloc[2 * k:]
    assert (only_a["unique[A]"] > 0.3).all()
    assert (only_a["unique[B]"].abs() < 0.05).all()
    assert (only_b["unique[B]"] > 0.3).all()
    assert (only_b["unique[A]"].abs() < 0.05).all()
    assert (both["unique[A]"] > 0.12).all() and (both["unique[B]"] > 0.12).all()
    # shared = R²(A) + R²(B) - R²(A+B) adds the noise of three estimates: ~0 per group on average
    for group in (only_a, only_b, both):
        assert (group["shared[A+B]"].abs() < 0.1).all()
        assert abs(group["shared[A+B]"].mean()) < 0.05
    # the band that drives nothing is penalised more in the joint model
    assert (only_a["log10_alpha[B]"] > only_a["log10_alpha[A]"]).all()
    assert (only_b["log10_alpha[A]"] > only_b["log10_alpha[B]"]).all()
    assert t.notna().all().all()


def test_planted_shared_variance_of_correlated_copies():
    rng = np.random.default_rng(4)
    story, folds = _stories(4, 100)
    n = len(story)
    A = rng.standard_normal((n, 6))
    B = A + 0.1 * rng.standard_normal((n, 6))  # a near copy of A
    S = A @ rng.standard_normal((6, 4))
    Y = S / S.std(0) + _ar1(rng, S.shape)
    res = banded_cv_encoding({"A": A, "B": B}, Y, folds, story, alphas=ALPHAS, n_iter=N_ITER)
    t = partition_table(res)
    assert (t["shared[A+B]"] > 0.35).all()
    assert (t["unique[A]"].abs() < 0.05).all() and (t["unique[B]"].abs() < 0.05).all()


def test_two_band_identity_and_columns():
    rng = np.random.default_rng(5)
    story, folds = _stories(3, 50)
    n = len(story)
    A, B = rng.standard_normal((n, 4)), rng.standard_normal((n, 3))
    Y = A[:, :2] + B[:, :2] + rng.standard_normal((n, 2))
    t = partition_table(banded_cv_encoding({"A": A, "B": B}, Y, folds, story, alphas=ALPHAS,
                                           n_iter=N_ITER))
    assert list(t.columns) == ["target", "r2[A]", "r2[B]", "r2[A+B]", "r[A]", "r[B]", "r[A+B]",
                               "unique[A]", "unique[B]", "shared[A+B]", "log10_alpha[A]",
                               "log10_alpha[B]", "alpha_at_edge"]
    np.testing.assert_allclose(t["unique[A]"] + t["unique[B]"] + t["shared[A+B]"], t["r2[A+B]"],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(t["unique[A]"], t["r2[A+B]"] - t["r2[B]"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(t["shared[A+B]"], t["r2[A]"] + t["r2[B]"] - t["r2[A+B]"],
                               rtol=0, atol=1e-15)


def test_three_band_formulas_by_hand():
    rng = np.random.default_rng(6)
    R = {k: rng.uniform(-0.1, 0.6, 7) for k in ["A", "B", "C", "A+B", "A+C", "B+C", "A+B+C"]}
    p = partition_variance(R, ["A", "B", "C"])
    assert list(p) == ["unique[A]", "unique[B]", "unique[C]", "shared[A+B]", "shared[A+C]",
                       "shared[B+C]", "shared[A+B+C]"]
    a, b, c = R["A"], R["B"], R["C"]
    ab, ac, bc, abc = R["A+B"], R["A+C"], R["B+C"], R["A+B+C"]
    ref = {"unique[A]": abc - bc, "unique[B]": abc - ac, "unique[C]": abc - ab,
           "shared[A+B]": ac + bc - c - abc, "shared[A+C]": ab + bc - b - abc,
           "shared[B+C]": ab + ac - a - abc,
           "shared[A+B+C]": a + b + c - ab - ac - bc + abc}
    for key, v in ref.items():
        np.testing.assert_allclose(p[key], v, rtol=0, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(sum(p.values()), abc, rtol=0, atol=1e-12)
    assert band_subsets(["A", "B", "C"])[3:] == [("A", "B"), ("A", "C"), ("B", "C"), ("A", "B", "C")]


def test_three_bands_end_to_end():
    rng = np.random.default_rng(7)
    story, folds = _stories(3, 100)
    n = len(story)
    A, B, C = (rng.standard_normal((n, 5)) for _ in range(3))
    sa, sb = A @ rng.standard_normal((5, 3)), B @ rng.standard_normal((5, 3))
    S = (sa / sa.std(0) + sb / sb.std(0)) / np.sqrt(2)  # A and B drive half each, C nothing
    Y = S + _ar1(rng, S.shape)
    t = partition_table(banded_cv_encoding({"A": A, "B": B, "C": C}, Y, folds, story,
                                           alphas=ALPHAS, n_iter=N_ITER))
    regions = ["unique[A]", "unique[B]", "unique[C]", "shared[A+B]", "shared[A+C]", "shared[B+C]",
               "shared[A+B+C]"]
    np.testing.assert_allclose(t[regions].sum(1), t["r2[A+B+C]"], rtol=0, atol=1e-12)
    assert (t["unique[A]"] > 0.1).all() and (t["unique[B]"] > 0.1).all()
    assert (t["unique[C]"].abs() < 0.05).all()
    assert {"log10_alpha[A]", "log10_alpha[B]", "log10_alpha[C]", "r2[B+C]"} <= set(t.columns)


# --------------------------------------------------------------------------- errors
@pytest.fixture
def small():
    rng = np.random.default_rng(8)
    story, folds = _stories(3, 20)
    n = len(story)
    return rng.standard_normal((n, 3)), rng.standard_normal((n, 2)), rng.standard_normal((n, 2)), story, folds


def test_errors_band_count(small):
    A, B, Y, story, folds = small
    with pytest.raises(ValueError, match="2 or 3 bands, got 1"):
        banded_cv_encoding({"A": A}, Y, folds, story)
    with pytest.raises(ValueError, match="2 or 3 bands, got 4"):
        banded_cv_encoding({"A": A, "B": B, "C": A, "D": B}, Y, folds, story)
    with pytest.raises(ValueError, match="2 or 3 bands"):
        partition_variance({"A": 0.1}, ["A"])


def test_errors_bad_bands(small):
    A, B, Y, story, folds = small
    with pytest.raises(ValueError, match=r"band 'B' has 59 samples but band 'A' has 60"):
        banded_cv_encoding({"A": A, "B": B[:-1]}, Y, folds, story)
    with pytest.raises(ValueError, match=r"band 'A' has 50 samples but the responses have 60"):
        banded_cv_encoding({"A": A[:50], "B": B[:50]}, Y, folds, story)
    Bn = B.copy()
    Bn[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"band 'B' holds NaN or inf in 1 columns \(first: \[1\]\)"):
        banded_cv_encoding({"A": A, "B": Bn}, Y, folds, story)
    with pytest.raises(ValueError, match=r"band 'A' is empty: shape \(60, 0\)"):
        banded_cv_encoding({"A": A[:, :0], "B": B}, Y, folds, story)
    with pytest.raises(ValueError, match=r"band 'A' has features for 2 folds, but there are 3"):
        banded_cv_encoding({"A": [A, A], "B": B}, Y, folds, story)
    with pytest.raises(ValueError, match="must be a non-empty string"):
        banded_cv_encoding({"A+": A, "B": B}, Y, folds, story)
    Yn = Y.copy()
    Yn[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"responses hold NaN or inf in 1 targets"):
        banded_cv_encoding({"A": A, "B": B}, Yn, folds, story, alphas=ALPHAS, n_iter=2)


def test_torch_backend_and_target_batches_match_numpy():
    pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    story, folds = _stories(3, 40)
    n = len(story)
    A, B = rng.standard_normal((n, 4)), rng.standard_normal((n, 3))
    Y = A[:, :3] + B + rng.standard_normal((n, 3))
    kw = dict(alphas=ALPHAS, n_iter=N_ITER, dtype="float64")
    a = banded_cv_encoding({"A": A, "B": B}, Y, folds, story, **kw)
    b = banded_cv_encoding({"A": A, "B": B}, Y, folds, story, backend="torch", target_batch=2, **kw)
    for k in ("A", "B", "A+B"):
        np.testing.assert_allclose(b.fold_r2[k], a.fold_r2[k], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(b.fold_log10_alpha[k], a.fold_log10_alpha[k], rtol=1e-6, atol=1e-9)


def test_dual_form_when_features_exceed_rows_matches_primal_himalaya():
    """Bands holding more features than training rows go through the kernel (dual) form; its
    predictions and band penalties equal himalaya's primal BandedRidgeCV on the same fold."""
    from himalaya.ridge import BandedRidgeCV

    from brainalign.core.encoding.partition import _fit_subset

    rng = np.random.default_rng(7)
    story, folds = _stories(4, 40)
    n = len(story)
    A = rng.standard_normal((n, 5))
    B = rng.standard_normal((n, 150))          # 155 features > 120 training rows
    Y = A @ rng.standard_normal((5, 6)) + 0.1 * B @ rng.standard_normal((150, 6)) + rng.standard_normal((n, 6))
    res = banded_cv_encoding({"A": A, "B": B}, Y, folds, story, alphas=ALPHAS, n_iter=N_ITER, seed=2,
                             dtype="float64", return_predictions=True)
    for f, (train, test) in enumerate(folds):
        Atr, Ate = _zscore(A[train], A[test])
        Btr, Bte = _zscore(B[train], B[test])
        mu = Y[train].mean(0)
        cv = _loso_positions(story[train])
        primal = BandedRidgeCV(groups="input", cv=cv, random_state=2,
                               solver_params=dict(n_iter=N_ITER, alphas=ALPHAS, progress_bar=False, warn=False))
        primal.fit([Atr, Btr], Y[train] - mu)
        np.testing.assert_allclose(res.predictions["A+B"][test], np.asarray(primal.predict([Ate, Bte])) + mu,
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res.fold_log10_alpha["A+B"][f], -np.asarray(primal.deltas_) / np.log(10),
                                   rtol=1e-5, atol=1e-6)
    # and the switch is what routed it: forcing the primal form gives the same answer
    train, test = folds[0]
    Atr, Ate = _zscore(A[train], A[test])
    Btr, Bte = _zscore(B[train], B[test])
    Ytr = Y[train] - Y[train].mean(0)
    splits = _loso_positions(story[train])
    p_dual = _fit_subset([Atr, Btr], [Ate, Bte], Ytr, ALPHAS, splits, N_ITER, (0.1, 1.0), 2, 6, dual=True)[0]
    p_primal = _fit_subset([Atr, Btr], [Ate, Bte], Ytr, ALPHAS, splits, N_ITER, (0.1, 1.0), 2, 6, dual=False)[0]
    np.testing.assert_allclose(np.asarray(p_dual), np.asarray(p_primal), rtol=1e-5, atol=1e-6)
