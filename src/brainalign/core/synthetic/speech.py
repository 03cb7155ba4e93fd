"""Story audio synthesised offline with eSpeak NG, with exact word timings.

The library and its voices come from the PyPI package ``espeakng-loader``; libespeak-ng (GPL-3)
is loaded at run time through :mod:`ctypes` only (nothing of it is compiled into or shipped with
brainalign). eSpeak's C API is used in synchronous retrieval mode: a callback collects the 16-bit
samples and the events, and every ``espeakEVENT_WORD`` event gives the sample at which a word
starts (``sample``; ``audio_position`` is the same time in whole milliseconds) and the character
position of the word in the text (``text_position``, 1-based, in Unicode characters).

Word timings (seconds from the first sample of the returned waveform)
---------------------------------------------------------------------
* Tokens are the whitespace-separated tokens of the text, one row each, in order.
* eSpeak's English dictionary speaks some word pairs as one dictionary word ("of the", "to be",
  "was a", ...), and then reports one event for both. To give every token its own event, a
  WORD JOINER (U+2060, zero-width, not spoken) is put before each token of the text that eSpeak
  reads; it stops those multi-word entries from matching and leaves the speech otherwise the same
  (a few samples differ at most).
* An event belongs to the token whose characters hold its ``text_position``; a token's **onset**
  is the sample of its first event (a token such as "1984" gets several events, one per spoken
  word). The onset is eSpeak's word start, which after a pause can lie a few tens of
  milliseconds before the first non-zero sample.
* A token's **offset** is the onset of the next token that has an event (the end of the waveform
  for the last one), moved back to the end of sound when the waveform is silent just before it:
  when the last ``min_pause_s`` seconds or more before that point have every sample at most
  ``silence_level`` (full scale 1.0) in absolute value, the offset is the first sample of that
  silent run. Sentence and clause pauses (eSpeak writes them as runs of zeros) so fall between
  words, never inside them, and the interval ``[onset, offset)`` of every spoken token holds
  sound.
* A token without an event (punctuation only, such as "—" or "..."; eSpeak does not speak it)
  gets a **zero-length interval** at the offset of the previous token (at the onset of the first
  spoken token when it comes first). It keeps its row so that the table has one row per token;
  a token with letters or digits that got no event is logged as a warning.
* ``lead_silence_s`` seconds of zeros are prepended, and every time is shifted by that much.

Reproducibility: eSpeak NG keeps some synthesis state between calls in one process, so by
default each story is synthesised in a fresh child process (``isolate``) and the result depends
only on the arguments and the eSpeak NG version (recorded in ``meta``).
"""
from __future__ import annotations

import ctypes
import logging
import re
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: espeak_AUDIO_OUTPUT: supplies audio and events to a callback, returns when synthesis is done
AUDIO_OUTPUT_SYNCHRONOUS = 2
#: espeakINITIALIZE_DONT_EXIT: report errors instead of calling exit()
INITIALIZE_DONT_EXIT = 0x8000
#: espeak_Synth flags and position type
CHARS_UTF8 = 1
POS_CHARACTER = 1
#: espeak_EVENT_TYPE values used here
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
#: espeak_PARAMETER values
PARAM_RATE = 1
PARAM_PITCH = 3
#: espeakRATE_MINIMUM / espeakRATE_MAXIMUM
RATE_RANGE = (80, 450)
#: zero-width word joiner put before every token (see the module docstring)
WORD_JOINER = "\u2060"
#: espeak_ERROR codes
_ERRORS = {-1: "EE_INTERNAL_ERROR", 1: "EE_BUFFER_FULL", 2: "EE_NOT_FOUND"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


class _Engine:
    """The process-wide eSpeak NG instance (its C state is global; calls are serialised)."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ImportError("speech synthesis needs the package espeakng-loader "
                              "(pip install 'espeakng-loader>=0.2,<0.3')") from exc
        lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise RuntimeError(f"cannot load libespeak-ng from {lib_path} ({exc})") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with the voices at {data_path}")
        self.lib, self.sample_rate = lib, int(rate)
        self.version = (lib.espeak_Info(None) or b"?").decode(errors="replace")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int]] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced for the library's lifetime
        lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _collect(self, wav, n_samples, events):
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events and events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.text_position, e.sample, e.audio_position))
            i += 1
        return 0

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"eSpeak NG {what} failed: {_ERRORS.get(code, code)}")

    def synth(self, text: str, voice: str, rate: int, pitch: int | None):
        """(int16 samples, [(type, text_position, sample, audio_position), ...])."""
        with self.lock:
            self._check(self.lib.espeak_ng_SetRandSeed(0), "espeak_ng_SetRandSeed")
            code = self.lib.espeak_SetVoiceByName(voice.encode())
            if code != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r} ({_ERRORS.get(code, code)}); "
                                 "use a name such as 'en-us', 'en', 'en-gb' or 'de'")
            self._check(self.lib.espeak_SetParameter(PARAM_RATE, int(rate), 0), "setting the rate")
            if pitch is not None:
                self._check(self.lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0), "setting the pitch")
            self._chunks, self._events = [], []
            data = text.encode("utf-8")
            self._check(self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8,
                                              None, None), "espeak_Synth")
            self._check(self.lib.espeak_Synchronize(), "espeak_Synchronize")
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        wav = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return wav, events


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def _synth_here(text: str, voice: str, rate: int, pitch: int | None):
    """(int16 samples, events, sample rate, eSpeak version) from this process's engine."""
    eng = _engine()
    wav, events = eng.synth(text, voice, rate, pitch)
    return wav, events, eng.sample_rate, eng.version


def _synth_isolated(text: str, voice: str, rate: int, pitch: int | None):
    """:func:`_synth_here` in a fresh Python process (``python -m`` this module, arguments and
    results pickled through stdin/stdout), so that no state of an earlier synthesis leaks in."""
    import os
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    import brainalign

    env = dict(os.environ)
    pkg_root = str(Path(brainalign.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-m", __name__], input=pickle.dumps((text, voice, rate, pitch)),
                          capture_output=True, env=env, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"eSpeak NG synthesis in a child process failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    status, payload = pickle.loads(proc.stdout)
    if status == "error":
        kind, message = payload
        raise (ValueError if kind == "ValueError" else RuntimeError)(message)
    return payload


def _worker_main() -> None:  # pragma: no cover - runs in the child process
    import pickle
    import sys

    args = pickle.loads(sys.stdin.buffer.read())
    try:
        out = ("ok", _synth_here(*args))
    except (ValueError, RuntimeError) as exc:
        out = ("error", (type(exc).__name__, str(exc)))
    sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


@dataclass
class SynthesizedStory:
    """A story read aloud by eSpeak NG.

    Attributes
    ----------
    waveform : float32 array of shape (n_samples,), mono, full scale 1.0.
    sample_rate : samples per second (eSpeak's native rate, 22050 Hz).
    words : DataFrame with columns word, onset, offset (seconds from the first sample of
        ``waveform``), one row per whitespace-separated token of the text, in order.
    meta : voice, words_per_minute, pitch, lead_silence_s, espeak_version.
    """

    waveform: np.ndarray
    sample_rate: int
    words: pd.DataFrame
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Length of the waveform in seconds."""
        return len(self.waveform) / self.sample_rate


def _token_spans(text: str, max_words: int | None) -> list[tuple[int, int, str]]:
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    return spans[:max_words] if max_words is not None else spans


def _sound_end(silent: np.ndarray, start: int, end: int, min_run: int) -> int:
    """``end``, or the first sample of the silent run of at least ``min_run`` samples that ends
    at ``end`` (never before ``start``)."""
    if end <= start:
        return end
    loud = np.flatnonzero(~silent[start:end])
    last = start + int(loud[-1]) + 1 if loud.size else start
    return last if end - last >= min_run else end


def synthesize_story(text: str, voice: str = "en-us", words_per_minute: int = 160, *,
                     pitch: int | None = None, lead_silence_s: float = 6.0,
                     max_words: int | None = None, min_pause_s: float = 0.03,
                     silence_level: float = 1e-3, isolate: bool = True) -> SynthesizedStory:
    """Read ``text`` aloud with eSpeak NG and time every token exactly (module docstring).

    Parameters
    ----------
    text : the story; tokens are its whitespace-separated parts.
    voice : an eSpeak NG voice name (``en-us``, ``en``, ``en-gb``, ...).
    words_per_minute : eSpeak's speaking rate, 80 to 450 (eSpeak's own measure; pauses come on
        top of it).
    pitch : eSpeak's base pitch 0-100 (None: the voice's default, 50).
    lead_silence_s : seconds of silence before the speech; all times are shifted by it.
    max_words : read only the first ``max_words`` tokens (None: all).
    min_pause_s : a silent run at least this long before the next word's onset ends the word
        there (see the module docstring).
    silence_level : absolute sample value (full scale 1.0) at or below which a sample is silent.
    isolate : synthesise in a fresh Python process (default). eSpeak NG keeps state between
        syntheses in one process (pitch-flutter and wave phases), which moves samples and word
        times by up to a few milliseconds depending on what was synthesised before; isolated, the
        result depends on the arguments only. ``False`` synthesises in this process (about half
        a second faster per call).

    Returns
    -------
    SynthesizedStory with a float32 waveform of shape (n_samples,), eSpeak's sample rate and the
    words table (word, onset, offset) in seconds from the first sample.

    Notes
    -----
    With ``isolate`` the result is the same for the same arguments and eSpeak version (``meta``).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("synthesize_story needs a non-empty text")
    wpm = int(words_per_minute)
    if not RATE_RANGE[0] <= wpm <= RATE_RANGE[1]:
        raise ValueError(f"words_per_minute must be within {RATE_RANGE} (eSpeak's rate range), got {wpm}")
    if pitch is not None and not 0 <= int(pitch) <= 100:
        raise ValueError(f"pitch must be within 0..100, got {pitch}")
    if lead_silence_s < 0 or min_pause_s <= 0 or silence_level < 0:
        raise ValueError("lead_silence_s and silence_level must be >= 0 and min_pause_s > 0")
    if max_words is not None and int(max_words) < 1:
        raise ValueError(f"max_words must be >= 1 or None, got {max_words}")
    spans = _token_spans(text, None if max_words is None else int(max_words))

    # the text eSpeak reads: a word joiner before every token, the whitespace kept
    pieces, starts, pos, last = [], [], 0, 0
    for s0, s1, tok in spans:
        gap = text[last:s0]
        pieces += [gap, WORD_JOINER, tok]
        pos += len(gap) + 1
        starts.append(pos + 1)  # 1-based character position of the token's first character
        pos += len(tok)
        last = s1
    spoken = "".join(pieces)
    ends = [st + len(tok) - 1 for st, (_, _, tok) in zip(starts, spans)]

    wav, events, sr, version = (_synth_isolated if isolate else _synth_here)(spoken, voice, wpm,
                                                                           None if pitch is None else int(pitch))
    x = (wav.astype(np.float32) / np.float32(32768.0))
    n = len(x)

    onsets = np.full(len(spans), -1, dtype=np.int64)
    starts_arr = np.asarray(starts)
    for etype, tpos, sample, audio_ms in events:
        if etype != EVENT_WORD:
            continue
        # ``sample`` is the exact sample count; ``audio_position`` the same time in whole ms
        if not (0 <= sample <= n and abs(sample * 1000.0 / sr - audio_ms) <= 1.0):
            sample = int(round(audio_ms * sr / 1000.0))
        k = int(np.searchsorted(starts_arr, tpos, side="right")) - 1
        if k < 0 or tpos > ends[k]:  # between tokens: the next token
            k += 1
        if not 0 <= k < len(spans):
            raise RuntimeError(f"eSpeak NG reported a word at character {tpos} of a {len(spoken)}-character "
                               "text, outside every token")
        if onsets[k] < 0:
            onsets[k] = min(max(int(sample), 0), n)

    has_event = onsets >= 0
    if not has_event.any():
        raise ValueError(f"eSpeak NG spoke no word of the text (voice {voice!r}): {text[:80]!r}")
    odd = [spans[k][2] for k in np.flatnonzero(~has_event) if re.search(r"\w", spans[k][2])]
    if odd:
        log.warning("eSpeak NG reported no word event for %d tokens with letters or digits (%s); they get "
                    "zero-length intervals at the end of the previous word", len(odd), odd[:10])
    silent = np.abs(x) <= silence_level
    min_run = max(1, int(round(min_pause_s * sr)))
    spoken_idx = np.flatnonzero(has_event)
    offsets = np.full(len(spans), -1, dtype=np.int64)
    for j, k in enumerate(spoken_idx):
        nxt = int(onsets[spoken_idx[j + 1]]) if j + 1 < len(spoken_idx) else n
        offsets[k] = _sound_end(silent, int(onsets[k]), nxt, min_run)
    # tokens without an event: zero-length at the previous token's offset
    prev = int(onsets[spoken_idx[0]])
    for k in range(len(spans)):
        if has_event[k]:
            prev = int(offsets[k])
        else:
            onsets[k] = offsets[k] = prev

    lead = int(round(lead_silence_s * sr))
    waveform = np.concatenate([np.zeros(lead, np.float32), x]) if lead else x
    words = pd.DataFrame({"word": [tok for _, _, tok in spans],
                          "onset": (onsets + lead) / sr, "offset": (offsets + lead) / sr})
    meta = {"voice": voice, "words_per_minute": wpm, "pitch": pitch, "lead_silence_s": lead / sr,
            "espeak_version": version, "synthesizer": "eSpeak NG (espeakng-loader)"}
    return SynthesizedStory(waveform=waveform, sample_rate=sr, words=words, meta=meta)


if __name__ == "__main__":  # pragma: no cover - the child of :func:`_synth_isolated`
    _worker_main()
