"""Thin adapters from catalog entries to brainalign.core.brain_tuning."""
from __future__ import annotations

import logging

import pandas as pd

log = logging.getLogger(__name__)


def brain_tune_cell(*data, condition: str, method: str, source_params: dict, subjects: list[str], speech: bool):
    """Brain-tune the source condition's backbone once per outer fold (core.brain_tuning.run).

    ``data``: the story audio (speech) or the words table, the TR grids, the folds table, the
    tuned subjects' responses (story -> float32 (n_trs, n_targets)) then their targets tables,
    the ``brain_tuning`` and ``embedding`` parameters.

    Returns
    -------
    models : a per-fold model directory for ``<condition>.tuned_model``.
    history : DataFrame, one row per fold and epoch (core.brain_tuning.run.tune_per_fold).
    """
    from ...core.brain_tuning.run import tune_per_fold
    from ...core.representations.text import resolve_device
    from ..task_tuning.nodes import _mlflow_epoch_logger

    stim, grids, folds, *rest = data
    params, embedding = rest[-2], rest[-1]
    n = len(subjects)
    responses = dict(zip(subjects, rest[:n]))
    targets = dict(zip(subjects, rest[n:2 * n]))
    device = resolve_device(params.get("device", embedding.get("device", "auto")))
    log_epoch = _mlflow_epoch_logger(f"brain_tuning.{condition}")
    models, history = tune_per_fold(
        method, source_params, {**params, "audio_sample_rate": embedding.get("audio_sample_rate", 16000),
                                "word_align": embedding.get("word_align", "midpoint")},
        words=None if speech else stim, grids=grids, audio=stim if speech else None, folds=folds,
        responses=responses, targets=targets, device=device, condition=condition,
        on_epoch=(lambda f, e, entry: log_epoch(e, {f"fold{f}.{k}": v for k, v in entry.items()}))
        if log_epoch else None)
    return models, history


def history_plot(history: pd.DataFrame):
    """Validation loss and r per epoch, one line per condition and fold (epoch 0: the untuned
    backbone with ridge heads)."""
    from ...core.plots import brain_tuning_history

    return brain_tuning_history(history)


def downstream_cell(*data, condition: str, source_params: dict) -> pd.DataFrame:
    """(c) Linear probes of sentence embeddings (``brain_tuning.downstream``: tasks, layer,
    max_examples, n_folds; core.brain_tuning.evaluate.downstream_table) from ``condition``'s model:
    the untuned source (no input) or a brain-tuned per-fold directory (every fold's model). A text
    backbone reads the tokens; a speech backbone hears each example read aloud by eSpeak NG
    (``downstream.voice``, ``downstream.words_per_minute``; core.brain_tuning.evaluate.speech_embedder)."""
    from ...core.brain_tuning.evaluate import DOWNSTREAM_COLUMNS, downstream_table, speech_embedder, text_embedder
    from ...core.representations.text import load_model, resolve_model
    from ...core.representations.tuned import load_tuned, read_info
    from ..task_tuning.nodes import nlu_root

    *model, params = data
    ds = params.get("downstream") or {}
    tasks = list(ds.get("tasks") or [])
    kind = source_params.get("kind", "text")
    if not tasks:
        return pd.DataFrame(columns=[*DOWNSTREAM_COLUMNS, "n_models", "modality"])
    layer = int(ds.get("layer", 6))
    path = getattr(model[0], "path", model[0]) if model else None
    dirs = [f"{path}/fold_{f}" for f in read_info(path)["folds"]] if model else [None]
    if kind == "speech":
        from ...core.representations.speech import SPEECH_FAMILIES, load_speech_model

        embedders = []
        for d in dirs:
            fe, m, fam = load_speech_model(d or resolve_model(source_params["model"]), "cpu",
                                           source_params.get("family"))
            n = SPEECH_FAMILIES[fam].n_layers(m)
            if not 0 <= layer <= n:
                raise ValueError(f"brain_tuning.downstream.layer {layer}: {condition}'s speech model has layers 0..{n}")
            embedders.append(speech_embedder(fe, m, SPEECH_FAMILIES[fam], layer, voice=str(ds.get("voice", "en-us")),
                                             words_per_minute=int(ds.get("words_per_minute", 160))))
    elif kind == "text":
        embedders = [text_embedder(*(load_tuned(d, resolve_model(source_params["model"])) if d else
                                     load_model(resolve_model(source_params["model"]), "cpu")), layer) for d in dirs]
    else:
        raise ValueError(f"brain_tuning.downstream: {condition} is a {kind!r} condition; probes need text or speech")
    return downstream_table(condition, embedders, tasks, nlu_root(ds), layer=layer,
                            max_examples=ds.get("max_examples"), n_folds=int(ds.get("n_folds", 5)),
                            seed=int(params.get("seed", 0)), modality=kind)


def data_efficiency_cell(responses: dict, targets: pd.DataFrame, folds: pd.DataFrame, grids: pd.DataFrame,
                         enc_params: dict, params: dict, *features: dict, subject: str, conditions: list[str],
                         layer: int) -> pd.DataFrame:
    """The data-efficiency curve of one subject left out of brain-tuning: encoding r per ROI for
    each of ``conditions`` (the untuned source, the brain conditions) at ``layer`` with the ridge
    fitted on ``brain_tuning.data_efficiency.fractions`` of each fold's training data."""
    from ...core.brain_tuning.evaluate import data_efficiency
    from ...core.encoding.folds import folds_from_table
    from ..encoding.nodes import ridge_settings

    from ...core.brain_tuning.evaluate import EFFICIENCY_COLUMNS

    if len(targets) == 0:
        log.warning("subject %s has no usable targets (excluded in data_prep): no data-efficiency curve", subject)
        return pd.DataFrame(columns=EFFICIENCY_COLUMNS)
    fr = [float(x) for x in (params.get("data_efficiency") or {}).get("fractions", [0.1, 0.25, 0.5, 1.0])]
    out = data_efficiency(dict(zip(conditions, features)), responses, targets, folds_from_table(folds), grids, fr,
                          ridge_settings(enc_params), subject, layer)
    log.info("%s data efficiency (layer %d): %s", subject, layer, "; ".join(
        f"{c} {f:g}: {g['mean_r'].mean():.3f}" for (c, f), g in out.groupby(["condition", "fraction"], sort=False)))
    return out


def brain_tuning_tables(scores: pd.DataFrame, efficiency: pd.DataFrame, downstream: pd.DataFrame,
                        group_params: dict, *, pairs: list[tuple[str, str]], impact: dict):
    """The brain-tuning report: (a) ``brain_tuning_gain.csv`` (paired tests of each brain condition
    against its source, per layer and ROI; ``pairs``: (condition, source)), (b)
    ``lowlevel_impact.csv``, and one figure with the data-efficiency and downstream tables."""
    from ...core.brain_tuning.evaluate import gain_table, lowlevel_impact_table
    from ...core.plots import brain_tuning_report

    gp = group_params or {}
    gain = gain_table(scores, pairs, n_perm=int(gp.get("n_perm", 10000)),
                      n_boot=int(gp.get("n_boot", 10000)), seed=int(gp.get("seed", 0)))
    imp = lowlevel_impact_table(scores, impact) if impact else pd.DataFrame()
    fig = brain_tuning_report(gain, imp, efficiency, downstream)
    return gain, imp, fig


def collect_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    """Concatenate per-cell tables (histories, downstream probes, data-efficiency curves; empty ones
    kept out)."""
    parts = [t for t in tables if len(t)]
    return pd.concat(parts, ignore_index=True) if parts else (tables[0] if tables else pd.DataFrame())


def no_left_out_subject(params: dict) -> pd.DataFrame:
    """An empty data-efficiency table: every subject was brain-tuned (``brain_tuning.subjects``
    null or all of them), so none is left out to measure it on."""
    from ...core.brain_tuning.evaluate import EFFICIENCY_COLUMNS

    log.info("brain_tuning: every subject was tuned; no data-efficiency curve (list brain_tuning.subjects "
             "to leave some out)")
    return pd.DataFrame(columns=EFFICIENCY_COLUMNS)
