"""Scores of the NLU tasks: accuracy, macro-F1, BIO entity F1 (conlleval) and SQuAD EM/F1.

Plain Python over label sequences (no numpy, torch or sklearn needed); every function checks its
inputs and raises a ``ValueError`` that says what is wrong.

* :func:`accuracy`, :func:`macro_f1`: as ``sklearn.metrics.accuracy_score`` and
  ``f1_score(average="macro")`` (classes: those seen in gold or predictions unless ``labels`` is
  given; a class with no gold and no predicted member scores 0, as sklearn's ``zero_division=0``).
* :func:`bio_entities`, :func:`bio_entity_f1`: entity-level precision/recall/F1 with the conlleval
  convention: an entity is a maximal ``B-X I-X*`` run, and an ``I-X`` that follows ``O`` or a tag of
  another type starts a new entity (so ``O I-X I-X`` holds one ``X`` entity, ``B-X I-Y`` two).
  An entity counts as correct when its start, end and type all match a gold entity (micro over
  entities of every sequence).
* :func:`normalize_answer`, :func:`squad_em_f1`, :func:`squad_scores`: the SQuAD v1.1 evaluation
  (lower case, punctuation removed, articles ``a/an/the`` removed, whitespace collapsed; F1 over
  the bag of whitespace tokens; the maximum over the gold answers). For English this is exactly the
  official ``evaluate-v1.1.py``. CJK text, which has no spaces, is scored per character (each CJK
  character one token) and CJK/full-width punctuation is removed too; this is the usual
  character-level F1 of Chinese QA but not the longest-common-substring F1 of the official CMRC2018
  script.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Hashable, Sequence

__all__ = ["accuracy", "macro_f1", "bio_entities", "bio_entity_f1", "normalize_answer", "squad_em_f1",
           "squad_scores"]


def _check_pair(y_true: Sequence, y_pred: Sequence, what: str = "labels") -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{what}: {len(y_true)} gold but {len(y_pred)} predicted values")
    if len(y_true) == 0:
        raise ValueError(f"{what}: no values to score (empty gold and predictions)")


def accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Share of positions where the prediction equals the gold label.

    Parameters
    ----------
    y_true, y_pred : sequences of labels, shape (n,), n >= 1.

    Returns
    -------
    float in [0, 1].
    """
    _check_pair(y_true, y_pred)
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def macro_f1(y_true: Sequence[Hashable], y_pred: Sequence[Hashable],
             labels: Sequence[Hashable] | None = None) -> float:
    """Unweighted mean over classes of the per-class F1 = 2 TP / (2 TP + FP + FN).

    Parameters
    ----------
    y_true, y_pred : sequences of labels, shape (n,), n >= 1.
    labels : the classes to average over; default: every class present in ``y_true`` or ``y_pred``
        (sklearn's default). A listed class with neither gold nor predicted members scores 0.

    Returns
    -------
    float in [0, 1].
    """
    _check_pair(y_true, y_pred)
    classes = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred), key=repr)
    if not classes:
        raise ValueError("macro_f1: the list of labels is empty")
    scores = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return sum(scores) / len(scores)


def _split_tag(tag: str, where: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    if not isinstance(tag, str) or len(tag) < 3 or tag[:2] not in ("B-", "I-"):
        raise ValueError(f"{where}: tag {tag!r} is not BIO ('O', 'B-<type>' or 'I-<type>')")
    return tag[0], tag[2:]


def bio_entities(tags: Sequence[str], where: str = "tag sequence") -> list[tuple[int, int, str]]:
    """Entities of one BIO tag sequence with the conlleval convention.

    Parameters
    ----------
    tags : tags of one sentence, shape (n_words,): ``"O"``, ``"B-<type>"`` or ``"I-<type>"``.
    where : names the sequence in error messages.

    Returns
    -------
    list of ``(start, end, type)``, word indices with ``end`` exclusive, in order.
    """
    entities: list[tuple[int, int, str]] = []
    start, current = None, ""
    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag, f"{where}, position {i}")
        starts = prefix == "B" or (prefix == "I" and kind != current)   # I after O / other type
        ends_previous = current and (prefix != "I" or kind != current)
        if ends_previous:
            entities.append((start, i, current))
            start, current = None, ""
        if starts:
            start, current = i, kind
    if current:
        entities.append((start, len(tags), current))
    return entities


def bio_entity_f1(gold_tag_seqs: Sequence[Sequence[str]],
                  pred_tag_seqs: Sequence[Sequence[str]]) -> tuple[float, float, float]:
    """Entity-level precision, recall and F1 (micro over all entities), as conlleval.

    Parameters
    ----------
    gold_tag_seqs, pred_tag_seqs : per sentence, the BIO tags of its words; same number of
        sentences, and each pair of sequences of the same length.

    Returns
    -------
    precision, recall, f1 : floats in [0, 1]; 0 where their denominator is 0 (no predicted or no
        gold entity), as conlleval prints them.
    """
    if len(gold_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(f"bio_entity_f1: {len(gold_tag_seqs)} gold but {len(pred_tag_seqs)} predicted "
                         f"sequences")
    n_gold = n_pred = n_correct = 0
    for k, (gold, pred) in enumerate(zip(gold_tag_seqs, pred_tag_seqs)):
        if len(gold) != len(pred):
            raise ValueError(f"bio_entity_f1: sequence {k} has {len(gold)} gold but {len(pred)} "
                             f"predicted tags")
        g = set(bio_entities(gold, f"gold sequence {k}"))
        p = set(bio_entities(pred, f"predicted sequence {k}"))
        n_gold += len(g)
        n_pred += len(p)
        n_correct += len(g & p)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# CJK ideographs (unified, extension A, compatibility), kana and hangul: one token per character
_CJK = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af])")


def _is_cjk_punctuation(ch: str) -> bool:
    o = ord(ch)
    return (0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF0F or 0xFF1A <= o <= 0xFF20
            or 0xFF3B <= o <= 0xFF40 or 0xFF5B <= o <= 0xFF65)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, drop punctuation, drop articles, collapse whitespace.

    Punctuation is ASCII ``string.punctuation`` (as SQuAD) plus CJK and full-width punctuation.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION and not _is_cjk_punctuation(ch))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _answer_tokens(normalized: str) -> list[str]:
    return _CJK.sub(r" \1 ", normalized).split()


def squad_em_f1(prediction: str, gold_answers: Sequence[str]) -> tuple[float, float]:
    """Exact match and token F1 of one predicted answer, each the maximum over the gold answers.

    Parameters
    ----------
    prediction : the predicted answer text.
    gold_answers : the gold answer texts (at least one).

    Returns
    -------
    em, f1 : floats in [0, 1]. F1 is 0 when prediction and gold share no token (also when either
        normalises to nothing, as SQuAD v1.1).
    """
    if isinstance(gold_answers, str):
        raise ValueError("squad_em_f1: gold_answers must be a list of answer texts, not one string")
    if len(gold_answers) == 0:
        raise ValueError("squad_em_f1: no gold answers")
    pred_norm = normalize_answer(prediction)
    pred_tokens = _answer_tokens(pred_norm)
    best_em = best_f1 = 0.0
    for gold in gold_answers:
        gold_norm = normalize_answer(gold)
        best_em = max(best_em, float(pred_norm == gold_norm))
        gold_tokens = _answer_tokens(gold_norm)
        same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
        if same:
            precision, recall = same / len(pred_tokens), same / len(gold_tokens)
            best_f1 = max(best_f1, 2 * precision * recall / (precision + recall))
    return best_em, best_f1


def squad_scores(predictions: Sequence[str], gold_answer_lists: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean exact match and F1 over questions.

    Parameters
    ----------
    predictions : predicted answer per question, shape (n,).
    gold_answer_lists : gold answer texts per question, shape (n, variable).

    Returns
    -------
    dict with ``exact_match`` and ``f1`` (fractions in [0, 1], not percent) and ``n``.
    """
    _check_pair(gold_answer_lists, predictions, "squad_scores")
    pairs = [squad_em_f1(p, g) for p, g in zip(predictions, gold_answer_lists)]
    n = len(pairs)
    return {"exact_match": sum(e for e, _ in pairs) / n, "f1": sum(f for _, f in pairs) / n, "n": n}
