"""Thin adapters from catalog entries to brainalign.core (data_prep)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core.encoding import folds as cv
from ...core.brain.atlas import apply_atlases
from ...core.representations.text import extract_word_features, load_model
from ...core.encoding.metrics import intersubject_ceiling, loso_isc, repeat_noise_ceiling
from ...core.brain.preprocess import EXCLUSION_COLUMNS, clean_responses, detrend_method, prepare_repeats
from ...core.encoding.ridge import StackedRows
from ...core.timing.stimuli import build_words_table, check_words_fit_grid, make_tr_grid
from ...core.timing.validate import check_word_coverage
from ...core.synthetic.study import simulate_study, story_texts, time_words

log = logging.getLogger(__name__)


def simulate(synthetic: dict, study_params: dict):
    """Simulate the default study (planted ground truth); saved by the catalog in real formats.
    The ground truth is computed on the TRs that data_prep keeps (``study.trim_*``).

    With ``synthetic.audio`` (default true) each story (its first ``max_words_per_story`` tokens)
    is read aloud by eSpeak NG (``voice``, ``words_per_minute``, ``lead_silence_s``: defaults
    en-us, 160, 6 s), its exact word timings replace :func:`time_words`, and the sound power
    becomes a planted low-level signal; the audio is written as ``stimuli/<story>.wav``.
    ``noise_ar``, ``drift_sd`` and ``drift_periods`` set the noise model (AR(1) noise, slow
    drift; see :mod:`brainalign.core.synthetic.study`). ``planted_property`` plants the PROP
    region; ``nonlinear_layer`` (null: none) plants NONLIN, a nonlinear function of that layer's
    word features (SNR range ``nonlinear_snr``), extracted in the same forward passes as
    ``semantic_layer``."""
    from ...core.synthetic.speech import synthesize_story

    rng = np.random.default_rng(synthetic.get("seed", 0))
    texts = story_texts(synthetic.get("stories"))
    max_words = synthetic.get("max_words_per_story")
    audio = {}
    if synthetic.get("audio", True):
        spoken = {s: synthesize_story(t, voice=str(synthetic.get("voice", "en-us")),
                                      words_per_minute=int(synthetic.get("words_per_minute", 160)),
                                      lead_silence_s=float(synthetic.get("lead_silence_s", 6.0)),
                                      max_words=None if max_words is None else int(max_words))
                  for s, t in texts.items()}
        words = {s: sp.words for s, sp in spoken.items()}
        audio = {s: (sp.waveform, sp.sample_rate) for s, sp in spoken.items()}
        log.info("synthesised %d stories with eSpeak NG (%s): %s", len(spoken),
                 next(iter(spoken.values())).meta["voice"],
                 ", ".join(f"{s} {sp.duration:.0f} s" for s, sp in spoken.items()))
    else:
        words = {s: time_words(t, rng, max_words=max_words) for s, t in texts.items()}
    tok, model = load_model(synthetic["model"], synthetic.get("device", "cpu"))
    layer = int(synthetic["semantic_layer"])
    nl_layer = synthetic.get("nonlinear_layer")
    nl_layer = None if nl_layer is None else int(nl_layer)
    layers = [layer] if nl_layer in (None, layer) else [layer, nl_layer]
    # one forward pass per window gives every layer asked for
    by_story = {s: extract_word_features(w["word"].tolist(), tok, model, layers,
                                         context_words=int(synthetic["context_words"]),
                                         progress=True, desc=f"simulate {s}")
                for s, w in words.items()}
    feats = {s: f[layer] for s, f in by_story.items()}
    # noise model (core/synthetic/study.py): AR(1) noise and slow drift; absent keys: white noise
    noise = {k: synthetic[k] for k in ("noise_ar", "drift_sd", "drift_periods") if synthetic.get(k) is not None}
    if nl_layer is not None:   # the brain-tuning study's positive control: NONLIN, not linear in the features
        noise.update(nonlinear_features={s: f[nl_layer] for s, f in by_story.items()}, nonlinear_layer=nl_layer,
                     nonlinear_snr=tuple(float(x) for x in synthetic.get("nonlinear_snr", (0.5, 2.0))))
    planted = synthetic.get("planted_property")
    if planted:   # the removal study's positive control: a PROP region responding to a word property
        noise.update(property_values=planted_property_values(words, str(planted),
                                                             float(study_params.get("sentence_pause", 0.5))),
                     property_name=str(planted),
                     property_snr=tuple(float(x) for x in synthetic.get("property_snr", (0.3, 1.5))))
    study = simulate_study(feats, words, n_subjects=int(synthetic["n_subjects"]),
                           tr=float(synthetic["tr"]), volume_shape=tuple(synthetic["volume_shape"]),
                           trim_start=int(study_params.get("trim_start", 0)),
                           trim_end=int(study_params.get("trim_end", 0)), seed=int(synthetic.get("seed", 0)),
                           audio=audio, **noise)
    log.info("simulated %d subjects x %d stories, %d voxels", synthetic["n_subjects"], len(words),
             int(study.mask.sum()))
    return study


def planted_property_values(words: dict, prop: str, sentence_pause: float = 0.5) -> dict:
    """story -> float array (n_words,): a text-only property of each word, computed by the
    annotator that the removal study uses on the words table data_prep will build (same sentence
    ids), so the planted and the removed property are the same numbers."""
    from ...core.removal.annotators import ANNOTATORS, AnnotationResources, annotate

    spec = ANNOTATORS.get(prop)
    if spec is None or spec.kind != "numeric" or spec.needs:
        ok = sorted(n for n, a in ANNOTATORS.items() if a.kind == "numeric" and not a.needs)
        raise ValueError(f"synthetic.planted_property {prop!r}: plant a numeric property computed from text alone; "
                         f"one of {ok}")
    def with_pauses(w: pd.DataFrame) -> pd.DataFrame:   # as the study reader gives them (pause_before)
        if "pause_before" in w.columns:
            return w
        gap = np.r_[0.0, np.clip(w["onset"].to_numpy()[1:] - w["offset"].to_numpy()[:-1], 0, None)]
        return w.assign(pause_before=gap)

    table = build_words_table({s: with_pauses(w) for s, w in words.items()}, sentence_pause)
    ann = annotate(table, [prop], AnnotationResources(dataset="simulated"))
    return {s: ann.loc[table["story"] == s, prop].to_numpy(float) for s in words}


def annotate_words(words: pd.DataFrame, removal: dict, dataset: str) -> pd.DataFrame:
    """The ``annotations`` table (story, word_index, one column per ``removal.properties``) from
    the words table (core.removal.annotators). Tags for tag-based properties come from a tagger
    trained on the Penn Treebank sample (``removal.treebank``), trees from ``removal.trees``; a
    property the data cannot give is an error that says what is missing."""
    from ...core.removal.annotators import ANNOTATORS, AnnotationResources, annotate

    props = list(removal.get("properties") or [])
    needs = {n for p in props if p in ANNOTATORS for n in ANNOTATORS[p].needs}
    resources = AnnotationResources(dataset=dataset)
    if "tags" in needs or "trees" in needs:
        from ...core.removal.tagger import load_tagger

        resources.tagger = load_tagger(treebank_path(removal.get("treebank")),
                                       cache_dir=removal.get("cache_dir"), seed=int(removal.get("seed", 0)))
    if removal.get("trees"):
        from ...core.removal.trees import read_lpp_trees, trees_for_words

        spec = removal["trees"]
        if not isinstance(spec, dict) or spec.get("format", "bracketed") not in ("bracketed", "lpp") or "path" not in spec:
            raise ValueError(f"removal.trees: expected {{format: bracketed, path: <file with one bracketed tree per "
                             f"line, one per sentence in story and sentence order>}}, got {spec!r}")
        resources.trees = trees_for_words(read_lpp_trees(spec["path"]), words, source=str(spec["path"]))
    out = annotate(words, props, resources)
    log.info("annotated %d words with %s", len(out), ", ".join(props))
    return out


def treebank_path(path: str | None) -> str:
    """``removal.treebank``, else $BRAINALIGN_NLU_DIR/nltk_data/treebank.zip, else
    ../shared/data/nlu/nltk_data/treebank.zip; an error naming them when none exists."""
    import os
    from pathlib import Path

    tried = [Path(path)] if path else []
    if os.environ.get("BRAINALIGN_NLU_DIR"):
        tried.append(Path(os.environ["BRAINALIGN_NLU_DIR"]) / "nltk_data" / "treebank.zip")
    tried.append(Path("..") / "shared" / "data" / "nlu" / "nltk_data" / "treebank.zip")
    for p in tried:
        if p.exists():
            return str(p)
    raise FileNotFoundError(f"the part-of-speech tagger is trained on NLTK's Penn Treebank sample, not found at "
                            f"{[str(p) for p in tried]}; set removal.treebank to treebank.zip (with internet: "
                            f"python -m nltk.downloader treebank, then ~/nltk_data/corpora/treebank.zip)")


def read_stimuli(study, params: dict, *after) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Words table and TR-grid table of the study; checks that they agree on duration.
    ``after``: the download report, when there is one (only orders this node after it)."""
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
    words = build_words_table({s: words_by_story[s] for s in raw["story"]}, params.get("sentence_pause", 0.5),
                              sort=bool(params.get("sort_words", False)))
    grids = pd.DataFrame([make_tr_grid(r.story, r.n_trs_total, r.tr, r.t0, params.get("trim_start", 0),
                                       params.get("trim_end", 0)) for r in raw.itertuples()])
    check_words_fit_grid(words, grids, source=f"{study.name} study at {study.root}",
                         tolerance=params.get("word_end_tolerance"))
    check_word_coverage(words, grids, float(params.get("min_word_coverage", 0.3)),
                        source=f"{study.name} study at {study.root}")
    log.info("%d stories, %d words, %d kept TRs", len(grids), len(words), int(grids["n_trs"].sum()))
    return words, grids


def read_ground_truth(study, *after) -> pd.DataFrame:
    """The planted ground truth of a simulated study (empty table for real data). ``after``: the
    download report, when there is one (order only)."""
    gt = study.ground_truth()
    return gt if gt is not None else pd.DataFrame(columns=["subject", "target", "expected_r"])


def download_study(params: dict) -> dict:
    """Fetch the study (``params``: ``study`` parameters: reader, root, options) from its public
    source when the reader's ``check()`` fails (:func:`brainalign.io.download.ensure_study`;
    needs internet). Present in data_prep only when ``study.download`` is true; the nodes that
    read ``raw_study`` take its report as an input, so Kedro runs it first.

    Returns
    -------
    report : dict (study, root, status ``present`` or ``fetched``, source, include), saved as
    ``study_download``.
    """
    from ...io.download import ensure_study

    report = ensure_study(params["reader"], params["root"], params.get("options") or {})
    log.info("study %s at %s: %s", report["study"], report["root"], report["status"])
    return report


def reference_image(study, *after):
    """The 3D voxel grid (mask) that the voxel targets' ``i, j, k`` index, as a NIfTI image, so
    the analysis stage never reads the raw study. Data without voxels (ROI time courses,
    surfaces) give a 1x1x1 zero image flagged in its header
    (:func:`brainalign.core.brain.brainmaps.no_grid_image`). ``after``: the download report,
    when there is one (order only)."""
    from ...core.brain.brainmaps import grid_image, no_grid_image

    img = study.reference_image()
    return no_grid_image(getattr(study, "name", "?")) if img is None else grid_image(img)


def averaged_stories(study) -> list[str]:
    """Stories whose released responses are the mean over repeated presentations (the reader's
    ``averaged_stories()``; none by default)."""
    get = getattr(study, "averaged_stories", None)
    return list(get()) if get is not None else []


def make_folds(grids: pd.DataFrame, params: dict, study=None, *after) -> pd.DataFrame:
    """Outer cross-validation folds as a table (fold, sample, role).

    ``params``: ``method`` (auto, leave_stories_out, held_out_stories, contiguous_blocks),
    ``n_folds``, ``gap``, ``test_stories`` (held_out_stories), ``train_only_stories``
    (leave_stories_out). A story that the reader releases as a mean over repeats
    (:func:`averaged_stories`) is never tested in the same folds as single presentations: the
    two have different noise levels, so one mean r over both would have no valid ceiling."""
    stories = grids["story"].astype(str).tolist()
    n_trs = grids["n_trs"].tolist()
    f = cv.make_folds(n_trs, params.get("method", "auto"), params.get("n_folds"), int(params.get("gap", 5)),
                      stories=stories, test_stories=params.get("test_stories"),
                      train_only_stories=params.get("train_only_stories"))
    averaged = [s for s in averaged_stories(study) if s in stories] if study is not None else []
    if averaged:
        tested = cv.tested_stories(f, n_trs, stories)
        mean_tested = [s for s in tested if s in averaged]
        single_tested = [s for s in tested if s not in averaged]
        if mean_tested and single_tested:
            raise ValueError(
                f"cv: the folds test {mean_tested}, released by the {getattr(study, 'name', '?')} reader as the "
                f"mean over repeated presentations, together with {len(single_tested)} single-presentation "
                f"stories ({single_tested[:4]}{' ...' if len(single_tested) > 4 else ''}); one mean r over both "
                f"mixes two noise levels. Use cv.method: held_out_stories with test_stories: {mean_tested} "
                f"(train on the others, the dataset's reference split), or keep leave_stories_out with "
                f"train_only_stories: {mean_tested}, or drop the story from study.stories.")
    return cv.folds_to_table(f)


def prepare_responses(study, grids: pd.DataFrame, params: dict, *after, subject: str):
    """Read, check, trim and detrend one subject's responses (``after``: the download report,
    when there is one; it only orders this node after the download).

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
                                       params.get("detrend", True), sources,
                                       float(params.get("highpass_cutoff", 128.0)))
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
    by_reader = study.dropped_targets(subject) if hasattr(study, "dropped_targets") else []
    if by_reader:  # targets the reader left out before the checks (e.g. not in every file)
        log.warning("subject %s: %d targets left out by the %s reader (%s)", subject, len(by_reader),
                    getattr(study, "name", "?"), by_reader[0][2])
        excl = pd.concat([pd.DataFrame([(subject, *row) for row in by_reader], columns=EXCLUSION_COLUMNS),
                          excl], ignore_index=True)
    return kept, targets[keep].reset_index(drop=True), excl


def _prepare_repeats(reps: np.ndarray, study, grids: pd.DataFrame, params: dict, subject: str) -> np.ndarray:
    """Repeats (n_repeats, n_trs, n_targets) trimmed and detrended as the responses are: the
    trims of the reader's ``test_story`` row of the TR grid, when it has as many rows."""
    row = grids.set_index("story").loc[study.test_story] if getattr(study, "test_story", None) in set(
        grids["story"]) else None
    tr = float(row["tr"]) if row is not None else float(getattr(study, "tr", grids["tr"].iloc[0]))
    trims = (0, 0)
    if row is not None and reps.shape[1] == int(row["n_trs_total"]):
        trims = (int(row["trim_start"]), int(row["trim_end"]))
    elif row is not None:
        log.warning("noise ceiling of subject %s: the repeats have %d rows but the TR grid of %s has %d; "
                    "used untrimmed", subject, reps.shape[1], study.test_story, int(row["n_trs_total"]))
    return prepare_repeats(reps, detrend_method(params.get("detrend", True)), tr, *trims,
                           highpass_cutoff=float(params.get("highpass_cutoff", 128.0)))


NOISE_CEILING_COLUMNS = ["subject", "target", "noise_ceiling", "method", "isc_loso"]


def noise_ceiling(study, grids: pd.DataFrame, folds: pd.DataFrame, params: dict, *subject_data,
                  subjects: list[str]) -> pd.DataFrame:
    """Noise ceiling per subject and target, valid for the data the folds score.

    Columns: subject, target, noise_ceiling, method, isc_loso. ``method`` says which ceiling:

    * ``repeats_mean`` / ``repeats_single``: the subject has repeated presentations of a story
      (``study.repeats(subject)``, array (n_repeats, n_trs, n_targets) over the reader's
      targets); the ceiling of the N-repeat mean when every tested story is one the reader
      releases as such a mean (``study.averaged_stories()``, e.g. LeBel's test story), else the
      ceiling of a single presentation
      (:func:`~brainalign.core.encoding.metrics.repeat_noise_ceiling`). Each repeat gets the
      responses' trimming (when the reader's ``test_story`` is in the TR grid with as many rows)
      and detrending (``params['detrend']``).
    * ``intersubject``: no repeats, targets shared across subjects, >= 3 usable subjects: the
      single-subject ceiling from the signal power shared across subjects
      (:func:`~brainalign.core.encoding.metrics.intersubject_ceiling`) over the TRs of the tested
      stories.
    * ``none`` (noise_ceiling NaN): no valid ceiling (2 subjects; or subject-space targets
      without repeats, which get no row at all; both logged).

    ``isc_loso`` is the leave-one-subject-out inter-subject correlation over the same TRs, under
    its own name: a lower bound of the single-subject ceiling, not a ceiling (NaN where not
    computed). ``subject_data`` alternates responses and targets of each subject, in the order of
    ``subjects``."""
    pairs = [(subject_data[i], subject_data[i + 1]) for i in range(0, len(subject_data), 2)]
    names = list(subjects)
    usable = [(n, r, t) for n, (r, t) in zip(names, pairs) if len(t)]
    stories = grids["story"].astype(str).tolist()
    tested = cv.tested_stories(cv.folds_from_table(folds), grids["n_trs"].tolist(), stories)
    averaged = set(averaged_stories(study))
    scope = "mean" if tested and all(s in averaged for s in tested) else "single"
    parts, done = [], set()
    get_repeats = getattr(study, "repeats", None)
    for name, _, tgt in usable:
        reps = get_repeats(name) if get_repeats is not None else None
        if reps is None:
            continue
        _, all_targets, _ = study.responses(name, stories=stories)
        if reps.shape[-1] != len(all_targets):
            raise ValueError(f"subject {name}: repeats have {reps.shape[-1]} targets but the responses "
                             f"{len(all_targets)}")
        pos = pd.Index(all_targets["target"]).get_indexer(tgt["target"])
        if (pos < 0).any():
            raise ValueError(f"subject {name}: targets {tgt['target'][pos < 0].tolist()[:5]} are not "
                             f"among the reader's targets; the responses and the repeats disagree")
        reps = _prepare_repeats(np.asarray(reps)[:, :, pos], study, grids, params, name)
        finite = np.isfinite(reps).all(axis=(0, 1))
        if not finite.all():
            log.warning("noise ceiling of subject %s: %d targets have non-finite repeats and get no "
                        "ceiling", name, int((~finite).sum()))
        cc = repeat_noise_ceiling(reps[:, :, finite], scope=scope)
        parts.append(pd.DataFrame({"subject": name, "target": tgt["target"].to_numpy()[finite],
                                   "noise_ceiling": cc, "method": f"repeats_{scope}", "isc_loso": np.nan}))
        log.info("noise ceiling of subject %s from %d repeats: ceiling of the %s (tested stories: %s)", name,
                 reps.shape[0], "mean over the repeats" if scope == "mean" else "single presentation", tested)
        done.add(name)
    rest = [n for n, _, _ in usable if n not in done]
    if rest and not getattr(study, "targets_shared_across_subjects", True):
        log.warning("noise ceiling: subjects %s have no repeats, and the targets of the %s study are "
                    "each subject's own (no inter-subject ceiling); none computed for them", rest,
                    getattr(study, "name", "?"))
    elif rest and len(usable) < 2:
        log.warning("noise ceiling: fewer than 2 usable subjects, none computed for %s", rest)
    elif rest:
        common = set.intersection(*(set(t["target"]) for _, _, t in usable))
        common = [t for t in usable[0][2]["target"] if t in common]
        mats = []
        for _, resp, tgt in usable:
            pos = pd.Index(tgt["target"]).get_indexer(common)
            mats.append(StackedRows([resp[s] for s in tested], tested, columns=pos))  # lazy
        isc = loso_isc(mats)
        if len(usable) >= 3:
            ceiling, method = intersubject_ceiling(mats), "intersubject"
        else:
            log.warning("noise ceiling: %d usable subjects; the inter-subject ceiling needs 3, so only the "
                        "leave-one-subject-out ISC (isc_loso) is reported for %s", len(usable), rest)
            ceiling, method = np.full_like(isc, np.nan), "none"
        for k, (n, _, _) in enumerate(usable):
            if n in rest:
                parts.append(pd.DataFrame({"subject": n, "target": common, "noise_ceiling": ceiling[k],
                                           "method": method, "isc_loso": isc[k]}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("noise_ceiling", "isc_loso") else object)
                             for c in NOISE_CEILING_COLUMNS})
    return pd.concat(parts, ignore_index=True)[NOISE_CEILING_COLUMNS]


def read_audio(study, words: pd.DataFrame, grids: pd.DataFrame, params: dict) -> dict:
    """The audio of every story, mono, resampled to ``params['audio_sample_rate']`` (16 kHz by
    default) and placed on the TR-grid clock (sample k at k / rate s; the reader's
    ``audio_start(story)``, default 0, is where the audio starts on that clock). Checks that the
    audio covers every word of the story.

    Returns
    -------
    story -> float32 array (n_samples,)
    """
    from ...core.timing.audio import audio_on_grid_clock, check_audio_covers_words

    rate = int(params.get("audio_sample_rate", 16000))
    out = {}
    for story in grids["story"]:
        waveform, sr = study.audio(story)
        start = float(getattr(study, "audio_start", lambda s: 0.0)(story))
        wav = audio_on_grid_clock(waveform, int(sr), rate, start)
        check_audio_covers_words(len(wav) / rate, words[words["story"] == story], story,
                                 source=f"{study.name} study at {study.root}")
        out[story] = wav
        log.info("audio of story %s: %.1f s at %d Hz (from %d Hz)", story, len(wav) / rate, rate, int(sr))
    return out


def audio_plot(audio: dict, words: pd.DataFrame, params: dict):
    """The first story's waveform with its word onsets (``audio_plot.png``)."""
    from ...core import plots

    story = next(iter(audio))
    return plots.audio_words(np.asarray(audio[story]), int(params.get("audio_sample_rate", 16000)),
                             words[words["story"] == story], story)


def read_phones(study, grids: pd.DataFrame) -> pd.DataFrame:
    """The phone tier of every story (for the low-level phoneme rate): a table story, phone,
    onset, offset (s, the words' clock). A reader without phones is an error naming it."""
    get = getattr(study, "phones", None)
    if get is None:
        raise ValueError(f"a condition asks for phoneme_rate, but the {study.name} reader has no phone tier "
                         f"(study at {study.root})")
    phones = get()
    parts = []
    for story in grids["story"]:
        if story not in phones:
            raise ValueError(f"{study.name} study at {study.root}: no phones for story {story}")
        ph = phones[story]
        parts.append(pd.DataFrame({"story": story, "phone": ph["phone"].astype(str).to_numpy(),
                                   "onset": ph["onset"].to_numpy(float), "offset": ph["offset"].to_numpy(float)}))
    return pd.concat(parts, ignore_index=True)


def read_predictors(study, grids: pd.DataFrame, *, names: list[str]) -> pd.DataFrame:
    """Predictors that the dataset ships on its TR grid (Alice ``rate``, ``sndpwr``): a table story,
    tr_index (0 .. n_trs_total - 1), one column per name."""
    get = getattr(study, "predictors", None)
    if get is None:
        raise ValueError(f"a condition asks for predictors {names}, but the {study.name} reader ships none "
                         f"(study at {study.root})")
    parts = []
    for row in grids.itertuples():
        p = get(row.story, list(names)).reset_index(drop=True)
        if len(p) != int(row.n_trs_total):
            raise ValueError(f"{study.name} study at {study.root}: predictors of story {row.story} have {len(p)} "
                             f"rows, its TR grid {int(row.n_trs_total)}")
        parts.append(p.assign(story=row.story, tr_index=np.arange(len(p)))[["story", "tr_index", *names]])
    return pd.concat(parts, ignore_index=True)
