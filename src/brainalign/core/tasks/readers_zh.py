"""Readers for the eight Chinese CLUE task sets (the tasks of the Chinese encoding study).

The same data model as :mod:`brainalign.core.tasks.readers` (task types, example dicts,
:class:`~.readers.TaskData`, :class:`~.readers.TaskSpec`, :class:`~.readers.TaskFormatError`): each
reader turns one CLUE set, in the layout kept under ``<root>`` (the ``nlu_zh/`` folder of the
shared data, see its README), into a :class:`~.readers.TaskData`. The published ``<task>_public.zip``
files are read directly with :mod:`zipfile` (no unpacking); TNEWS and IFLYTEK, whose zips are not
here, from their extracted JSON-lines files. Importing this module registers the eight tasks in
:data:`~.readers.TASKS` (``study=False``: they are not the English study's ten); load them with
``load_task(name, "<shared data>/nlu_zh")``.

===============  ========  ====  ===========================================================
task             type      acr.  example
===============  ========  ====  ===========================================================
``iflytek``      sentence  LTC   app description -> one of 119 app categories (Chinese names)
``tnews``        sentence  STC   news title -> one of 15 categories (``news_*`` names)
``ocnli``        pair      NLI   premise, hypothesis -> entailment / neutral / contradiction
``cluewsc2020``  span      CR    characters, span1 (noun phrase), span2 (pronoun) -> true/false
``csl``          pair      KR    abstract, keywords joined with ``"；"`` -> ``"1"`` / ``"0"``
``afqmc``        pair      SSP   question, question -> ``"1"`` (same meaning) / ``"0"``
``cluener``      token     NER   characters -> BIO tags of 10 entity types
``cmrc2018``     qa        QA    SQuAD v1.1 dicts (character offsets)
===============  ========  ====  ===========================================================

Decisions (each reader's ``notes`` give the counts measured on the files it read):

* Characters are the "words" of ``token`` and ``span`` tasks (``tokens = list(text)``), so span
  and entity offsets, which CLUE gives in characters, are token indices unchanged. A character
  that a BERT tokenizer turns into no sub-token at all (white space, control and format
  characters, combining marks: :func:`is_blank_char`) would leave a word without a sub-token
  (a ``token`` word then gets no label and a ``span`` whose only character it is cannot be
  encoded) and fails :func:`~.readers.validate_task`; such a character is replaced by the
  placeholder :data:`BLANK_TOKEN` (one sub-token), so indices never shift. CLUENER2020 and
  CLUEWSC2020 (train, dev) hold none: 0 replacements.
* IFLYTEK: only the published dev file is here; it is split here into train/dev, stratified by
  label on the md5 of the text (:func:`stratified_text_split`), so every label is in train.
* CMRC2018: an answer whose text is not at its ``answer_start`` is moved to the occurrence of its
  text nearest to that offset; one whose text does not occur in its context is dropped (CMRC is
  scored by answer text); a question left without answers is dropped.
* Empty or white-space-only texts, unknown labels, spans or entities whose text does not match
  raise :class:`~.readers.TaskFormatError` naming the file (``zip:member``) and line, or the
  paragraph and question id.
"""
from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path

from .readers import (
    TASKS,
    TaskData,
    TaskFormatError,
    TaskSpec,
    _dev_keys,
    _hash_key,
    _lines,
    _make_task,
    _nonempty,
    _read_text,
    _zip_text,
)

IFLYTEK_DEV_FRACTION = 0.2
#: separator of the CSL keywords in ``text_pair`` (full-width semicolon: no keyword holds one,
#: while keywords of 463 train / 47 dev rows hold a comma)
CSL_KEYWORD_SEP = "；"
#: stands for a character that a BERT tokenizer would drop (``token``/``span`` words)
BLANK_TOKEN = "_"
OCNLI_LABELS = ("contradiction", "entailment", "neutral")
BINARY_LABELS = ("0", "1")
WSC_LABELS = ("false", "true")

# Unicode categories a BERT normaliser removes: control/format/unassigned/private/surrogate
# (clean_text) and combining marks (accent stripping of lower-casing tokenizers)
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Mn", "Me"})


# ----------------------------------------------------------------------------------------------
# shared helpers


def is_blank_char(char: str) -> bool:
    """Whether a BERT tokenizer gives ``char`` (one character) no sub-token: white space,
    control, format, unassigned, private-use or surrogate characters, combining marks, U+FFFD."""
    return (not char.strip() or char == "\ufffd"
            or unicodedata.category(char) in _DROPPED_CATEGORIES)


def char_tokens(text: str) -> tuple[list[str], int]:
    """One token per character of ``text``, blank characters replaced by :data:`BLANK_TOKEN`.

    Parameters
    ----------
    text : str, length n_chars

    Returns
    -------
    tokens : list of str, length n_chars
        ``tokens[i]`` stands for ``text[i]`` (character offsets are token indices).
    n_replaced : int
        How many characters were blank (:func:`is_blank_char`) and replaced.
    """
    tokens, replaced = [], 0
    for char in text:
        if is_blank_char(char):
            tokens.append(BLANK_TOKEN)
            replaced += 1
        else:
            tokens.append(char)
    return tokens, replaced


def _json_lines(text: str, where: str) -> list[tuple[int, dict]]:
    """``(line number, object)`` of a JSON-lines text; ``where`` names the file in errors."""
    out = []
    for n, line in enumerate(_lines(text), 1):
        if not line.strip():
            raise TaskFormatError(f"{where}:{n}: empty line")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise TaskFormatError(f"{where}:{n}: not JSON ({err})") from None
        if not isinstance(obj, dict):
            raise TaskFormatError(f"{where}:{n}: expected a JSON object, got {type(obj).__name__}")
        out.append((n, obj))
    return out


def _zip_rows(path: Path, member: str) -> tuple[str, list[tuple[int, dict]]]:
    """``(where, rows)`` of a JSON-lines member of a zip (``where`` = ``path:member``)."""
    where = f"{path}:{member}"
    return where, _json_lines(_zip_text(path, member, "utf-8-sig"), where)


def _file_rows(path: Path) -> tuple[str, list[tuple[int, dict]]]:
    return str(path), _json_lines(_read_text(path, "utf-8-sig"), str(path))


def _choice(value, allowed: tuple[str, ...], where: str, what: str = "label") -> str:
    if not isinstance(value, str) or value not in allowed:
        raise TaskFormatError(f"{where}: {what} {value!r} is not one of {list(allowed)}")
    return value


def _label_names(path: Path, name_key: str) -> dict[str, str]:
    """``{code: name}`` of a CLUE ``labels.json`` (JSON lines of ``label`` and ``name_key``)."""
    where, rows = _file_rows(path)
    names: dict[str, str] = {}
    for n, obj in rows:
        code, name = obj.get("label"), obj.get(name_key)
        if not isinstance(code, str) or not isinstance(name, str) or not code.strip() or not name.strip():
            raise TaskFormatError(f"{where}:{n}: expected {{'label': code, {name_key!r}: name}}, got {obj}")
        if code in names or name in names.values():
            raise TaskFormatError(f"{where}:{n}: label code {code!r} or name {name!r} given twice")
        names[code] = name
    if not names:
        raise TaskFormatError(f"{where}: no labels")
    return names


def _named_label(obj: dict, names: dict[str, str], name_key: str, where: str, labels_file: Path) -> str:
    """The label name of a row whose ``label`` is a code of ``names`` (its ``name_key``, when
    present, must be that code's name)."""
    code = obj.get("label")
    if not isinstance(code, str) or code not in names:
        raise TaskFormatError(f"{where}: label {code!r} is not one of the {len(names)} codes of "
                              f"{labels_file}")
    name = obj.get(name_key)
    if name is not None and name != names[code]:
        raise TaskFormatError(f"{where}: {name_key} {name!r} does not match label {code!r} "
                              f"({names[code]!r} in {labels_file})")
    return names[code]


# ----------------------------------------------------------------------------------------------
# sentence tasks: IFLYTEK (LTC), TNEWS (STC)


def stratified_text_split(rows: list[dict], fraction: float) -> tuple[list[int], list[int], int]:
    """Deterministic train/dev split of labelled texts, stratified by label, keeping every label
    in train and every text in one split.

    Within each label the distinct texts sorted by their md5 (ties by text) give dev the first
    ``round(fraction * n_distinct)`` (never all of them: one stays in train). A text chosen for dev
    under one label but kept in train under another (the same text published with two labels)
    goes to train with all its rows, so no text is in both splits; identical rows stay together.

    Parameters
    ----------
    rows : list of dict, length n_rows
        Each with ``"text"`` and ``"label"`` (str).
    fraction : float
        Share of each label's distinct texts sent to dev, in [0, 1).

    Returns
    -------
    train : list of int
        Row indices of train, ascending.
    dev : list of int
        Row indices of dev, ascending (disjoint from ``train``; together all ``n_rows``).
    n_moved : int
        Rows kept in train because their text is in train under another label.
    """
    by_label: dict[str, list[str]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row["text"])
    dev_pairs: set[tuple[str, str]] = set()
    for label, texts in by_label.items():
        chosen = _dev_keys(texts, fraction)
        if len(chosen) == len(set(texts)):  # keep at least one text of the label in train
            chosen -= {min(chosen, key=lambda k: (_hash_key(k), k))}
        dev_pairs |= {(label, text) for text in chosen}
    in_train = {row["text"] for row in rows if (row["label"], row["text"]) not in dev_pairs}
    moved = {pair for pair in dev_pairs if pair[1] in in_train}
    dev_pairs -= moved
    dev = [i for i, row in enumerate(rows) if (row["label"], row["text"]) in dev_pairs]
    dev_set = set(dev)
    train = [i for i in range(len(rows)) if i not in dev_set]
    n_moved = sum((row["label"], row["text"]) in moved for row in rows)
    return train, dev, n_moved


def read_iflytek(root: Path) -> TaskData:
    """IFLYTEK (LTC, app descriptions, 119 categories): ``iflytek/dev.json`` (JSON lines of
    ``label``, ``label_des``, ``sentence``) and ``iflytek/labels.json`` (code -> Chinese name).

    The published train file is not here: the 2,599 dev rows are split here, 80 / 20, by
    :func:`stratified_text_split` on the md5 of the text within each label, so the split depends on
    the file contents only and every label (1 to 388 rows each) occurs in train. Labels are the
    Chinese category names of ``labels.json`` (``label_des``), e.g. ``"打车"``.

    Returns
    -------
    TaskData
        ``sentence``; ``{"text": description, "label": name}``; splits train, dev.
    """
    path, labels_file = root / "iflytek/dev.json", root / "iflytek/labels.json"
    names = _label_names(labels_file, "label_des")
    where, raw = _file_rows(path)
    rows = []
    for n, obj in raw:
        at = f"{where}:{n}"
        rows.append({"text": _nonempty(obj.get("sentence"), at, "sentence"),
                     "label": _named_label(obj, names, "label_des", at, labels_file)})
    train, dev, moved = stratified_text_split(rows, IFLYTEK_DEV_FRACTION)
    splits = {"train": [rows[i] for i in train], "dev": [rows[i] for i in dev]}
    n_labels = len({r["label"] for r in rows})
    small = sum(1 for k in Counter(r["label"] for r in rows).values() if round(IFLYTEK_DEV_FRACTION * k) == 0)
    n_dup = len(rows) - len({(r["label"], r["text"]) for r in rows})
    multi = sum(1 for v in _labels_per_text(rows).values() if len(v) > 1)
    n_sep = sum("\u2028" in r["text"] or "\u2029" in r["text"] for r in rows)
    notes = (f"Only CLUE's dev file is here (the 12,133-row train file is not): its {len(rows)} rows "
             f"({n_labels} labels) are split HERE into train {len(train)} / dev {len(dev)} "
             f"(about {round(100 * (1 - IFLYTEK_DEV_FRACTION))}/{round(100 * IFLYTEK_DEV_FRACTION)}), "
             f"stratified by label: within each label the distinct texts with the smallest md5 hash, "
             f"round(20%), are dev, never all of them, so every label is in train ({small} labels with "
             f"1-2 rows have no dev row). {n_dup} rows repeat another row and stay with it; {multi} "
             f"texts occur with two labels, and {moved} rows chosen for dev were kept in train so that "
             f"no text is in both splits. Scores on this dev are not comparable with CLUE's IFLYTEK "
             f"results (a different, much smaller train set). Labels: the Chinese category names of "
             f"labels.json (label_des). {n_sep} texts hold U+2028/U+2029 line separators, kept as "
             f"published (lines are split on LF only).")
    return _make_task("iflytek", "sentence", splits, "iflytek/dev.json, iflytek/labels.json", notes)


def _labels_per_text(rows: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in rows:
        out.setdefault(row["text"], set()).add(row["label"])
    return out


def read_tnews(root: Path) -> TaskData:
    """TNEWS (STC, Toutiao news titles, 15 categories): ``tnews/{train,dev}.json`` (JSON lines of
    ``label``, ``label_desc``, ``sentence``, ``keywords``) and ``tnews/labels.json``.

    Text = the title (``sentence``); ``keywords`` are not used. Labels are the ``label_desc``
    names (``news_story`` ... ``news_game``), checked against the codes of ``labels.json``.
    dev = dev.json; the test files are unlabelled (not read).

    Returns
    -------
    TaskData
        ``sentence``; ``{"text": title, "label": name}``; splits train, dev.
    """
    labels_file = root / "tnews/labels.json"
    names = _label_names(labels_file, "label_desc")
    splits = {}
    for split in ("train", "dev"):
        where, raw = _file_rows(root / "tnews" / f"{split}.json")
        splits[split] = [{"text": _nonempty(obj.get("sentence"), f"{where}:{n}", "sentence"),
                          "label": _named_label(obj, names, "label_desc", f"{where}:{n}", labels_file)}
                         for n, obj in raw]
    train_labels = _labels_per_text(splits["train"])
    shared = [r for r in splits["dev"] if r["text"] in train_labels]
    n_titles = len({r["text"] for r in shared})
    differ = sum(r["label"] not in train_labels[r["text"]] for r in shared)
    notes = (f"dev = dev.json; test.json / test1.0.json are unlabelled (not read). Text = the title "
             f"(sentence); keywords are not used. Labels = label_desc names ({len(names)}), checked "
             f"against labels.json. As published, {n_titles} distinct dev titles ({len(shared)} dev "
             f"rows, {differ} of them with a label the title never has in train) also occur in train: "
             f"kept, not removed. Train repeats {len(splits['train']) - len(train_labels)} titles.")
    return _make_task("tnews", "sentence", splits, "tnews/train.json, tnews/dev.json, tnews/labels.json",
                      notes)


# ----------------------------------------------------------------------------------------------
# pair tasks: OCNLI (NLI), CSL (KR), AFQMC (SSP)


def read_ocnli(root: Path) -> TaskData:
    """OCNLI (NLI): ``ocnli/ocnli_public.zip`` members ``train.50k.json`` and ``dev.json`` (JSON
    lines of ``sentence1``, ``sentence2``, ``label``, ...). Pairs labelled ``"-"`` (no majority
    among the annotators) are dropped and counted in ``notes``.

    Returns
    -------
    TaskData
        ``pair``; ``{"text": premise, "text_pair": hypothesis, "label"}`` with labels
        entailment / neutral / contradiction; splits train, dev.
    """
    path = root / "ocnli/ocnli_public.zip"
    splits, dropped = {}, {}
    for split, member in (("train", "train.50k.json"), ("dev", "dev.json")):
        where, raw = _zip_rows(path, member)
        rows, dropped[split] = [], 0
        for n, obj in raw:
            at = f"{where}:{n}"
            if obj.get("label") == "-":
                dropped[split] += 1
                continue
            rows.append({"text": _nonempty(obj.get("sentence1"), at, "sentence1"),
                         "text_pair": _nonempty(obj.get("sentence2"), at, "sentence2"),
                         "label": _choice(obj.get("label"), OCNLI_LABELS, at)})
        splits[split] = rows
    notes = (f"train = train.50k.json (OCNLI's 50k train set), dev = dev.json; test.json is unlabelled "
             f"(not read). Pairs labelled '-' (no majority label) dropped: train {dropped['train']}, "
             f"dev {dropped['dev']}.")
    return _make_task("ocnli", "pair", splits, "ocnli/ocnli_public.zip:train.50k.json, dev.json", notes)


def read_csl(root: Path) -> TaskData:
    """CSL (KR, keyword recognition): ``csl/csl_public.zip`` members ``train.json``, ``dev.json``
    (JSON lines of ``id``, ``abst``, ``keyword``: list of 2-4 strings, ``label``).

    text = the abstract; text_pair = the keywords joined with :data:`CSL_KEYWORD_SEP` (``"；"``,
    the full-width semicolon: no keyword contains one, while some contain commas); label ``"1"``
    when all keywords are the paper's own, ``"0"`` when some were substituted.

    Returns
    -------
    TaskData
        ``pair``; ``{"text", "text_pair", "label"}``; splits train, dev.
    """
    path = root / "csl/csl_public.zip"
    splits, with_sep, with_comma = {}, 0, 0
    for split in ("train", "dev"):
        where, raw = _zip_rows(path, f"{split}.json")
        rows = []
        for n, obj in raw:
            at = f"{where}:{n}"
            keywords = obj.get("keyword")
            if not isinstance(keywords, list) or not keywords:
                raise TaskFormatError(f"{at}: keyword {keywords!r} is not a non-empty list of strings")
            for k, word in enumerate(keywords):
                _nonempty(word, at, f"keyword {k}")
            with_sep += any(CSL_KEYWORD_SEP in w for w in keywords)
            with_comma += any("," in w or "，" in w for w in keywords)
            rows.append({"text": _nonempty(obj.get("abst"), at, "abst"),
                         "text_pair": CSL_KEYWORD_SEP.join(w.strip() for w in keywords),
                         "label": _choice(obj.get("label"), BINARY_LABELS, at)})
        splits[split] = rows
    notes = (f"dev = dev.json; test.json is unlabelled (not read). text = abstract (abst), text_pair = "
             f"the keywords joined with '{CSL_KEYWORD_SEP}' (full-width semicolon; {with_sep} rows have "
             f"a keyword containing it, {with_comma} rows a keyword containing a comma, which is why a "
             f"comma is not the separator). Label '1' = all keywords are the paper's own.")
    return _make_task("csl", "pair", splits, "csl/csl_public.zip:train.json, dev.json", notes)


def read_afqmc(root: Path) -> TaskData:
    """AFQMC (SSP, Ant Financial question matching): ``afqmc/afqmc_public.zip`` members
    ``train.json``, ``dev.json`` (JSON lines of ``sentence1``, ``sentence2``, ``label``).

    Returns
    -------
    TaskData
        ``pair``; label ``"1"`` (same meaning) / ``"0"``; splits train, dev.
    """
    path = root / "afqmc/afqmc_public.zip"
    splits = {}
    for split in ("train", "dev"):
        where, raw = _zip_rows(path, f"{split}.json")
        splits[split] = [{"text": _nonempty(obj.get("sentence1"), f"{where}:{n}", "sentence1"),
                          "text_pair": _nonempty(obj.get("sentence2"), f"{where}:{n}", "sentence2"),
                          "label": _choice(obj.get("label"), BINARY_LABELS, f"{where}:{n}")}
                         for n, obj in raw]
    return _make_task("afqmc", "pair", splits, "afqmc/afqmc_public.zip:train.json, dev.json",
                      "dev = dev.json; test.json is unlabelled (not read). Label '1' = the two questions "
                      "mean the same.")


# ----------------------------------------------------------------------------------------------
# span task: CLUEWSC2020 (CR)


def read_cluewsc2020(root: Path) -> TaskData:
    """CLUEWSC2020 (CR, Winograd-style): ``cluewsc2020/cluewsc2020_public.zip`` members
    ``train.json``, ``dev.json`` (JSON lines of ``text``, ``label``, ``target``: ``span1_index``,
    ``span1_text``, ``span2_index``, ``span2_text``; indices are character offsets).

    Tokens are the characters of ``text`` (:func:`char_tokens`); span1 (the noun phrase) =
    ``[span1_index, span1_index + len(span1_text))``, span2 (the pronoun) likewise; the text at
    each span must equal its ``spanX_text``. Label ``"true"`` when the pronoun refers to span1.

    Returns
    -------
    TaskData
        ``span``; ``{"tokens": list of characters, "span1", "span2", "label"}``; splits train, dev.
    """
    path = root / "cluewsc2020/cluewsc2020_public.zip"
    splits, replaced = {}, 0
    for split in ("train", "dev"):
        where, raw = _zip_rows(path, f"{split}.json")
        rows = []
        for n, obj in raw:
            at = f"{where}:{n}"
            text = _nonempty(obj.get("text"), at, "text")
            target = obj.get("target")
            if not isinstance(target, dict):
                raise TaskFormatError(f"{at}: no 'target' object")
            spans = {}
            for key in ("span1", "span2"):
                idx, span_text = target.get(f"{key}_index"), target.get(f"{key}_text")
                if isinstance(idx, bool) or not isinstance(idx, int) or not isinstance(span_text, str) \
                        or not span_text.strip():
                    raise TaskFormatError(f"{at}: target has no valid {key}_index / {key}_text "
                                          f"({idx!r}, {span_text!r})")
                found = text[max(idx, 0):max(idx, 0) + len(span_text)]
                if not 0 <= idx <= len(text) - len(span_text) or found != span_text:
                    raise TaskFormatError(f"{at}: {key}_text {span_text!r} does not match the text at "
                                          f"{key}_index {idx} ({found!r})")
                spans[key] = [idx, idx + len(span_text)]
            tokens, k = char_tokens(text)
            replaced += k
            rows.append({"tokens": tokens, "span1": spans["span1"], "span2": spans["span2"],
                         "label": _choice(obj.get("label"), WSC_LABELS, at)})
        splits[split] = rows
    notes = (f"dev = dev.json; test.json (v1.1) and test1.0.json are unlabelled (not read). Tokens are "
             f"the characters of the text, spans character offsets [index, index + len(text)) "
             f"(every span checked against its text); {replaced} blank characters replaced by "
             f"{BLANK_TOKEN!r}. Label 'true' = the pronoun (span2) refers to span1.")
    return _make_task("cluewsc2020", "span", splits,
                      "cluewsc2020/cluewsc2020_public.zip:train.json, dev.json", notes)


# ----------------------------------------------------------------------------------------------
# token task: CLUENER2020 (NER)


def ner_tags(n_chars: int, spans: list[tuple[str, int, int]]) -> tuple[list[str], list[tuple[str, int, int]]]:
    """BIO tags of character entity spans, overlapping spans resolved.

    Parameters
    ----------
    n_chars : int
        Length of the text.
    spans : list of (type, start, end)
        Entity spans, ``end`` INCLUSIVE (CLUENER's convention), in file order.

    Returns
    -------
    tags : list of str, length n_chars
        ``B-<type>`` on each kept entity's first character, ``I-<type>`` on the others, ``O``.
    dropped : list of (type, start, end)
        Spans that overlap a kept one. The longest spans are kept first (ties: the earlier
        start, then file order), so a nested entity yields to the one enclosing it.
    """
    tags = ["O"] * n_chars
    dropped = []
    order = sorted(range(len(spans)), key=lambda k: (-(spans[k][2] - spans[k][1]), spans[k][1], k))
    for k in order:
        kind, start, end = spans[k]
        if any(t != "O" for t in tags[start:end + 1]):
            dropped.append(spans[k])
            continue
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end + 1):
            tags[i] = f"I-{kind}"
    return tags, dropped


def read_cluener(root: Path) -> TaskData:
    """CLUENER2020 (NER, 10 fine-grained types): ``cluener/cluener_public.zip`` members
    ``train.json``, ``dev.json`` (JSON lines of ``text`` and ``label``: ``{type: {entity text:
    [[start, end], ...]}}``, character offsets, end INCLUSIVE).

    Tokens are the characters of ``text`` (:func:`char_tokens`), tags BIO of the entity spans
    (:func:`ner_tags`: overlapping spans are resolved in favour of the longest and counted in
    ``notes``). Every span must lie inside the text and its characters equal its entity text.

    Returns
    -------
    TaskData
        ``token``; ``{"tokens": list of characters, "tags": list of BIO tags}`` (same length);
        splits train, dev.
    """
    path = root / "cluener/cluener_public.zip"
    splits, replaced, n_spans, dropped = {}, 0, Counter(), {}
    for split in ("train", "dev"):
        where, raw = _zip_rows(path, f"{split}.json")
        rows, dropped[split] = [], []
        for n, obj in raw:
            at = f"{where}:{n}"
            text = _nonempty(obj.get("text"), at, "text")
            label = obj.get("label")
            if not isinstance(label, dict):
                raise TaskFormatError(f"{at}: 'label' is not an object {{type: {{entity: [[start, end]]}}}}")
            spans = []
            for kind, entities in label.items():
                if not isinstance(kind, str) or not kind.strip() or not isinstance(entities, dict):
                    raise TaskFormatError(f"{at}: entity type {kind!r} is not a name with an "
                                          f"{{entity: [[start, end]]}} object")
                for entity, positions in entities.items():
                    if not isinstance(positions, list) or not positions:
                        raise TaskFormatError(f"{at}: {kind} {entity!r} has no [[start, end]] list")
                    for pos in positions:
                        ok = (isinstance(pos, list) and len(pos) == 2
                              and all(isinstance(v, int) and not isinstance(v, bool) for v in pos))
                        if not ok or not 0 <= pos[0] <= pos[1] < len(text):
                            raise TaskFormatError(f"{at}: {kind} {entity!r} span {pos!r} is not [start, end] "
                                                  f"(end inclusive) inside the text ({len(text)} characters)")
                        if text[pos[0]:pos[1] + 1] != entity:
                            raise TaskFormatError(f"{at}: {kind} {entity!r} does not match the text at "
                                                  f"[{pos[0]}, {pos[1]}] ({text[pos[0]:pos[1] + 1]!r})")
                        spans.append((kind, pos[0], pos[1]))
            n_spans[split] += len(spans)
            tags, lost = ner_tags(len(text), spans)
            dropped[split] += [(n, text, span) for span in lost]
            tokens, k = char_tokens(text)
            replaced += k
            rows.append({"tokens": tokens, "tags": tags})
        splits[split] = rows

    def said(split: str) -> str:
        lost = dropped[split]
        if not lost:
            return f"{split} 0"
        lines = sorted({n for n, _, _ in lost})
        what = "; ".join(f"{kind} {text[s:e + 1]!r} [{s}, {e}]" for _, text, (kind, s, e) in lost)
        return f"{split} {len(lost)} in {len(lines)} rows (line {', '.join(map(str, lines))}: {what})"

    notes = (f"dev = dev.json; test.json is unlabelled (not read). Tokens are the characters of the "
             f"text ({replaced} blank characters replaced by {BLANK_TOKEN!r}); BIO tags from the label "
             f"spans (end inclusive; every span checked against its entity text): train "
             f"{n_spans['train']}, dev {n_spans['dev']} spans. Overlapping (nested) spans: the longest "
             f"is kept, the ones inside it dropped: {said('train')}; {said('dev')}.")
    return _make_task("cluener", "token", splits, "cluener/cluener_public.zip:train.json, dev.json", notes)


# ----------------------------------------------------------------------------------------------
# QA: CMRC2018


def _nearest(context: str, text: str, start: int) -> int | None:
    """Offset of the occurrence of ``text`` in ``context`` nearest to ``start`` (ties: the
    earlier), None when it does not occur."""
    best, pos = None, context.find(text)
    while pos >= 0:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        pos = context.find(text, pos + 1)
    return best


def read_cmrc2018(root: Path) -> TaskData:
    """CMRC2018 (QA, span extraction): ``cmrc2018/cmrc2018_public.zip`` members ``train.json``,
    ``dev.json`` (SQuAD v1.1 layout; ``answer_start`` a character offset).

    The project's checks require each answer's text at its offset, and CMRC is scored by answer
    text, so an answer whose text is not at ``answer_start`` (published: 193 dev answers with -1,
    21 train / 7 dev offsets off by one or two) is re-located to the occurrence of its text in the
    context nearest to the given offset (any occurrence for -1); an answer whose text does not
    occur in the context is dropped, and a question left without answers is dropped. Every fix
    and drop is counted per split in ``notes``. Dev keeps its (three) answers per question.

    Returns
    -------
    TaskData
        ``qa``; ``{"id", "question", "context", "answers": [{"text", "answer_start"}]}``;
        splits train, dev.
    """
    path = root / "cmrc2018/cmrc2018_public.zip"
    splits, counts = {}, {}
    for split in ("train", "dev"):
        where = f"{path}:{split}.json"
        try:
            data = json.loads(_zip_text(path, f"{split}.json", "utf-8-sig"))["data"]
            if not isinstance(data, list):
                raise TypeError("'data' is not a list")
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise TaskFormatError(f"{where}: not a SQuAD JSON with a 'data' list ({err})") from None
        count = Counter()
        rows = []
        for a, article in enumerate(data):
            paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
            if not isinstance(paragraphs, list):
                raise TaskFormatError(f"{where}: article {a} has no 'paragraphs' list")
            for p, para in enumerate(paragraphs):
                if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                    raise TaskFormatError(f"{where}: article {a} paragraph {p} is not an object with a "
                                          f"'qas' list")
                at = f"{where}: article {a} paragraph {para.get('id', p)!r}"
                ctx = _nonempty(para.get("context"), at, "context")
                for qn, qa in enumerate(para["qas"]):
                    if not isinstance(qa, dict):
                        raise TaskFormatError(f"{at}: question {qn} is not an object")
                    qid = qa.get("id")
                    _nonempty(qid, at, "question id")
                    q_at = f"{at} question {qid!r}"
                    question = _nonempty(qa.get("question"), q_at, "question")
                    answers = []
                    for k, ans in enumerate(qa.get("answers") or []):
                        text, start = (ans.get("text"), ans.get("answer_start")) if isinstance(ans, dict) \
                            else (None, None)
                        if not isinstance(text, str) or not text.strip() or isinstance(start, bool) \
                                or not isinstance(start, int):
                            raise TaskFormatError(f"{q_at}: answer {k} is not {{'text': non-empty str, "
                                                  f"'answer_start': int}}: {ans!r}")
                        count["answers"] += 1
                        if 0 <= start and ctx[start:start + len(text)] == text:
                            answers.append({"text": text, "answer_start": start})
                            continue
                        found = _nearest(ctx, text, start)
                        kind = "unset" if start == -1 else "offset"
                        if found is None:
                            count[f"dropped_{kind}"] += 1
                            continue
                        count[f"moved_{kind}"] += 1
                        answers.append({"text": text, "answer_start": found})
                    count["questions"] += 1
                    if not answers:
                        count["questions_dropped"] += 1
                        continue
                    rows.append({"id": qid, "question": question, "context": ctx, "answers": answers})
        splits[split], counts[split] = rows, count

    def said(split: str) -> str:
        c = counts[split]
        return (f"{split}: {c['questions']} questions / {c['answers']} answers read; "
                f"{c['moved_offset']} answers not at their answer_start moved to the nearest occurrence "
                f"of their text, {c['moved_unset']} with answer_start -1 located, "
                f"{c['dropped_unset']} with answer_start -1 and {c['dropped_offset']} with an offset "
                f"dropped (their text does not occur in the context), {c['questions_dropped']} questions "
                f"left without answers dropped; {len(splits[split])} questions kept")

    notes = (f"dev = dev.json; trial.json (1,002 more questions) and test.json (placeholder answers) are "
             f"not read. Answers scored by answer text: an answer not at its answer_start is re-located "
             f"to the occurrence of its text nearest to it (any occurrence for -1), one whose text is not "
             f"in the context is dropped. {said('train')}. {said('dev')}. Dev keeps every remaining "
             f"answer (three per question as published, repeats included); the dropped dev answers are "
             f"paraphrases that CMRC's own scorer would still accept, so dev EM/F1 here can be slightly "
             f"lower than with the official script.")
    return _make_task("cmrc2018", "qa", splits, "cmrc2018/cmrc2018_public.zip:train.json, dev.json", notes)


# ----------------------------------------------------------------------------------------------
# registry

#: the eight Chinese CLUE tasks, registered in :data:`~.readers.TASKS` (``study=False``)
ZH_TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("iflytek", "sentence", "long text classification (LTC)",
             ("iflytek/dev.json", "iflytek/labels.json"), read_iflytek, study=False),
    TaskSpec("tnews", "sentence", "short text classification (STC)",
             ("tnews/train.json", "tnews/dev.json", "tnews/labels.json"), read_tnews, study=False),
    TaskSpec("ocnli", "pair", "natural language inference (NLI)", ("ocnli/ocnli_public.zip",), read_ocnli,
             study=False),
    TaskSpec("cluewsc2020", "span", "coreference resolution (CR)", ("cluewsc2020/cluewsc2020_public.zip",),
             read_cluewsc2020, study=False),
    TaskSpec("csl", "pair", "keyword recognition (KR)", ("csl/csl_public.zip",), read_csl, study=False),
    TaskSpec("afqmc", "pair", "semantic similarity of sentence pairs (SSP)", ("afqmc/afqmc_public.zip",),
             read_afqmc, study=False),
    TaskSpec("cluener", "token", "named entity recognition (NER)", ("cluener/cluener_public.zip",),
             read_cluener, study=False),
    TaskSpec("cmrc2018", "qa", "question answering (QA)", ("cmrc2018/cmrc2018_public.zip",), read_cmrc2018,
             study=False),
)}

#: the eight task kinds of the Chinese encoding study: LTC, STC, NLI, CR, KR, SSP, NER, QA
ZH_STUDY_TASKS = ("iflytek", "tnews", "ocnli", "cluewsc2020", "csl", "afqmc", "cluener", "cmrc2018")

# Registered here (not only by readers.py, which imports this module at its end): whichever of the
# two modules is imported first, the eight tasks end up in TASKS once this module has run.
TASKS.update(ZH_TASKS)
