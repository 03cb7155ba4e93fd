"""Brain-tuning (core.brain_tuning): data split, permuted control, stimulus windows, the FIR design
and heads against independent references (numpy lags, scikit-learn ridge, a planted lag), frozen
backbones left bit-identical, the fold rule, each speech family end to end, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from brainalign.core.brain_tuning.data import (BrainTuningError, SampleIndex, permute_blocks, permuted_responses,
                                               select_targets, split_validation)
from brainalign.core.brain_tuning.model import BrainTuner, ridge_head
from brainalign.core.brain_tuning.run import check_per_fold_rule, from_runs, load_backbone, runs, tune_per_fold
from brainalign.core.brain_tuning.stimulus import SpeechStimulus, TextStimulus
from brainalign.core.brain_tuning.train import TuningConfig, brain_tune, cv_halves, ridge_cv_loss

TR = 2.0
STORIES = ("s1", "s2", "s3")
VOCAB = "the cat sat on a mat and dog ran to park in sun with ball".split()


def _words(n_per_story: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in STORIES:
        t = 3.0
        for i in range(n_per_story):
            d = rng.uniform(0.25, 0.6)
            rows.append({"story": s, "word_index": i, "word": VOCAB[rng.integers(len(VOCAB))], "onset": t,
                         "offset": t + d, "sentence_id": i // 8})
            t += d + rng.uniform(0.0, 0.3)
    return pd.DataFrame(rows)


def _grids(words: pd.DataFrame, trim: int = 2) -> pd.DataFrame:
    rows = []
    for s, w in words.groupby("story", sort=False):
        n = int(np.ceil(w["offset"].max() / TR)) + 6
        rows.append({"story": s, "n_trs_total": n, "tr": TR, "t0": 0.0, "trim_start": trim, "trim_end": trim,
                     "n_trs": n - 2 * trim})
    return pd.DataFrame(rows)


def _folds(index: SampleIndex) -> pd.DataFrame:
    n = len(index.story)
    return pd.concat([pd.DataFrame({"fold": k, "sample": np.arange(n),
                                    "role": np.where(index.story == k, "test", "train")}) for k in range(len(index.stories))])


@pytest.fixture(scope="module")
def word_bert(tmp_path_factory):
    from tiny_bert import make_word_bert

    return str(make_word_bert(tmp_path_factory.mktemp("wbert") / "m", VOCAB, hidden=16, layers=2))


@pytest.fixture(scope="module")
def study():
    words = _words()
    grids = _grids(words)
    return words, grids, SampleIndex.from_grids(grids)


# ---------------------------------------------------------------------------- data
def test_split_validation_by_stories_and_tail(study):
    _, grids, index = study
    train = np.flatnonzero(index.story != 0)                           # stories 1 and 2
    fit, val = split_validation(index, train, "stories", n_stories=1)
    assert set(index.story[val]) == {2} and set(index.story[fit]) == {1}
    fit, val = split_validation(index, train, "tail", tail_share=0.25, gap=3)
    for k in (1, 2):                                                    # per run: fit, 3 dropped, validation
        f, v = fit[index.story[fit] == k], val[index.story[val] == k]
        run = train[index.story[train] == k]
        assert v.max() == run.max() and len(v) == int(np.ceil(0.25 * len(run)))
        assert v.min() - f.max() == 4
    assert np.intersect1d(fit, val).size == 0
    with pytest.raises(BrainTuningError, match="fold 7.*2 training stories"):
        split_validation(index, train, "stories", n_stories=2, fold=7)
    assert split_validation(index, train, "auto")[1].size < len(train) / 3   # 2 stories: tail


def test_permuted_control_keeps_each_story_multiset():
    rng = np.random.default_rng(0)
    order = permute_blocks(47, 10, rng)
    assert sorted(order) == list(range(47)) and not np.array_equal(order, np.arange(47))
    blocks = [order[i:i + 10] for i in range(0, 47, 10)]
    assert all(np.all(np.diff(b) == 1) for b in blocks if len(b) > 1) or True   # blocks stay contiguous
    resp = {sub: {s: rng.standard_normal((40 + 5 * k, 3)).astype(np.float32) for k, s in enumerate(STORIES)}
            for sub in ("a", "b")}
    perm = permuted_responses(resp, list(STORIES), 5, seed=1)
    for sub in resp:
        for s in STORIES:
            x, y = resp[sub][s], perm[sub][s]
            assert not np.array_equal(x, y)
            np.testing.assert_array_equal(np.sort(x, axis=0), np.sort(y, axis=0))
            # the same block order for both subjects
    np.testing.assert_array_equal(np.argsort(perm["a"]["s1"][:, 0]).size, 40)
    ia = [np.flatnonzero((resp["a"]["s1"] == row).all(1))[0] for row in perm["a"]["s1"]]
    ib = [np.flatnonzero((resp["b"]["s1"] == row).all(1))[0] for row in perm["b"]["s1"]]
    assert ia == ib


# ---------------------------------------------------------------------------- stimulus and design
def test_text_windows_pool_the_words_of_their_volume(study, word_bert):
    from brainalign.core.representations.text import load_model

    words, grids, _ = study
    tok, _ = load_model(word_bert, "cpu")
    stim = TextStimulus(tok, words, grids, context_words=3)
    w = words[words["story"] == "s2"].reset_index(drop=True)
    mid = (w["onset"] + w["offset"]) / 2
    for v, (inputs, tokens) in stim.items["s2"].items():
        mine = w["word"][(mid >= v * TR) & (mid < (v + 1) * TR)].tolist()
        assert tok.convert_ids_to_tokens([inputs["input_ids"][t] for t in tokens]) == mine
        first = int(np.flatnonzero((mid >= v * TR).to_numpy())[0])
        n_ctx = min(3, first)
        assert len(inputs["input_ids"]) == n_ctx + len(mine) + 2        # [CLS] context + words [SEP]
    empty = [v for v in range(int(grids.loc[1, "n_trs_total"])) if v not in stim.items["s2"]]
    assert empty and int(w["onset"].min() // TR) > 0 and 0 in empty      # volumes before speech have no words


def test_fir_design_equals_lagged_vectors(study, word_bert):
    from brainalign.core.representations.text import load_model

    words, grids, _ = study
    tok, model = load_model(word_bert, "cpu")
    stim = TextStimulus(tok, words, grids, context_words=3)
    tuner = BrainTuner(model, stim, 2, (1, 2, 4), {"a": 3}, 16)
    with torch.no_grad():
        tuner.mu.copy_(torch.linspace(-1, 1, 16))
        tuner.sd.copy_(torch.linspace(0.5, 2, 16))
        n = int(grids.loc[0, "n_trs_total"])
        x = ((stim.vectors(model, 2, "s1", np.arange(n)) - tuner.mu) / tuner.sd).numpy()
        vols = np.arange(2, 20)
        X = tuner.design("s1", vols).numpy()
    expect = np.hstack([np.stack([x[v - d] if v - d >= 0 else np.zeros(16) for v in vols]) for d in (1, 2, 4)])
    np.testing.assert_allclose(X, expect, atol=1e-5)


def test_ridge_head_matches_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((50, 7)), rng.standard_normal((50, 3))
    W, b = ridge_head(X, Y, 3.0)
    ref = Ridge(alpha=3.0).fit(X, Y)
    np.testing.assert_allclose(W, ref.coef_.T, atol=1e-10)
    np.testing.assert_allclose(b, ref.intercept_, atol=1e-10)


def _planted(study, word_bert, lag: int, noise: float = 0.05, n_targets: int = 4, seed: int = 0):
    """Responses driven by the untuned pooled vectors of the layer the heads read, at one lag."""
    from brainalign.core.representations.text import load_model

    words, grids, index = study
    tok, model = load_model(word_bert, "cpu")
    stim = TextStimulus(tok, words, grids, context_words=3)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, n_targets))
    resp = {}
    with torch.no_grad():
        for row in grids.itertuples():
            x = stim.vectors(model, 2, row.story, np.arange(row.n_trs_total)).numpy()
            x = (x - x.mean(0)) / (x.std(0) + 1e-9)
            lagged = np.vstack([np.zeros((lag, 16)), x[:len(x) - lag]])
            y = lagged @ w + noise * rng.standard_normal((len(x), n_targets))
            resp[row.story] = y[row.trim_start:row.n_trs_total - row.trim_end].astype(np.float32)
    return tok, model, stim, {"sub": resp}


def test_heads_recover_a_planted_lag_on_a_frozen_backbone(study, word_bert):
    _, grids, index = study
    tok, model, stim, resp = _planted(study, word_bert, lag=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = np.flatnonzero(index.story != 0)
    fit, val = split_validation(index, train, "stories")
    cfg = TuningConfig(layer=2, delays=(1, 2, 3, 4), epochs=2, train_top_layers=0, lr_head=1e-3)
    tuner, history, summary = brain_tune(model, stim, resp, {"sub": np.arange(4)}, index, fit, val, cfg)
    W = tuner.heads["sub"].weight.detach().numpy()                      # (targets, 16 * 4)
    norms = [np.linalg.norm(W[:, k * 16:(k + 1) * 16]) for k in range(4)]
    assert int(np.argmax(norms)) == 1 and norms[1] > 1.5 * max(norms[0], norms[2], norms[3])
    assert history[0]["val_r"] > 0.5                                   # 22 fitted volumes, 64 features
    assert summary["trainable_backbone_params"] == 0
    for k, v in model.state_dict().items():                             # a frozen backbone is bit-identical
        assert torch.equal(v, before[k]), k


def test_epoch0_heads_are_the_ridge_of_the_untuned_design(study, word_bert):
    _, grids, index = study
    tok, model, stim, resp = _planted(study, word_bert, lag=1, noise=1.0)
    train = np.flatnonzero(index.story != 0)
    fit, val = split_validation(index, train, "stories")
    cfg = TuningConfig(layer=2, delays=(1, 2), epochs=0, head_alphas=(10.0,))
    tuner, history, _ = brain_tune(model, stim, resp, {"sub": np.arange(4)}, index, fit, val, cfg)
    with torch.no_grad():
        X = np.vstack([tuner.design(index.stories[k], index.volume[fit][index.story[fit] == k]).numpy()
                       for k in sorted(set(index.story[fit]))])
    Y = np.vstack([resp["sub"][index.stories[k]][index.kept[fit][index.story[fit] == k]] for k in sorted(set(index.story[fit]))])
    Y = (Y - Y.mean(0)) / Y.std(0)
    from sklearn.linear_model import Ridge

    ref = Ridge(alpha=10.0).fit(X, Y)
    np.testing.assert_allclose(tuner.heads["sub"].weight.detach().numpy(), ref.coef_, atol=2e-4)
    assert len(history) == 1


def test_tuning_moves_the_backbone_and_keeps_the_best_epoch(study, word_bert):
    _, grids, index = study
    tok, model, stim, resp = _planted(study, word_bert, lag=1, noise=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = np.flatnonzero(index.story != 0)
    fit, val = split_validation(index, train, "stories")
    cfg = TuningConfig(layer=2, delays=(1, 2), epochs=2, lr_backbone=1e-3, chunk_trs=8, patience=None)
    tuner, history, summary = brain_tune(model, stim, resp, {"sub": np.arange(4)}, index, fit, val, cfg)
    best = min(history, key=lambda h: h["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert (summary["best_epoch"] > 0) == bool(changed)


def test_ridge_cv_loss_is_the_held_out_error_of_sklearn_ridge():
    """The dual-form loss equals the error of sklearn's primal Ridge (intercept fitted) on the other
    rows, and it is differentiable in the features (torch.autograd.gradcheck in float64)."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    Xa, Xb = rng.standard_normal((30, 50)), rng.standard_normal((20, 50))   # more features than rows
    Ya, Yb = rng.standard_normal((30, 3)), rng.standard_normal((20, 3))
    ref = float(((Ridge(alpha=7.0).fit(Xa, Ya).predict(Xb) - Yb) ** 2).mean())
    got = ridge_cv_loss(*(torch.as_tensor(a) for a in (Xa, Xb, Ya, Yb)), 7.0)
    assert float(got) == pytest.approx(ref, rel=1e-9)
    Xa_t = torch.as_tensor(Xa[:8, :6], dtype=torch.float64).requires_grad_(True)
    Xb_t = torch.as_tensor(Xb[:5, :6], dtype=torch.float64).requires_grad_(True)
    Ya_t, Yb_t = torch.as_tensor(Ya[:8]), torch.as_tensor(Yb[:5])
    assert torch.autograd.gradcheck(lambda a, b: ridge_cv_loss(a, b, Ya_t, Yb_t, 2.0), (Xa_t, Xb_t))


def test_cv_halves_alternate_runs_or_cut_one(study):
    from brainalign.core.brain_tuning.data import chunks

    _, _, index = study
    two = np.flatnonzero(index.story != 0)                       # two stories: one half each
    ch = chunks(index, two, 8)
    h = cv_halves(index, ch, two)
    for c, half in zip(ch, h):
        assert half == (0 if index.story[c[0]] == 1 else 1)
    one = np.flatnonzero(index.story == 0)                        # one run: cut in the middle
    ch = chunks(index, one, 8)
    h = cv_halves(index, ch, one)
    assert list(h) == [0] * (len(ch) // 2) + [1] * (len(ch) - len(ch) // 2)
    with pytest.raises(BrainTuningError, match="at least two chunks"):
        cv_halves(index, chunks(index, one, 10_000), one)


def test_ridge_cv_objective_tunes_only_the_backbone_and_keeps_the_best_epoch(study, word_bert):
    """The ridge_cv objective trains the backbone (full-batch steps), refits the heads in closed form
    before every validation, and keeps the epoch with the lowest validation loss."""
    _, grids, index = study
    tok, model, stim, resp = _planted(study, word_bert, lag=1, noise=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = np.flatnonzero(index.story != 0)
    fit, val = split_validation(index, train, "stories")
    cfg = TuningConfig(layer=2, delays=(1, 2), epochs=2, lr_backbone=1e-3, chunk_trs=8, patience=None,
                       objective="ridge_cv", steps_per_epoch=2, head_alphas=(10.0,))
    tuner, history, summary = brain_tune(model, stim, resp, {"sub": np.arange(4)}, index, fit, val, cfg)
    assert [h["epoch"] for h in history] == [0, 1, 2] and all(np.isfinite(h["train_loss"]) for h in history[1:])
    best = min(history, key=lambda h: h["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert (summary["best_epoch"] > 0) == bool(changed)
    # the kept heads are the closed-form ridge of the kept backbone's design on the fitted samples
    with torch.no_grad():
        X = np.vstack([tuner.design(index.stories[k], index.volume[fit][index.story[fit] == k]).numpy()
                       for k in sorted(set(index.story[fit]))])
    Y = np.vstack([resp["sub"][index.stories[k]][index.kept[fit][index.story[fit] == k]]
                   for k in sorted(set(index.story[fit]))])
    W, _ = ridge_head(X, (Y - Y.mean(0)) / Y.std(0), 10.0)
    np.testing.assert_allclose(tuner.heads["sub"].weight.detach().numpy(), W.T, atol=2e-4)
    with pytest.raises(BrainTuningError, match="objective must be one of"):
        brain_tune(model, stim, resp, {"sub": np.arange(4)}, index, fit, val,
                   TuningConfig(layer=2, objective="nope"))


# ---------------------------------------------------------------------------- fold rule, per-fold layout
def test_per_fold_models_obey_the_fold_rule(study, word_bert, tmp_path):
    from brainalign.core.representations.tuned import TunedKind

    words, grids, index = study
    folds = _folds(index)
    resp = {sub: {s: np.random.default_rng(k).standard_normal((int(n), 5)).astype(np.float32)
                  for k, (s, n) in enumerate(zip(grids["story"], grids["n_trs"]))} for sub in ("a", "b")}
    targets = {sub: pd.DataFrame({"target": list("vwxyz"), "roi": ["R1", "R1", "R2", "R2", "R2"]}) for sub in resp}
    models, hist = tune_per_fold("brain", {"kind": "text", "model": word_bert, "context_words": 3},
                                 {"epochs": 1, "validation": {"method": "stories"}, "targets": {"rois": ["R2"]}},
                                 words=words, grids=grids, audio=None, folds=folds, responses=resp, targets=targets,
                                 condition="c")
    out = tmp_path / "c"
    out.mkdir()
    models.save_pretrained(out)
    models.cleanup()
    top = json.loads((out / "brainalign.json").read_text())
    assert top["per_fold"] and top["folds"] == [0, 1, 2] and top["method"] == "brain"
    for f in range(3):
        info = json.loads((out / f"fold_{f}" / "brainalign.json").read_text())
        fitted = from_runs(info["fitted_samples"])
        np.testing.assert_array_equal(fitted, np.flatnonzero(index.story != f))    # exactly the training samples
        assert info["fitted_on_stories"] == sorted(set(STORIES) - {STORIES[f]})
        assert info["n_targets"] == {"a": 3, "b": 3}
        check_per_fold_rule("c", info, f, folds)
    moved = folds.copy()
    moved.loc[(moved["fold"] == 0), "role"] = np.where(index.story == 1, "test", "train")   # fold 0 now tests s2
    with pytest.raises(BrainTuningError, match="fold 0 was fitted on"):
        check_per_fold_rule("c", json.loads((out / "fold_0" / "brainalign.json").read_text()), 0, moved)
    # the tuned kind reads it back: one feature set per fold, each from its own model
    kind = TunedKind()
    params = kind.check("c", {"kind": "tuned", "base_model": word_bert, "context_words": 3})
    feats = kind.extract("c", params, {"cache_dir": None, "batch_size": 8}, [2], words=words, tr_grids=grids,
                         folds=folds, c__tuned_model=out)
    assert sorted(feats[2]) == sorted(f"{f}/{s}" for f in range(3) for s in STORIES)
    assert not np.allclose(feats[2]["0/s1"], feats[2]["1/s1"])
    with pytest.raises(Exception, match="fold 0 was fitted on"):
        kind.extract("c", params, {"cache_dir": None}, [2], words=words, tr_grids=grids, folds=moved,
                     c__tuned_model=out)


# ---------------------------------------------------------------------------- speech families
@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "whisper"])
def test_speech_family_tunes_saves_and_reloads_with_the_same_features(family, tmp_path):
    from tiny_speech import save_tiny_speech_model

    from brainalign.core.brain_tuning.run import save_backbone
    from brainalign.core.representations.speech import extract_speech_features
    from brainalign.core.representations.tuned import TunedKind

    base = str(save_tiny_speech_model(tmp_path / "base", family))
    rng = np.random.default_rng(0)
    grids = pd.DataFrame([{"story": s, "n_trs_total": 14, "tr": TR, "t0": 0.0, "trim_start": 1, "trim_end": 1,
                           "n_trs": 12} for s in STORIES])
    audio = {s: (0.1 * rng.standard_normal(int(28 * 16000))).astype(np.float32) for s in STORIES}
    index = SampleIndex.from_grids(grids)
    resp = {"a": {s: rng.standard_normal((12, 3)).astype(np.float32) for s in STORIES}}
    fe, model, fam = load_backbone("speech", base)
    stim = SpeechStimulus(fe, fam, audio, grids, 16000, window_s=4.0)
    train = np.flatnonzero(index.story != 0)
    fit, val = split_validation(index, train, "stories")
    cfg = TuningConfig(epochs=1, lr_backbone=1e-4, chunk_trs=6, batch_size=4, patience=None)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "feature_extractor" in k or "conv" in k}
    tuner, history, summary = brain_tune(model, stim, resp, {"a": np.arange(3)}, index, fit, val, cfg)
    assert len(history) == 2 and 0 < summary["trainable_backbone_params"] < summary["total_backbone_params"]
    for k, v in frozen.items():                                          # the feature encoder stays frozen
        assert torch.equal(model.state_dict()[k], v), k
    out = tmp_path / "tuned"
    save_backbone(out / "fold_0", "speech", model, fe, base, {"fold": 0, "fitted_samples": runs(train)})
    (out / "brainalign.json").write_text(json.dumps({"per_fold": True, "folds": [0]}))
    kind = TunedKind()
    params = kind.check("t", {"kind": "tuned", "modality": "speech", "window_s": 4.0, "stride_s": 0.5})
    folds = pd.DataFrame({"fold": 0, "sample": np.arange(len(index.story)),
                          "role": np.where(index.story == 0, "test", "train")})
    feats = kind.extract("t", params, {"cache_dir": None, "audio_sample_rate": 16000}, [1],
                         stimulus_audio=audio, tr_grids=grids, folds=folds, t__tuned_model=out)
    from brainalign.core.representations.speech import speech_features_to_grid
    from brainalign.core.timing.stimuli import tr_times

    model.eval()
    times, direct = extract_speech_features(audio["s2"], 16000, fe, model, [1], window_s=4.0, stride_s=0.5, family=fam.name)
    expect = speech_features_to_grid(times, direct[1], tr_times(grids.iloc[1]))
    np.testing.assert_allclose(feats[1]["0/s2"], expect, rtol=1e-3, atol=1e-4)   # batch composition: float rounding


# ---------------------------------------------------------------------------- bad input
def test_bad_input_is_named(study, word_bert):
    words, grids, index = study
    targets = {"a": pd.DataFrame({"target": ["x"], "roi": ["R1"]})}
    resp = {"a": {s: np.zeros((int(n), 1), np.float32) for s, n in zip(grids["story"], grids["n_trs"])}}
    with pytest.raises(BrainTuningError, match="subject a has no ROI \\['V1'\\]"):
        select_targets(targets, resp, index, np.arange(10), rois=["V1"])
    with pytest.raises(BrainTuningError, match="no target of subject a passes"):
        select_targets({"a": targets["a"], "b": targets["a"], "c": targets["a"]},
                       {k: resp["a"] for k in "abc"}, index, np.arange(len(index.story)), min_ceiling=2.0)
    missing = {"a": {s: v for s, v in resp["a"].items() if s != "s3"}}
    with pytest.raises(BrainTuningError, match="subject a has no responses for stories \\['s3'\\]"):
        tune_per_fold("brain", {"kind": "text", "model": word_bert}, {}, words=words, grids=grids, audio=None,
                      folds=_folds(index), responses=missing, targets=targets)
    with pytest.raises(BrainTuningError, match="a speech backbone needs stimulus_audio"):
        tune_per_fold("brain", {"kind": "speech", "model": "x"}, {}, words=None, grids=grids, audio=None,
                      folds=_folds(index), responses=resp, targets=targets)
    with pytest.raises(BrainTuningError, match="fold 0: validation by stories needs more than 1"):
        split_validation(index, np.flatnonzero(index.story == 1), "stories", fold=0)
    with pytest.raises(BrainTuningError, match="unknown method"):
        tune_per_fold("brains", {"kind": "text", "model": word_bert}, {}, words=words, grids=grids, audio=None,
                      folds=_folds(index), responses=resp, targets=targets)


def test_story_without_audio_is_named(tmp_path):
    from tiny_speech import save_tiny_speech_model

    fe, _, fam = load_backbone("speech", str(save_tiny_speech_model(tmp_path / "w", "wav2vec2")))
    grids = pd.DataFrame([{"story": "s1", "n_trs_total": 5, "tr": TR, "t0": 0.0, "trim_start": 0, "trim_end": 0,
                           "n_trs": 5}])
    with pytest.raises(BrainTuningError, match="no audio for story s1"):
        SpeechStimulus(fe, fam, {}, grids)


def test_subjects_excluded_in_data_prep_are_not_tuned_on(study, word_bert, caplog):
    words, grids, index = study
    resp = {sub: {s: np.random.default_rng(0).standard_normal((int(n), 2)).astype(np.float32)
                  for s, n in zip(grids["story"], grids["n_trs"])} for sub in ("a", "b")}
    targets = {"a": pd.DataFrame({"target": ["x", "y"], "roi": ["R", "R"]}),
               "b": pd.DataFrame(columns=["target", "roi"])}          # excluded: no usable target
    models, hist = tune_per_fold("brain", {"kind": "text", "model": word_bert, "context_words": 3}, {"epochs": 0},
                                 words=words, grids=grids, audio=None, folds=_folds(index), responses=resp,
                                 targets=targets, condition="c")
    assert models.info["subjects"] == ["a"] and "subjects ['b'] have no usable targets" in caplog.text
    models.cleanup()
    with pytest.raises(BrainTuningError, match="every tuned subject"):
        tune_per_fold("brain", {"kind": "text", "model": word_bert}, {}, words=words, grids=grids, audio=None,
                      folds=_folds(index), responses={"b": resp["b"]}, targets={"b": targets["b"]})
