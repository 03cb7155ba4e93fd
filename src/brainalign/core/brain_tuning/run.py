"""Brain-tuning a backbone once per outer fold of the encoding (:func:`tune_per_fold`), saved as a
per-fold model directory that the ``tuned`` condition kind reads.

Layout written (:class:`PerFoldModels`)::

    <dir>/brainalign.json        {"per_fold": true, "folds": [0, 1, ...], "method": "brain", ...}
    <dir>/fold_<k>/              a model directory (config.json, model.safetensors, tokenizer or
                                 feature-extractor files, brainalign.json with fitted_samples)

Fold ``k``'s model is trained on fold ``k``'s training samples only (validation included), so the
features it gives for fold ``k``'s test samples never come from a model that saw their responses
(the fold rule; checked again at extraction by :func:`check_per_fold_rule`).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .data import BrainTuningError, SampleIndex, permuted_responses, select_targets, split_validation
from .stimulus import STIMULI
from .train import TuningConfig, brain_tune

log = logging.getLogger(__name__)

#: the methods of brain-tuning: the real responses, or TR blocks shuffled within each story
METHODS = ("brain", "brain-permuted")


def runs(samples: np.ndarray) -> list[list[int]]:
    """Sorted ``samples`` as ``[[first, last], ...]`` runs of consecutive integers (compact JSON)."""
    s = np.unique(np.asarray(samples, np.int64))
    if s.size == 0:
        return []
    cut = np.flatnonzero(np.diff(s) != 1) + 1
    return [[int(p[0]), int(p[-1])] for p in np.split(s, cut)]


def from_runs(spans) -> np.ndarray:
    return np.concatenate([np.arange(a, b + 1) for a, b in spans]) if spans else np.zeros(0, np.int64)


def load_backbone(modality: str, model: str, device: str = "cpu", family: str | None = None):
    """(processor, backbone, family or None) for brain-tuning: a text model's tokenizer and model
    (:func:`brainalign.core.representations.text.load_model`) or a speech model's feature extractor
    and encoder (:func:`brainalign.core.representations.speech.load_speech_model`; feature encoder frozen)."""
    from ..representations.text import load_model, resolve_model

    if modality == "text":
        tok, m = load_model(resolve_model(model), device)
        return tok, m, None
    if modality == "speech":
        from ..representations.speech import SPEECH_FAMILIES, load_speech_model

        fe, m, fam = load_speech_model(resolve_model(model), device, family)
        return fe, m, SPEECH_FAMILIES[fam]
    raise BrainTuningError(f"brain_tuning: modality must be text or speech, got {modality!r}")


def save_backbone(folder: Path, modality: str, backbone, processor, base_model: str, info: dict) -> None:
    """Write a tuned backbone as a model directory (safetensors). A Whisper encoder is written
    inside the full ``WhisperModel`` of ``base_model`` (decoder unchanged), so the speech kind
    loads it as it loads any Whisper checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    if modality == "speech" and getattr(backbone.config, "model_type", "") == "whisper":
        from transformers import WhisperModel

        from ..representations.text import resolve_model

        full = WhisperModel.from_pretrained(resolve_model(base_model), use_safetensors=True)
        full.encoder.load_state_dict(backbone.state_dict())
        full.save_pretrained(folder, safe_serialization=True)
    else:
        backbone.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    (folder / "brainalign.json").write_text(json.dumps(info, indent=2, default=str))


class PerFoldModels:
    """A directory of per-fold models being written (``save_pretrained(folder)`` copies it), so a
    node can return it to a :class:`brainalign.io.ModelDirectoryDataset`."""

    def __init__(self, root: Path, info: dict):
        self.root, self.info = Path(root), dict(info)

    def save_pretrained(self, folder, **_):
        folder = Path(folder)
        for child in self.root.iterdir():
            (shutil.copytree if child.is_dir() else shutil.copy2)(child, folder / child.name)
        (folder / "brainalign.json").write_text(json.dumps(self.info, indent=2, default=str))

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def config_from_params(params: dict, device: str) -> TuningConfig:
    """:class:`TuningConfig` from the ``brain_tuning`` parameters."""
    lr = params.get("lr") or {}
    return TuningConfig(
        layer=params.get("layer"), delays=tuple(int(d) for d in params.get("delays", (1, 2, 3, 4))),
        epochs=int(params.get("epochs", 3)), lr_backbone=float(lr.get("backbone", 5e-5)),
        lr_head=float(lr.get("head", 1e-4)), weight_decay=float(params.get("weight_decay", 0.01)),
        warmup=float(params.get("warmup", 0.1)), chunk_trs=int(params.get("chunk_trs", 32)),
        batch_size=int(params.get("batch_size", 32)), patience=params.get("patience", 2),
        train_top_layers=params.get("train_top_layers"), seed=int(params.get("seed", 0)), device=device,
        bf16=bool(params.get("bf16", True)), gradient_checkpointing=bool(params.get("gradient_checkpointing", True)),
        objective=str(params.get("objective", "heads")), steps_per_epoch=int(params.get("steps_per_epoch", 4)))


def tune_per_fold(method: str, source: dict, params: dict, *, words: pd.DataFrame | None, grids: pd.DataFrame,
                  audio: dict | None, folds: pd.DataFrame, responses: dict, targets: dict, device: str = "cpu",
                  condition: str = "?", on_epoch=None) -> tuple[PerFoldModels, pd.DataFrame]:
    """Brain-tune the backbone of ``source`` once per outer fold.

    Parameters
    ----------
    method : ``brain`` or ``brain-permuted`` (:data:`METHODS`).
    source : the source condition's parameters: ``kind`` (text / speech), ``model``,
        ``context_words`` (text), ``window_s`` and ``family`` (speech).
    params : the ``brain_tuning`` parameters (docs/methods.md, "Brain-tuning").
    words, grids, audio : the study's words, TR grids and (speech) story audio.
    folds : the encoding's folds table (fold, sample, role).
    responses : subject -> story -> float32 (n_trs, n_targets), the subjects tuned jointly.
    targets : subject -> targets table.

    Returns
    -------
    models : :class:`PerFoldModels` (a temporary directory until saved).
    history : DataFrame condition, fold, epoch, train_loss, val_loss, val_r, seconds, best_epoch,
        n_fit, n_val, n_targets, trainable_backbone_params, total_backbone_params.
    """
    if method not in METHODS:
        raise BrainTuningError(f"brain_tuning: unknown method {method!r}; expected one of {METHODS}")
    kind = source.get("kind", "text")
    modality = "speech" if kind == "speech" else "text"
    if kind not in ("text", "speech"):
        raise BrainTuningError(f"brain_tuning.source must be a text or speech condition, got kind {kind!r}")
    excluded = sorted(s for s, t in targets.items() if len(t) == 0)
    if excluded:   # excluded in data_prep (no usable target): nothing to predict
        log.warning("brain_tuning %s: subjects %s have no usable targets (excluded in data_prep) and are not tuned on",
                    condition, excluded)
        responses = {s: r for s, r in responses.items() if s not in excluded}
        if not responses:
            raise BrainTuningError(f"brain_tuning: every tuned subject ({excluded}) was excluded in data_prep")
    index = SampleIndex.from_grids(grids)
    stories = list(index.stories)
    for sub, r in responses.items():
        missing = [s for s in stories if s not in r]
        if missing:
            raise BrainTuningError(f"brain_tuning: subject {sub} has no responses for stories {missing}")
        for s in stories:
            n = int(grids.loc[grids["story"] == s, "n_trs"].iloc[0])
            if len(r[s]) != n:
                raise BrainTuningError(f"brain_tuning: subject {sub}, story {s}: {len(r[s])} response rows, the TR "
                                       f"grid keeps {n}")
    if method == "brain-permuted":
        responses = permuted_responses(responses, stories, int(params.get("permute_block_len", 10)),
                                       int(params.get("seed", 0)) + 1)
    if modality == "speech" and audio is None:
        raise BrainTuningError("brain_tuning: a speech backbone needs stimulus_audio")
    config = config_from_params(params, device)
    processor, _, family = load_backbone(modality, source["model"], "cpu", source.get("family"))
    if modality == "text":
        stimulus = STIMULI["text"](processor, words, grids, int(source.get("context_words", 20)),
                                   params.get("word_align", "midpoint"), int(params.get("max_tokens", 512)))
    else:
        stimulus = STIMULI["speech"](processor, family, audio, grids, int(params.get("audio_sample_rate", 16000)),
                                     float(source.get("window_s", 16.0)))
    val_params = params.get("validation") or {}
    tgt = params.get("targets") or {}
    root = Path(tempfile.mkdtemp(prefix="brain_tuning_"))
    rows, fold_ids = [], sorted(int(f) for f in folds["fold"].unique())
    for f in fold_ids:
        train = np.sort(folds.loc[(folds["fold"] == f) & (folds["role"] == "train"), "sample"].to_numpy(np.int64))
        fit, val = split_validation(index, train, val_params.get("method", "auto"), int(val_params.get("n_stories", 1)),
                                    float(val_params.get("tail_share", 0.2)), int(val_params.get("gap", 5)), fold=f)
        columns = select_targets(targets, responses, index, train, tgt.get("rois"), tgt.get("min_ceiling"))
        _, backbone, _ = load_backbone(modality, source["model"], "cpu", source.get("family"))
        model, history, summary = brain_tune(
            backbone, stimulus, responses, columns, index, fit, val, config,
            on_epoch=(lambda e, entry, f=f: on_epoch(f, e, entry)) if on_epoch else None,
            desc=f"{condition} fold {f}")
        fitted_stories = sorted({stories[k] for k in index.story[train]})
        info = {"base_model": source["model"], "method": method, "modality": modality, "fold": f,
                "fitted_samples": runs(train), "fitted_on_stories": fitted_stories,
                "subjects": sorted(responses), "n_targets": {s: int(len(c)) for s, c in columns.items()},
                "layer": summary["layer"], "best_epoch": summary["best_epoch"],
                "trainable_fraction": summary["trainable_backbone_params"] / max(1, summary["total_backbone_params"]),
                "family": getattr(family, "name", None)}
        save_backbone(root / f"fold_{f}", modality, model.backbone.cpu(), processor, source["model"], info)
        for h in history:
            rows.append({"condition": condition, "fold": f, **h, "best_epoch": summary["best_epoch"],
                         "n_fit": summary["n_fit"], "n_val": summary["n_val"],
                         "n_targets": int(sum(len(c) for c in columns.values())),
                         "trainable_backbone_params": summary["trainable_backbone_params"],
                         "total_backbone_params": summary["total_backbone_params"]})
        del model, backbone
    top = {"per_fold": True, "folds": fold_ids, "base_model": source["model"], "method": method,
           "modality": modality, "subjects": sorted(responses), "family": getattr(family, "name", None),
           "trainable_fraction": rows[-1]["trainable_backbone_params"] / max(1, rows[-1]["total_backbone_params"])
           if rows else None}
    return PerFoldModels(root, top), pd.DataFrame(rows)


def check_per_fold_rule(name: str, fold_info: dict, fold: int, folds: pd.DataFrame) -> None:
    """Fold ``fold``'s model must not have been fitted on any test sample of fold ``fold`` of the
    current folds table (ConditionError-like ValueError naming the condition and the samples)."""
    fitted = from_runs(fold_info.get("fitted_samples") or [])
    test = folds.loc[(folds["fold"] == fold) & (folds["role"] == "test"), "sample"].to_numpy(np.int64)
    hit = np.intersect1d(fitted, test)
    if hit.size:
        raise BrainTuningError(
            f"condition {name!r}: the model of fold {fold} was fitted on {hit.size} samples that fold {fold} now "
            f"tests (first {hit[:5].tolist()}): the folds changed since brain_tuning ran; rerun brain_tuning")
