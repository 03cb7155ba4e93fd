"""Property removal as a derived condition (core.removal.apply): words to samples, the fold rule,
and the residual's coefficients against a least-squares fit on the training words alone."""
import numpy as np
import pandas as pd
import pytest

from brainalign.core.removal.apply import remove_property_per_fold, word_samples


def _study(n_per_story=60, stories=("a", "b", "c"), dim=6, seed=0):
    """One word per TR (word k of a story in TR k + trim_start), so word rows = TR rows."""
    rng = np.random.default_rng(seed)
    words, feats, grids = [], {}, []
    for s in stories:
        n = n_per_story
        onset = 2.0 * (np.arange(n) + 1) + 0.2          # TR 2 s, t0 0, trim_start 1
        words.append(pd.DataFrame({"story": s, "word_index": np.arange(n), "word": "w", "onset": onset,
                                   "offset": onset + 0.5, "sentence_id": np.arange(n) // 6}))
        grids.append({"story": s, "n_trs_total": n + 2, "tr": 2.0, "t0": 0.0, "trim_start": 1, "trim_end": 1,
                      "n_trs": n})
    words = pd.concat(words, ignore_index=True)
    pos = (words["word_index"] % 6).astype(float)
    X = rng.standard_normal((len(words), dim))
    X[:, 0] += 2.0 * pos            # the property is linearly encoded in feature 0
    for k, s in enumerate(stories):
        feats[s] = X[k * n_per_story:(k + 1) * n_per_story]
    ann = pd.DataFrame({"story": words["story"], "word_index": words["word_index"], "position_in_sentence": pos})
    folds = []
    n = n_per_story
    for f in range(len(stories)):
        test = np.arange(f * n, (f + 1) * n)
        train = np.setdiff1d(np.arange(len(stories) * n), test)
        folds += [{"fold": f, "sample": int(i), "role": "train"} for i in train]
        folds += [{"fold": f, "sample": int(i), "role": "test"} for i in test]
    return words, feats, ann, pd.DataFrame(grids), pd.DataFrame(folds), X


def test_word_samples_by_hand():
    words, _, _, grids, _, _ = _study(n_per_story=5, stories=("a", "b"))
    np.testing.assert_array_equal(word_samples(words, grids), np.r_[np.arange(5), 5 + np.arange(5)])
    late = words.copy()
    late.loc[0, ["onset", "offset"]] = [0.1, 0.3]     # in the trimmed first volume: no sample
    assert word_samples(late, grids)[0] == -1


def _identity(d):
    return {s: np.asarray(v, np.float32) for s, v in d.items()}


def test_residual_is_fitted_on_the_training_words_only():
    words, feats, ann, grids, folds, X = _study()
    out = remove_property_per_fold("residual", feats, words, ann, "position_in_sentence", grids, folds, _identity,
                                   method_params={"alpha": 0.0})
    pos = ann["position_in_sentence"].to_numpy()
    for f in range(3):
        train = folds[(folds["fold"] == f) & (folds["role"] == "train")]["sample"].to_numpy()
        # independent reference: least squares of X on [1, pos] over the training words only
        A = np.c_[np.ones(len(train)), pos[train]]
        coef, *_ = np.linalg.lstsq(A, X[train], rcond=None)
        expected = X - np.outer(pos - pos[train].mean(), coef[1])
        got = np.concatenate([out[f"{f}/{s}"] for s in ("a", "b", "c")])
        np.testing.assert_allclose(got, expected, atol=1e-4)
        test = np.setdiff1d(np.arange(len(X)), train)
        assert abs(np.corrcoef(got[test, 0], pos[test])[0, 1]) < 0.35 < 0.8 < abs(np.corrcoef(X[test, 0], pos[test])[0, 1])
    assert set(out.summaries) == {0, 1, 2} and out.summaries[0]["n_train_words"] == 120


@pytest.mark.parametrize("method", ["residual", "inlp"])
def test_held_out_labels_never_reach_the_fit(method):
    """The fold rule: changing the property of fold 0's test words leaves fold 0's fit unchanged
    (INLP: every feature; residual: the training words' features and the coefficients)."""
    words, feats, ann, grids, folds, X = _study(seed=2)
    ann2 = ann.copy()
    test0 = np.arange(60)
    rng = np.random.default_rng(9)
    ann2.loc[test0, "position_in_sentence"] = rng.permutation(ann2.loc[test0, "position_in_sentence"].to_numpy())
    params = {"alpha": 1e-6} if method == "residual" else {"max_iter": 1, "n_bins": 2, "seed": 0}
    a = remove_property_per_fold(method, feats, words, ann, "position_in_sentence", grids, folds, _identity,
                                 method_params=params, probe=False)
    b = remove_property_per_fold(method, feats, words, ann2, "position_in_sentence", grids, folds, _identity,
                                 method_params=params, probe=False)
    for s in ("b", "c"):      # training stories of fold 0
        np.testing.assert_array_equal(a[f"0/{s}"], b[f"0/{s}"])
    if method == "inlp":
        np.testing.assert_array_equal(a["0/a"], b["0/a"])
    else:   # the changed test rows follow their new values through the same coefficients
        assert not np.array_equal(a["0/a"], b["0/a"])
    # ... while fold 1, which trains on story a, does change
    assert not np.array_equal(a["1/c"], b["1/c"])


def test_inlp_held_out_probe_at_baseline():
    words, feats, ann, grids, folds, X = _study(n_per_story=200, seed=4)
    out = remove_property_per_fold("inlp", feats, words, ann, "position_in_sentence", grids, folds, _identity,
                                   method_params={"n_bins": 3, "tol": 0.01})
    for f, s in out.summaries.items():
        assert s["heldout_accuracy_before"] > s["heldout_baseline"] + 0.3
        assert s["heldout_accuracy"] < s["heldout_baseline"] + 0.05, s


def test_errors_name_the_problem():
    words, feats, ann, grids, folds, _ = _study()
    with pytest.raises(ValueError, match="no property 'tense'"):
        remove_property_per_fold("inlp", feats, words, ann, "tense", grids, folds, _identity)
    short = {**feats, "b": feats["b"][:-1]}
    with pytest.raises(ValueError, match="story 'b'"):
        remove_property_per_fold("inlp", short, words, ann, "position_in_sentence", grids, folds, _identity)
    const = ann.assign(position_in_sentence=1.0)
    with pytest.raises(ValueError, match="one class only"):
        remove_property_per_fold("residual", feats, words, const, "position_in_sentence", grids, folds, _identity)


@pytest.mark.parametrize("method", ["residual", "inlp"])
def test_words_without_a_value_enter_no_fit(method):
    """A word with no value (tense of a sentence without a finite verb) is left out of the fit;
    a residual leaves its features unchanged, INLP projects it like every word."""
    words, feats, ann, grids, folds, X = _study(seed=3)
    ann = ann.assign(tense=np.where(ann["position_in_sentence"] < 3, "past", "present").astype(object))
    gone = [5, 70, 130]
    ann.loc[gone, "tense"] = None
    out = remove_property_per_fold(method, feats, words, ann, "tense", grids, folds, _identity,
                                   method_params={"max_iter": 2} if method == "inlp" else {})
    Z = np.concatenate([out[f"1/{s}"] for s in ("a", "b", "c")])
    if method == "residual":
        np.testing.assert_allclose(Z[gone], X[gone], atol=1e-5)
        assert not np.allclose(Z[6], X[6], atol=1e-3)
    assert out.summaries[1]["n_words_without_value"] == 3
    # the fit is the fit without those words: replacing their value changes nothing
    ann2 = ann.copy()
    ann2.loc[gone, "tense"] = "past"
    keep = folds[~folds["sample"].isin(gone)]
    ref = remove_property_per_fold(method, feats, words, ann2, "tense", grids, keep, _identity,
                                   method_params={"max_iter": 2} if method == "inlp" else {}, probe=False)
    Zr = np.concatenate([ref[f"1/{s}"] for s in ("a", "b", "c")])
    rows = np.setdiff1d(np.arange(len(X)), gone)
    np.testing.assert_allclose(Z[rows], Zr[rows], atol=1e-5)
