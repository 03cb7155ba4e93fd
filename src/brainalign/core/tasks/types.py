"""Task types: how a kind of NLU task builds its model, encodes its examples and is scored.

:data:`TASK_TYPES` maps a type name to a :class:`TaskType`; add a type by adding a class and an
entry. Every type offers

``build_model(base, n_labels, labels=None)``   a ``torch.nn.Module`` with ``.config`` and
                                               ``.base_model`` (the transformer backbone)
``encode(examples, tokenizer, labels, max_length)``   a dict of tensors (below)
``loss(model, batch)``                          the training loss of a batch (slice of the dict)
``predict(model, encoded, examples, labels)``   one prediction per example (label, tag list, answer)
``score(predictions, examples, labels)``        metrics of predictions against the gold examples
``evaluate(model, encoded, examples, labels)``  ``score(predict(...))``
``main_metric``                                 the metric early stopping and model selection use

Types and the examples they read (the task data model of :mod:`brainalign.core.tasks.readers`):

``sentence``  ``{"text", "label"}``; ``AutoModelForSequenceClassification``; accuracy, macro-F1.
``pair``      ``{"text", "text_pair", "label"}``; the same model, the two texts as a pair.
``token``     ``{"tokens": [word, ...], "tags": [BIO tag, ...]}`` (+ ``"predicate"``: word index, for
              semantic role labelling); ``AutoModelForTokenClassification``; entity F1 (conlleval,
              micro over entities) and word accuracy. A word's label sits on its first sub-token,
              the other sub-tokens get -100 (ignored by the loss); its prediction is read there.
``span``      ``{"tokens", "span1": [start, end), "span2": [start, end) or None, "label"}`` (word
              indices, end exclusive); :class:`SpanClassifier`; accuracy, macro-F1.
``qa``        ``{"id", "question", "context", "answers": [{"text", "answer_start"}]}`` (character
              offsets); ``AutoModelForQuestionAnswering``; SQuAD exact match and F1.

Decisions
---------
* Predicate marking (``token`` with ``"predicate"``): ``predicate_marking="auto"`` (default) marks
  the predicate's sub-tokens with ``token_type_ids`` 1 (0 elsewhere; the verb indicator of
  AllenNLP's BERT SRL) when the tokenizer produces token type ids (BERT, MiniLM, Chinese
  RoBERTa-wwm-ext: ``type_vocab_size`` 2); otherwise (RoBERTa-style tokenizers) it inserts the
  marker word ``"*"`` before and after the predicate, which carry no label. Either can be forced
  with ``TokenTask(predicate_marking="token_type" | "markers")``. A model whose ``type_vocab_size``
  is too small for the token type ids it is given raises a clear error.
* Long inputs. ``sentence``/``pair``: truncated to ``max_length`` (longest first). ``token``: words
  past ``max_length`` get no label and are predicted ``O`` when scored (so scores stay honest);
  their count is logged. ``span``: when the sentence is too long, a window of whole words that
  holds both spans is cut around them (an error if the spans alone do not fit). ``qa``: one window
  per question, the context truncated at the right (``only_second``); a question whose gold answer
  lies past the window is **left out of training and counted** (a warning gives the count), and
  **kept for evaluation** (scored on the answer predicted from the truncated context), so dev
  scores are never inflated by dropping hard questions.
* Span head: mean of the last hidden states of the sub-tokens of span1 (``p1``) and of span2
  (``p2``, zeros when the example has no span2), then ``Linear(3 * hidden)`` over
  ``[p1, p2, p1 * p2]`` (the product lets a linear head compare the two spans, as WSC needs).
* QA answers: best span over context tokens with start <= end and at most ``max_answer_tokens``
  (30) tokens, maximising start logit + end logit; its text is the context between the character
  offsets of its first and last token.

The encoded dict
----------------
All rows are right-padded to the longest row; ``L`` is that length, ``n`` the number of examples
(row ``i`` is example ``i``: nothing is dropped at encoding).

=================  ===========  =====================================================
key                shape        meaning
=================  ===========  =====================================================
input_ids          (n, L) long  sub-token ids
attention_mask     (n, L) long  1 for real sub-tokens
token_type_ids     (n, L) long  present when the tokenizer produces them
example_index      (n,) long    the example of each row
labels             (n,) long    sentence/pair/span: label index (-100: no gold label)
labels             (n, L) long  token: tag index on each word's first sub-token, -100 elsewhere
word_ids           (n, L) long  token: word index of each sub-token, -1 for special/marker tokens
span1_mask         (n, L) bool  span: sub-tokens of span1
span2_mask         (n, L) bool  span: sub-tokens of span2 (all False without span2)
start_positions    (n,) long    qa: first answer token (0 when not trainable)
end_positions      (n,) long    qa: last answer token (0 when not trainable)
offset_mapping     (n, L, 2)    qa: character offsets into the context ((0, 0) outside it)
context_mask       (n, L) bool  qa: sub-tokens of the context
trainable          (n,) bool    qa: the gold answer lies inside the window
=================  ===========  =====================================================

Tokenizers must be "fast" (Rust) tokenizers: alignment uses ``word_ids`` and offset mappings.
RoBERTa-style tokenizers need ``add_prefix_space=True`` for the word-list inputs of ``token`` and
``span``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from .metrics import accuracy, bio_entity_f1, macro_f1, squad_scores

log = logging.getLogger(__name__)

# ``SpanClassifier`` is also public: a module attribute created on first access (PEP 562), so that
# importing this module (the registry, when pipelines are built) does not import torch
__all__ = ["TASK_TYPES", "TaskType", "SentenceTask", "PairTask", "TokenTask", "SpanTask", "QATask",
           "get_task_type", "encode_task", "slice_batch", "TaskEncodingError"]


class TaskEncodingError(ValueError):
    """An example cannot be encoded; the message names the example."""


# ------------------------------------------------------------------------------------------------
# helpers

def _name(ex: dict, i: int) -> str:
    """How error messages name example ``i``."""
    if isinstance(ex, dict) and ex.get("id") is not None:
        return f"example {i} (id {ex['id']!r})"
    return f"example {i}"


def _require(ex: Any, i: int, keys: Sequence[str], type_name: str) -> None:
    if not isinstance(ex, dict):
        raise TaskEncodingError(f"{type_name}: example {i} is a {type(ex).__name__}, not a dict")
    missing = [k for k in keys if k not in ex]
    if missing:
        raise TaskEncodingError(f"{type_name}: {_name(ex, i)} lacks {missing} (has {sorted(ex)})")


def _text(ex: dict, i: int, key: str, type_name: str) -> str:
    value = ex[key]
    if not isinstance(value, str):
        raise TaskEncodingError(f"{type_name}: {_name(ex, i)} field {key!r} is a {type(value).__name__}, "
                                f"not a string")
    if not value.strip():
        raise TaskEncodingError(f"{type_name}: {_name(ex, i)} has an empty {key!r}")
    return value


def _label_index(labels: Sequence[str], type_name: str) -> dict[str, int]:
    labels = [str(x) for x in labels]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{type_name}: the label list has duplicates: {labels}")
    return {lab: k for k, lab in enumerate(labels)}


def _label_id(index: dict[str, int], value: Any, ex: dict, i: int, type_name: str, what: str = "label") -> int:
    if value is None:
        return -100
    key = str(value)
    if key not in index:
        raise TaskEncodingError(f"{type_name}: {_name(ex, i)} has {what} {value!r}, which is not among "
                                f"the task's labels {list(index)}")
    return index[key]


def _check_examples(examples: Sequence, type_name: str) -> None:
    if isinstance(examples, (str, dict)) or not hasattr(examples, "__len__"):
        raise TypeError(f"{type_name}: examples must be a list of dicts, got {type(examples).__name__}")
    if len(examples) == 0:
        raise TaskEncodingError(f"{type_name}: no examples to encode")


def _check_fast(tokenizer, type_name: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type_name}: needs a fast (Rust) tokenizer for word ids and offset mappings; "
                         f"got {type(tokenizer).__name__}")


def _check_words(words: Any, ex: dict, i: int, type_name: str) -> list[str]:
    if isinstance(words, str) or not isinstance(words, (list, tuple)):
        raise TaskEncodingError(f"{type_name}: {_name(ex, i)} 'tokens' must be a list of words, "
                                f"got {type(words).__name__}")
    if len(words) == 0:
        raise TaskEncodingError(f"{type_name}: {_name(ex, i)} has no tokens (empty text)")
    for k, w in enumerate(words):
        if not isinstance(w, str) or not w.strip():
            raise TaskEncodingError(f"{type_name}: {_name(ex, i)} token {k} is {w!r}: every word must be "
                                    f"a non-empty string")
    return list(words)


def _pad_value(key: str, tokenizer) -> Any:
    if key == "input_ids":
        pad = tokenizer.pad_token_id
        if pad is None:
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no pad token: set one "
                             f"(e.g. tokenizer.pad_token = tokenizer.eos_token) before encoding")
        return pad
    if key == "token_type_ids":
        return getattr(tokenizer, "pad_token_type_id", 0) or 0
    if key == "labels":
        return -100
    if key == "word_ids":
        return -1
    if key == "offset_mapping":
        return (0, 0)
    if key in ("span1_mask", "span2_mask", "context_mask"):
        return False
    return 0


def _collate(rows: dict[str, list], tokenizer) -> dict:
    """Lists (one entry per example) -> tensors; lists of sequences right-padded to the longest."""
    import torch

    out = {}
    for key, values in rows.items():
        if values and isinstance(values[0], (list, tuple)):
            length = max(len(v) for v in values)
            pad = _pad_value(key, tokenizer)
            padded = [list(v) + [pad] * (length - len(v)) for v in values]
        else:
            padded = values
        dtype = torch.bool if key in ("span1_mask", "span2_mask", "context_mask", "trainable") else torch.long
        out[key] = torch.tensor(padded, dtype=dtype)
    return out


def _resolve(base: str) -> str:
    from ..representations.text import resolve_model

    return resolve_model(str(base))


def _from_pretrained(auto_class, base: str, what: str, **kwargs):
    from ..representations.text import ModelNotFoundError

    from ..representations.text import refuse_pickled_weights

    path = _resolve(base)
    refuse_pickled_weights(path, base)
    try:
        return auto_class.from_pretrained(path, use_safetensors=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"{what}: cannot load base model {base!r} (resolved to {path!r}) with "
                                 f"{auto_class.__name__}: {str(exc).splitlines()[0]}") from exc


def _model_device(model):
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _autocast(device):
    import contextlib

    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _check_token_types(model, inputs: dict) -> None:
    if "token_type_ids" not in inputs:
        return
    n_types = getattr(getattr(model, "config", None), "type_vocab_size", None)
    if isinstance(n_types, int) and inputs["token_type_ids"].numel():
        top = int(inputs["token_type_ids"].max())
        if top >= n_types:
            raise ValueError(f"the encoded examples use token_type_ids up to {top} but the model has "
                             f"type_vocab_size {n_types}; for predicate marking encode with "
                             f"TokenTask(predicate_marking='markers')")


def _labels_of_model(model) -> list[str]:
    """The label names a model was built with (``config.id2label`` in id order)."""
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


# ------------------------------------------------------------------------------------------------
# base class

class TaskType:
    """Base class of a task type (see the module docstring)."""

    name: ClassVar[str] = "base"
    #: metric that early stopping and model selection maximise
    main_metric: ClassVar[str] = "accuracy"
    #: keys of the encoded dict that the model's forward takes (those present are passed)
    input_keys: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "token_type_ids")
    #: keys with the training targets, passed to forward for the loss
    target_keys: ClassVar[tuple[str, ...]] = ("labels",)
    default_max_length: ClassVar[int] = 128

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- model -------------------------------------------------------------------------------
    def build_model(self, base_path_or_name: str, n_labels: int, labels: Sequence[str] | None = None):
        """The model for this type on top of a pretrained base (registered name, path or hub name).

        Parameters
        ----------
        base_path_or_name : a name of :data:`brainalign.core.representations.text.MODELS`, a
            local model directory or a hub name.
        n_labels : number of classes (ignored by ``qa``).
        labels : optional class names, stored as ``config.id2label`` (so a saved model knows them).
        """
        raise NotImplementedError

    # --- encoding ----------------------------------------------------------------------------
    def encode(self, examples: Sequence[dict], tokenizer, labels: Sequence[str],
               max_length: int | None = None) -> dict:
        """Examples -> dict of tensors (module docstring); errors name the offending example."""
        raise NotImplementedError

    def train_rows(self, encoded: dict):
        """Indices of the rows that training uses (all, except for ``qa``)."""
        import torch

        return torch.arange(encoded["input_ids"].shape[0])

    # --- forward -----------------------------------------------------------------------------
    def model_inputs(self, batch: dict, with_targets: bool) -> dict:
        keys = self.input_keys + (self.target_keys if with_targets else ())
        return {k: batch[k] for k in keys if k in batch}

    def loss(self, model, batch: dict):
        """Training loss (scalar tensor) of a batch whose tensors sit on the model's device."""
        inputs = self.model_inputs(batch, with_targets=True)
        _check_token_types(model, inputs)
        out = model(**inputs)
        if getattr(out, "loss", None) is None:
            raise RuntimeError(f"{self.name}: the model returned no loss for targets {self.target_keys}")
        return out.loss

    def _outputs(self, model, encoded: dict, batch_size: int, device):
        """Yield (row indices, model outputs, batch) over the encoded rows in order, no grad."""
        import torch

        device = torch.device(device) if device is not None else _model_device(model)
        n = encoded["input_ids"].shape[0]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for start in range(0, n, batch_size):
                    rows = torch.arange(start, min(start + batch_size, n))
                    batch = slice_batch(encoded, rows, device)
                    inputs = self.model_inputs(batch, with_targets=False)
                    _check_token_types(model, inputs)
                    with _autocast(device):
                        out = model(**inputs)
                    yield rows, out, batch
        finally:
            model.train(was_training)

    def predict(self, model, encoded: dict, examples: Sequence[dict], labels: Sequence[str], *,
                batch_size: int = 64, device=None) -> list:
        """One prediction per example (label name / tag list / answer text), in example order."""
        raise NotImplementedError

    def score(self, predictions: Sequence, examples: Sequence[dict], labels: Sequence[str]) -> dict:
        """Metrics of ``predictions`` (one per example) against the gold of ``examples``."""
        raise NotImplementedError

    def evaluate(self, model, encoded: dict, examples: Sequence[dict], labels: Sequence[str], *,
                 batch_size: int = 64, device=None) -> dict:
        """``score(predict(...))``: a dict of metrics (including :attr:`main_metric` and ``n``)."""
        _check_rows(encoded, examples, self.name)
        return self.score(self.predict(model, encoded, examples, labels, batch_size=batch_size, device=device),
                          examples, labels)


def _check_rows(encoded: dict, examples: Sequence, type_name: str) -> None:
    n = int(encoded["input_ids"].shape[0])
    if n != len(examples) or not bool((encoded["example_index"].cpu() == _arange(n)).all()):
        raise ValueError(f"{type_name}: the encoded dict holds {n} rows but {len(examples)} examples were "
                         f"given: pass the examples that were encoded, in the same order")


def _arange(n):
    import torch

    return torch.arange(n)


def slice_batch(encoded: dict, rows, device=None) -> dict:
    """Rows ``rows`` of every tensor of ``encoded``, sequence tensors cut to the longest real row.

    Sequence tensors are those whose dimension 1 has the padded length ``L`` of ``input_ids``;
    they are cut to the largest ``attention_mask`` sum of the batch (padding is on the right).
    Moved to ``device`` when given.
    """
    length = encoded["input_ids"].shape[1]
    sub = {k: v[rows] for k, v in encoded.items()}
    keep = int(sub["attention_mask"].sum(dim=1).max()) if len(rows) else 0
    out = {}
    for k, v in sub.items():
        if v.dim() >= 2 and v.shape[1] == length:
            v = v[:, :keep].contiguous()
        out[k] = v.to(device) if device is not None else v
    return out


# ------------------------------------------------------------------------------------------------
# sentence and pair classification

class SentenceTask(TaskType):
    """One text -> one label (``AutoModelForSequenceClassification``)."""

    name = "sentence"
    main_metric = "accuracy"
    text_keys: ClassVar[tuple[str, ...]] = ("text",)

    def build_model(self, base_path_or_name, n_labels, labels=None):
        from transformers import AutoModelForSequenceClassification

        kwargs = _label_kwargs(self.name, n_labels, labels)
        return _from_pretrained(AutoModelForSequenceClassification, base_path_or_name, self.name, **kwargs)

    def encode(self, examples, tokenizer, labels, max_length=None):
        max_length = max_length or self.default_max_length
        _check_examples(examples, self.name)
        index = _label_index(labels, self.name)
        columns: list[list[str]] = [[] for _ in self.text_keys]
        targets = []
        for i, ex in enumerate(examples):
            _require(ex, i, self.text_keys, self.name)
            for col, key in zip(columns, self.text_keys):
                col.append(_text(ex, i, key, self.name))
            targets.append(_label_id(index, ex.get("label"), ex, i, self.name))
        enc = tokenizer(*columns, truncation=True, max_length=max_length)
        full = sum(len(ids) >= max_length for ids in enc["input_ids"])
        if full:
            log.info("%s: %d of %d examples fill max_length=%d and may be truncated",
                     self.name, full, len(examples), max_length)
        rows = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        rows["labels"] = targets
        rows["example_index"] = list(range(len(examples)))
        return _collate(rows, tokenizer)

    def predict(self, model, encoded, examples, labels, *, batch_size=64, device=None):
        _check_rows(encoded, examples, self.name)
        labels = [str(x) for x in labels]
        preds: list[str] = []
        for _, out, _ in self._outputs(model, encoded, batch_size, device):
            logits = out.logits.float()
            if logits.shape[-1] != len(labels):
                raise ValueError(f"{self.name}: the model has {logits.shape[-1]} outputs but {len(labels)} "
                                 f"labels were given")
            preds.extend(labels[k] for k in logits.argmax(-1).tolist())
        return preds

    def score(self, predictions, examples, labels):
        known = {str(x) for x in labels}
        gold = []
        for i, ex in enumerate(examples):
            if ex.get("label") is None:
                raise ValueError(f"{self.name}: {_name(ex, i)} has no gold label to score against")
            gold.append(str(ex["label"]))
            if gold[-1] not in known:
                raise ValueError(_unknown_gold(self.name, ex, i, gold[-1], labels))
        predictions = [str(p) for p in predictions]
        return {"accuracy": accuracy(gold, predictions), "macro_f1": macro_f1(gold, predictions),
                "n": len(gold)}


class PairTask(SentenceTask):
    """Two texts -> one label; the tokenizer joins them as a pair (``[CLS] a [SEP] b [SEP]``)."""

    name = "pair"
    text_keys = ("text", "text_pair")


def _unknown_gold(type_name: str, ex: dict, i: int, value: str, labels) -> str:
    return (f"{type_name}: {_name(ex, i)} has gold {value!r}, which is not among the labels {list(labels)} "
            f"(the model's labels come from build_model(..., labels=...) or train_task_model(labels=...))")


def _label_kwargs(type_name: str, n_labels: int, labels) -> dict:
    if not isinstance(n_labels, int) or n_labels < 2:
        raise ValueError(f"{type_name}: n_labels must be an integer >= 2, got {n_labels!r}")
    kwargs: dict[str, Any] = {"num_labels": n_labels}
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != n_labels:
            raise ValueError(f"{type_name}: {len(labels)} label names for n_labels={n_labels}")
        kwargs["id2label"] = dict(enumerate(labels))
        kwargs["label2id"] = {lab: k for k, lab in enumerate(labels)}
    return kwargs


# ------------------------------------------------------------------------------------------------
# token classification (NER, chunking, SRL)

class TokenTask(TaskType):
    """One BIO tag per word (``AutoModelForTokenClassification``); see the module docstring for
    the first-sub-token rule and the predicate marking of semantic role labelling."""

    name = "token"
    main_metric = "entity_f1"
    MARKINGS = ("auto", "token_type", "markers")

    def __init__(self, predicate_marking: str = "auto", marker: str = "*"):
        if predicate_marking not in self.MARKINGS:
            raise ValueError(f"token: predicate_marking must be one of {self.MARKINGS}, got {predicate_marking!r}")
        self.predicate_marking = predicate_marking
        self.marker = marker

    def __repr__(self) -> str:
        return f"TokenTask(predicate_marking={self.predicate_marking!r}, marker={self.marker!r})"

    def build_model(self, base_path_or_name, n_labels, labels=None):
        from transformers import AutoModelForTokenClassification

        kwargs = _label_kwargs(self.name, n_labels, labels)
        return _from_pretrained(AutoModelForTokenClassification, base_path_or_name, self.name, **kwargs)

    def marking_for(self, tokenizer) -> str:
        """``"token_type"`` or ``"markers"``: how predicates are marked for this tokenizer."""
        if self.predicate_marking != "auto":
            return self.predicate_marking
        return "token_type" if "token_type_ids" in getattr(tokenizer, "model_input_names", ()) else "markers"

    def encode(self, examples, tokenizer, labels, max_length=None):
        max_length = max_length or self.default_max_length
        _check_examples(examples, self.name)
        _check_fast(tokenizer, self.name)
        index = _label_index(labels, self.name)
        if "O" not in index:
            log.warning("token: the tag set %s has no 'O'", list(index))
        marking = self.marking_for(tokenizer)
        word_lists, word_lists_orig, originals, tag_ids, predicates = [], [], [], [], []
        for i, ex in enumerate(examples):
            _require(ex, i, ("tokens",), self.name)
            words = _check_words(ex["tokens"], ex, i, self.name)
            tags = ex.get("tags")
            if tags is None:
                ids = [-100] * len(words)
            else:
                if len(tags) != len(words):
                    raise TaskEncodingError(f"token: {_name(ex, i)} has {len(words)} tokens but {len(tags)} tags")
                ids = [_label_id(index, t, ex, i, self.name, "tag") for t in tags]
            pred = ex.get("predicate")
            if pred is not None:
                if isinstance(pred, bool) or not isinstance(pred, int) or not 0 <= pred < len(words):
                    raise TaskEncodingError(f"token: {_name(ex, i)} has predicate {pred!r}, not a word index "
                                            f"in [0, {len(words)})")
            original = list(range(len(words)))
            if pred is not None and marking == "markers":
                words = words[:pred] + [self.marker, words[pred], self.marker] + words[pred + 1:]
                original = original[:pred] + [-1, pred, -1] + original[pred + 1:]
            word_lists_orig.append(list(ex["tokens"]))
            word_lists.append(words)
            originals.append(original)
            tag_ids.append(ids)
            predicates.append(pred)
        enc = tokenizer(word_lists, is_split_into_words=True, truncation=True, max_length=max_length)
        has_types = "token_type_ids" in enc
        if marking == "token_type" and any(p is not None for p in predicates) and not has_types:
            raise ValueError(f"token: predicate_marking='token_type' but tokenizer {type(tokenizer).__name__} "
                             f"produces no token_type_ids; use predicate_marking='markers'")
        rows: dict[str, list] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                 "labels": [], "word_ids": [], "example_index": list(range(len(examples)))}
        if has_types:
            rows["token_type_ids"] = []
        truncated, empty_words = 0, []
        for r in range(len(word_lists)):
            word_ids = [originals[r][w] if w is not None else -1 for w in enc.word_ids(r)]
            targets, seen = [], set()
            for w in word_ids:
                if w >= 0 and w not in seen:
                    targets.append(tag_ids[r][w])
                    seen.add(w)
                else:
                    targets.append(-100)
            last = max(seen, default=-1)
            truncated += len(tag_ids[r]) - 1 - last
            empty_words.extend(word_lists_orig[r][w] for w in range(last) if w not in seen)
            rows["labels"].append(targets)
            rows["word_ids"].append(word_ids)
            if has_types:
                types = list(enc["token_type_ids"][r])
                if marking == "token_type" and predicates[r] is not None:
                    types = [1 if w == predicates[r] else 0 for w in word_ids]
                rows["token_type_ids"].append(types)
        if truncated:
            log.warning("token: %d words of %d examples lie past max_length=%d sub-tokens: they are not "
                        "trained on and are predicted 'O' when scored", truncated, len(examples), max_length)
        if empty_words:
            log.warning("token: %d words give no sub-token at all (e.g. %r): they are not trained on and are "
                        "predicted 'O' when scored", len(empty_words), empty_words[:3])
        return _collate(rows, tokenizer)

    def predict(self, model, encoded, examples, labels, *, batch_size=64, device=None):
        _check_rows(encoded, examples, self.name)
        labels = [str(x) for x in labels]
        preds: list[list[str]] = []
        for rows, out, batch in self._outputs(model, encoded, batch_size, device):
            logits = out.logits.float()
            if logits.shape[-1] != len(labels):
                raise ValueError(f"token: the model has {logits.shape[-1]} outputs but {len(labels)} labels "
                                 f"were given")
            best = logits.argmax(-1).cpu().tolist()
            word_ids = batch["word_ids"].cpu().tolist()
            for k, r in enumerate(rows.tolist()):
                n_words = len(examples[r]["tokens"])
                tags = ["O"] * n_words
                seen = set()
                for pos, w in enumerate(word_ids[k]):
                    if w >= 0 and w not in seen:
                        tags[w] = labels[best[k][pos]]
                        seen.add(w)
                preds.append(tags)
        return preds

    def score(self, predictions, examples, labels):
        known = {str(x) for x in labels}
        gold = []
        for i, ex in enumerate(examples):
            if ex.get("tags") is None:
                raise ValueError(f"token: {_name(ex, i)} has no gold tags to score against")
            gold.append(list(ex["tags"]))
            unknown = set(gold[-1]) - known
            if unknown:
                raise ValueError(_unknown_gold(self.name, ex, i, sorted(unknown)[0], labels))
        precision, recall, f1 = bio_entity_f1(gold, predictions)
        flat_gold = [t for seq in gold for t in seq]
        flat_pred = [t for seq in predictions for t in seq]
        return {"entity_f1": f1, "entity_precision": precision, "entity_recall": recall,
                "accuracy": accuracy(flat_gold, flat_pred), "n": len(gold)}


# ------------------------------------------------------------------------------------------------
# span classification (WSC coreference, WSD)

def _span_model_class():
    import torch
    from torch import nn

    class SpanClassifier(nn.Module):
        """Backbone + linear head over mean-pooled span states (see :mod:`~.types` docstring).

        Parameters
        ----------
        backbone : a transformers base model (``AutoModel``) returning ``last_hidden_state``.
        n_labels : number of classes.
        labels : optional class names, written to ``config.id2label``.

        Attributes
        ----------
        backbone, base_model : the transformer (``base_model`` as on transformers models).
        config : the backbone's config (``num_labels``/``id2label`` set).
        classifier : ``Linear(3 * hidden, n_labels)`` over ``[p1, p2, p1 * p2]``.
        """

        HEAD_WEIGHTS = "span_head.safetensors"
        HEAD_INFO = "span_head.json"

        def __init__(self, backbone, n_labels: int, labels: Sequence[str] | None = None):
            super().__init__()
            self.backbone = backbone
            self.config = backbone.config
            kwargs = _label_kwargs("span", n_labels, labels)
            self.config.num_labels = n_labels
            if "id2label" in kwargs:
                self.config.id2label, self.config.label2id = kwargs["id2label"], kwargs["label2id"]
            hidden = self.config.hidden_size
            self.dropout = nn.Dropout(getattr(self.config, "hidden_dropout_prob", 0.1) or 0.0)
            self.classifier = nn.Linear(3 * hidden, n_labels)
            std = getattr(self.config, "initializer_range", 0.02)
            nn.init.normal_(self.classifier.weight, std=std)
            nn.init.zeros_(self.classifier.bias)

        @property
        def base_model(self):
            return self.backbone

        def get_input_embeddings(self):
            return self.backbone.get_input_embeddings()

        @staticmethod
        def _pool(states, mask):
            mask = mask.to(states.dtype).unsqueeze(-1)                 # (B, L, 1)
            total = (states * mask).sum(dim=1)                         # (B, H)
            count = mask.sum(dim=1).clamp(min=1.0)
            return total / count                                       # zeros where the mask is empty

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, span1_mask=None,
                    span2_mask=None, labels=None, **kwargs):
            from transformers.modeling_outputs import SequenceClassifierOutput

            if span1_mask is None:
                raise ValueError("SpanClassifier: span1_mask is required")
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            states = self.backbone(**inputs).last_hidden_state        # (B, L, H)
            p1 = self._pool(states, span1_mask)
            p2 = self._pool(states, span2_mask) if span2_mask is not None else torch.zeros_like(p1)
            logits = self.classifier(self.dropout(torch.cat([p1, p2, p1 * p2], dim=-1)))
            loss = None
            if labels is not None:
                loss = nn.functional.cross_entropy(logits.float(), labels, ignore_index=-100)
            return SequenceClassifierOutput(loss=loss, logits=logits)

        def save_pretrained(self, folder, **kwargs) -> None:
            """Backbone as a transformers model directory (loadable with ``AutoModel``) + the head
            (``span_head.safetensors``, ``span_head.json``)."""
            import json
            from pathlib import Path

            from safetensors.torch import save_file

            folder = Path(folder)
            self.backbone.save_pretrained(str(folder), **kwargs)
            save_file({k: v.detach().cpu().contiguous() for k, v in self.classifier.state_dict().items()},
                      str(folder / self.HEAD_WEIGHTS))
            (folder / self.HEAD_INFO).write_text(json.dumps(
                {"n_labels": self.classifier.out_features, "labels": _labels_of_model(self)}, indent=1))

        @classmethod
        def from_pretrained(cls, folder):
            """Inverse of :meth:`save_pretrained`."""
            import json
            from pathlib import Path

            from safetensors.torch import load_file
            from transformers import AutoModel

            folder = Path(folder)
            info_file = folder / cls.HEAD_INFO
            if not info_file.is_file():
                raise FileNotFoundError(f"span model: {folder} has no {cls.HEAD_INFO} (not written by "
                                        f"SpanClassifier.save_pretrained)")
            info = json.loads(info_file.read_text())
            model = cls(AutoModel.from_pretrained(str(folder)), info["n_labels"], info.get("labels") or None)
            model.classifier.load_state_dict(load_file(str(folder / cls.HEAD_WEIGHTS)))
            return model

    return SpanClassifier


_SPAN_CLASS = None


def __getattr__(name: str):   # SpanClassifier without importing torch at module import
    global _SPAN_CLASS
    if name == "SpanClassifier":
        if _SPAN_CLASS is None:
            _SPAN_CLASS = _span_model_class()
        return _SPAN_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SpanTask(TaskType):
    """A label for one or two word spans of a sentence (:class:`SpanClassifier`)."""

    name = "span"
    main_metric = "accuracy"
    input_keys = TaskType.input_keys + ("span1_mask", "span2_mask")

    def build_model(self, base_path_or_name, n_labels, labels=None):
        from transformers import AutoModel

        _label_kwargs(self.name, n_labels, labels)
        backbone = _from_pretrained(AutoModel, base_path_or_name, self.name)
        return __getattr__("SpanClassifier")(backbone, n_labels, labels)

    @staticmethod
    def _span(ex: dict, i: int, key: str, n_words: int):
        span = ex.get(key)
        if span is None:
            if key == "span1":
                raise TaskEncodingError(f"span: {_name(ex, i)} has no span1")
            return None
        ok = (isinstance(span, (list, tuple)) and len(span) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in span))
        if not ok or not 0 <= span[0] < span[1] <= n_words:
            raise TaskEncodingError(f"span: {_name(ex, i)} has {key} {span!r}: must be [start, end) word "
                                    f"indices with 0 <= start < end <= {n_words} (the number of tokens)")
        return int(span[0]), int(span[1])

    def encode(self, examples, tokenizer, labels, max_length=None):
        max_length = max_length or self.default_max_length
        _check_examples(examples, self.name)
        _check_fast(tokenizer, self.name)
        index = _label_index(labels, self.name)
        budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
        rows: dict[str, list] = {"input_ids": [], "attention_mask": [], "span1_mask": [], "span2_mask": [],
                                 "labels": [], "example_index": list(range(len(examples)))}
        windowed = 0
        for i, ex in enumerate(examples):
            _require(ex, i, ("tokens", "span1"), self.name)
            words = _check_words(ex["tokens"], ex, i, self.name)
            s1 = self._span(ex, i, "span1", len(words))
            s2 = self._span(ex, i, "span2", len(words))
            rows["labels"].append(_label_id(index, ex.get("label"), ex, i, self.name))
            enc = tokenizer(words, is_split_into_words=True, truncation=False)
            first = 0
            if len(enc["input_ids"]) > max_length:
                first, last = self._window(enc.word_ids(), len(words), s1, s2, budget, ex, i, max_length)
                enc = tokenizer(words[first:last], is_split_into_words=True, truncation=True,
                                max_length=max_length)
                windowed += 1
            word_ids = [w + first if w is not None else -1 for w in enc.word_ids()]
            for key, span in (("span1_mask", s1), ("span2_mask", s2)):
                mask = [span is not None and span[0] <= w < span[1] for w in word_ids]
                if span is not None and not any(mask):
                    raise TaskEncodingError(f"span: {_name(ex, i)} {key[:5]} {list(span)} "
                                            f"({' '.join(words[span[0]:span[1]])!r}) has no sub-token")
                rows[key].append(mask)
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                if key in enc:
                    rows.setdefault(key, []).append(enc[key])
        if windowed:
            log.warning("span: %d of %d examples are longer than max_length=%d: each is cut to a window of "
                        "whole words around its spans", windowed, len(examples), max_length)
        return _collate(rows, tokenizer)

    @staticmethod
    def _window(word_ids, n_words, s1, s2, budget, ex, i, max_length):
        """[first, last) words around the spans whose sub-tokens fit in ``budget``."""
        counts = [0] * n_words
        for w in word_ids:
            if w is not None:
                counts[w] += 1
        lo = min(s1[0], s2[0]) if s2 else s1[0]
        hi = max(s1[1], s2[1]) if s2 else s1[1]
        used = sum(counts[lo:hi])
        if used > budget:
            raise TaskEncodingError(f"span: {_name(ex, i)}: its spans cover {used} sub-tokens, more than "
                                    f"max_length={max_length} allows; raise max_length")
        first, last = lo, hi
        grew = True
        while grew:
            grew = False
            if first > 0 and used + counts[first - 1] <= budget:
                first -= 1
                used += counts[first]
                grew = True
            if last < n_words and used + counts[last] <= budget:
                used += counts[last]
                last += 1
                grew = True
        return first, last

    predict = SentenceTask.predict
    score = SentenceTask.score


# ------------------------------------------------------------------------------------------------
# extractive question answering

class QATask(TaskType):
    """Answer span in the context (``AutoModelForQuestionAnswering``), SQuAD-scored."""

    name = "qa"
    main_metric = "f1"
    target_keys = ("start_positions", "end_positions")
    default_max_length = 384

    def __init__(self, max_answer_tokens: int = 30):
        self.max_answer_tokens = max_answer_tokens

    def __repr__(self) -> str:
        return f"QATask(max_answer_tokens={self.max_answer_tokens})"

    def build_model(self, base_path_or_name, n_labels=0, labels=None):
        from transformers import AutoModelForQuestionAnswering

        return _from_pretrained(AutoModelForQuestionAnswering, base_path_or_name, self.name)

    @staticmethod
    def _answers(ex: dict, i: int, context: str) -> list[tuple[int, int]]:
        answers = ex.get("answers")
        if answers is None:
            return []
        if not isinstance(answers, (list, tuple)):
            raise TaskEncodingError(f"qa: {_name(ex, i)} 'answers' must be a list of "
                                    f"{{'text', 'answer_start'}} dicts")
        spans = []
        for k, a in enumerate(answers):
            if not isinstance(a, dict) or "text" not in a or "answer_start" not in a:
                raise TaskEncodingError(f"qa: {_name(ex, i)} answer {k} must be a dict with 'text' and "
                                        f"'answer_start', got {a!r}")
            text, start = a["text"], a["answer_start"]
            if not isinstance(text, str) or not text.strip():
                raise TaskEncodingError(f"qa: {_name(ex, i)} answer {k} has an empty text")
            if isinstance(start, bool) or not isinstance(start, int):
                raise TaskEncodingError(f"qa: {_name(ex, i)} answer {k} answer_start {start!r} is not an integer")
            end = start + len(text)
            if start < 0 or end > len(context):
                raise TaskEncodingError(f"qa: {_name(ex, i)} answer {k} {text!r} at characters [{start}, {end}) "
                                        f"lies outside its context ({len(context)} characters)")
            if context[start:end] != text:
                raise TaskEncodingError(f"qa: {_name(ex, i)} answer {k} {text!r} does not match its context at "
                                        f"answer_start {start} (the context there reads "
                                        f"{context[start:end]!r})")
            spans.append((start, end))
        return spans

    def encode(self, examples, tokenizer, labels=(), max_length=None):
        max_length = max_length or self.default_max_length
        _check_examples(examples, self.name)
        _check_fast(tokenizer, self.name)
        questions, contexts, answer_spans = [], [], []
        for i, ex in enumerate(examples):
            _require(ex, i, ("question", "context"), self.name)
            questions.append(_text(ex, i, "question", self.name))
            contexts.append(_text(ex, i, "context", self.name))
            answer_spans.append(self._answers(ex, i, contexts[-1]))
        try:
            enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_length,
                            return_offsets_mapping=True)
        except Exception as exc:   # a question alone longer than max_length: name it
            for i, q in enumerate(questions):
                n_q = len(tokenizer(q)["input_ids"])
                if n_q + 2 >= max_length:
                    raise TaskEncodingError(f"qa: {_name(examples[i], i)}: its question alone has {n_q} "
                                            f"sub-tokens, too many for max_length={max_length}") from exc
            raise
        rows: dict[str, list] = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        for key in ("offset_mapping", "context_mask", "start_positions", "end_positions", "trainable"):
            rows[key] = []
        rows["example_index"] = list(range(len(examples)))
        left_out = 0
        for r in range(len(examples)):
            seq = enc.sequence_ids(r)
            context_mask = [s == 1 for s in seq]
            offsets = [tuple(o) if c else (0, 0) for o, c in zip(enc["offset_mapping"][r], context_mask)]
            positions = self._positions(answer_spans[r], offsets, context_mask)
            trainable = positions is not None
            if not trainable:
                left_out += bool(answer_spans[r])
                positions = (0, 0)
            rows["offset_mapping"].append(offsets)
            rows["context_mask"].append(context_mask)
            rows["start_positions"].append(positions[0])
            rows["end_positions"].append(positions[1])
            rows["trainable"].append(trainable)
        if left_out:
            log.warning("qa: %d of %d questions have their gold answer past max_length=%d sub-tokens of "
                        "question + context: they are left out of training (and kept for evaluation, "
                        "scored on the answer predicted from the truncated context)",
                        left_out, len(examples), max_length)
        return _collate(rows, tokenizer)

    @staticmethod
    def _positions(spans, offsets, context_mask):
        """(start token, end token) of the first answer that lies inside the window, else None."""
        tokens = [t for t, c in enumerate(context_mask) if c]
        if not tokens:
            return None
        window_end = offsets[tokens[-1]][1]
        for start_char, end_char in spans:
            if end_char > window_end:
                continue
            start = next((t for t in tokens if offsets[t][1] > start_char), None)
            end = next((t for t in reversed(tokens) if offsets[t][0] < end_char), None)
            if start is not None and end is not None and start <= end:
                return start, end
        return None

    def train_rows(self, encoded):
        import torch

        return torch.nonzero(encoded["trainable"], as_tuple=False).flatten()

    def predict(self, model, encoded, examples, labels=(), *, batch_size=64, device=None):
        import torch

        _check_rows(encoded, examples, self.name)
        answers: list[str] = []
        for rows, out, batch in self._outputs(model, encoded, batch_size, device):
            start, end = out.start_logits.float(), out.end_logits.float()      # (B, L)
            context = batch["context_mask"]
            length = start.shape[1]
            scores = start.unsqueeze(2) + end.unsqueeze(1)                     # (B, L, L): [b, s, e]
            s_idx = torch.arange(length, device=start.device)
            width = s_idx.unsqueeze(0) - s_idx.unsqueeze(1)                    # e - s
            valid = (width >= 0) & (width < self.max_answer_tokens)
            valid = valid.unsqueeze(0) & context.unsqueeze(2) & context.unsqueeze(1)
            scores = scores.masked_fill(~valid, float("-inf"))
            best = scores.flatten(1).argmax(dim=1).cpu()
            has_context = context.any(dim=1).cpu().tolist()
            offsets = batch["offset_mapping"].cpu()
            for k, r in enumerate(rows.tolist()):
                if not has_context[k]:
                    answers.append("")
                    continue
                s, e = divmod(int(best[k]), length)
                begin, stop = int(offsets[k, s, 0]), int(offsets[k, e, 1])
                answers.append(examples[r]["context"][begin:stop])
        return answers

    def score(self, predictions, examples, labels=()):
        gold = []
        for i, ex in enumerate(examples):
            texts = [a["text"] for a in (ex.get("answers") or [])]
            if not texts:
                raise ValueError(f"qa: {_name(ex, i)} has no gold answers to score against")
            gold.append(texts)
        return squad_scores(list(predictions), gold)


# ------------------------------------------------------------------------------------------------
# registry

#: type name -> task type (add a type by adding a class and an entry)
TASK_TYPES: dict[str, TaskType] = {t.name: t for t in (SentenceTask(), PairTask(), TokenTask(), SpanTask(),
                                                       QATask())}


def get_task_type(task_type: str | TaskType) -> TaskType:
    """The registered task type of a name (a :class:`TaskType` passes through)."""
    if isinstance(task_type, TaskType):
        return task_type
    try:
        return TASK_TYPES[task_type]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task type {task_type!r}; known: {sorted(TASK_TYPES)}") from None


def encode_task(task, tokenizer, max_length: int | None = None,
                splits: Sequence[str] | None = None) -> dict[str, dict]:
    """Encode the splits of a task (any object with ``type``, ``labels``, ``splits``, ``name``).

    Returns
    -------
    dict split name -> encoded dict (see the module docstring).
    """
    kind = get_task_type(task.type)
    names = list(splits) if splits is not None else list(task.splits)
    out = {}
    for split in names:
        if split not in task.splits:
            raise KeyError(f"task {task.name!r} has no split {split!r} (has {sorted(task.splits)})")
        try:
            out[split] = kind.encode(task.splits[split], tokenizer, task.labels, max_length)
        except TaskEncodingError as exc:
            raise TaskEncodingError(f"task {task.name!r}, split {split!r}: {exc}") from exc
    return out
