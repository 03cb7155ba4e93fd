"""``lowlevel``: stimulus features without a language model, on the TR grid (level ``tr``).

``features`` (any subset, in this column order):

``word_rate``          words per second: the number of words whose time (``word_align``: midpoint
                       or onset) falls in ``[t_i - TR/2, t_i + TR/2)`` around volume time ``t_i``,
                       divided by the TR.
``phoneme_rate``       phones per second, counted the same way from the ``phones`` table that
                       data_prep reads from the reader's phone tier (``phones()``; LeBel TextGrids
                       have one); an error naming the dataset where there is none.
``sound_power``        mean power of the story audio in the same interval, in dB
                       (:func:`~brainalign.core.representations.lowlevel_audio.sound_power`).
``spectral_envelope``  ``n_bands`` log band energies of the audio in the same interval
                       (:func:`~brainalign.core.representations.lowlevel_audio.spectral_envelope`).
``predictors``         columns that a dataset ships already on its TR grid (``predictors: [names]``;
                       Alice: ``rate``, ``sndpwr``), the ``stimulus_predictors`` table that data_prep
                       reads with the reader's ``predictors(story, names)``.

One layer (0) holds all columns. The features then take the project's response model (FIR delays
by default); predictors that a dataset ships already convolved with an HRF are best scored with
``response_model: none`` (a condition parameter), as the Alice env does.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..timing.stimuli import tr_times, word_times
from .base import ConditionError, RepresentationKind

log = logging.getLogger(__name__)

FEATURES = ("word_rate", "phoneme_rate", "sound_power", "spectral_envelope", "predictors")
AUDIO_FEATURES = ("sound_power", "spectral_envelope")


def event_rate(times: np.ndarray, grid) -> np.ndarray:
    """Events per second around each volume of a story: the count of ``times`` in
    ``[t_i - TR/2, t_i + TR/2)`` divided by the TR.

    Parameters
    ----------
    times : float array (n_events,), seconds on the TR-grid clock.
    grid : a TR-grid row (``t0``, ``tr``, ``n_trs_total``).

    Returns
    -------
    float32 array (n_trs_total,)
    """
    tr, n = float(grid["tr"]), int(grid["n_trs_total"])
    pos = np.floor((np.asarray(times, np.float64) - float(grid["t0"])) / tr + 0.5).astype(np.int64)
    pos = pos[(pos >= 0) & (pos < n)]
    return (np.bincount(pos, minlength=n) / tr).astype(np.float32)


def lowlevel_story(features: list[str], grid, words: pd.DataFrame | None = None, align: str = "midpoint",
                   phones: pd.DataFrame | None = None, audio: np.ndarray | None = None,
                   sample_rate: int | None = None, predictors: pd.DataFrame | None = None,
                   n_bands: int = 8) -> tuple[np.ndarray, list[str]]:
    """The low-level features of one story on its full TR grid.

    Returns
    -------
    values : float32 array (n_trs_total, n_columns); names : list of column names.
    """
    from .lowlevel_audio import sound_power, spectral_envelope

    times = tr_times(grid)
    tr = float(grid["tr"])
    cols, names = [], []
    for f in features:
        if f == "word_rate":
            cols.append(event_rate(word_times(words, align), grid)[:, None])
            names.append("word_rate")
        elif f == "phoneme_rate":
            cols.append(event_rate(((phones["onset"] + phones["offset"]) / 2).to_numpy(float), grid)[:, None])
            names.append("phoneme_rate")
        elif f == "sound_power":
            cols.append(np.asarray(sound_power(audio, sample_rate, times, window_s=tr), np.float64)[:, None])
            names.append("sound_power")
        elif f == "spectral_envelope":
            env = np.asarray(spectral_envelope(audio, sample_rate, times, n_bands=n_bands, window_s=tr))
            cols.append(env)
            names += [f"spectral_band_{b}" for b in range(env.shape[1])]
        elif f == "predictors":
            cols.append(predictors.to_numpy(np.float64))
            names += [str(c) for c in predictors.columns]
    return np.concatenate(cols, axis=1).astype(np.float32), names


class LowlevelKind(RepresentationKind):
    """``lowlevel``: ``{kind: lowlevel, features: [word_rate, sound_power, ...], predictors: [...],
    n_bands: 8}`` (module docstring)."""

    name = "lowlevel"
    level = "tr"
    keys = ("features", "predictors", "n_bands")
    overrides = ("response_model", "delays", "word_align")

    def check(self, name: str, params: dict) -> dict:
        params = super().check(name, params)
        feats = params.setdefault("features", ["word_rate"])
        if isinstance(feats, str):
            feats = params["features"] = [feats]
        bad = [f for f in feats if f not in FEATURES]
        if bad or not feats:
            raise ConditionError(f"condition {name!r}: unknown low-level features {bad or feats}; choose from {FEATURES}")
        if "predictors" in feats and not params.get("predictors"):
            raise ConditionError(f"condition {name!r}: 'predictors' needs a list of predictor names (predictors: [...])")
        if params.get("layers") not in (None, [0], (0,)):
            raise ConditionError(f"condition {name!r}: a low-level condition has one layer, 0")
        return params

    def layers(self, name: str, params: dict, default) -> tuple[int, ...]:
        return (0,)

    def needs_audio(self, params: dict) -> bool:
        return any(f in AUDIO_FEATURES for f in params["features"])

    def inputs(self, name: str, params: dict) -> list[str]:
        out = ["words", "tr_grids"]
        if self.needs_audio(params):
            out.append("stimulus_audio")
        if "phoneme_rate" in params["features"]:
            out.append("phones")
        if "predictors" in params["features"]:
            out.append("stimulus_predictors")
        return out

    def extract(self, name: str, params: dict, embedding: dict, layers: list[int], words=None, tr_grids=None,
                stimulus_audio=None, phones=None, stimulus_predictors=None, **data) -> dict[int, dict]:
        feats = params["features"]
        align = embedding.get("word_align", "midpoint")
        sample_rate = int(embedding.get("audio_sample_rate", 16000))
        out: dict[str, np.ndarray] = {}
        names: list[str] = []
        for grid in tr_grids.to_dict("records"):
            story = grid["story"]
            w = words[words["story"] == story].sort_values("word_index")
            preds = ph = audio = None
            if "predictors" in feats:
                rows = stimulus_predictors[stimulus_predictors["story"] == story].sort_values("tr_index")
                missing = [c for c in params["predictors"] if c not in rows.columns]
                if missing:
                    raise ConditionError(f"condition {name!r}: predictors {missing} are not in stimulus_predictors "
                                         f"(columns: {[c for c in rows.columns if c not in ('story', 'tr_index')]})")
                if len(rows) != int(grid["n_trs_total"]):
                    raise ValueError(f"condition {name!r}, story {story}: predictors have {len(rows)} rows, the "
                                     f"TR grid {int(grid['n_trs_total'])}")
                preds = rows[list(params["predictors"])].reset_index(drop=True)
            if "phoneme_rate" in feats:
                ph = phones[phones["story"] == story]
                if not len(ph):
                    raise ConditionError(f"condition {name!r}: no phones for story {story} (phone tier empty)")
            if self.needs_audio(params):
                if story not in stimulus_audio:
                    raise ConditionError(f"condition {name!r}: no audio for story {story} in stimulus_audio")
                audio = np.asarray(stimulus_audio[story])
            values, names = lowlevel_story(feats, grid, w, align, ph, audio, sample_rate, preds,
                                           int(params.get("n_bands", 8)))
            out[story] = values
        log.info("condition %s: low-level columns %s", name, names)
        return {0: out}

    def describe(self, name: str, params: dict) -> dict:
        cols = [f if f != "predictors" else "predictors(" + ",".join(params["predictors"]) + ")"
                for f in params["features"]]
        return {"condition": name, "kind": self.name, "details": " ".join(cols)}
