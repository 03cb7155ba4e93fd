"""The evaluations of brain-tuned models (docs/methods.md, "Brain-tuning"):

(a) alignment: encoding r of each brain condition against its untuned source, per layer and ROI,
    with the paired sign-flip test across subjects and BH-FDR (:func:`gain_table`); the ROI
    summary's ``r_norm`` gives it normalised by a ceiling valid for the scored data;
(b) low-level impact: the percentage drop of r when the low-level features are regressed out of
    the model features (per fold, derived ``<condition>-minus-lowlevel``) (:func:`lowlevel_impact_table`);
(c) downstream: linear probes of sentence embeddings on NLU tasks, tuned against untuned
    (:func:`downstream_probe`);
and, for subjects left out of tuning, the data-efficiency curve: encoding r as a function of the
share of their training data the ridge sees (:func:`data_efficiency`).
"""
from __future__ import annotations

import functools
import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

EFFICIENCY_COLUMNS = ["subject", "condition", "layer", "fraction", "n_train", "roi", "mean_r", "n_targets"]
IMPACT_COLUMNS = ["condition", "layer", "roi", "n_subjects", "r", "r_minus_lowlevel", "drop", "drop_pct"]
DOWNSTREAM_COLUMNS = ["condition", "task", "layer", "n_examples", "n_folds", "accuracy", "sem", "majority"]


def leading_share(train: np.ndarray, story_of_sample: np.ndarray, fraction: float) -> np.ndarray:
    """The first ``ceil(fraction * n)`` samples of every run of consecutive training samples of one
    story (the data a participant would have after ``fraction`` of each training recording).

    Parameters
    ----------
    train : sorted int array of training samples; story_of_sample : story label per sample.
    fraction : in (0, 1].

    Returns
    -------
    sorted int array, a subset of ``train``.
    """
    from .data import consecutive_runs

    if not 0 < float(fraction) <= 1:
        raise ValueError(f"data_efficiency fractions must be in (0, 1], got {fraction!r}")
    runs = consecutive_runs(train, story_of_sample)
    if not runs:
        return np.zeros(0, np.int64)
    return np.concatenate([seg[:int(np.ceil(float(fraction) * len(seg)))] for seg in runs])


def data_efficiency(features: dict, responses: dict, targets: pd.DataFrame, folds: list, grids: pd.DataFrame,
                    fractions, ridge: dict, subject: str, layer: int) -> pd.DataFrame:
    """Encoding of one subject left out of brain-tuning, with the ridge fitted on a leading share of
    each fold's training data.

    Parameters
    ----------
    features : condition -> its TR features (story or ``"<fold>/<story>"`` -> (n_trs, n_features)).
    responses : story -> (n_trs, n_targets); targets : the subject's targets table.
    folds : the outer (train, test) pairs; test samples are always all scored.
    fractions : shares in (0, 1].
    ridge : :func:`brainalign.core.encoding.ridge.cross_validated_encoding` settings.

    Returns
    -------
    DataFrame :data:`EFFICIENCY_COLUMNS`, one row per condition x fraction x ROI (mean r over the
    ROI's targets; ``n_train``: mean training samples per fold).
    """
    from ..encoding.ridge import StackedRows, cross_validated_encoding
    from ..representations.derived import fold_features, is_per_fold

    stories = grids["story"].tolist()
    story_of_sample = np.repeat(np.arange(len(stories)), grids["n_trs"].to_numpy())
    Y = StackedRows([responses[s] for s in stories], stories)
    rows = []
    for cond, feats in features.items():
        per_fold = [np.concatenate(fold_features(feats, f, stories)) for f in range(len(folds))] \
            if is_per_fold(feats) else None
        X = per_fold[0] if per_fold else np.concatenate([np.asarray(feats[s]) for s in stories])
        for frac in fractions:
            sub = [(leading_share(tr, story_of_sample, frac), te) for tr, te in folds]
            res = cross_validated_encoding(X, Y, sub, story_of_sample, fold_features=per_fold, **ridge)
            r = pd.Series(res.r, index=targets["roi"].to_numpy())
            for roi, vals in r.groupby(level=0, sort=True):
                rows.append({"subject": subject, "condition": cond, "layer": int(layer), "fraction": float(frac),
                             "n_train": float(np.mean([len(tr) for tr, _ in sub])), "roi": roi,
                             "mean_r": float(vals.mean()), "n_targets": int(len(vals))})
    return pd.DataFrame(rows, columns=EFFICIENCY_COLUMNS)


def gain_table(scores: pd.DataFrame, pairs: list[tuple[str, str]], n_perm: int = 10000,
               n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    """(a) Each brain condition against its untuned source at every layer both are scored at, per
    ROI: paired sign-flip test across subjects (:func:`brainalign.core.stats.group.group_tests`,
    BH q over the whole table).

    Parameters
    ----------
    scores : the score table; pairs : (condition, source) pairs.

    Returns
    -------
    DataFrame: condition, source, layer, roi, n_subjects, r_source, r_condition, gain (mean over
    subjects of the ROI-mean r difference), p, q, ci_low, ci_high, p_wilcoxon. Empty with fewer
    than 3 subjects.
    """
    from ..stats.group import MIN_SUBJECTS, group_tests

    cols = ["condition", "source", "layer", "roi", "n_subjects", "r_source", "r_condition", "gain", "p", "q",
            "ci_low", "ci_high", "p_wilcoxon"]
    if scores["subject"].nunique() < MIN_SUBJECTS:
        return pd.DataFrame(columns=cols)
    contrasts, keys = [], []
    for c, source in pairs:
        src_layers = set(scores.loc[scores["condition"] == source, "layer"].astype(int))
        for k in sorted(set(scores.loc[scores["condition"] == c, "layer"].astype(int)) & src_layers):
            contrasts.append(("paired", (c, k), (source, k)))
            keys.append((c, source, k))
    if not contrasts:
        return pd.DataFrame(columns=cols)
    t = group_tests(scores, contrasts, n_perm=n_perm, n_boot=n_boot, seed=seed)
    means = (scores.groupby(["subject", "condition", "layer", "roi"])["r"].mean()
             .groupby(["condition", "layer", "roi"]).mean())
    rows = []
    for (c, source, k), contrast in zip(keys, t["contrast"].drop_duplicates()):
        for r in t[t["contrast"] == contrast].itertuples():
            rows.append({"condition": c, "source": source, "layer": k, "roi": r.roi, "n_subjects": r.n_subjects,
                         "r_source": float(means.get((source, k, r.roi), np.nan)),
                         "r_condition": float(means.get((c, k, r.roi), np.nan)), "gain": r.mean, "p": r.p,
                         "q": r.q, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_wilcoxon": r.p_wilcoxon})
    return pd.DataFrame(rows, columns=cols)


def lowlevel_impact_table(scores: pd.DataFrame, pairs: dict) -> pd.DataFrame:
    """(b) The drop in r when the low-level features are regressed out.

    Parameters
    ----------
    scores : the score table; pairs : condition -> its ``-minus-lowlevel`` condition.

    Returns
    -------
    DataFrame :data:`IMPACT_COLUMNS`: per condition, layer and ROI the mean over subjects of the
    ROI-mean r with and without the low-level features, ``drop = r - r_minus_lowlevel`` and
    ``drop_pct = 100 * drop / r`` (NaN where r <= 0: a share of nothing).
    """
    subj = scores.groupby(["subject", "condition", "layer", "roi"])["r"].mean().rename("r").reset_index()
    rows = []
    for cond, minus in pairs.items():
        a = subj[subj["condition"] == cond]
        b = subj[subj["condition"] == minus]
        m = a.merge(b, on=["subject", "layer", "roi"], suffixes=("", "_minus"))
        for (layer, roi), g in m.groupby(["layer", "roi"], sort=True):
            r, rm = float(g["r"].mean()), float(g["r_minus"].mean())
            rows.append({"condition": cond, "layer": int(layer), "roi": roi, "n_subjects": int(len(g)), "r": r,
                         "r_minus_lowlevel": rm, "drop": r - rm, "drop_pct": 100 * (r - rm) / r if r > 0 else np.nan})
    return pd.DataFrame(rows, columns=IMPACT_COLUMNS)


def task_examples(task) -> tuple[list[str], list[str] | None, np.ndarray]:
    """(texts, text pairs or None, labels) of every labelled example of a sentence or pair task
    (:class:`brainalign.core.tasks.readers.TaskData`; all splits pooled: the probe cross-validates)."""
    if task.type not in ("sentence", "pair"):
        raise ValueError(f"downstream probe: task {task.name} is a {task.type} task; probes take sentence or pair "
                         f"tasks (e.g. sst2, emotion, rte, mrpc, trec)")
    rows = [r for split in ("train", "dev") for r in task.splits.get(split, [])]
    pairs = [r["text_pair"] for r in rows] if task.type == "pair" else None
    return [r["text"] for r in rows], pairs, np.asarray([r["label"] for r in rows])


def sentence_embeddings(tokenizer, model, sentences: list[str], layer: int, batch_size: int = 32,
                        max_length: int = 128, pairs: list[str] | None = None) -> np.ndarray:
    """Mean hidden state at ``layer`` over each sentence's tokens (padding excluded; a pair is
    encoded as the tokenizer's sentence pair), float32 (n_sentences, hidden_size)."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for b0 in range(0, len(sentences), int(batch_size)):
            extra = (pairs[b0:b0 + int(batch_size)],) if pairs is not None else ()
            enc = tokenizer(sentences[b0:b0 + int(batch_size)], *extra, padding=True, truncation=True,
                            max_length=int(max_length), return_tensors="pt").to(device)
            h = model(**enc, output_hidden_states=True).hidden_states[int(layer)].float()
            m = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((h * m).sum(1) / m.sum(1).clamp(min=1)).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def downstream_probe(X: np.ndarray, labels, n_folds: int = 5, seed: int = 0) -> dict:
    """(c) Stratified ``n_folds``-fold accuracy of a logistic-regression probe (standardised
    features, C chosen by inner 3-fold CV on the training folds) of ``labels`` from ``X``; the
    majority-class accuracy of the training folds applied to the test folds beside it.

    Returns
    -------
    dict accuracy (mean over folds), sem, majority, n_examples, n_folds.
    """
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError("downstream probe: the labels have one class only")
    if counts.min() < int(n_folds):
        raise ValueError(f"downstream probe: class {classes[counts.argmin()]!r} has {counts.min()} examples, fewer "
                         f"than the {n_folds} folds")
    acc, maj = [], []
    for tr, te in StratifiedKFold(int(n_folds), shuffle=True, random_state=int(seed)).split(X, y):
        clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[1e-3, 1e-2, 1e-1, 1, 10], cv=3, max_iter=2000))
        clf.fit(X[tr], y[tr])
        acc.append(float((clf.predict(X[te]) == y[te]).mean()))
        vals, cnt = np.unique(y[tr], return_counts=True)
        maj.append(float((y[te] == vals[cnt.argmax()]).mean()))
    acc = np.asarray(acc)
    return {"accuracy": float(acc.mean()), "sem": float(acc.std(ddof=1) / np.sqrt(len(acc))),
            "majority": float(np.mean(maj)), "n_examples": int(len(y)), "n_folds": int(n_folds)}


def spoken_sentences(texts: list[str], voice: str = "en-us", words_per_minute: int = 160,
                     lead_silence_s: float = 0.5) -> tuple[np.ndarray, int, np.ndarray]:
    """Read ``texts`` aloud with eSpeak NG (offline; :func:`brainalign.core.synthetic.speech.synthesize_story`)
    in one synthesis, so each sentence has exact word timings: a sentence that does not end in
    ``.``, ``!`` or ``?`` gets a full stop on its last token (a pause before the next sentence; the
    token count is unchanged).

    Returns
    -------
    waveform : float32 (n_samples,), mono.
    sample_rate : int (eSpeak's, 22050 Hz).
    spans : int64 (n_texts, 2), each sentence's [first sample, end sample) from its first word's
        onset to its last word's offset.
    """
    from ..synthetic.speech import synthesize_story

    counts, parts = [], []
    for i, t in enumerate(texts):
        toks = str(t).split()
        if not toks:
            raise ValueError(f"spoken_sentences: text {i} is empty")
        if toks[-1][-1] not in ".!?":
            toks[-1] = toks[-1] + "."
        counts.append(len(toks))
        parts.append(" ".join(toks))
    story = synthesize_story(" ".join(parts), voice=voice, words_per_minute=int(words_per_minute),
                             lead_silence_s=float(lead_silence_s))
    words = story.words
    if len(words) != sum(counts):
        raise RuntimeError(f"spoken_sentences: eSpeak timed {len(words)} tokens, the texts have {sum(counts)}")
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    last = np.cumsum(counts) - 1
    sr = int(story.sample_rate)
    spans = np.stack([np.round(words["onset"].to_numpy()[first] * sr),
                      np.round(words["offset"].to_numpy()[last] * sr)], axis=1).astype(np.int64)
    return story.waveform, sr, spans


def utterance_embeddings(feature_extractor, model, family, waveform: np.ndarray, sample_rate: int,
                         spans: np.ndarray, layer: int) -> np.ndarray:
    """Mean hidden state at ``layer`` over the frames of each utterance of a speech model, each
    utterance (``spans``: [start, end) samples of ``waveform`` at ``sample_rate``) read on its own
    (one forward pass each, no padding; a Whisper input is padded to 30 s by its extractor and only
    the frames inside the utterance are pooled), float32 (n_utterances, hidden_size).

    Parameters
    ----------
    feature_extractor, model, family : :func:`brainalign.core.representations.speech.load_speech_model`
        and its :data:`~brainalign.core.representations.speech.SPEECH_FAMILIES` entry.
    waveform : float (n_samples,), mono, at ``sample_rate``.
    spans : int (n_utterances, 2) in samples of ``sample_rate``.
    """
    import torch

    from ..representations.speech import resample_audio

    sr = int(feature_extractor.sampling_rate)
    x = np.asarray(waveform, np.float32)
    if int(sample_rate) != sr:
        x = resample_audio(x, int(sample_rate), sr).astype(np.float32)
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i, (a, b) in enumerate(np.asarray(spans, np.int64)):
            a, b = int(round(a * sr / int(sample_rate))), int(round(b * sr / int(sample_rate)))
            seg = x[max(a, 0):min(b, len(x))]
            if len(seg) < 400:
                raise ValueError(f"utterance {i} is {len(seg)} samples long, shorter than one frame (400 at {sr} Hz)")
            last = int(family.last_frame(model, feature_extractor, len(seg)))
            h = model(**family.inputs(feature_extractor, [seg], sr, device), output_hidden_states=True)
            out.append(h.hidden_states[int(layer)][0, :last + 1].float().mean(0).cpu().numpy())
    return np.stack(out).astype(np.float32)


def text_embedder(tokenizer, model, layer: int):
    """``(texts, pairs) -> (n, hidden)`` of a text model (:func:`sentence_embeddings`)."""
    return lambda texts, pairs: sentence_embeddings(tokenizer, model, texts, layer, pairs=pairs)


@functools.lru_cache(maxsize=2)
def _spoken(items: tuple, voice: str, words_per_minute: int):
    """:func:`spoken_sentences` of ``items``, kept for the next call: the untuned source and every
    fold's model of each brain condition hear the same examples (about 50 min of speech for 400
    SST-2 sentences, a minute or more of eSpeak per synthesis)."""
    return spoken_sentences(list(items), voice=voice, words_per_minute=words_per_minute)


def speech_embedder(feature_extractor, model, family, layer: int, voice: str = "en-us", words_per_minute: int = 160):
    """``(texts, pairs) -> (n, hidden)`` of a speech model: each example read aloud by eSpeak NG
    (:func:`spoken_sentences`, synthesised once for consecutive calls with the same examples; a
    pair is read as its two texts in a row) and pooled over its frames (:func:`utterance_embeddings`)."""
    def embed(texts, pairs):
        items = texts if pairs is None else [f"{a} {b}" for a, b in zip(texts, pairs)]
        wav, sr, spans = _spoken(tuple(items), voice, int(words_per_minute))
        return utterance_embeddings(feature_extractor, model, family, wav, sr, spans, layer)
    return embed


def downstream_table(condition: str, embedders: list, tasks: list[str], root, layer: int, max_examples=None,
                     n_folds: int = 5, seed: int = 0, modality: str = "text") -> pd.DataFrame:
    """(c) for one condition: per task (:func:`brainalign.core.tasks.readers.load_task` from
    ``root``), :func:`downstream_probe` of the embeddings of each of ``embedders`` (``(texts,
    pairs) -> (n, hidden)``, :func:`text_embedder` or :func:`speech_embedder`: one untuned model,
    or a brain-tuned model per fold), averaged over the models.

    Returns
    -------
    DataFrame :data:`DOWNSTREAM_COLUMNS` + ``n_models`` and ``modality`` (text: the tokens; speech:
    the examples read aloud), one row per task.
    """
    from ..tasks.readers import load_task

    rows = []
    for task in tasks:
        texts, pairs, labels = task_examples(load_task(task, root, max_examples=max_examples, seed=seed))
        res = [downstream_probe(embed(texts, pairs), labels, n_folds, seed) for embed in embedders]
        rows.append({"condition": condition, "task": task, "layer": int(layer), "n_examples": res[0]["n_examples"],
                     "n_folds": res[0]["n_folds"], "accuracy": float(np.mean([r["accuracy"] for r in res])),
                     "sem": float(np.mean([r["sem"] for r in res])), "majority": res[0]["majority"],
                     "n_models": len(res), "modality": modality})
        log.info("downstream %s %s layer %d (%s): accuracy %.3f (majority %.3f, %d model(s))", condition, task, layer,
                 modality, rows[-1]["accuracy"], rows[-1]["majority"], len(res))
    return pd.DataFrame(rows, columns=[*DOWNSTREAM_COLUMNS, "n_models", "modality"])
