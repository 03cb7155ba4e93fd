"""The stimulus of each volume, as a backbone sees it during brain-tuning (one registry entry per
modality: :data:`STIMULI`).

A stimulus object prepares, once, what the backbone reads for volume ``i`` of a story's full TR
grid, and turns a list of volumes into one pooled vector each (a differentiable torch tensor):

* ``text`` (:class:`TextStimulus`): the words whose time (midpoint, or onset) falls in the volume's
  bin ``[t0 + i tr, t0 + (i + 1) tr)`` (the ``box`` convention of
  :func:`brainalign.core.timing.resample.box_bins`), run in one window together with the
  ``context_words`` words before the first of them; the vector is the mean hidden state, at the
  tuning layer, of the sub-tokens of the volume's own words. A volume without words is the zero
  vector.
* ``speech`` (:class:`SpeechStimulus`): the audio window of ``window_s`` seconds ending at the end
  of the volume's bin; the vector is the mean hidden state, at the tuning layer, of the frames that
  cover the bin's last ``tr`` seconds. A volume whose window holds no frame is the zero vector.

The volumes' vectors then go through FIR delays and a linear head
(:class:`brainalign.core.brain_tuning.model.BrainTuner`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..timing.resample import box_bins
from ..timing.stimuli import word_times
from .data import BrainTuningError


class TextStimulus:
    """Per story and volume, a tokenised word window and the token positions pooled.

    Parameters
    ----------
    tokenizer : a transformers tokenizer.
    words : the words table (story, word_index, word, onset, offset).
    grids : the TR-grid table.
    context_words : words before the volume's first word in its window.
    align : ``midpoint`` or ``onset`` (a word's time).
    max_tokens : longest window in tokens (longer ones lose their earliest context words).
    """

    modality = "text"

    def __init__(self, tokenizer, words: pd.DataFrame, grids: pd.DataFrame, context_words: int = 20,
                 align: str = "midpoint", max_tokens: int = 512):
        from ..representations.text import _tokenize_windows

        self.tokenizer = tokenizer
        self.items: dict[str, dict[int, tuple]] = {}
        self.n_volumes: dict[str, int] = {}
        for row in grids.itertuples(index=False):
            w = words[words["story"] == row.story].sort_values("word_index")
            if w.empty:
                raise BrainTuningError(f"brain_tuning: story {row.story} has no words")
            wl = w["word"].astype(str).tolist()
            vol = box_bins(word_times(w, align), row.t0, row.tr, int(row.n_trs_total))
            self.n_volumes[row.story] = int(row.n_trs_total)
            vols = sorted(set(vol[vol >= 0].tolist()))
            windows, spans = [], []
            for i in vols:
                idx = np.flatnonzero(vol == i)
                first, last = int(idx.min()), int(idx.max())
                start = max(0, first - int(context_words))
                windows.append(wl[start:last + 1])
                spans.append((first - start, last - start))
            tokenised = _tokenize_windows(tokenizer, windows, int(max_tokens))
            story_items = {}
            for i, it, (a, b) in zip(vols, tokenised, spans):
                # a window cut to max_tokens loses its earliest words: positions count from its end
                shift = it.n_words - 1 - b
                tokens = sorted({t for p in range(a + shift, b + shift + 1) if p >= 0 for t in it.tokens_of(p)})
                story_items[i] = (it.inputs, tokens)
            self.items[row.story] = story_items

    def vectors(self, model, layer: int, story: str, volumes: np.ndarray, batch_size: int = 32):
        """Float tensor (len(volumes), hidden_size): the pooled hidden state of each volume
        (zeros for volumes without words), differentiable through ``model``."""
        import torch

        device = next(model.parameters()).device
        volumes = [int(v) for v in volumes]
        out = torch.zeros((len(volumes), int(model.config.hidden_size)), device=device)
        have = [(p, self.items[story][v]) for p, v in enumerate(volumes) if v in self.items[story]]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        rows_out = []
        for b0 in range(0, len(have), int(batch_size)):
            part = have[b0:b0 + int(batch_size)]
            width = max(len(inp["input_ids"]) for _, (inp, _) in part)
            inputs = {k: torch.full((len(part), width), pad_id if k == "input_ids" else 0, dtype=torch.long)
                      for k in part[0][1][0]}
            weights = torch.zeros((len(part), width))
            for b, (_, (inp, tokens)) in enumerate(part):
                for k, v in inp.items():
                    inputs[k][b, :len(v)] = torch.as_tensor(v, dtype=torch.long)
                if tokens:
                    weights[b, tokens] = 1.0 / len(tokens)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            hidden = model(**inputs, output_hidden_states=True).hidden_states[layer]
            rows_out.append(torch.einsum("bt,btd->bd", weights.to(device), hidden.float()))
        if have:
            out = out.index_put((torch.as_tensor([p for p, _ in have], device=device),), torch.cat(rows_out))
        return out


class SpeechStimulus:
    """Per story and volume, the audio window ending at the end of the volume's bin.

    Parameters
    ----------
    feature_extractor : the model's transformers feature extractor.
    family : a :data:`brainalign.core.representations.speech.SPEECH_FAMILIES` entry.
    audio : story -> mono float waveform at ``sample_rate``.
    grids : the TR-grid table.
    window_s : window length (s).
    """

    modality = "speech"

    def __init__(self, feature_extractor, family, audio: dict, grids: pd.DataFrame, sample_rate: int = 16000,
                 window_s: float = 16.0):
        from ..representations.speech import resample_audio

        self.fe, self.family, self.window_s = feature_extractor, family, float(window_s)
        self.sr = int(feature_extractor.sampling_rate)
        max_samples = family.max_window_samples(feature_extractor)
        if max_samples is not None and self.window_s * self.sr > max_samples:
            raise BrainTuningError(f"brain_tuning: window_s {window_s} s is longer than the {max_samples / self.sr:g} s "
                                   f"a {family.name} model reads")
        self.audio, self.grid = {}, {}
        for row in grids.itertuples(index=False):
            if row.story not in audio:
                raise BrainTuningError(f"brain_tuning: no audio for story {row.story} (a speech backbone needs "
                                       f"stimulus_audio for every story)")
            x = np.asarray(audio[row.story], np.float32)
            if x.ndim != 1 or not np.isfinite(x).all() or x.size == 0:
                raise BrainTuningError(f"brain_tuning: the audio of story {row.story} is not a finite mono waveform")
            self.audio[row.story] = x if int(sample_rate) == self.sr else resample_audio(x, int(sample_rate), self.sr).astype(np.float32)
            self.grid[row.story] = (float(row.t0), float(row.tr))

    def span(self, story: str, volume: int) -> tuple[int, int, int]:
        """(start, end, first pooled frame) of the window of ``volume`` (samples of the model's rate)."""
        t0, tr = self.grid[story]
        x = self.audio[story]
        end = int(min(len(x), round((t0 + (volume + 1) * tr) * self.sr)))
        start = int(max(0, round((t0 + (volume + 1) * tr - self.window_s) * self.sr)))
        bin_start = int(max(start, round((t0 + volume * tr) * self.sr)))
        return start, end, bin_start

    def vectors(self, model, layer: int, story: str, volumes: np.ndarray, batch_size: int = 8):
        """Float tensor (len(volumes), hidden_size): each volume's mean frame over its bin."""
        import torch

        device = next(model.parameters()).device
        hidden = int(self.family.hidden_size(model))
        out = torch.zeros((len(volumes), hidden), device=device)
        plan = []
        for p, v in enumerate(int(v) for v in volumes):
            start, end, bin_start = self.span(story, v)
            if end - start < 400:       # shorter than one frame's receptive field
                continue
            last = self.family.last_frame(model, self.fe, end - start)
            first = self.family.last_frame(model, self.fe, max(bin_start - start, 0)) + 1 if bin_start > start else 0
            first = min(max(first, 0), last)
            plan.append((p, start, end, first, last))
        # equal lengths batch together (any length where the extractor pads to a fixed size)
        key = (lambda item: 0) if self.family.pads_to_fixed_length else (lambda item: item[2] - item[1])
        groups: dict = {}
        for item in plan:
            groups.setdefault(key(item), []).append(item)
        idx, rows = [], []
        for items in groups.values():
            for b0 in range(0, len(items), int(batch_size)):
                part = items[b0:b0 + int(batch_size)]
                inputs = self.family.inputs(self.fe, [self.audio[story][s:e] for _, s, e, _, _ in part], self.sr, device)
                states = model(**inputs, output_hidden_states=True).hidden_states[layer].float()
                for b, (p, _, _, first, last) in enumerate(part):
                    rows.append(states[b, first:last + 1].mean(0))
                    idx.append(p)
        if idx:
            out = out.index_put((torch.as_tensor(idx, device=device),), torch.stack(rows))
        return out


#: modality -> stimulus class
STIMULI = {"text": TextStimulus, "speech": SpeechStimulus}
