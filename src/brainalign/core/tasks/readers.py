"""Readers for the real NLU task sets that language models are tuned on.

Each reader turns one published task set, in the layout kept under ``<root>`` (the ``nlu/`` folder
of the shared data, see its README), into a :class:`TaskData`: a task name, a task *type*, the label
set and the examples of each split as plain dicts. The registry :data:`TASKS` maps a task name to
its :class:`TaskSpec`; :func:`load_task` loads one by name (optionally capped per split), and
:func:`from_hf_disk` reads any Hugging Face ``datasets`` folder written with ``save_to_disk``.

Task types and their example dicts
----------------------------------
``sentence``  ``{"text": str, "label": str}``
``pair``      ``{"text": str, "text_pair": str, "label": str}``
``token``     ``{"tokens": list[str], "tags": list[str]}``: one BIO (IOB2) tag per token;
              SRL examples add ``"predicate": int``, the index of the predicate token.
``span``      ``{"tokens": list[str], "span1": [start, end), "span2": [start, end) | None,
              "label": str}``: token-index spans, end exclusive (WSC: span1 the candidate noun
              phrase, span2 the pronoun; WSD: span1 the target word, span2 None, label the sense).
``qa``        ``{"id": str, "question": str, "context": str,
              "answers": [{"text": str, "answer_start": int}]}`` (SQuAD v1.1; character offsets).

Splits are ``"train"`` and ``"dev"``, plus ``"test"`` where the published test set is labelled.
Where a set has no dev split, or only one split is published, the split made here is deterministic
(it depends on the file contents only, never on a random state) and written in ``TaskData.notes``.
Labels are strings; ``TaskData.labels`` is the sorted label set of the train split (for ``token``:
``"O"`` then ``B-``/``I-`` of every entity or argument type seen in train).

Checks (errors are :class:`TaskFormatError`, a ``ValueError``, naming the file and line, or the
split and row): a malformed line or row, an empty text, token or label, tokens and tags of different
lengths, a tag that is not BIO (an ``I-X`` that follows neither ``B-X`` nor ``I-X``), a span outside
its tokens or whose text does not match, a QA answer that is not the context's text at its offset,
and a label (for ``token``: an entity type) of dev or test that never occurs in train.

The ten task kinds of the English decoding study (method card 2 of the design) are ``emotion``, ``sst2``
(sentiment), ``squad`` (question answering), ``srl`` (semantic role labelling), ``wsd`` (word sense
disambiguation), ``wsc`` (coreference), ``conll2003`` (named entities), ``rte`` (inference),
``conll2000`` (chunking) and ``mrpc`` (paraphrase); ``trec`` (question type) is an extra. Where the
sets here differ from the usual published ones (SQuAD without its train file, PropBank frame-file
examples instead of annotated running text, the SENSEVAL-2 lexical sample of four words, MRPC
without GLUE's dev ids) the ``notes`` of each task say so.
"""
from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

TASK_TYPES = ("sentence", "pair", "token", "span", "qa")
#: task types whose examples carry one label each (what :func:`majority_baseline` scores)
LABELLED_TYPES = ("sentence", "pair", "span")
SPLITS = ("train", "dev", "test")

SST2_LABELS = {"0": "negative", "1": "positive"}  # GLUE's label names
MRPC_LABELS = {"0": "not_equivalent", "1": "equivalent"}  # GLUE's label names

SQUAD_DEV_FRACTION = 0.2
SRL_DEV_FRACTION = 0.1
WSD_DEV_FRACTION = 0.2


class TaskFormatError(ValueError):
    """A task file (or a loaded task) is malformed; the message names the file and line, or the
    task, split and row, and what is wrong."""


@dataclass
class TaskData:
    """One NLU task: its label set and the examples of each split.

    Attributes
    ----------
    name : str
        Task name, e.g. ``"sst2"``.
    type : str
        One of :data:`TASK_TYPES`; fixes the keys of every example dict (module docstring).
    labels : list of str
        Sorted label set of the train split; for ``token`` the BIO tag set (``"O"`` first, then
        ``B-X``, ``I-X`` for every type ``X`` in train); ``[]`` for ``qa``.
    splits : dict of str to list of dict
        ``"train"``, ``"dev"`` (and ``"test"`` when labelled) -> examples, in file order.
    source : str
        The files read (relative to the task root; ``zip:member`` for zip members).
    notes : str
        How the set differs from the published study's, splits made here, examples skipped.
    """

    name: str
    type: str
    labels: list[str]
    splits: dict[str, list[dict]]
    source: str
    notes: str = ""

    def counts(self) -> dict[str, int]:
        """Number of examples per split, ``{split: n}``."""
        return {split: len(rows) for split, rows in self.splits.items()}

    def label_counts(self, split: str) -> Counter:
        """Counter of the labels of one split (``sentence``, ``pair``, ``span``) or of its tags
        (``token``: every token's tag)."""
        rows = self.splits[split]
        if self.type == "token":
            return Counter(tag for row in rows for tag in row["tags"])
        if self.type == "qa":
            raise ValueError(f"task {self.name!r} (qa) has no labels")
        return Counter(row["label"] for row in rows)


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: what it is and how to read it from the task root.

    Attributes
    ----------
    name : str
        Registry key (``TaskData.name``).
    type : str
        Task type (:data:`TASK_TYPES`).
    kind : str
        The task kind it stands for, e.g. ``"sentiment analysis"``.
    files : tuple of str
        Files it reads, relative to the task root (checked before reading).
    reader : callable
        ``reader(root: Path) -> TaskData``.
    study : bool
        Whether it is one of the ten task kinds of the English decoding study.
    """

    name: str
    type: str
    kind: str
    files: tuple[str, ...]
    reader: Callable[[Path], TaskData] = field(repr=False)
    study: bool = True

    def load(self, root: str | Path) -> TaskData:
        """Read the task from ``root`` (the ``nlu/`` folder). Raises ``FileNotFoundError``
        naming the first missing file."""
        root = Path(root)
        for rel in self.files:
            if not (root / rel).is_file():
                raise FileNotFoundError(f"task {self.name!r}: {root / rel} not found (the task root "
                                        f"must hold {', '.join(self.files)})")
        task = self.reader(root)
        validate_task(task)
        return task


# ----------------------------------------------------------------------------------------------
# shared helpers


def _lines(text: str) -> list[str]:
    """Lines of a text file without line ends (LF or CRLF); a final line end adds no line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise TaskFormatError(f"{path}: not {encoding} text ({err})") from None


def _zip_text(path: Path, member: str, encoding: str = "utf-8") -> str:
    with zipfile.ZipFile(path) as zf:
        try:
            raw = zf.read(member)
        except KeyError:
            raise FileNotFoundError(f"{path}: member {member!r} not in the zip") from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise TaskFormatError(f"{path}:{member}: not {encoding} text ({err})") from None


def _hash_key(key: str) -> str:
    """Stable hash of a string (md5 hex), for splits that must not depend on file order."""
    return hashlib.md5(key.encode("utf-8")).hexdigest()


def _dev_keys(keys: Iterable[str], fraction: float) -> set[str]:
    """The ``round(fraction * n)`` keys with the smallest md5 hashes (ties by key)."""
    keys = sorted(set(keys), key=lambda k: (_hash_key(k), k))
    return set(keys[: int(round(fraction * len(keys)))])


def _bio_type(tag: str) -> str | None:
    """Type ``X`` of ``B-X``/``I-X``, None for ``O``; raises ValueError for anything else."""
    if tag == "O":
        return None
    if len(tag) > 2 and tag[:2] in ("B-", "I-"):
        return tag[2:]
    raise ValueError(f"tag {tag!r} is not O, B-<type> or I-<type>")


def bio_error(tags: list[str]) -> str | None:
    """What makes ``tags`` invalid BIO (IOB2), or None when they are valid.

    Parameters
    ----------
    tags : list of str, length n_tokens
        ``"O"``, ``"B-X"`` or ``"I-X"``.

    Returns
    -------
    str or None
        E.g. ``"tag 3 'I-PER' follows 'O'"``.
    """
    prev = "O"
    for i, tag in enumerate(tags):
        try:
            kind = _bio_type(tag)
        except ValueError as err:
            return f"tag {i}: {err}"
        if tag.startswith("I-") and (prev == "O" or _bio_type(prev) != kind):
            return f"tag {i} {tag!r} follows {prev!r}"
        prev = tag
    return None


def iob1_to_bio(tags: list[str]) -> tuple[list[str], int]:
    """Convert IOB1 tags (``B-`` only between two adjacent chunks of one type) to BIO (IOB2).

    Parameters
    ----------
    tags : list of str, length n_tokens

    Returns
    -------
    bio : list of str, length n_tokens
        Every chunk starts with ``B-``. Already valid BIO tags come back unchanged.
    n_changed : int
        How many ``I-X`` tags became ``B-X``.
    """
    out, changed, prev = [], 0, "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
            changed += 1
        out.append(tag)
        prev = tag
    return out, changed


def _bio_labels(types: Iterable[str]) -> list[str]:
    labels = ["O"]
    for kind in sorted(set(types)):
        labels += [f"B-{kind}", f"I-{kind}"]
    return labels


def _label_of(example: dict, task_type: str) -> list[str]:
    """The labels (sentence/pair/span) or tag types (token) one example carries."""
    if task_type == "token":
        return [t[2:] for t in example["tags"] if t != "O"]
    if task_type == "qa":
        return []
    return [example["label"]]


def _check_label_sets(name: str, task_type: str, splits: dict[str, list[dict]], source: str) -> None:
    """Every label (token: every tag type) of dev/test must occur in train."""
    if task_type == "qa":
        return
    train = {lab for ex in splits.get("train", []) for lab in _label_of(ex, task_type)}
    what = "tag type" if task_type == "token" else "label"
    for split, rows in splits.items():
        if split == "train":
            continue
        for i, ex in enumerate(rows):
            for lab in _label_of(ex, task_type):
                if lab not in train:
                    raise TaskFormatError(f"task {name!r} ({source}): {what} {lab!r} occurs in split "
                                          f"{split!r} (row {i}) but never in 'train'")


def _labels_from_train(task_type: str, train: list[dict]) -> list[str]:
    if task_type == "qa":
        return []
    found = {lab for ex in train for lab in _label_of(ex, task_type)}
    return _bio_labels(found) if task_type == "token" else sorted(found)


def _make_task(name: str, task_type: str, splits: dict[str, list[dict]], source: str,
               notes: str = "") -> TaskData:
    _check_label_sets(name, task_type, splits, source)
    return TaskData(name=name, type=task_type, labels=_labels_from_train(task_type, splits["train"]),
                    splits=splits, source=source, notes=notes)


def _nonempty(value, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskFormatError(f"{where}: empty {what}")
    return value


def validate_task(task: TaskData) -> None:
    """Check a :class:`TaskData` against its type's example layout (module docstring).

    Raises
    ------
    TaskFormatError
        Naming the task, split and row: an unknown type, a missing key, an empty text, token or
        label, tokens and tags of different lengths, tags that are not BIO, a span outside its
        tokens, a QA answer that is not the context's text at its offset, a dev/test label absent
        from train, a ``train`` or ``dev`` split missing.
    """
    if task.type not in TASK_TYPES:
        raise TaskFormatError(f"task {task.name!r}: type {task.type!r} is not one of {TASK_TYPES}")
    for split in ("train", "dev"):
        if split not in task.splits:
            raise TaskFormatError(f"task {task.name!r}: no {split!r} split (has {sorted(task.splits)})")
    keys = {"sentence": ("text", "label"), "pair": ("text", "text_pair", "label"),
            "token": ("tokens", "tags"), "span": ("tokens", "span1", "span2", "label"),
            "qa": ("id", "question", "context", "answers")}[task.type]
    for split, rows in task.splits.items():
        for i, ex in enumerate(rows):
            where = f"task {task.name!r}, split {split!r}, row {i}"
            missing = [k for k in keys if k not in ex]
            if missing:
                raise TaskFormatError(f"{where}: missing keys {missing} (a {task.type} example has {keys})")
            if task.type in ("sentence", "pair"):
                _nonempty(ex["text"], where, "text")
                if task.type == "pair":
                    _nonempty(ex["text_pair"], where, "text_pair")
                _nonempty(ex["label"], where, "label")
            elif task.type in ("token", "span"):
                toks = ex["tokens"]
                if not toks:
                    raise TaskFormatError(f"{where}: no tokens")
                for j, tok in enumerate(toks):
                    if not isinstance(tok, str) or not tok.strip():
                        raise TaskFormatError(f"{where}: token {j} is empty")
                if task.type == "token":
                    tags = ex["tags"]
                    if len(tags) != len(toks):
                        raise TaskFormatError(f"{where}: {len(toks)} tokens but {len(tags)} tags")
                    err = bio_error(tags)
                    if err:
                        raise TaskFormatError(f"{where}: not BIO: {err}")
                    if "predicate" in ex and not 0 <= ex["predicate"] < len(toks):
                        raise TaskFormatError(f"{where}: predicate {ex['predicate']} outside "
                                              f"{len(toks)} tokens")
                else:
                    _nonempty(ex["label"], where, "label")
                    for key in ("span1", "span2"):
                        span = ex[key]
                        if span is None and key == "span2":
                            continue
                        if (span is None or len(span) != 2 or not 0 <= span[0] < span[1] <= len(toks)):
                            raise TaskFormatError(f"{where}: {key} {span} is not a [start, end) "
                                                  f"inside {len(toks)} tokens")
            else:
                _nonempty(ex["question"], where, "question")
                _nonempty(ex["context"], where, "context")
                _check_answers(ex, where)
    _check_label_sets(task.name, task.type, task.splits, task.source)


def _check_answers(ex: dict, where: str) -> None:
    answers = ex["answers"]
    if not answers:
        raise TaskFormatError(f"{where}: question {ex['id']!r} has no answers")
    ctx = ex["context"]
    for k, ans in enumerate(answers):
        text, start = ans.get("text"), ans.get("answer_start")
        if not isinstance(text, str) or not text or not isinstance(start, int):
            raise TaskFormatError(f"{where}: question {ex['id']!r} answer {k} is not "
                                  f"{{'text': str, 'answer_start': int}}: {ans!r}")
        if not 0 <= start <= len(ctx) - len(text):
            raise TaskFormatError(f"{where}: question {ex['id']!r} answer {k} {text!r} at {start} "
                                  f"lies outside its context ({len(ctx)} characters)")
        if ctx[start:start + len(text)] != text:
            raise TaskFormatError(f"{where}: question {ex['id']!r} answer {k} {text!r} does not match "
                                  f"its context at {start}: {ctx[start:start + len(text)]!r}")


# ----------------------------------------------------------------------------------------------
# sentence and pair tasks


def _read_emotion_file(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(_lines(_read_text(path)), 1):
        if ";" not in line:
            raise TaskFormatError(f"{path}:{n}: expected 'text;label', got {line[:80]!r}")
        text, label = line.rsplit(";", 1)
        _nonempty(text, f"{path}:{n}", "text")
        _nonempty(label, f"{path}:{n}", "label")
        rows.append({"text": text, "label": label.strip()})
    return rows


def read_emotion(root: Path) -> TaskData:
    """dair-ai emotion (CARER tweets): ``emotion/{train,val,test}.txt``, ``text;label`` lines.
    dev = ``val.txt``; test is labelled and kept."""
    splits = {s: _read_emotion_file(root / "emotion" / f"{f}.txt")
              for s, f in (("train", "train"), ("dev", "val"), ("test", "test"))}
    return _make_task("emotion", "sentence", splits, "emotion/train.txt, emotion/val.txt, emotion/test.txt",
                      "dev = val.txt; test.txt is labelled and kept as 'test'. 6 labels.")


def _read_tsv_labelled(path: Path, label_names: dict[str, str]) -> list[dict]:
    lines = _lines(_read_text(path))
    if not lines:
        raise TaskFormatError(f"{path}: empty file")
    header = lines[0].split("\t")
    if "label" not in header:
        raise TaskFormatError(f"{path}:1: header {header} has no 'label' column")
    text_cols = [c for c in header if c in ("sentence", "content", "text")]
    if len(text_cols) != 1:
        raise TaskFormatError(f"{path}:1: header {header} needs one text column "
                              f"('sentence', 'content' or 'text')")
    i_label, i_text = header.index("label"), header.index(text_cols[0])
    rows = []
    for n, line in enumerate(lines[1:], 2):
        cols = line.split("\t")
        if len(cols) != len(header):
            raise TaskFormatError(f"{path}:{n}: {len(cols)} tab-separated columns, the header has "
                                  f"{len(header)}")
        label = cols[i_label].strip()
        if label not in label_names:
            raise TaskFormatError(f"{path}:{n}: label {label!r} is not one of {sorted(label_names)}")
        rows.append({"text": _nonempty(cols[i_text], f"{path}:{n}", "sentence"),
                     "label": label_names[label]})
    return rows


def read_sst2(root: Path) -> TaskData:
    """GLUE SST-2: ``SST2/{train,dev,test}.tsv`` with a header naming a ``label`` column and a
    text column (``sentence`` or ``content``); labels 0/1 -> ``negative``/``positive``. The test
    file is read only when it carries labels (this copy does)."""
    splits = {s: _read_tsv_labelled(root / "SST2" / f"{s}.tsv", SST2_LABELS) for s in ("train", "dev")}
    files = ["SST2/train.tsv", "SST2/dev.tsv"]
    notes = "labels 0/1 -> negative/positive (GLUE's names)."
    test = root / "SST2" / "test.tsv"
    if test.is_file() and "label" in (_lines(_read_text(test)) or [""])[0].split("\t"):
        splits["test"] = _read_tsv_labelled(test, SST2_LABELS)
        files.append("SST2/test.tsv")
        notes += (" This copy's test.tsv is labelled (the SST binary test labels; GLUE's own test file "
                  "has none): kept as 'test'.")
    return _make_task("sst2", "sentence", splits, ", ".join(files), notes)


def _read_mrpc_file(path: Path) -> list[dict]:
    text = _read_text(path, "utf-8-sig")
    lines = _lines(text)
    expected = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    if not lines or lines[0].split("\t") != expected:
        raise TaskFormatError(f"{path}:1: expected the header {expected}")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        cols = line.split("\t")  # quoting off: sentences hold bare double quotes
        if len(cols) != 5:
            raise TaskFormatError(f"{path}:{n}: {len(cols)} tab-separated columns, expected 5")
        if cols[0] not in MRPC_LABELS:
            raise TaskFormatError(f"{path}:{n}: Quality {cols[0]!r} is not 0 or 1")
        rows.append({"text": _nonempty(cols[3], f"{path}:{n}", "#1 String"),
                     "text_pair": _nonempty(cols[4], f"{path}:{n}", "#2 String"),
                     "label": MRPC_LABELS[cols[0]]})
    return rows


def read_mrpc(root: Path) -> TaskData:
    """MSR paraphrase corpus: ``mrpc/msr_paraphrase_{train,test}.txt`` (BOM, CRLF, tabs, quoting
    off). dev = the test file; Quality 1/0 -> ``equivalent``/``not_equivalent``."""
    splits = {"train": _read_mrpc_file(root / "mrpc" / "msr_paraphrase_train.txt"),
              "dev": _read_mrpc_file(root / "mrpc" / "msr_paraphrase_test.txt")}
    return _make_task("mrpc", "pair", splits, "mrpc/msr_paraphrase_train.txt, mrpc/msr_paraphrase_test.txt",
                      "dev = the MSR test file (1,725 pairs): GLUE's dev (408 train pairs) cannot be "
                      "rebuilt, its id list is not here, so all 4,076 train pairs are train. "
                      "Quality 1/0 -> equivalent/not_equivalent (GLUE's names).")


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    out = []
    for n, line in enumerate(_lines(_read_text(path)), 1):
        if not line.strip():
            raise TaskFormatError(f"{path}:{n}: empty line")
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as err:
            raise TaskFormatError(f"{path}:{n}: not JSON ({err})") from None
    return out


def _read_rte_file(path: Path) -> list[dict]:
    rows = []
    for n, obj in _read_jsonl(path):
        where = f"{path}:{n}"
        if obj.get("label") not in ("entailment", "not_entailment"):
            raise TaskFormatError(f"{where}: label {obj.get('label')!r} is not entailment/not_entailment")
        rows.append({"text": _nonempty(obj.get("premise"), where, "premise"),
                     "text_pair": _nonempty(obj.get("hypothesis"), where, "hypothesis"),
                     "label": obj["label"]})
    return rows


def read_rte(root: Path) -> TaskData:
    """SuperGLUE RTE: ``superglue/RTE/{train,val}.jsonl`` (premise, hypothesis, label).
    dev = val; the test file has no labels and is not read."""
    splits = {"train": _read_rte_file(root / "superglue/RTE/train.jsonl"),
              "dev": _read_rte_file(root / "superglue/RTE/val.jsonl")}
    return _make_task("rte", "pair", splits, "superglue/RTE/train.jsonl, superglue/RTE/val.jsonl",
                      "dev = val.jsonl; test.jsonl is unlabelled (not read).")


def _read_trec_file(path: Path, member: str) -> list[dict]:
    rows = []
    # the UIUC release is ISO-8859-1 (one byte above 127 in train); latin-1 never fails
    for n, line in enumerate(_lines(_zip_text(path, member, "latin-1")), 1):
        where = f"{path}:{member}:{n}"
        head, _, question = line.partition(" ")
        coarse, colon, fine = head.partition(":")
        if not colon or not coarse or not fine:
            raise TaskFormatError(f"{where}: expected 'COARSE:fine question', got {line[:80]!r}")
        rows.append({"text": _nonempty(question.strip(), where, "question"), "label": coarse,
                     "fine_label": head})
    return rows


def read_trec(root: Path) -> TaskData:
    """TREC question classification (Li & Roth): NLTK ``qc.zip`` (train 5,452 / TREC-10 500).
    Label = the coarse class (ABBR, DESC, ENTY, HUM, LOC, NUM); ``fine_label`` keeps ``COARSE:fine``.
    dev = test.txt."""
    path = root / "nltk_data/qc.zip"
    splits = {"train": _read_trec_file(path, "qc/train.txt"), "dev": _read_trec_file(path, "qc/test.txt")}
    return _make_task("trec", "sentence", splits, "nltk_data/qc.zip:qc/train.txt, qc/test.txt",
                      "coarse labels (6); dev = the TREC-10 test questions; extra task, not one of the "
                      "study's ten.")


# ----------------------------------------------------------------------------------------------
# QA


def read_squad(root: Path) -> TaskData:
    """SQuAD v1.1 dev (``squad/dev-v1.1.json``) split by article into train and dev.

    The articles sorted by the md5 of their title give dev the first
    ``round(0.2 * n_articles)`` (10 of 48) and train the rest; every answer span is checked
    against its context (error naming the article and question id)."""
    path = root / "squad" / "dev-v1.1.json"
    try:
        data = json.loads(_read_text(path))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise TaskFormatError(f"{path}: not a SQuAD JSON with a 'data' list ({err})") from None
    titles = [a.get("title", f"article {i}") for i, a in enumerate(data)]
    if len(set(titles)) != len(titles):
        raise TaskFormatError(f"{path}: article titles are not unique")
    dev_titles = _dev_keys(titles, SQUAD_DEV_FRACTION)
    splits: dict[str, list[dict]] = {"train": [], "dev": []}
    for title, article in zip(titles, data):
        for p, para in enumerate(article.get("paragraphs", [])):
            ctx = para.get("context", "")
            for qa in para.get("qas", []):
                where = f"{path}: article {title!r} paragraph {p}"
                qid = qa.get("id")
                _nonempty(qid, where, "question id")
                ex = {"id": qid, "question": _nonempty(qa.get("question"), f"{where} question {qid}",
                                                         "question"),
                      "context": _nonempty(ctx, where, "context"),
                      "answers": [{"text": a.get("text"), "answer_start": a.get("answer_start")}
                                  for a in qa.get("answers", [])]}
                _check_answers(ex, where)
                splits["dev" if title in dev_titles else "train"].append(ex)
    n_dev = len(dev_titles)
    return _make_task("squad", "qa", splits, "squad/dev-v1.1.json",
                      f"only the official dev file is here (SQuAD's 87,599-question train file is not): "
                      f"it is split by article, {len(titles) - n_dev} train / {n_dev} dev articles "
                      f"(dev = the {n_dev} titles with the smallest md5 hash: "
                      f"{', '.join(sorted(dev_titles))}). Every question keeps all its annotators' answers.")


# ----------------------------------------------------------------------------------------------
# token tasks


def _read_conll(text: str, where: str, n_cols: int, tag_col: int) -> list[tuple[int, list[str], list[str]]]:
    """Sentences ``(first line number, tokens, tags)`` of a CoNLL column file; blank lines and
    ``-DOCSTART-`` lines end a sentence."""
    out, toks, tags, first = [], [], [], 0
    for n, line in enumerate(_lines(text), 1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if toks:
                out.append((first, toks, tags))
            toks, tags = [], []
            continue
        if len(cols) != n_cols:
            raise TaskFormatError(f"{where}:{n}: {len(cols)} columns, expected {n_cols} "
                                  f"({line[:80]!r})")
        try:
            _bio_type(cols[tag_col])
        except ValueError as err:
            raise TaskFormatError(f"{where}:{n}: {err}") from None
        if not toks:
            first = n
        toks.append(cols[0])
        tags.append(cols[tag_col])
    if toks:
        out.append((first, toks, tags))
    return out


def _read_conll2003_file(path: Path) -> tuple[list[dict], int]:
    rows, changed = [], 0
    for _, toks, tags in _read_conll(_read_text(path), str(path), 4, 3):
        bio, k = iob1_to_bio(tags)
        changed += k
        rows.append({"tokens": toks, "tags": bio})
    return rows, changed


def read_conll2003(root: Path) -> TaskData:
    """CoNLL-2003 English NER: ``conll2003/eng.{train,testa,testb}`` (token POS chunk NER).
    dev = testa, test = testb. IOB1 tags are converted to BIO (IOB2)."""
    splits, changed = {}, {}
    for split, suffix in (("train", "train"), ("dev", "testa"), ("test", "testb")):
        splits[split], changed[split] = _read_conll2003_file(root / "conll2003" / f"eng.{suffix}")
    n = sum(changed.values())
    return _make_task("conll2003", "token", splits,
                      "conll2003/eng.train, conll2003/eng.testa, conll2003/eng.testb",
                      f"dev = eng.testa, test = eng.testb. The original tags are IOB1; they are converted "
                      f"to BIO (IOB2): {n} I- tags became B- in this copy "
                      f"({', '.join(f'{s} {k}' for s, k in changed.items())}; 0 means the copy was "
                      f"already IOB2). 4 types PER/ORG/LOC/MISC.")


def _read_bio_conll(path: Path, member: str, n_cols: int, tag_col: int) -> list[dict]:
    where = f"{path}:{member}"
    rows = []
    for first, toks, tags in _read_conll(_zip_text(path, member), where, n_cols, tag_col):
        err = bio_error(tags)
        if err:
            raise TaskFormatError(f"{where}: sentence starting at line {first}: not BIO: {err}")
        rows.append({"tokens": toks, "tags": tags})
    return rows


def read_conll2000(root: Path) -> TaskData:
    """CoNLL-2000 chunking: NLTK ``conll2000.zip`` (token POS chunk, BIO chunk tags).
    dev = test.txt."""
    path = root / "nltk_data/conll2000.zip"
    splits = {"train": _read_bio_conll(path, "conll2000/train.txt", 3, 2),
              "dev": _read_bio_conll(path, "conll2000/test.txt", 3, 2)}
    return _make_task("conll2000", "token", splits, "nltk_data/conll2000.zip:conll2000/train.txt, test.txt",
                      "dev = the CoNLL-2000 test set (WSJ section 20); 11 chunk types. Tag types are "
                      "checked across splits, tags are not: dev has I-LST, train only B-LST.")


def _srl_example(ex: ET.Element) -> tuple[dict | None, str]:
    """One PropBank ``<example>`` -> (token example, "") or (None, reason it is skipped)."""
    pb = ex.find("propbank")
    rel = pb.find("rel") if pb is not None else None
    if rel is None:
        return None, "not annotated (no <rel>)"
    text = ex.find("text")
    toks = (text.text or "").split() if text is not None else []
    if not toks:
        return None, "empty text"
    try:
        rel_idx = [int(x) for x in (rel.get("relloc") or "").split()]
    except ValueError:
        return None, "predicate position unknown"
    if not rel_idx or any(not 0 <= i < len(toks) for i in rel_idx):
        return None, "predicate position out of range"
    if " ".join(toks[i] for i in rel_idx) != " ".join((rel.text or "").split()):
        return None, "predicate text does not match its position"
    tags = ["O"] * len(toks)
    for k, i in enumerate(rel_idx):
        tags[i] = "I-V" if k and rel_idx[k - 1] == i - 1 else "B-V"
    for arg in pb.findall("arg"):
        start, end = arg.get("start", ""), arg.get("end", "")
        if not (start.isdigit() and end.isdigit()):
            return None, "argument position unknown ('?')"
        start, end = int(start), int(end)  # inclusive
        if not 0 <= start <= end < len(toks):
            return None, "argument span out of range"
        if " ".join(toks[start:end + 1]) != " ".join((arg.text or "").split()):
            return None, "argument text does not match its span"
        if any(t != "O" for t in tags[start:end + 1]):
            return None, "overlapping spans (argument/argument or argument/predicate)"
        kind = arg.get("type") or ""
        if not kind.strip():
            return None, "argument without a type"
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end + 1):
            tags[i] = f"I-{kind}"
    return {"tokens": toks, "tags": tags, "predicate": rel_idx[0]}, ""


def read_srl(root: Path) -> TaskData:
    """Semantic role labelling from the annotated examples of the PropBank 3.4 frame files.

    Each ``<example>`` with a ``<rel>`` becomes tokens (``<text>`` split on white space), BIO tags
    of its argument spans (``<arg start end>``, inclusive) and ``B-V`` (``I-V`` for the following
    tokens of a multi-word predicate) at the predicate, and ``"predicate"``: the first predicate
    token. Examples with an unknown, out-of-range, mismatching or overlapping span are skipped and
    counted in ``notes``. Split by frameset file: the files sorted by the md5 of their name give
    dev the first ``round(0.1 * n_files)``; a dev file holding an argument type no train file
    holds is moved to train (so every dev tag type occurs in train).
    """
    path = root / "propbank_frames/propbank-frames-3.4.0.zip"
    per_file: dict[str, list[dict]] = {}
    skipped: Counter = Counter()
    n_examples = 0
    with zipfile.ZipFile(path) as zf:
        members = sorted(m for m in zf.namelist() if "/frames/" in m and m.endswith(".xml"))
        if not members:
            raise TaskFormatError(f"{path}: no frames/*.xml members")
        for member in members:
            try:
                xml = ET.fromstring(zf.read(member))
            except ET.ParseError as err:
                raise TaskFormatError(f"{path}:{member}: not well-formed XML ({err})") from None
            rows = []
            for ex in xml.iter("example"):
                n_examples += 1
                row, why = _srl_example(ex)
                if row is None:
                    skipped[why] += 1
                else:
                    rows.append(row)
            per_file[member.rsplit("/", 1)[-1]] = rows
    dev_files = _dev_keys(per_file, SRL_DEV_FRACTION)
    train_types = {t[2:] for f, rows in per_file.items() if f not in dev_files
                   for r in rows for t in r["tags"] if t != "O"}
    moved = sorted(f for f in dev_files
                   if any(t != "O" and t[2:] not in train_types for r in per_file[f] for t in r["tags"]))
    dev_files -= set(moved)
    splits = {"train": [r for f in sorted(per_file) if f not in dev_files for r in per_file[f]],
              "dev": [r for f in sorted(per_file) if f in dev_files for r in per_file[f]]}
    kept = len(splits["train"]) + len(splits["dev"])
    skip_text = "; ".join(f"{why}: {k}" for why, k in sorted(skipped.items()))
    notes = (f"PropBank 3.4 frame-file examples (a few per predicate sense, mixed sources, not running "
             f"text as in CoNLL-2005/2012 or OntoNotes, which are not here): {n_examples} examples in "
             f"{len(per_file)} files, {kept} kept, {n_examples - kept} skipped ({skip_text}). Split by "
             f"frameset file: {len(per_file) - len(dev_files)} train / {len(dev_files)} dev files "
             f"(dev = the {round(SRL_DEV_FRACTION * len(per_file))} file names with the smallest md5 "
             f"hash, less {len(moved)} moved to train because they hold an argument type no train file "
             f"holds: {', '.join(moved) or 'none'}). Tags: B-/I-<argument type>, B-V/I-V at the "
             f"predicate (a discontinuous predicate has a second B-V); 'predicate' = its first token.")
    return _make_task("srl", "token", splits, "propbank_frames/propbank-frames-3.4.0.zip:frames/*.xml", notes)


# ----------------------------------------------------------------------------------------------
# span tasks


def _norm_words(text: str) -> list[str]:
    """Lower-cased words without surrounding punctuation or a possessive 's (span text check)."""
    out = []
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'()[]{}`")
        if word.endswith("'s") or word.endswith("’s"):
            word = word[:-2]
        out.append(word)
    return out


def _read_wsc_file(path: Path, corrections: list[str]) -> list[dict]:
    rows = []
    for n, obj in _read_jsonl(path):
        where = f"{path}:{n}"
        text = _nonempty(obj.get("text"), where, "text")
        target = obj.get("target") or {}
        if not isinstance(obj.get("label"), bool):
            raise TaskFormatError(f"{where}: label {obj.get('label')!r} is not true/false")
        raw = text.split(" ")  # SuperGLUE indexes the words of text.split(" ")
        # words left empty by double spaces are dropped; raw index -> kept index
        kept = [i for i, w in enumerate(raw) if w.strip()]
        index_of = {raw_i: k for k, raw_i in enumerate(kept)}
        toks = [raw[i] for i in kept]
        spans = {}
        for key in ("span1", "span2"):
            idx, span_text = target.get(f"{key}_index"), target.get(f"{key}_text")
            if not isinstance(idx, int) or not isinstance(span_text, str) or not span_text.split():
                raise TaskFormatError(f"{where}: target has no valid {key}_index / {key}_text")
            want, m = _norm_words(span_text), len(span_text.split())

            def matches(raw_i: int) -> bool:
                k = index_of.get(raw_i)
                return k is not None and _norm_words(" ".join(toks[k:k + m])) == want

            if not matches(idx):
                near = [j for d in (1, -1, 2, -2) for j in (idx + d,) if matches(j)]
                if not near:
                    got = " ".join(raw[idx:idx + m]) if 0 <= idx < len(raw) else "(out of range)"
                    raise TaskFormatError(f"{where}: {key}_text {span_text!r} does not match word "
                                          f"{idx} of the text ({got!r})")
                corrections.append(f"{path.name} line {n} {key}_index {idx} -> {near[0]}")
                idx = near[0]
            start = index_of[idx]
            spans[key] = [start, start + m]
        rows.append({"tokens": toks, "span1": spans["span1"], "span2": spans["span2"],
                     "label": str(obj["label"])})
    return rows


def read_wsc(root: Path) -> TaskData:
    """SuperGLUE WSC: ``superglue/WSC/{train,val}.jsonl``; tokens are ``text.split(" ")`` (the
    words SuperGLUE indexes), span1 = candidate noun phrase, span2 = pronoun; label ``"True"``
    when the pronoun refers to span1. dev = val; the test file has no labels."""
    corrections: list[str] = []
    splits = {"train": _read_wsc_file(root / "superglue/WSC/train.jsonl", corrections),
              "dev": _read_wsc_file(root / "superglue/WSC/val.jsonl", corrections)}
    return _make_task("wsc", "span", splits, "superglue/WSC/train.jsonl, superglue/WSC/val.jsonl",
                      "dev = val.jsonl. Span text is checked case-insensitively, ignoring surrounding "
                      "punctuation and a possessive 's; an index whose word does not match but whose "
                      "neighbour (+-1, +-2) does is corrected: "
                      f"{'; '.join(corrections) or 'none'}. Words left empty by double spaces are "
                      "dropped (indices remapped).")


def _senseval_instances(path: Path, member: str) -> list[tuple[str, dict]]:
    where = f"{path}:{member}"
    try:
        xml = ET.fromstring(_zip_text(path, member))
    except ET.ParseError as err:
        raise TaskFormatError(f"{where}: not well-formed XML ({err})") from None
    out = []
    for inst in xml.iter("instance"):
        iid = inst.get("id") or "?"
        answers = [a.get("senseid") for a in inst.findall("answer")]
        if len(answers) != 1 or not answers[0]:
            raise TaskFormatError(f"{where}: instance {iid!r} has {len(answers)} sense answers, expected 1")
        ctx = inst.find("context")
        if ctx is None:
            raise TaskFormatError(f"{where}: instance {iid!r} has no <context>")
        toks: list[str] = []
        heads: list[tuple[int, int]] = []

        def visit(el: ET.Element) -> None:
            start = len(toks)
            toks.extend((el.text or "").split())  # <wf>word</wf>; untagged text inside others
            for child in el:
                visit(child)
            if el.tag == "head":
                heads.append((start, len(toks)))
            toks.extend((el.tail or "").split())  # untagged words between elements

        toks.extend((ctx.text or "").split())
        for child in ctx:
            visit(child)
        if len(heads) != 1 or heads[0][0] == heads[0][1]:
            raise TaskFormatError(f"{where}: instance {iid!r} has {len(heads)} <head> target words, "
                                  f"expected 1 non-empty")
        out.append((iid, {"tokens": toks, "span1": list(heads[0]), "span2": None, "label": answers[0]}))
    if not out:
        raise TaskFormatError(f"{where}: no <instance> elements")
    return out


def read_wsd(root: Path) -> TaskData:
    """SENSEVAL-2 lexical sample (NLTK ``senseval.zip``: hard, interest, line, serve).

    Tokens are the context's words (``<wf>`` elements and untagged text between them), span1 the
    ``<head>`` target word, label its sense id (unique across the four words). Split stratified by
    sense: within each sense the instances sorted by the md5 of their id give dev the first
    ``round(0.2 * n)``, never all of them."""
    path = root / "nltk_data/senseval.zip"
    words = ("hard", "interest", "line", "serve")
    by_sense: dict[str, list[str]] = {}
    examples: list[tuple[str, dict]] = []
    for word in words:
        for iid, ex in _senseval_instances(path, f"senseval/{word}.pos"):
            by_sense.setdefault(ex["label"], []).append(iid)
            examples.append((iid, ex))
    dev_ids: set[str] = set()
    for ids in by_sense.values():
        chosen = _dev_keys(ids, WSD_DEV_FRACTION)
        if len(chosen) == len(set(ids)):  # keep at least one in train
            chosen -= {min(chosen, key=lambda k: (_hash_key(k), k))}
        dev_ids |= chosen
    splits = {"train": [ex for iid, ex in examples if iid not in dev_ids],
              "dev": [ex for iid, ex in examples if iid in dev_ids]}
    return _make_task("wsd", "span", splits, "nltk_data/senseval.zip:senseval/{hard,interest,line,serve}.pos",
                      f"the SENSEVAL-2 lexical sample of 4 words ({len(by_sense)} senses, one classifier "
                      "over all), not an all-words WSD set (SemCor is not here). No published split: "
                      "within each sense the instances with the smallest md5 of their id, round(20%), "
                      "are dev. Untagged words between <wf> elements (e.g. 'FRASL' markers of the "
                      "original files) are kept as tokens.")


# ----------------------------------------------------------------------------------------------
# registry and loading

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("emotion", "sentence", "emotion classification",
             ("emotion/train.txt", "emotion/val.txt", "emotion/test.txt"), read_emotion),
    TaskSpec("sst2", "sentence", "sentiment analysis", ("SST2/train.tsv", "SST2/dev.tsv"), read_sst2),
    TaskSpec("squad", "qa", "question answering", ("squad/dev-v1.1.json",), read_squad),
    TaskSpec("srl", "token", "semantic role labelling",
             ("propbank_frames/propbank-frames-3.4.0.zip",), read_srl),
    TaskSpec("wsd", "span", "word sense disambiguation", ("nltk_data/senseval.zip",), read_wsd),
    TaskSpec("wsc", "span", "coreference resolution",
             ("superglue/WSC/train.jsonl", "superglue/WSC/val.jsonl"), read_wsc),
    TaskSpec("conll2003", "token", "named entity recognition",
             ("conll2003/eng.train", "conll2003/eng.testa", "conll2003/eng.testb"), read_conll2003),
    TaskSpec("rte", "pair", "natural language inference",
             ("superglue/RTE/train.jsonl", "superglue/RTE/val.jsonl"), read_rte),
    TaskSpec("conll2000", "token", "syntactic chunking", ("nltk_data/conll2000.zip",), read_conll2000),
    TaskSpec("mrpc", "pair", "paraphrase detection",
             ("mrpc/msr_paraphrase_train.txt", "mrpc/msr_paraphrase_test.txt"), read_mrpc),
    TaskSpec("trec", "sentence", "question classification", ("nltk_data/qc.zip",), read_trec, study=False),
)}

#: the ten task kinds of the English decoding study, in the registry's order
STUDY_TASKS = tuple(name for name, spec in TASKS.items() if spec.study)


def cap_examples(task: TaskData, max_examples: dict | int | None, seed: int = 0) -> TaskData:
    """A copy of ``task`` with at most ``max_examples`` examples per split.

    Parameters
    ----------
    task : TaskData
    max_examples : int, dict of str to int, or None
        One cap for every split, or ``{split: cap}`` (splits not named are kept whole); None keeps
        everything.
    seed : int
        The kept examples of a split of n are the first ``cap`` of
        ``np.random.default_rng(seed).permutation(n)``, returned in file order.

    Returns
    -------
    TaskData
        Same name, type, labels and source; ``notes`` say what was capped.
    """
    if max_examples is None:
        return task
    if isinstance(max_examples, dict):
        unknown = sorted(set(max_examples) - set(task.splits))
        if unknown:
            raise ValueError(f"task {task.name!r}: max_examples names splits {unknown}; it has "
                             f"{sorted(task.splits)}")
        caps = dict(max_examples)
    else:
        caps = {split: max_examples for split in task.splits}
    splits, said = {}, []
    for split, rows in task.splits.items():
        cap = caps.get(split)
        if cap is None or cap >= len(rows):
            splits[split] = rows
            continue
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
            raise ValueError(f"task {task.name!r}: max_examples for {split!r} must be a positive "
                             f"int, got {cap!r}")
        keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:int(cap)])
        splits[split] = [rows[i] for i in keep]
        said.append(f"{split} {int(cap)} of {len(rows)}")
    notes = task.notes
    if said:
        notes = (notes + " " if notes else "") + f"Capped (seeded shuffle, seed {seed}): {', '.join(said)}."
    return TaskData(task.name, task.type, list(task.labels), splits, task.source, notes)


def load_task(name: str, root: str | Path, max_examples: dict | int | None = None, seed: int = 0) -> TaskData:
    """Load a registered task (:data:`TASKS`) from the task root.

    Parameters
    ----------
    name : str
        A key of :data:`TASKS`.
    root : str or Path
        The ``nlu/`` folder (e.g. ``<repo>/../shared/data/nlu``).
    max_examples : int, dict of str to int, or None
        Per-split cap (:func:`cap_examples`); None keeps every example.
    seed : int
        Seed of the cap's shuffle.

    Returns
    -------
    TaskData
    """
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; registered: {sorted(TASKS)}")
    return cap_examples(TASKS[name].load(root), max_examples, seed)


def majority_baseline(task: TaskData, split: str = "dev") -> tuple[str, float]:
    """Accuracy on ``split`` of always predicting the most frequent train label.

    Parameters
    ----------
    task : TaskData
        Of type ``sentence``, ``pair`` or ``span``.
    split : str
        The split scored (default ``"dev"``).

    Returns
    -------
    label : str
        The most frequent train label (ties: the first in sorted order).
    accuracy : float
        Share of ``split`` examples carrying that label.
    """
    if task.type not in LABELLED_TYPES:
        raise ValueError(f"task {task.name!r} is of type {task.type!r}: a majority baseline needs one "
                         f"label per example ({LABELLED_TYPES})")
    if not task.splits.get("train") or not task.splits.get(split):
        raise ValueError(f"task {task.name!r}: needs non-empty 'train' and {split!r} splits")
    counts = Counter(ex["label"] for ex in task.splits["train"])
    label = min(counts, key=lambda lab: (-counts[lab], lab))
    rows = task.splits[split]
    return label, sum(ex["label"] == label for ex in rows) / len(rows)


# ----------------------------------------------------------------------------------------------
# Hugging Face datasets saved with save_to_disk

_HF_SPLITS = {"train": "train", "validation": "dev", "dev": "dev", "test": "test"}


def from_hf_disk(path: str | Path, type: str, *, name: str | None = None, text: str | None = None,
                 text_pair: str | None = None, label: str | None = None, tokens: str | None = None,
                 tags: str | None = None, question: str = "question", context: str = "context",
                 answers: str = "answers", id: str = "id", span1: str | None = None,
                 span2: str | None = None, keep_unlabelled: bool = False) -> TaskData:
    """Read a Hugging Face ``datasets`` folder written with ``save_to_disk`` as a :class:`TaskData`.

    Parameters
    ----------
    path : str or Path
        A ``DatasetDict`` folder with splits ``train`` and ``validation`` (or ``dev``), and
        optionally ``test``; other split names are ignored.
    type : str
        Task type (:data:`TASK_TYPES`).
    name : str, optional
        Task name (default: the folder name).
    text, text_pair, label, tokens, tags, span1, span2 : str, optional
        Column names feeding the example keys of the same name; ``sentence`` needs text and label,
        ``pair`` text, text_pair and label, ``token`` tokens and tags, ``span`` tokens, span1 and
        label. Class-label columns are turned into their names; other labels into ``str``.
    question, context, answers, id : str
        QA columns (SQuAD layout: ``answers`` is ``{"text": [...], "answer_start": [...]}`` or a
        list of ``{"text", "answer_start"}``).
    keep_unlabelled : bool
        Keep a split whose labels are all missing or -1 (e.g. GLUE test sets; default: drop it).

    Returns
    -------
    TaskData
        Checked with :func:`validate_task` (errors name the split and row).
    """
    try:
        import datasets
    except ImportError:
        raise ImportError("from_hf_disk needs the Hugging Face 'datasets' package: "
                          "pip install datasets") from None
    if type not in TASK_TYPES:
        raise ValueError(f"type {type!r} is not one of {TASK_TYPES}")
    need = {"sentence": {"text": text, "label": label},
            "pair": {"text": text, "text_pair": text_pair, "label": label},
            "token": {"tokens": tokens, "tags": tags},
            "span": {"tokens": tokens, "span1": span1, "label": label},
            "qa": {"question": question, "context": context, "answers": answers, "id": id}}[type]
    missing = [k for k, col in need.items() if not col]
    if missing:
        raise ValueError(f"from_hf_disk({str(path)!r}, {type!r}): give the column names for {missing}")
    path = Path(path)
    loaded = datasets.load_from_disk(str(path))
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    splits: dict[str, list[dict]] = {}
    for hf_split, ds in parts.items():
        split = _HF_SPLITS.get(hf_split)
        if split is None:
            continue
        cols = dict(need)
        if type == "span":
            cols["span2"] = span2
        absent = [c for c in cols.values() if c and c not in ds.column_names]
        if absent:
            raise TaskFormatError(f"{path} split {hf_split!r}: no columns {absent} (has {ds.column_names})")
        names = _class_names(ds.features, label if type != "token" else tags)
        rows = []
        for i, rec in enumerate(ds):
            ex = _hf_example(rec, type, cols, names, f"{path} split {hf_split!r} row {i}")
            if ex is not None:
                rows.append(ex)
        if type != "qa" and not rows and not keep_unlabelled:
            continue  # an unlabelled split (all labels missing)
        if len(rows) != len(ds) and type != "qa":
            raise TaskFormatError(f"{path} split {hf_split!r}: {len(ds) - len(rows)} of {len(ds)} rows "
                                  f"have no label")
        splits[split] = rows
    if "train" not in splits:
        raise TaskFormatError(f"{path}: no labelled 'train' split (found {sorted(parts)})")
    if "dev" not in splits:
        raise TaskFormatError(f"{path}: no labelled 'validation' (or 'dev') split (found {sorted(parts)})")
    task = TaskData(name or path.name, type, _labels_from_train(type, splits["train"]), splits, str(path),
                    f"read from {path} (save_to_disk)")
    validate_task(task)
    return task


def _class_names(features, column: str | None) -> list[str] | None:
    """Names of a ClassLabel column (or of a sequence of them), else None."""
    if not column or column not in features:
        return None
    feat = features[column]
    for _ in range(3):
        if getattr(feat, "names", None):
            return list(feat.names)
        feat = getattr(feat, "feature", None)
        if isinstance(feat, list) and feat:
            feat = feat[0]
        if feat is None:
            return None
    return None


def _hf_value(value, names: list[str] | None, where: str) -> str | None:
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value < 0):
        return None
    if names is not None and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value >= len(names):
            raise TaskFormatError(f"{where}: class index {value} beyond the {len(names)} class names")
        return names[value]
    return str(value)


def _hf_example(rec: dict, type: str, cols: dict, names: list[str] | None, where: str) -> dict | None:
    if type in ("sentence", "pair"):
        lab = _hf_value(rec[cols["label"]], names, where)
        if lab is None:
            return None
        ex = {"text": rec[cols["text"]], "label": lab}
        if type == "pair":
            ex = {"text": rec[cols["text"]], "text_pair": rec[cols["text_pair"]], "label": lab}
        return ex
    if type == "token":
        tags = [_hf_value(t, names, where) for t in rec[cols["tags"]]]
        if any(t is None for t in tags):
            raise TaskFormatError(f"{where}: a tag is missing")
        return {"tokens": list(rec[cols["tokens"]]), "tags": tags}
    if type == "span":
        lab = _hf_value(rec[cols["label"]], names, where)
        if lab is None:
            return None
        s2 = rec[cols["span2"]] if cols.get("span2") else None
        return {"tokens": list(rec[cols["tokens"]]), "span1": list(rec[cols["span1"]]),
                "span2": list(s2) if s2 is not None else None, "label": lab}
    ans = rec[cols["answers"]]
    if isinstance(ans, dict):
        ans = [{"text": t, "answer_start": int(s)} for t, s in zip(ans["text"], ans["answer_start"])]
    else:
        ans = [{"text": a["text"], "answer_start": int(a["answer_start"])} for a in ans]
    return {"id": str(rec[cols["id"]]), "question": rec[cols["question"]], "context": rec[cols["context"]],
            "answers": ans}


# ----------------------------------------------------------------------------------------------
# the eight Chinese CLUE tasks (readers_zh, study=False; STUDY_TASKS above stays the ten English
# ones). readers_zh imports this module, so it is imported last; when readers_zh is the module
# imported first it is still running here (no ZH_TASKS yet) and adds its specs to TASKS itself.
from . import readers_zh as _readers_zh  # noqa: E402

TASKS.update(getattr(_readers_zh, "ZH_TASKS", {}))
