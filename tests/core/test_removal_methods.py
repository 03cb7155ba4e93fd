"""core/removal: property encoding, residual and INLP removal, probes.

Every expected number comes from numpy/sklearn called directly or from planted ground truth."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import PredefinedSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainalign.core.removal.methods import (INLP, REMOVERS, EncodedProperty, PropertyError, Residual,
                                             encode_property, remove_property)
from brainalign.core.removal.probes import contiguous_groups, grouped_folds, probe_accuracy

CLASSES = np.array(["noun", "verb", "adj"])


def _planted_categorical(seed=0, n=3000, d=40, n_train=2000):
    """3 classes (50/30/20 %) encoded linearly in 3 latent directions, a label-independent signal
    ``s`` in another, noise everywhere, all rotated by a random orthogonal matrix."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    latent = rng.normal(size=(n, d))
    latent[:, :3] += 1.5 * rng.normal(size=(3, 3))[y]
    s = rng.normal(size=n)
    latent[:, 10] += 2 * s
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    X = (latent @ rot.T).astype(np.float32)
    train = np.arange(n) < n_train
    return X, y, s, train, rot


def _majority_accuracy(y_train, y_test):
    top = Counter(y_train.tolist()).most_common(1)[0][0]
    return float(np.mean(np.asarray(y_test) == top))


# --- encoding -------------------------------------------------------------------------------------

def test_encode_numeric_zscore_and_quantile_bins():
    rng = np.random.default_rng(1)
    v = rng.permutation(100).astype(float)
    v = np.r_[v, [-5.0, 250.0]]  # two held-out rows outside the training range
    train = np.arange(100)
    enc = encode_property(v, "numeric", train_rows=train, n_bins=5)
    np.testing.assert_allclose(enc.design[:, 0], (v - v[:100].mean()) / v[:100].std())
    # planted truth: training values 0..99 in 5 quantile bins of 20
    np.testing.assert_array_equal(enc.labels[:100], v[:100].astype(int) // 20)
    np.testing.assert_array_equal(np.bincount(enc.labels[:100]), [20] * 5)
    assert enc.labels[100] == 0 and enc.labels[101] == 4
    np.testing.assert_array_equal(enc.edges, [20, 40, 60, 80])
    assert enc.known.all() and enc.n_classes == 5


def test_encode_numeric_ties_collapse_bins():
    v = np.r_[np.zeros(60), np.arange(1, 41)].astype(float)  # 60 % of rows share the minimum
    enc = encode_property(v, "numeric", n_bins=5)
    counts = np.bincount(enc.labels)
    assert enc.n_classes < 5 and (counts > 0).all()
    assert (enc.labels[:60] == 0).all() and counts[0] == 60  # ties stay in one bin


def test_encode_categorical_onehot_from_training_rows():
    values = ["verb", "noun", "noun", "adj", "verb", "adv", None][:6] + ["adv"]
    train = [0, 1, 2, 3, 4]
    enc = encode_property(values, "categorical", train_rows=train, name="pos")
    assert enc.classes.tolist() == ["adj", "noun", "verb"]
    np.testing.assert_array_equal(enc.labels, [2, 1, 1, 0, 2, -1, -1])
    expected = np.zeros((7, 3))
    expected[[0, 1, 2, 3, 4], [2, 1, 1, 0, 2]] = 1
    np.testing.assert_array_equal(enc.design, expected)  # unseen class 'adv': all-zero rows
    np.testing.assert_array_equal(enc.known, [1, 1, 1, 1, 1, 0, 0])


@pytest.mark.parametrize("kind,values", [("categorical", ["a", "a", "a", "b"]), ("numeric", [2.0, 2.0, 2.0, 5.0])])
def test_encode_one_class_only_in_training_rows(kind, values):
    with pytest.raises(PropertyError, match=r"'pos' has one class only.*fold 3"):
        encode_property(values, kind, train_rows=[0, 1, 2], name="pos", context="fold 3")


@pytest.mark.parametrize("kind,values", [("numeric", [1.0, np.nan, 3.0, np.nan]),
                                         ("categorical", ["a", None, "b", float("nan")])])
def test_encode_missing_values(kind, values):
    with pytest.raises(PropertyError, match=r"'freq' has 2 missing values"):
        encode_property(values, kind, name="freq")


def test_encode_unknown_kind():
    with pytest.raises(PropertyError, match="unknown kind 'ordinal'"):
        encode_property([1, 2], "ordinal")


# --- INLP -----------------------------------------------------------------------------------------

def _fit_inlp(X, y, train, **params):
    prop = encode_property(CLASSES[y], "categorical", train_rows=train, name="pos")
    return INLP(**params).fit(X[train], prop.take(train)), prop


def test_inlp_projection_is_an_orthogonal_projection():
    X, y, _, train, _ = _planted_categorical()
    inlp, _ = _fit_inlp(X, y, train)
    P, Q = inlp.projection_, inlp.directions_
    d = X.shape[1]
    assert P.shape == (d, d) and P.dtype == np.float64
    assert inlp.summary()["rank_removed"] >= 2
    np.testing.assert_allclose(P, P.T, atol=1e-10)
    np.testing.assert_allclose(P @ P, P, atol=1e-10)
    np.testing.assert_allclose(Q @ Q.T, np.eye(len(Q)), atol=1e-10)  # orthonormal removed basis
    np.testing.assert_allclose(Q @ P, 0, atol=1e-10)  # removed directions orthogonal to the kept space
    assert np.linalg.matrix_rank(P) == d - np.linalg.matrix_rank(Q) == d - inlp.summary()["rank_removed"]
    eig = np.linalg.eigvalsh(P)
    assert np.all(np.isclose(eig, 0, atol=1e-10) | np.isclose(eig, 1, atol=1e-10))
    # transform = (X - training mean) P + training mean, computed here with numpy
    mu = X[train].astype(np.float64).mean(0)
    np.testing.assert_allclose(inlp.transform(X), (X - mu) @ P + mu, atol=1e-5)
    assert inlp.transform(X).dtype == np.float32


def test_inlp_removes_planted_label_and_keeps_other_signal():
    X, y, s, train, rot = _planted_categorical()
    test = ~train
    prop = encode_property(CLASSES[y], "categorical", train_rows=train, name="pos")
    Z, summary = remove_property("inlp", X, prop, train)
    majority = _majority_accuracy(y[train], y[test])

    def probe(F):  # sklearn directly, not the project's probe
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(F[train], y[train])
        return clf.score(F[test], y[test])

    before, after = probe(X), probe(Z)
    assert before > majority + 0.3
    assert abs(after - majority) <= 0.05
    assert summary["converged"] and summary["dev_accuracy"][-1] <= summary["majority_baseline"] + summary["tol"]
    assert summary["dev_accuracy"][0] > summary["majority_baseline"] + 0.3
    # the label-independent planted signal is still linearly recoverable on held-out rows
    r2_before = LinearRegression().fit(X[train], s[train]).score(X[test], s[test])
    r2_after = LinearRegression().fit(Z[train], s[train]).score(Z[test], s[test])
    assert r2_before > 0.75 and r2_after > r2_before - 0.05
    # the planted label-free subspace (latent dims 3..d) keeps most of its variance
    free = rot[:, 3:]
    assert (Z[test] @ free).var(0).sum() / (X[test] @ free).var(0).sum() > 0.9
    # and the training mean is unchanged
    np.testing.assert_allclose(Z[train].mean(0), X[train].mean(0), atol=1e-4)


def test_inlp_numeric_property_via_bins():
    rng = np.random.default_rng(3)
    n, d = 3000, 30
    v = rng.normal(size=n)
    X = rng.normal(size=(n, d)) + np.outer(v, rng.normal(size=d))
    train = np.arange(n) < 2000
    prop = encode_property(v, "numeric", train_rows=train, name="freq")
    Z, summary = remove_property("inlp", X, prop, train, seed=1)
    y = prop.labels
    test = ~train
    clf = LogisticRegression(max_iter=2000)
    assert clf.fit(X[train], y[train]).score(X[test], y[test]) > 0.5
    assert clf.fit(Z[train], y[train]).score(Z[test], y[test]) <= _majority_accuracy(y[train], y[test]) + 0.05
    assert summary["n_classes"] == 5


def test_inlp_fit_depends_on_training_rows_only():
    X, y, _, train, _ = _planted_categorical()
    y2 = y.copy()
    y2[~train] = (y[~train] + 1) % 3  # relabel every held-out row
    X2 = X.copy()
    X2[~train] = np.random.default_rng(9).normal(size=X2[~train].shape)  # and change its features
    Za, sa = remove_property("inlp", X, encode_property(CLASSES[y], "categorical", train_rows=train), train)
    Zb, sb = remove_property("inlp", X2, encode_property(CLASSES[y2], "categorical", train_rows=train), train)
    assert sa == sb
    np.testing.assert_array_equal(Za[train], Zb[train])
    a, _ = _fit_inlp(X, y, train)
    b, _ = _fit_inlp(X2, y2, train)
    np.testing.assert_array_equal(a.projection_, b.projection_)


def test_inlp_seeded_and_deterministic():
    X, y, _, train, _ = _planted_categorical()
    a, _ = _fit_inlp(X, y, train, seed=4)
    b, _ = _fit_inlp(X, y, train, seed=4)
    np.testing.assert_array_equal(a.projection_, b.projection_)


def test_inlp_ridge_classifier_also_reaches_baseline():
    X, y, _, train, _ = _planted_categorical(seed=2)
    test = ~train
    prop = encode_property(CLASSES[y], "categorical", train_rows=train)
    Z, summary = remove_property("inlp", X, prop, train, classifier="ridge")
    clf = LogisticRegression(max_iter=2000).fit(Z[train], y[train])
    assert abs(clf.score(Z[test], y[test]) - _majority_accuracy(y[train], y[test])) <= 0.05
    assert summary["classifier"] == "ridge" and summary["converged"]


def test_inlp_inner_split_keeps_groups_whole():
    y = np.tile([0, 1, 2], 40)
    groups = np.repeat(np.arange(12), 10)
    folds = INLP(seed=0)._inner_folds(y, groups, "pos")
    assert len(folds) == 3
    for tr, dev in folds:
        assert not set(groups[tr]) & set(groups[dev])
        assert len(tr) + len(dev) == len(y)
    assert sorted(np.concatenate([dev for _, dev in folds]).tolist()) == list(range(len(y)))


def test_inlp_fit_rejects_rows_of_unseen_classes():
    X, y, _, train, _ = _planted_categorical()
    prop = encode_property(np.r_[CLASSES[y[:-1]], ["det"]], "categorical", train_rows=train)
    with pytest.raises(PropertyError, match="not among the training"):
        INLP().fit(X, prop)  # all rows, including the held-out 'det'


# --- residual -------------------------------------------------------------------------------------

def _planted_numeric(seed=0, n=14000, d=10, n_train=4000):
    rng = np.random.default_rng(seed)
    v = rng.gamma(2.0, size=n)
    X = rng.normal(size=(n, d)) + np.outer(v, rng.normal(size=d)) + 3.0
    return X.astype(np.float32), v, np.arange(n) < n_train


def _corr_columns(A, v):
    A = A - A.mean(0)
    v = v - v.mean()
    return (A * v[:, None]).sum(0) / np.sqrt((A ** 2).sum(0) * (v ** 2).sum())


def test_residual_numeric_uncorrelated_on_held_out_rows():
    X, v, train = _planted_numeric()
    test = ~train
    prop = encode_property(v, "numeric", train_rows=train, name="freq")
    Z, summary = remove_property("residual", X, prop, train)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    r_before = np.array([np.corrcoef(X[test, j], v[test])[0, 1] for j in range(X.shape[1])])
    r_after = np.array([np.corrcoef(Z[test, j], v[test])[0, 1] for j in range(X.shape[1])])
    assert np.abs(r_before).max() > 0.5
    assert np.abs(r_after).max() < 0.05
    # on the training rows: numpy least-squares residuals (intercept column), plus the training mean
    A = np.c_[np.ones(train.sum()), v[train]]
    Xt = X[train].astype(np.float64)
    beta, *_ = np.linalg.lstsq(A, Xt, rcond=None)
    expected = Xt - A @ beta + Xt.mean(0)
    np.testing.assert_allclose(Z[train], expected, atol=1e-4)
    np.testing.assert_allclose(_corr_columns(Z[train].astype(np.float64), v[train]), 0, atol=1e-4)
    # summary R^2: the pooled (variance-weighted) R^2 of sklearn on the training rows
    expected_r2 = r2_score(Xt, LinearRegression().fit(v[train, None], Xt).predict(v[train, None]),
                           multioutput="variance_weighted")
    assert summary["r2"] == pytest.approx(expected_r2, abs=1e-6)


def test_residual_alpha_zero_is_least_squares_and_alpha_shrinks():
    X, v, train = _planted_numeric(n=3000, n_train=3000)
    prop = encode_property(v, "numeric")
    B = np.linalg.lstsq(np.c_[np.ones(len(v)), prop.design], X.astype(np.float64), rcond=None)[0][1]
    np.testing.assert_allclose(Residual(alpha=0).fit(X, prop).coef_[0], B, rtol=1e-8, atol=1e-8)
    # z-scored design (unit variance per row): ridge coefficient = OLS / (1 + alpha)
    np.testing.assert_allclose(Residual(alpha=0.5).fit(X, prop).coef_[0], B / 1.5, rtol=1e-8, atol=1e-8)


def test_residual_categorical_matches_sklearn_linear_regression():
    rng = np.random.default_rng(5)
    n, d = 6000, 8
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    X = rng.normal(size=(n, d)) + 2.0 * rng.normal(size=(3, d))[y]
    labels = CLASSES[y].astype(object)
    labels[-5:] = "det"  # a class never seen in the training rows
    train = np.arange(n) < 3000
    test = ~train
    prop = encode_property(labels, "categorical", train_rows=train, name="pos")
    Z, _ = remove_property("residual", X, prop, train, alpha=0.0)
    onehot = (CLASSES[:, None] == CLASSES[y][None, :]).T.astype(float)
    lr = LinearRegression().fit(onehot[train], X[train])
    expected = X - lr.predict(onehot) + X[train].mean(0)
    known = np.r_[np.ones(n - 5, bool), np.zeros(5, bool)]
    np.testing.assert_allclose(Z[known], expected[known], atol=1e-5)
    np.testing.assert_allclose(Z[~known], X[~known], atol=1e-6)  # unseen class: unchanged
    # held out: every column uncorrelated with every class indicator (up to sampling)
    held = test & known
    r_before = np.array([_corr_columns(X[held], onehot[held, k]) for k in range(3)])
    r_after = np.array([_corr_columns(Z[held].astype(np.float64), onehot[held, k]) for k in range(3)])
    assert np.abs(r_before).max() > 0.5 and np.abs(r_after).max() < 0.08


def test_residual_fit_depends_on_training_rows_only():
    X, v, train = _planted_numeric(n=3000, n_train=2000)
    v2 = v.copy()
    v2[~train] = 100.0 + v2[~train] ** 2
    a = Residual().fit(X[train], encode_property(v, "numeric", train_rows=train).take(train))
    b = Residual().fit(X[train], encode_property(v2, "numeric", train_rows=train).take(train))
    np.testing.assert_array_equal(a.coef_, b.coef_)
    Za, _ = remove_property("residual", X, encode_property(v, "numeric", train_rows=train), train)
    Zb, _ = remove_property("residual", X, encode_property(v2, "numeric", train_rows=train), train)
    np.testing.assert_array_equal(Za[train], Zb[train])
    assert not np.allclose(Za[~train], Zb[~train])  # held-out rows use their own values


def test_remove_property_errors():
    X, v, train = _planted_numeric(n=200, n_train=100)
    prop = encode_property(v, "numeric", train_rows=train)
    with pytest.raises(PropertyError, match="unknown removal method 'lasso'"):
        remove_property("lasso", X, prop, train)
    with pytest.raises(PropertyError, match="199 feature rows but property"):
        Residual().fit(X[:-1], prop)
    assert set(REMOVERS) == {"residual", "inlp"}
    assert isinstance(prop.take(train), EncodedProperty) and len(prop.take(train)) == 100


# --- probes ---------------------------------------------------------------------------------------

def test_probe_accuracy_matches_cross_val_score():
    rng = np.random.default_rng(11)
    # group 0 (rows 0..179) is all 'noun', the overall majority; without it 'verb' is the majority
    y = np.r_[np.zeros(180, int), rng.permutation(np.repeat([1, 0, 2], [324, 252, 144]))]
    X = rng.normal(size=(900, 20)) + 0.7 * rng.normal(size=(3, 20))[y]
    labels = CLASSES[y]
    groups = contiguous_groups(len(y), 5)
    folds = grouped_folds(groups)
    est = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=500, random_state=0))
    # cross_val_score's labels: the same classes, any coding gives the same accuracy
    scores = cross_val_score(est, X, labels, cv=folds, scoring="accuracy")
    res = probe_accuracy(X, labels, folds, C=0.5, max_iter=500, name="pos")
    np.testing.assert_allclose(res.fold_accuracy, scores, atol=1e-12)
    assert res.accuracy == pytest.approx(scores.mean(), abs=1e-12)
    base = [_majority_accuracy(labels[tr], labels[te]) for tr, te in folds]
    assert base[0] == 0.0  # fold 0: training majority 'verb', test rows all 'noun'
    np.testing.assert_allclose(res.fold_baseline, base)
    assert res.baseline == pytest.approx(np.mean(base))
    assert (res.n, res.n_classes, res.n_folds) == (900, 3, 5)
    # the same folds given as a fold id per row
    res2 = probe_accuracy(X, labels, groups, C=0.5, max_iter=500)
    np.testing.assert_allclose(res2.fold_accuracy,
                               cross_val_score(est, X, labels, cv=PredefinedSplit(groups), scoring="accuracy"),
                               atol=1e-12)
    assert res.to_dict()["above_baseline"] == pytest.approx(res.accuracy - res.baseline)


def test_probe_numeric_bins_use_training_split_edges():
    rng = np.random.default_rng(7)
    n = 600
    v = rng.normal(size=n)
    X = np.c_[v + 0.5 * rng.normal(size=n), rng.normal(size=(n, 4))]
    folds = grouped_folds(contiguous_groups(n, 3))
    res = probe_accuracy(X, v, folds, kind="numeric", n_bins=4)
    accs = []
    for tr, te in folds:  # bins by hand: v_sorted[floor(i m / 4)], from the training split
        vs = np.sort(v[tr])
        edges = vs[(np.arange(1, 4) * len(tr)) // 4]
        yb = np.searchsorted(edges, v, side="right")
        est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
        accs.append(est.fit(X[tr], yb[tr]).score(X[te], yb[te]))
    np.testing.assert_allclose(res.fold_accuracy, accs, atol=1e-12)
    assert res.accuracy > res.baseline + 0.2


def test_grouped_folds_keep_groups_whole():
    groups = np.array(["s2"] * 4 + ["s0"] * 3 + ["s1"] * 5 + ["s3"] * 2)
    folds = grouped_folds(groups, 2)
    assert len(folds) == 2
    assert [sorted(set(groups[te])) for _, te in folds] == [["s1", "s2"], ["s0", "s3"]]  # round robin
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    np.testing.assert_array_equal(np.sort(np.concatenate([te for _, te in folds])), np.arange(len(groups)))
    np.testing.assert_array_equal(np.bincount(contiguous_groups(10, 3)), [4, 3, 3])
    with pytest.raises(PropertyError, match="at least 2 groups"):
        grouped_folds(["a", "a"])


def test_probe_errors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    folds = contiguous_groups(50, 5)
    few = np.array(["a"] * 25 + ["b"] * 22 + ["c"] * 3)
    with pytest.raises(PropertyError, match=r"class 'c' of property 'pos' has 3 items; 5 folds need at least 5"):
        probe_accuracy(X, few, folds, name="pos")
    with pytest.raises(PropertyError, match="one class only"):
        probe_accuracy(X, np.array(["a"] * 50), folds, name="pos")
    with pytest.raises(PropertyError, match="'pos' has 1 missing values"):
        probe_accuracy(X, np.r_[["a", "b"] * 24, ["a", None]].astype(object), folds, name="pos")
    # every class has enough rows, but the training split of fold 0 holds one class only
    split = np.array(["a"] * 25 + ["b"] * 25)
    with pytest.raises(PropertyError, match="one class only .* training split of fold 0"):
        probe_accuracy(X, split, grouped_folds(np.repeat([0, 1], 25)), name="pos")
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(PropertyError, match="non-finite"):
        probe_accuracy(Xn, split, folds)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_fast_ridge_classifier_is_sklearns(n_classes):
    from sklearn.linear_model import RidgeClassifier

    from brainalign.core.removal.methods import RidgeClassifierFast

    rng = np.random.default_rng(n_classes)
    X = rng.standard_normal((300, 20))
    y = rng.integers(0, n_classes, 300)
    X[:, 0] += y
    ref = RidgeClassifier(alpha=2.0).fit(X, y)
    got = RidgeClassifierFast(alpha=2.0).fit(X, y)
    np.testing.assert_allclose(np.atleast_2d(got.coef_), np.atleast_2d(ref.coef_), atol=1e-10)
    np.testing.assert_allclose(np.ravel(got.intercept_), np.ravel(ref.intercept_), atol=1e-10)
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))
