"""Per-target null distributions (core.stats.nulls): the fast path against a direct refit with
sklearn, the p-value formula, and calibration on autocorrelated null targets with real word
features (MiniLM on the packaged stories)."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.core.encoding.folds import leave_stories_out
from brainalign.core.encoding.ridge import apply_shifts, cross_validated_encoding, standardize
from brainalign.core.stats import nulls


def _ar1(n, m, phi, rng):
    e = rng.standard_normal((n, m))
    y = np.empty_like(e)
    y[0] = e[0]
    for t in range(1, n):
        y[t] = phi * y[t - 1] + np.sqrt(1 - phi ** 2) * e[t]
    return y


@pytest.fixture(scope="module")
def word_features(minilm):
    """Real contextual features of two packaged stories on a 2 s TR grid, FIR-delayed."""
    from brainalign.core.representations.text import extract_word_features
    from brainalign.core.synthetic.study import story_texts, time_words
    from brainalign.core.timing.resample import fir_delays, lanczos_downsample

    tok, model = minilm
    rng = np.random.default_rng(0)
    out, sos = [], []
    for k, (name, text) in enumerate(story_texts(["lighthouse", "orchard", "market"]).items()):
        w = time_words(text, rng, max_words=260)
        f = extract_word_features(w["word"].tolist(), tok, model, [4], context_words=10)[4]
        n = int(np.ceil((w["offset"].max() + 10) / 2.0))
        z = lanczos_downsample(f, ((w["onset"] + w["offset"]) / 2).to_numpy(), 2.0 * np.arange(n))
        out.append(fir_delays(z, (1, 2, 3, 4)))
        sos.append(np.full(n, k))
    return np.concatenate(out), np.concatenate(sos)


def test_fast_path_equals_a_direct_refit_with_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    n, p, m = 120, 15, 6
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, m)) * 0.3 + rng.standard_normal((n, m))
    sos = np.repeat([0, 1, 2], 40)
    folds = leave_stories_out([40, 40, 40])
    fold_alpha = np.array([[1.0, 10.0, 10.0, 100.0, 1.0, 1000.0]] * 3)
    draws = nulls.shift_draws(sos, 4, min_shift=10, seed=3)
    got_r, got_r2 = nulls.null_distribution(X, Y, folds, sos, fold_alpha, draws)
    for k, shifts in enumerate(draws):
        Ys = apply_shifts(Y, sos, shifts)
        ref = np.zeros(m)
        for f, (train, test) in enumerate(folds):
            Xtr, Xte = standardize(X[train], X[test])
            mu = Ys[train].mean(0)
            for j in range(m):
                model = Ridge(alpha=fold_alpha[f, j], fit_intercept=False).fit(Xtr, Ys[train, j] - mu[j])
                ref[j] += np.corrcoef(model.predict(Xte), Ys[test, j] - mu[j])[0, 1] / len(folds)
        np.testing.assert_allclose(got_r[k], ref, atol=1e-8)


def test_p_value_formula_and_smallest_p():
    null = np.array([[0.1, 0.5], [0.2, 0.6], [0.3, 0.7], [0.0, 0.8]])
    p = nulls.permutation_p(np.array([0.25, 0.9]), null)
    np.testing.assert_allclose(p, [(1 + 1) / 5, 1 / 5])


def test_bh_matches_a_textbook_loop():
    rng = np.random.default_rng(0)
    p = np.r_[rng.uniform(size=50), rng.uniform(0, 0.01, 10)]
    n = len(p)
    order = np.argsort(p)
    ref = np.empty(n)
    for i in range(n):           # q_(i) = min_{j >= i} p_(j) n / j
        ref[order[i]] = min(1.0, min(p[order[j]] * n / (j + 1) for j in range(i, n)))
    np.testing.assert_allclose(nulls.bh_fdr(p), ref)


def test_false_positive_rate_on_autocorrelated_null_targets(word_features):
    """1,000 AR(1) targets (phi 0.5) with no stimulus signal, scored with real MiniLM features:
    the share with p < 0.05 lies in [0.03, 0.07]."""
    X, sos = word_features
    rng = np.random.default_rng(7)
    Y = _ar1(len(X), 1000, 0.5, rng)
    n_trs = np.bincount(sos).tolist()
    folds = leave_stories_out(n_trs)
    res = cross_validated_encoding(X, Y, folds, sos, alphas=np.logspace(0, 6, 7), n_inner=3, inner_gap=2)
    draws = nulls.shift_draws(sos, 99, min_shift=15, seed=11)
    null_r, _ = nulls.null_distribution(X, Y, folds, sos, res.fold_alpha, draws)
    p = nulls.permutation_p(res.r, null_r)
    fpr = float((p < 0.05).mean())
    print(f"FPR at alpha 0.05 on 1,000 AR(1) null targets, K = 99: {fpr:.3f}")
    assert 0.03 <= fpr <= 0.07, fpr


def test_planted_signal_is_found(word_features):
    X, sos = word_features
    rng = np.random.default_rng(8)
    signal = X[:, :384] @ rng.standard_normal((384, 40))
    signal = (signal - signal.mean(0)) / signal.std(0)
    Y = np.c_[signal + 0.5 * _ar1(len(X), 40, 0.5, rng), _ar1(len(X), 160, 0.5, rng)]
    folds = leave_stories_out(np.bincount(sos).tolist())
    res = cross_validated_encoding(X, Y, folds, sos, alphas=np.logspace(0, 6, 7), n_inner=3, inner_gap=2)
    null_r, _ = nulls.null_distribution(X, Y, folds, sos, res.fold_alpha, nulls.shift_draws(sos, 99, 15, 12))
    q = nulls.bh_fdr(nulls.permutation_p(res.r, null_r))
    assert (q[:40] < 0.05).mean() > 0.5 and (q[40:] < 0.05).mean() < 0.05, (res.r[:40].mean(), q[:40])


# --- block permutation of TRs within stories (encoding.null_model.method: block_permutation) ---

def _blocks(rows, block_len):
    return [rows[i:i + block_len] for i in range(0, len(rows), block_len)]


def test_block_permutation_draws_move_whole_blocks_within_stories():
    """Every draw puts each story's blocks (consecutive, the last shorter) in some order, each block's
    rows contiguous and in order; rows stay in their story; draws are seeded and do shuffle."""
    lengths, block_len = [53, 40, 27], 10
    sos = np.repeat(np.array(["a", "b", "c"], dtype=object), lengths)
    draws = nulls.block_permutation_draws(sos, 200, block_len=block_len, seed=5)
    Y = np.arange(len(sos))[:, None] * np.ones((1, 3))
    last_block_moved = False
    for idx in draws:
        assert idx.dtype.kind == "i" and np.array_equal(np.sort(idx), np.arange(len(sos)))
        np.testing.assert_array_equal(nulls.apply_draw(Y, idx, sos), Y[idx])
        for story in ("a", "b", "c"):
            rows = np.flatnonzero(sos == story)
            got = idx[rows]
            assert np.isin(got, rows).all()
            blocks = _blocks(rows, block_len)
            starts = {int(b[0]): b for b in blocks}
            pos, used = 0, []
            while pos < len(got):                 # walk the permuted story block by block
                b = starts[int(got[pos])]         # each block starts where a real block starts
                np.testing.assert_array_equal(got[pos:pos + len(b)], b)
                used.append(int(b[0]))
                pos += len(b)
            assert sorted(used) == sorted(starts)
            last_block_moved |= story == "a" and got[-1] != rows[-1]
    assert last_block_moved                       # the short last block lands anywhere
    assert np.mean([np.array_equal(d, np.arange(len(sos))) for d in draws]) < 0.05
    again = nulls.block_permutation_draws(sos, 200, block_len=block_len, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(draws, again))
    other = nulls.block_permutation_draws(sos, 200, block_len=block_len, seed=6)
    assert not all(np.array_equal(x, y) for x, y in zip(draws, other))


def test_different_subjects_get_different_draws():
    from brainalign.pipelines.encoding.nodes import _subject_seed

    sos = np.repeat([0, 1, 2], 60)
    for method in nulls.METHODS:
        d1, d2 = (nulls.null_draws(method, sos, 20, min_shift=10, block_len=6, seed=_subject_seed(0, s))
                  for s in ("sub-01", "sub-02"))
        same = [np.array_equal(nulls.draw_index(x, sos), nulls.draw_index(y, sos)) for x, y in zip(d1, d2)]
        assert not any(same), method


def test_shift_draws_as_an_index_equal_apply_shifts():
    rng = np.random.default_rng(0)
    sos = np.repeat(["x", "y"], [40, 30])
    Y = rng.standard_normal((70, 4))
    for shifts in nulls.shift_draws(sos, 5, min_shift=5, seed=1):
        np.testing.assert_array_equal(nulls.apply_draw(Y, shifts, sos), apply_shifts(Y, sos, shifts))
    with pytest.raises(ValueError, match="not in story_of_sample"):
        nulls.draw_index({"z": 3}, sos)


def test_block_permutation_short_story_error_names_the_story():
    sos = np.repeat(np.array(["long", "tiny"], dtype=object), [60, 19])
    with pytest.raises(ValueError, match=r"'tiny' has 19 samples.*block_len 10.*20 samples"):
        nulls.block_permutation_draws(sos, 3, block_len=10)
    assert len(nulls.block_permutation_draws(sos, 3, block_len=9)) == 3   # 19 = 2 blocks of 9 + 1
    with pytest.raises(ValueError, match="unknown null method"):
        nulls.null_draws("phase", sos, 3)


def test_block_permutation_fast_path_equals_a_direct_refit_loop():
    """Block-permutation p and null r from the fast path equal a direct loop over the K draws that
    refits the ridge in closed form with each fold's chosen alphas fixed."""
    rng = np.random.default_rng(2)
    n_trs, p, m, K = [50, 45, 55], 12, 8, 30
    n = sum(n_trs)
    sos = np.repeat([0, 1, 2], n_trs)
    X = rng.standard_normal((n, p))
    Y = (X @ rng.standard_normal((p, m))) * np.linspace(0, 0.12, m) + _ar1(n, m, 0.5, rng)
    folds = leave_stories_out(n_trs)
    res = cross_validated_encoding(X, Y, folds, sos, alphas=np.logspace(-1, 4, 6), n_inner=3, inner_gap=2,
                                   dtype="float64")
    draws = nulls.block_permutation_draws(sos, K, block_len=7, seed=4)
    got_r, got_r2 = nulls.null_distribution(X, Y, folds, sos, res.fold_alpha, draws)
    ref_r, ref_r2 = np.zeros((K, m)), np.zeros((K, m))
    for k, idx in enumerate(draws):
        Yk = Y[idx]
        for f, (train, test) in enumerate(folds):
            Xtr, Xte = standardize(X[train], X[test])
            mu = Yk[train].mean(0)
            for j in range(m):
                w = np.linalg.solve(Xtr.T @ Xtr + res.fold_alpha[f, j] * np.eye(p), Xtr.T @ (Yk[train, j] - mu[j]))
                pred, true = Xte @ w, Yk[test, j] - mu[j]
                ref_r[k, j] += np.corrcoef(pred, true)[0, 1] / len(folds)
                ref_r2[k, j] += (1 - ((true - pred) ** 2).sum() / ((true - true.mean()) ** 2).sum()) / len(folds)
    np.testing.assert_allclose(got_r, ref_r, atol=1e-8)
    np.testing.assert_allclose(got_r2, ref_r2, atol=1e-8)
    p_fast, p_ref = nulls.permutation_p(res.r, got_r), nulls.permutation_p(res.r, ref_r)
    np.testing.assert_allclose(p_fast, p_ref, atol=1e-8)
    assert len(np.unique(p_ref)) >= 4 and p_ref.min() < 0.05 < 0.2 < p_ref.max()   # p spread out


def test_false_positive_rate_of_block_permutation_on_autocorrelated_null_targets(word_features):
    """As the shift test above, with K = 99 block permutations (blocks of 10 TRs): the share of
    1,000 AR(1) null targets with p < 0.05 lies in [0.03, 0.07]."""
    X, sos = word_features
    rng = np.random.default_rng(7)
    Y = _ar1(len(X), 1000, 0.5, rng)
    folds = leave_stories_out(np.bincount(sos).tolist())
    res = cross_validated_encoding(X, Y, folds, sos, alphas=np.logspace(0, 6, 7), n_inner=3, inner_gap=2)
    draws = nulls.block_permutation_draws(sos, 99, block_len=10, seed=11)
    null_r, _ = nulls.null_distribution(X, Y, folds, sos, res.fold_alpha, draws)
    fpr = float((nulls.permutation_p(res.r, null_r) < 0.05).mean())
    print(f"block permutation: FPR at alpha 0.05 on 1,000 AR(1) null targets, K = 99: {fpr:.3f}")
    assert 0.03 <= fpr <= 0.07, fpr


def test_too_few_draws_for_alpha_warn(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="brainalign.core.stats.nulls"):
        assert nulls.check_reachable_p(19, 0.05)                 # 1 / 20 = 0.05: reachable
        assert not caplog.records
        assert not nulls.check_reachable_p(10, 0.05, context="sub-01 gpt2 layer 4")
    (rec,) = caplog.records
    assert rec.levelno == logging.WARNING
    msg = rec.getMessage()
    assert "sub-01 gpt2 layer 4" in msg and "K = 10" in msg and "0.09091" in msg and "alpha = 0.05" in msg
    assert "no target can reach" in msg and "at least 19" in msg
    with pytest.raises(ValueError, match="alpha"):
        nulls.check_reachable_p(10, 1.5)
