"""Thin adapters from catalog entries to brainalign.core (data_prep)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core import folds as cv
from ...core.atlas import apply_atlases
from ...core.features import extract_word_features, load_model
from ...core.metrics import loso_isc
from ...core.preprocess import EXCLUSION_COLUMNS, clean_responses
from ...core.stimuli import build_words_table, check_words_fit_grid, make_tr_grid
from ...core.synthetic import simulate_study, story_texts, time_words

log = logging.getLogger(__name__)


def simulate(synthetic: dict, study_params: dict):
    """Simulate the default study (planted ground truth); saved by the catalog in real formats.
    The ground truth is computed on the TRs that data_prep keeps (``study.trim_*``)."""
    rng = np.random.default_rng(synthetic.get("seed", 0))
    texts = story_texts(synthetic.get("stories"))
    words = {s: time_words(t, rng, max_words=synthetic.get("max_words_per_story")) for s, t in texts.items()}
    tok, model = load_model(synthetic["model"], synthetic.get("device", "cpu"))
    layer = int(synthetic["semantic_layer"])
    feats = {s: extract_word_features(w["word"].tolist(), tok, model, [layer],
                                      context_words=int(synthetic["context_words"]),
                                      progress=True, desc=f"simulate {s}")[layer]
             for s, w in words.items()}
    study = simulate_study(feats, words, n_subjects=int(synthetic["n_subjects"]),
                           tr=float(synthetic["tr"]), volume_shape=tuple(synthetic["volume_shape"]),
                           trim_start=int(study_params.get("trim_start", 0)),
                           trim_end=int(study_params.get("trim_end", 0)), seed=int(synthetic.get("seed", 0)))
    log.info("simulated %d subjects x %d stories, %d voxels", synthetic["n_subjects"], len(words),
             int(study.mask.sum()))
    return study


def read_stimuli(study, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Words table and TR-grid table of the study; checks that they agree on duration."""
    words_by_story, raw = study.words(), study.tr_grids()
    wanted = params.get("stories")
    if wanted not in (None, "all"):
        known = set(raw["story"])
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise ValueError(f"study.stories names {unknown}, which the {study.name} study at {study.root} "
                             f"does not have; it has {sorted(known)}")
        raw = raw.set_index("story").loc[list(wanted)].reset_index()
        words_by_story = {s: words_by_story[s] for s in wanted}
    no_words = sorted(set(raw["story"]) - set(words_by_story))
    if no_words:
        raise ValueError(f"{study.name} study at {study.root}: stories {no_words} have responses but no word timings")
    words = build_words_table({s: words_by_story[s] for s in raw["story"]}, params.get("sentence_pause", 0.5))
    grids = pd.DataFrame([make_tr_grid(r.story, r.n_trs_total, r.tr, r.t0, params.get("trim_start", 0),
                                       params.get("trim_end", 0)) for r in raw.itertuples()])
    check_words_fit_grid(words, grids, source=f"{study.name} study at {study.root}")
    log.info("%d stories, %d words, %d kept TRs", len(grids), len(words), int(grids["n_trs"].sum()))
    return words, grids


def read_ground_truth(study) -> pd.DataFrame:
    """The planted ground truth of a simulated study (empty table for real data)."""
    gt = study.ground_truth()
    return gt if gt is not None else pd.DataFrame(columns=["subject", "target", "expected_r"])


def make_folds(grids: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Outer cross-validation folds as a table (fold, sample, role)."""
    f = cv.make_folds(grids["n_trs"].tolist(), params.get("method", "auto"), params.get("n_folds"),
                      int(params.get("gap", 5)))
    return cv.folds_to_table(f)


def prepare_responses(study, grids: pd.DataFrame, params: dict, *, subject: str):
    """Read, check, trim and detrend one subject's responses.

    Returns
    -------
    responses : story -> float32 (n_trs, n_targets); targets : table (target, roi, network, ...);
    exclusions : table (subject, story, target, reason). A subject with no usable target is
    excluded as a whole (logged, empty responses).
    """
    data, targets, sources = study.responses(subject, stories=grids["story"].tolist())
    if params.get("atlases"):
        targets = apply_atlases(targets, params["atlases"], study.reference_image(subject))
    kept, keep, excl = clean_responses(data, grids, targets["target"].tolist(), subject,
                                       bool(params.get("detrend", True)), sources)
    if len(excl):
        n_bad = excl["target"].nunique()
        if not keep.any():
            log.warning("subject %s excluded: all %d targets unusable (%s)", subject, n_bad,
                        "; ".join(sorted(set(excl["reason"]))[:3]))
            excl = pd.concat([excl, pd.DataFrame([(subject, "*", "*", "subject excluded: no usable target")],
                                                 columns=EXCLUSION_COLUMNS)], ignore_index=True)
        else:
            log.warning("subject %s: %d of %d targets excluded (%s)", subject, n_bad, len(keep),
                        "; ".join(sorted(set(excl["reason"]))[:3]))
    return kept, targets[keep].reset_index(drop=True), excl


def noise_ceiling(grids: pd.DataFrame, *subject_data, subjects: list[str]) -> pd.DataFrame:
    """Leave-one-subject-out inter-subject correlation on the targets all subjects share
    (``method`` = ``loso_isc``; labelled as such in the table). ``subject_data`` alternates
    responses and targets of each subject, in the order of ``subjects``."""
    cols = ["subject", "target", "noise_ceiling", "method"]
    pairs = [(subject_data[i], subject_data[i + 1]) for i in range(0, len(subject_data), 2)]
    names = list(subjects)
    usable = [(n, r, t) for n, (r, t) in zip(names, pairs) if len(t)]
    if len(usable) < 2:
        log.warning("noise ceiling: fewer than 2 usable subjects, none computed")
        return pd.DataFrame(columns=cols)
    common = set.intersection(*(set(t["target"]) for _, _, t in usable))
    common = [t for t in usable[0][2]["target"] if t in common]
    stories = grids["story"].tolist()
    mats = []
    for _, resp, tgt in usable:
        pos = pd.Index(tgt["target"]).get_indexer(common)
        mats.append(np.concatenate([np.asarray(resp[s])[:, pos] for s in stories]))
    isc = loso_isc(mats)
    return pd.DataFrame({"subject": np.repeat([n for n, _, _ in usable], len(common)),
                         "target": common * len(usable), "noise_ceiling": isc.ravel(),
                         "method": "loso_isc"})[cols]
