"""A part-of-speech tagger (Penn Treebank tags) trained on NLTK's 10% Penn Treebank sample.

The model is an averaged perceptron (Collins 2002) with the feature set of M. Honnibal's "A good
part-of-speech tagger in about 200 lines of Python" (the one NLTK's ``PerceptronTagger`` uses:
word, suffix, prefix, the two previous tags and the neighbouring words), plus a word-shape feature
(for lower-cased transcripts), and a dictionary of frequent unambiguous words. It is implemented
here, not taken from NLTK, so that training is deterministic (sentences are shuffled with
``random.Random(seed)``; ties are broken by tag name) and the model is stored as JSON.

Measured: trained on the first 179 of the sample's 199 files (``wsj_0001``-``wsj_0179``, 5
iterations, seed 0) it tags the held-out 20 files (``wsj_0180``-``wsj_0199``, gold tokenisation,
punctuation included; 245 sentences) with token accuracy 0.960 (0.954 without punctuation tokens);
through :meth:`Tagger.tag` on words tables built from those sentences (punctuation and clitics
attached to the words) 0.953 of the words get their tree tag (tests/core/test_removal_annotators.py).
Whole-WSJ taggers reach about 0.97; this one sees 10% of the training data. On the Le Petit Prince
words (lower-cased, spoken clitics "s", "nt", "ll" as words) it agrees with the tags of the LPP trees
(themselves automatic parses) on 0.86 of the words. Training takes about 12 s on one CPU core.

Cache: :func:`load_tagger` writes the trained model to ``<cache_dir>/pos_tagger_<key>.json``,
``key`` a SHA-256 of the treebank file's content, the training files, the settings and the
feature version, and reads it back on the next call; a cache file that cannot be read is retrained
and rewritten (with a warning).

Words with attached punctuation (the project's words tables: ``"Alice,"``, ``"'Oh"``) are split
into Penn-style tokens (leading punctuation, the word, a clitic ``n't 's 're 've 'll 'd 'm``,
trailing punctuation; a final "." stays on abbreviations the model knows or that have an inner
dot, "Mr.", "U.S."), the tokens are tagged in context, and each word gets the tag of its word
part (``"don't"`` -> the tag of ``do``; ``"Alice's"`` -> that of ``Alice``; a lower-case ``"i"`` is
tagged as ``"I"``, transcripts such as Le Petit Prince's being lower-cased); a word that is only
punctuation gets the tag of its first punctuation token (``","``, ``"."``, ``":"``, ``"``"``...).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

FEATURE_VERSION = 1
START = ("-START-", "-START2-")
END = ("-END-", "-END2-")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$", re.IGNORECASE)
_PUNCT_TOKENS = {",": ",", ".": ".", "!": ".", "?": ".", ";": ":", ":": ":", "-": ":", "--": "--",
                 "\u2014": "--", "\u2013": "--", "...": ":", "(": "-LRB-", ")": "-RRB-", "[": "-LRB-",
                 "]": "-RRB-", "$": "$", "%": "%", "#": "#", "&": "&"}


class TaggerError(ValueError):
    """Raised for a tagger that cannot be trained or read; the message names the file."""


def _normalise(word: str) -> str:
    if "-" in word and word[0] != "-":
        return "!HYPHEN"
    if word.isdigit() and len(word) == 4:
        return "!YEAR"
    if word and word[0].isdigit():
        return "!DIGITS"
    return word.lower()


def _shape(word: str) -> str:
    s = re.sub(r"[A-Z]+", "X", word)
    s = re.sub(r"[a-z]+", "x", s)
    return re.sub(r"[0-9]+", "d", s)[:4]


def _features(i: int, word: str, context: list[str], prev: str, prev2: str) -> list[str]:
    i += len(START)   # context is padded with START / END
    return [
        "bias",
        "i suffix " + word[-3:],
        "i pref1 " + (word[0] if word else ""),
        "i shape " + _shape(word),
        "i-1 tag " + prev,
        "i-2 tag " + prev2,
        "i tag+i-2 tag " + prev + " " + prev2,
        "i word " + context[i],
        "i-1 tag+i word " + prev + " " + context[i],
        "i-1 word " + context[i - 1],
        "i-1 suffix " + context[i - 1][-3:],
        "i-2 word " + context[i - 2],
        "i+1 word " + context[i + 1],
        "i+1 suffix " + context[i + 1][-3:],
        "i+2 word " + context[i + 2],
    ]


class _Perceptron:
    """Averaged multi-class perceptron (weights feature -> tag -> float)."""

    def __init__(self, classes: list[str]):
        self.classes = sorted(classes)
        self.weights: dict[str, dict[str, float]] = {}
        self._totals: dict[tuple[str, str], float] = defaultdict(float)
        self._stamps: dict[tuple[str, str], int] = defaultdict(int)
        self.i = 0

    def predict(self, feats: list[str]) -> str:
        return _predict(self.weights, self.classes, feats)

    def update(self, truth: str, guess: str, feats: list[str]):
        self.i += 1
        if truth == guess:
            return
        for f in feats:
            w = self.weights.setdefault(f, {})
            for c, v in ((truth, 1.0), (guess, -1.0)):
                key = (f, c)
                old = w.get(c, 0.0)
                self._totals[key] += (self.i - self._stamps[key]) * old
                self._stamps[key] = self.i
                w[c] = old + v

    def averaged(self, decimals: int = 4) -> dict[str, dict[str, float]]:
        out = {}
        for f, w in self.weights.items():
            avg = {}
            for c, v in w.items():
                key = (f, c)
                total = self._totals[key] + (self.i - self._stamps[key]) * v
                a = round(total / max(self.i, 1), decimals)
                if a:
                    avg[c] = a
            if avg:
                out[f] = avg
        return out


def _predict(weights: dict, classes: list[str], feats: list[str]) -> str:
    scores: dict[str, float] = defaultdict(float)
    for f in feats:
        w = weights.get(f)
        if w:
            for c, v in w.items():
                scores[c] += v
    return max(classes, key=lambda c: (scores.get(c, 0.0), c))


class Tagger:
    """A trained tagger: ``tag(words)`` for words of the project's words tables, ``tag_tokens``
    for Penn-tokenised text (module docstring).

    Attributes
    ----------
    weights : feature -> tag -> averaged weight.
    tagdict : word -> tag of frequent unambiguous words.
    classes : the tag set, sorted.
    settings : dict of how it was trained (treebank hash, files, seed, n_iter, feature version).
    """

    def __init__(self, weights: dict, tagdict: dict, classes: list[str], settings: dict):
        self.weights, self.tagdict, self.classes, self.settings = weights, tagdict, list(classes), dict(settings)

    def tag_tokens(self, tokens: Sequence[str]) -> list[str]:
        """Penn tags of already tokenised text (one sentence, Penn tokenisation).

        Parameters
        ----------
        tokens : list of str, length n.

        Returns
        -------
        list of str, length n.
        """
        tokens = [str(t) for t in tokens]
        context = list(START) + [_normalise(t) for t in tokens] + list(END)
        prev, prev2 = START
        out = []
        for i, tok in enumerate(tokens):
            tag = self.tagdict.get(tok)
            if tag is None:
                tag = _predict(self.weights, self.classes, _features(i, tok, context, prev, prev2))
            out.append(tag)
            prev2, prev = prev, tag
        return out

    def tag(self, words: Sequence[str]) -> list[str]:
        """Penn tag of each word of one sentence; words may carry punctuation (module docstring).

        Parameters
        ----------
        words : list of str, length n (e.g. ``["'Oh,", "Alice's", "cat!'"]``).

        Returns
        -------
        list of str, length n: the tag of each word's word part (of its first punctuation token
        when it has no letter or digit).
        """
        tokens, head = [], []
        for w in words:
            toks, h = split_word(str(w))
            if h + 1 < len(toks) and toks[h + 1] == "." and ("." in toks[h] or self._known(toks[h] + ".")):
                toks = toks[:h] + [toks[h] + "."] + toks[h + 2:]   # abbreviations: "U.S.", "Mr.", "Inc.,"
            head.append(len(tokens) + h)
            tokens.extend(toks)
        tags = self.tag_tokens(tokens) if tokens else []
        return [tags[h] if 0 <= h < len(tags) else ":" for h in head]

    def _known(self, token: str) -> bool:
        return token in self.tagdict or ("i word " + _normalise(token)) in self.weights

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {"format": "brainalign-pos-tagger", "version": FEATURE_VERSION, "settings": self.settings,
                "classes": self.classes, "tagdict": self.tagdict, "weights": self.weights}

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> "Tagger":
        if d.get("format") != "brainalign-pos-tagger" or d.get("version") != FEATURE_VERSION:
            raise TaggerError(f"{source}: not a brainalign tagger of feature version {FEATURE_VERSION} "
                              f"(format {d.get('format')!r}, version {d.get('version')!r})")
        return cls(d["weights"], d["tagdict"], d["classes"], d["settings"])

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON (atomically: a temporary file renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, separators=(",", ":"), sort_keys=True)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Tagger":
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TaggerError(f"{path}: cannot read the tagger JSON ({exc})") from exc
        return cls.from_dict(d, str(path))


def split_word(word: str) -> tuple[list[str], int]:
    """Penn-style tokens of one words-table word and the index of its word part.

    ``"'Oh,"`` -> (["``", "Oh", ","], 1); ``"don't"`` -> (["do", "n't"], 0); ``"--"`` -> (["--"], 0).
    """
    w = word.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    m = re.match(r"^([^\w]*)(.*?)([^\w]*)$", w, flags=re.UNICODE)
    lead, core, trail = m.group(1), m.group(2), m.group(3)
    if not core:   # punctuation only
        return [_punct_token(w, leading=True)], 0
    toks = [_punct_token(ch, leading=True) for ch in _punct_chunks(lead)]
    h = len(toks)
    c = _CLITIC.match(core)
    toks += [c.group(1), c.group(2)] if c else [core]
    if toks[h] == "i":   # the pronoun, lower-cased in transcripts (LPP): written "I" in the treebank
        toks[h] = "I"
    toks += [_punct_token(ch, leading=False) for ch in _punct_chunks(trail)]
    return toks, h


def _punct_chunks(s: str) -> list[str]:
    return re.findall(r"\.\.\.|--|.", s)


def _punct_token(p: str, leading: bool) -> str:
    if p in ('"', "'", "``", "''"):
        return "``" if leading else "''"
    return _PUNCT_TOKENS.get(p, p)


# --------------------------------------------------------------------------- training
def train_tagger(sentences: Sequence[Sequence[tuple[str, str]]], seed: int = 0, n_iter: int = 5,
                 settings: dict | None = None) -> Tagger:
    """Train the averaged perceptron on tagged sentences.

    Parameters
    ----------
    sentences : list of sentences, each a list of (token, tag).
    seed : seed of the per-iteration shuffling.
    n_iter : passes over the data.
    settings : recorded in the tagger (provenance).

    Returns
    -------
    Tagger (weights averaged and rounded to 4 decimals; the in-memory and the JSON-loaded model
    give the same tags).
    """
    sentences = [list(s) for s in sentences if len(s)]
    if not sentences:
        raise TaggerError("no tagged sentences to train the tagger on")
    counts: dict[str, Counter] = defaultdict(Counter)
    for s in sentences:
        for w, t in s:
            counts[w][t] += 1
    tagdict = {}
    for w, c in counts.items():
        tag, n = c.most_common(1)[0]
        if sum(c.values()) >= 20 and n / sum(c.values()) >= 0.97:
            tagdict[w] = tag
    model = _Perceptron(sorted({t for c in counts.values() for t in c}))
    rng = random.Random(seed)
    order = list(range(len(sentences)))
    for it in range(n_iter):
        correct = total = 0
        for k in order:
            words = [w for w, _ in sentences[k]]
            context = list(START) + [_normalise(w) for w in words] + list(END)
            prev, prev2 = START
            for i, (w, t) in enumerate(sentences[k]):
                guess = tagdict.get(w)
                if guess is None:
                    feats = _features(i, w, context, prev, prev2)
                    guess = model.predict(feats)
                    model.update(t, guess, feats)
                prev2, prev = prev, guess
                correct += guess == t
                total += 1
        log.info("tagger iteration %d: training accuracy %.3f", it + 1, correct / max(total, 1))
        rng.shuffle(order)
    return Tagger(model.averaged(), tagdict, model.classes, dict(settings or {}, seed=seed, n_iter=n_iter))


def evaluate_tagger(tagger: Tagger, sentences: Sequence[Sequence[tuple[str, str]]],
                    skip_tags: frozenset[str] = frozenset()) -> float:
    """Token accuracy of ``tagger.tag_tokens`` against gold tags.

    Parameters
    ----------
    sentences : list of sentences of (token, gold tag).
    skip_tags : gold tags left out of the count (e.g. punctuation tags).

    Returns
    -------
    float in [0, 1].
    """
    correct = total = 0
    for s in sentences:
        pred = tagger.tag_tokens([w for w, _ in s])
        for (_, gold), p in zip(s, pred):
            if gold in skip_tags:
                continue
            correct += gold == p
            total += 1
    if not total:
        raise TaggerError("no tokens to evaluate the tagger on")
    return correct / total


def split_fileids(fileids: Sequence[str], held_out_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """(train, held-out) file ids: the last ``round(held_out_fraction * n)`` files (sorted) are held out
    (199 files, 0.1 -> ``wsj_0180``-``wsj_0199``)."""
    ids = sorted(fileids)
    n_out = int(round(held_out_fraction * len(ids)))
    if not 0 <= n_out < len(ids):
        raise TaggerError(f"held_out_fraction {held_out_fraction} leaves no training files of {len(ids)}")
    return ids[:len(ids) - n_out], ids[len(ids) - n_out:]


def treebank_tagged_sentences(treebank_path: str | Path, fileids: Sequence[str] | None = None
                              ) -> list[list[tuple[str, str]]]:
    """(token, tag) sentences of a treebank zip (traces removed), for training and evaluation."""
    from .trees import read_treebank, tagged_leaves

    return [tagged_leaves(t) for _, t in read_treebank(treebank_path, fileids)]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_tagger(treebank_path: str | Path, cache_dir: str | Path | None = None, seed: int = 0,
                n_iter: int = 5, fileids: Sequence[str] | None = None) -> Tagger:
    """The tagger trained on a treebank zip, from the cache when it holds it (module docstring).

    Parameters
    ----------
    treebank_path : NLTK's ``treebank.zip``.
    cache_dir : folder of the JSON cache (None: train, write nothing).
    seed, n_iter : training settings (part of the cache key).
    fileids : training files (default all 199; :func:`split_fileids` gives a held-out split).

    Returns
    -------
    Tagger
    """
    from .trees import treebank_fileids

    treebank_path = Path(treebank_path)
    if not treebank_path.is_file():
        raise TaggerError(f"{treebank_path}: treebank zip not found; the tagger is trained on NLTK's Penn "
                          f"Treebank sample (nltk_data/corpora/treebank.zip)")
    ids = sorted(fileids) if fileids is not None else treebank_fileids(treebank_path)
    settings = {"treebank_sha256": _file_sha256(treebank_path), "fileids": ids, "seed": int(seed),
                "n_iter": int(n_iter), "feature_version": FEATURE_VERSION}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"pos_tagger_{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            tagger = Tagger.load(path)
            if tagger.settings.get("treebank_sha256") == settings["treebank_sha256"]:
                log.info("POS tagger read from the cache %s", path)
                return tagger
            log.warning("%s: cached tagger has other settings; retraining", path)
        except TaggerError as exc:
            log.warning("%s; retraining", exc)
    log.info("training the POS tagger on %d files of %s (%d iterations, seed %d)", len(ids), treebank_path,
             n_iter, seed)
    sentences = treebank_tagged_sentences(treebank_path, ids)
    tagger = train_tagger(sentences, seed=seed, n_iter=n_iter,
                          settings={k: v for k, v in settings.items() if k not in ("seed", "n_iter")})
    if path is not None:
        tagger.save(path)
        log.info("POS tagger cached at %s", path)
    return tagger
