"""Annotators: word- and sentence-level linguistic properties of a words table, the registry
:data:`ANNOTATORS` (name -> annotator) and :func:`annotate`.

What each property needs
------------------------
Properties are computed from what the text alone gives (surface), from part-of-speech tags, or from
constituency trees. Tags and trees come from annotation tables or from the tagger of
:mod:`.tagger` (trained on NLTK's Penn Treebank sample); no parser is installed: spaCy's English
pipelines (``en_core_web_sm``) have no distribution on the package index, so they cannot be
installed offline and there is no spaCy path. :class:`AnnotationResources` says what a dataset has:

``trees``      (story, sentence_id) -> :class:`nltk.Tree`, e.g. from :func:`.trees.read_lpp`
               (Le Petit Prince ``lppEN_tree.csv``) or Penn Treebank trees.
``tags``       Penn tags: from the trees' preterminals when trees are given, else from ``tagger``.
``frequency``  word -> Zipf log frequency; default wordfreq's ``zipf_frequency(word, "en")``.

A property whose resource is missing raises :class:`PropertyUnavailable`, naming the property, the
dataset, what is missing and how to provide it; an unregistered name raises :class:`AnnotationError`
listing the registered ones.

Properties (name: group, level, kind, needs)
--------------------------------------------
sentence_length      surface, sentence, numeric: number of rows of the words table in the sentence
                     (the words table's words are the unit; a punctuation-only row would count).
word_length          surface, word, numeric: number of letters and digits of the word (attached
                     punctuation, apostrophes and hyphens not counted: ``"don't,"`` -> 4).
position_in_sentence surface, word, numeric: 0-based rank of the word in its sentence (by word_index).
log_frequency        surface, word, numeric, needs frequency: Zipf frequency (log10 of occurrences
                     per billion words) of the word with its leading/trailing punctuation stripped.
                     A word the list does not have (wordfreq returns 0; a frequency function may also
                     return None or NaN) and a word without letters get
                     ``AnnotationResources.unknown_frequency`` (default 0.0: below wordfreq's
                     floor of about 1, i.e. rarer than any listed word; None gives NaN); their number
                     is logged and stored in ``out.attrs["unknown_frequency_words"]``.
pos                  syntactic, word, categorical, needs tags: Penn tag (the word part's, see
                     :mod:`.tagger`). With trees, the tag of the word's first aligned leaf; a word
                     without a leaf or whose leaf has no Penn tag gets the tagger's tag when there is a
                     tagger, else None.
pos_coarse           syntactic, word, categorical, needs tags: :data:`COARSE_POS` of ``pos``: NOUN
                     (NN NNS NNP NNPS), VERB (VB* MD), ADJ (JJ*), ADV (RB* WRB), PRON (PRP PRP$ WP WP$
                     EX), DET (DT PDT WDT), ADP (IN RP), PART (TO POS), CONJ (CC), NUM (CD), PUNCT
                     (punctuation tags), OTHER (FW LS SYM UH and anything else).
word_depth           syntactic, word, numeric, needs trees: depth of the word's first aligned leaf
                     (:func:`.trees.word_depths`); NaN for a word without a leaf.
tree_depth           syntactic, sentence, numeric, needs trees: :func:`.trees.tree_depth`.
top_constituents     syntactic, sentence, categorical, needs trees: :func:`.trees.top_constituents`
                     (the raw sequence, e.g. ``NP_VP_.``; SentEval keeps the 19 most frequent classes).
bigram_shift         syntactic, sentence: never computable for natural stimuli (SentEval BShift asks
                     whether two adjacent words were swapped: a perturbation, not a property of a
                     text); always raises :class:`PropertyUnavailable`.
tense                semantic, sentence, categorical, needs tags: ``past``/``present``/None.
subject_number       semantic, sentence, categorical, needs tags: ``singular``/``plural``/None.
object_number        semantic, sentence, categorical, needs tags: ``singular``/``plural``/None.

Semantic properties come from the trees when there are trees (:mod:`.trees`: main clause verb,
subject and direct object, SentEval definitions), otherwise from the tags by these heuristics
(:func:`tags_tense`, :func:`tags_subject_number`, :func:`tags_object_number`):

main verb       a short final clause after a comma (at most 8 words) with a finite reporting verb
                (:data:`REPORTING_VERBS`: "..., the company said.", "..., said the fox.") is the main
                clause, as in the treebank's analysis; otherwise the first finite verb (VBD, VBZ, VBP,
                MD) of the sentence, else its first verb of any form.
tense           of the main verb's tag (:func:`.trees.tense_of_tag`: VBD, VBN -> past; VBZ, VBP, MD,
                VB -> present; VBG -> None).
subject number  the number of the head (last noun, pronoun or number; a lone determiner "these" by
                the lexicon) of the last noun group before the main verb (in its clause) that is not
                the object of a preposition (a group right after IN/TO, or a conjunct of one); for
                "..., said the fox." the group after the verb. Noun groups are runs of DT PDT PRP$ JJ*
                CD NN* POS PRP EX VBG VBN tags, cut after a word with attached punctuation
                ("addition," "Upjohn").
object number   after the main verb and the verbs, adverbs and particles that follow it (the verb
                chain), the head of the noun group that starts right there; None when the chain ends
                in a form of "be", when no noun group follows, when the group is followed by a verb
                (the subject of a complement clause: "said it was") or when the subject follows the
                verb ("..., said the fox.").

Measured agreement of the tag heuristics with the tree values, on words tables built from the
held-out treebank files ``wsj_0180``-``wsj_0199`` (245 sentences; counted where the tree value is
defined; tags from the tagger trained on the other 179 files / gold tree tags): tense 0.934 / 0.963
(241 sentences), subject number 0.908 / 0.916 (238), object number 0.754 / 0.815 (65); where the tree
finds no object (180 sentences) the heuristic finds one in 0.23 of them. Against the (automatic)
trees of Le Petit Prince, with the tagger on its lower-cased spoken-form words: tense 0.81 (1435
sentences), subject number 0.81 (1140), object number 0.71 (395)
(tests/core/test_removal_annotators.py asserts the held-out figures).

Output
------
:func:`annotate` returns a DataFrame with columns story, word_index and one column per property,
one row per row of ``words`` in the same order; sentence-level values are repeated on every word of
the sentence. Numeric columns are float64 (NaN only where stated), categorical ones object (None
where undetermined). ``out.attrs`` records ``dataset``, ``sources`` (property -> "text",
"frequency", "trees", "tree tags", "tagger" or "tree tags + tagger"), ``alignment`` (sentences aligned,
words paired by position with different text, words without leaf, leaves without word) and
``unknown_frequency_words``.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from . import trees as T

log = logging.getLogger(__name__)

GROUPS = ("surface", "syntactic", "semantic")
RESOURCES = ("trees", "tags", "frequency")

#: Penn tag -> coarse class (module docstring); tags not listed -> OTHER
COARSE_POS: dict[str, str] = {
    **dict.fromkeys(["NN", "NNS", "NNP", "NNPS"], "NOUN"),
    **dict.fromkeys(["VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD"], "VERB"),
    **dict.fromkeys(["JJ", "JJR", "JJS"], "ADJ"),
    **dict.fromkeys(["RB", "RBR", "RBS", "WRB"], "ADV"),
    **dict.fromkeys(["PRP", "PRP$", "WP", "WP$", "EX"], "PRON"),
    **dict.fromkeys(["DT", "PDT", "WDT"], "DET"),
    **dict.fromkeys(["IN", "RP"], "ADP"),
    **dict.fromkeys(["TO", "POS"], "PART"),
    "CC": "CONJ",
    "CD": "NUM",
    **dict.fromkeys([".", ",", ":", "``", "''", "-LRB-", "-RRB-", "#", "$", "--"], "PUNCT"),
}

_NOUN_GROUP = frozenset({"DT", "PDT", "PRP$", "JJ", "JJR", "JJS", "CD", "NN", "NNS", "NNP", "NNPS", "POS",
                         "PRP", "EX", "VBG", "VBN"})
_HEADS = frozenset({"NN", "NNS", "NNP", "NNPS", "PRP", "EX", "CD"})
_CHAIN = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD", "RB", "RBR", "RBS", "RP"})


class AnnotationError(ValueError):
    """Raised for bad annotation input (unknown property, malformed words table, missing trees)."""


class PropertyUnavailable(AnnotationError):
    """A property cannot be computed for a dataset; the message says what is missing and how to
    provide it. ``properties`` lists the properties concerned."""

    def __init__(self, message: str, properties: Sequence[str] = ()):
        super().__init__(message)
        self.properties = list(properties)


def _default_frequency() -> Callable[[str], float] | None:
    try:
        from wordfreq import zipf_frequency
    except ImportError:   # pragma: no cover - wordfreq is a dependency of the project's venv
        return None

    def english_zipf(word: str) -> float:
        return zipf_frequency(word, "en")

    return english_zipf


@dataclass
class AnnotationResources:
    """What a dataset offers the annotators (module docstring).

    Attributes
    ----------
    dataset : name used in error messages.
    trees : (story, sentence_id) -> nltk.Tree, or None.
    tagger : an object with ``tag(words: list[str]) -> list[str]`` (Penn tags), e.g.
        :func:`.tagger.load_tagger`, or None.
    frequency : word -> Zipf log frequency (0, None or NaN: not in the list); default wordfreq's
        English ``zipf_frequency`` when wordfreq is importable, else None.
    unknown_frequency : log_frequency given to words not in the list (None: NaN).
    """

    dataset: str = "?"
    trees: Mapping | None = None
    tagger: object | None = None
    frequency: Callable[[str], float] | None = field(default_factory=_default_frequency)
    unknown_frequency: float | None = 0.0

    def available(self) -> set[str]:
        """The resources this dataset has, among :data:`RESOURCES`."""
        out = set()
        if self.trees is not None:
            out |= {"trees", "tags"}
        if self.tagger is not None:
            out.add("tags")
        if self.frequency is not None:
            out.add("frequency")
        return out


_HOW = {
    "trees": ("parse trees", "give constituency trees keyed by (story, sentence_id) in "
              "AnnotationResources(trees=...), from an annotation table with trees (e.g. the Le Petit Prince "
              "lppEN_tree.csv format: brainalign.core.removal.trees.read_lpp) or Penn Treebank-style bracketed "
              "trees (trees.read_bracketed); no parser is installed (spaCy's English pipelines are not "
              "installable offline), so trees cannot be computed from text"),
    "tags": ("part-of-speech tags", "pass a tagger, AnnotationResources(tagger=brainalign.core.removal.tagger."
             "load_tagger(<nltk_data>/treebank.zip, cache_dir=...)), or trees whose preterminals are the tags"),
    "frequency": ("a word-frequency list", "install wordfreq or pass AnnotationResources(frequency=<word -> "
                  "Zipf frequency>)"),
}


class Annotator:
    """One property (module docstring). Subclasses set the attributes and ``compute``.

    Attributes
    ----------
    name, group (surface/syntactic/semantic), level (word/sentence), kind (numeric/categorical),
    needs : resources among :data:`RESOURCES`, all required.
    """

    name: str = ""
    group: str = ""
    level: str = ""
    kind: str = ""
    needs: tuple[str, ...] = ()

    def unavailable(self, res: AnnotationResources) -> str | None:
        """Why the property cannot be computed for ``res`` (None: it can)."""
        missing = [n for n in self.needs if n not in res.available()]
        if not missing:
            return None
        what = " and ".join(_HOW[m][0] for m in missing)
        how = "; ".join(_HOW[m][1] for m in missing)
        return f"{self.name} needs {what}; dataset {res.dataset} has none: {how}"

    def source(self, res: AnnotationResources) -> str:
        return "text"

    def compute(self, sent: "_Sentence"):
        """Values for one sentence: a list (one per word) for word level, one value for sentence level."""
        raise NotImplementedError


# --------------------------------------------------------------------------- surface
class SentenceLength(Annotator):
    name, group, level, kind = "sentence_length", "surface", "sentence", "numeric"

    def compute(self, sent):
        return float(len(sent.words))


class WordLength(Annotator):
    name, group, level, kind = "word_length", "surface", "word", "numeric"

    def compute(self, sent):
        return [float(sum(ch.isalnum() for ch in w)) for w in sent.words]


class PositionInSentence(Annotator):
    name, group, level, kind = "position_in_sentence", "surface", "word", "numeric"

    def compute(self, sent):
        return [float(k) for k in range(len(sent.words))]


class LogFrequency(Annotator):
    name, group, level, kind, needs = "log_frequency", "surface", "word", "numeric", ("frequency",)

    def source(self, res):
        return "frequency"

    def compute(self, sent):
        res = sent.res
        fill = np.nan if res.unknown_frequency is None else float(res.unknown_frequency)
        out = []
        for w in sent.words:
            core = strip_punctuation(w)
            z = res.frequency(core) if any(ch.isalnum() for ch in core) else None
            if z is None or not math.isfinite(float(z)) or float(z) <= 0:
                sent.stats["unknown_frequency"].append(w)
                out.append(fill)
            else:
                out.append(float(z))
        return out


# --------------------------------------------------------------------------- syntactic
class Pos(Annotator):
    name, group, level, kind, needs = "pos", "syntactic", "word", "categorical", ("tags",)

    def source(self, res):
        return _tag_source(res)

    def compute(self, sent):
        return list(sent.tags)


class PosCoarse(Pos):
    name = "pos_coarse"

    def compute(self, sent):
        return [None if t is None else COARSE_POS.get(t, "OTHER") for t in sent.tags]


class WordDepth(Annotator):
    name, group, level, kind, needs = "word_depth", "syntactic", "word", "numeric", ("trees",)

    def source(self, res):
        return "trees"

    def compute(self, sent):
        depths = T.word_depths(sent.tree)
        return [float(depths[lv[0]]) if lv else np.nan for lv in sent.alignment.leaves_of_word]


class TreeDepth(Annotator):
    name, group, level, kind, needs = "tree_depth", "syntactic", "sentence", "numeric", ("trees",)

    def source(self, res):
        return "trees"

    def compute(self, sent):
        return float(T.tree_depth(sent.tree))


class TopConstituents(TreeDepth):
    name, kind = "top_constituents", "categorical"

    def compute(self, sent):
        return T.top_constituents(sent.tree)


class BigramShift(Annotator):
    name, group, level, kind = "bigram_shift", "syntactic", "sentence", "categorical"

    def unavailable(self, res):
        return (f"bigram_shift cannot be computed for dataset {res.dataset}: it is a perturbation probing task "
                f"(SentEval BShift: whether two adjacent words of a sentence were swapped), and natural stimuli "
                f"have no swapped bigrams, so every sentence would be 'original'. It needs a perturbed "
                f"stimulus set (sentences with and without swapped words) that subjects heard; use the "
                f"syntactic properties tree_depth, top_constituents or pos instead")

    def compute(self, sent):   # pragma: no cover - unavailable() always refuses
        raise PropertyUnavailable(self.unavailable(sent.res), [self.name])


# --------------------------------------------------------------------------- semantic
class _Semantic(Annotator):
    group, level, kind, needs = "semantic", "sentence", "categorical", ("tags",)
    tree_fn: Callable = staticmethod(lambda tree: None)
    tags_fn: Callable = staticmethod(lambda words, tags: None)

    def source(self, res):
        return "trees" if res.trees is not None else "tagger"

    def compute(self, sent):
        if sent.res.trees is not None:
            return type(self).tree_fn(sent.tree)
        return type(self).tags_fn(sent.words, sent.tags)


#: reporting verbs: a short final clause "..., the company said." / "..., said the fox." is the main clause
REPORTING_VERBS = frozenset("said says say added adds asked asks replied replies explained explains noted "
                            "notes answered answers cried cries continued continues told tells".split())
_BOUNDARY = re.compile(r"[,;:!?\"')\]\u201d\u2019]$")


def _ends_phrase(word: str) -> bool:
    # attached punctuation ("addition," "said:") closes a phrase; a final "." may be an abbreviation
    return bool(_BOUNDARY.search(str(word)))


def _main_verb(words: Sequence[str], tags: Sequence[str | None]) -> tuple[int | None, int]:
    """(index of the main verb, start of its clause segment) by the tag heuristics."""
    last_break = max((i + 1 for i in range(len(words) - 1) if _ends_phrase(words[i])), default=0)
    if last_break:
        for i in range(last_break, len(words)):
            if tags[i] in T.FINITE_TAGS and strip_punctuation(words[i]).lower() in REPORTING_VERBS:
                if len(words) - last_break <= 8:
                    return i, last_break
    k = next((i for i, t in enumerate(tags) if t in T.FINITE_TAGS), None)
    if k is None:
        k = next((i for i, t in enumerate(tags) if t in T.VERB_TAGS), None)
    return k, 0


def tags_tense(words: Sequence[str], tags: Sequence[str | None]) -> str | None:
    """Tense from tags: the tag of the main verb (module docstring)."""
    k, _ = _main_verb(words, tags)
    return None if k is None else T.tense_of_tag(tags[k])


def _noun_groups(words, tags: Sequence[str | None], start: int, stop: int) -> list[tuple[int, int]]:
    groups, i = [], start
    while i < stop:
        if tags[i] in _NOUN_GROUP:
            j = i + 1
            while j < stop and tags[j] in _NOUN_GROUP and not _ends_phrase(words[j - 1]):
                j += 1
            groups.append((i, j))
            i = j
        else:
            i += 1
    return groups


def _group_number(words, tags, a: int, b: int) -> str | None:
    heads = [i for i in range(a, b) if tags[i] in _HEADS]
    if not heads:
        # a determiner alone ("these", "this") stands for the noun
        dets = [i for i in range(a, b) if tags[i] in ("DT", "PDT")]
        return T.number_of_word(strip_punctuation(words[dets[-1]]), "DT") if dets else None
    i = heads[-1]
    return T.number_of_word(strip_punctuation(words[i]), tags[i])


def tags_subject_number(words: Sequence[str], tags: Sequence[str | None]) -> str | None:
    """Subject number from tags: head of the last noun group before the main verb that is not
    directly after a preposition (module docstring)."""
    k, seg = _main_verb(words, tags)
    if k is None:
        return None
    groups, in_pp = [], False
    for a, b in _noun_groups(words, tags, seg, k):
        after = tags[a - 1] if a > seg and not _ends_phrase(words[a - 1]) else None
        # the object of a preposition, or a conjunct of one ("in the lakes and the coast")
        in_pp = after in ("IN", "TO") or (after == "CC" and in_pp)
        if not in_pp:
            groups.append((a, b))
    if not groups and seg:   # "..., said the spokesman."
        groups = _noun_groups(words, tags, k + 1, len(words))[:1]
    for a, b in reversed(groups):
        if any(tags[i] in _HEADS or tags[i] in ("DT", "PDT") for i in range(a, b)):
            return _group_number(words, tags, a, b)
    return None


def tags_object_number(words: Sequence[str], tags: Sequence[str | None]) -> str | None:
    """Object number from tags: head of the noun group right after the main verb chain (module
    docstring)."""
    k, seg = _main_verb(words, tags)
    if k is None or (seg and not _noun_groups(words, tags, seg, k)):
        return None   # "..., said the fox": the noun group after the verb is its subject
    j, last_verb = k, k
    while j < len(tags) and tags[j] in _CHAIN and (j == k or not _ends_phrase(words[j - 1])):
        if tags[j] in T.VERB_TAGS:
            last_verb = j
        j += 1
    if strip_punctuation(words[last_verb]).lower() in T.BE_FORMS or _ends_phrase(words[j - 1]):
        return None
    if j >= len(tags) or tags[j] not in _NOUN_GROUP:
        return None
    a, b = _noun_groups(words, tags, j, len(tags))[0]
    if b < len(tags) and tags[b] in T.VERB_TAGS and not _ends_phrase(words[b - 1]):
        return None   # "said it was", "think the rulings won't": the subject of a complement clause
    return _group_number(words, tags, a, b)


class Tense(_Semantic):
    name = "tense"
    tree_fn = staticmethod(T.tense)
    tags_fn = staticmethod(tags_tense)


class SubjectNumber(_Semantic):
    name = "subject_number"
    tree_fn = staticmethod(T.subject_number)
    tags_fn = staticmethod(tags_subject_number)


class ObjectNumber(_Semantic):
    name = "object_number"
    tree_fn = staticmethod(T.object_number)
    tags_fn = staticmethod(tags_object_number)


#: name -> annotator (module docstring)
ANNOTATORS: dict[str, Annotator] = {a.name: a for a in (
    SentenceLength(), WordLength(), PositionInSentence(), LogFrequency(),
    Pos(), PosCoarse(), WordDepth(), TreeDepth(), TopConstituents(), BigramShift(),
    Tense(), SubjectNumber(), ObjectNumber())}


def annotator_table() -> pd.DataFrame:
    """The registry as a table: name, group, level, kind, needs (comma-joined)."""
    return pd.DataFrame([{"name": a.name, "group": a.group, "level": a.level, "kind": a.kind,
                          "needs": ",".join(a.needs)} for a in ANNOTATORS.values()])


# --------------------------------------------------------------------------- annotate
def strip_punctuation(word) -> str:
    """The word without leading and trailing punctuation (internal apostrophes and hyphens kept)."""
    return re.sub(r"^[^\w]+|[^\w]+$", "", str(word).replace("\u2019", "'"))


def _tag_source(res: AnnotationResources) -> str:
    if res.trees is not None:
        return "tree tags + tagger" if res.tagger is not None else "tree tags"
    return "tagger"


class _Sentence:
    """One sentence of the words table, with its tree, alignment and tags computed on demand."""

    def __init__(self, story, sentence_id, words: list[str], res: AnnotationResources, stats: dict):
        self.story, self.sentence_id, self.words, self.res, self.stats = story, sentence_id, words, res, stats

    @cached_property
    def tree(self):
        """The sentence's tree (annotate checked that every sentence has one), once its leaves have
        been aligned to the words (an AlignmentError says the tree belongs to another sentence)."""
        self.alignment   # noqa: B018
        return self.res.trees[(self.story, self.sentence_id)]

    @cached_property
    def alignment(self) -> T.Alignment:
        tree = self.res.trees[(self.story, self.sentence_id)]
        al = T.align_leaves(tree, self.words, story=self.story, sentence_id=self.sentence_id)
        self.stats["aligned"] += 1
        self.stats["substituted"] += al.n_substituted
        self.stats["unaligned_words"] += len(al.unaligned_words)
        self.stats["unaligned_leaves"] += len(al.unaligned_leaves)
        return al

    @cached_property
    def tags(self) -> list[str | None]:
        res = self.res
        if res.trees is None:
            tags = list(res.tagger.tag(self.words))
            if len(tags) != len(self.words):
                raise AnnotationError(f"dataset {res.dataset}: the tagger gave {len(tags)} tags for the "
                                      f"{len(self.words)} words of story {self.story!r}, sentence {self.sentence_id}")
            return tags
        leaf_tags = [t for _, t in T.tagged_leaves(self.tree)]
        tags = [leaf_tags[lv[0]] if lv and leaf_tags[lv[0]] in T.PENN_TAGS - {"-NONE-"} else None
                for lv in self.alignment.leaves_of_word]
        if any(t is None for t in tags) and res.tagger is not None:
            fallback = res.tagger.tag(self.words)
            tags = [f if t is None else t for t, f in zip(tags, fallback)]
        self.stats["untagged_from_trees"] += sum(t is None for t in tags)
        return tags


def _check_words(words: pd.DataFrame, dataset: str) -> None:
    if not isinstance(words, pd.DataFrame):
        raise AnnotationError(f"dataset {dataset}: words must be a DataFrame, got {type(words).__name__}")
    missing = [c for c in ("story", "word_index", "word", "sentence_id") if c not in words.columns]
    if missing:
        raise AnnotationError(f"dataset {dataset}: the words table lacks columns {missing} "
                              f"(it has {list(words.columns)}); sentence_id comes from "
                              f"brainalign.core.timing.stimuli.assign_sentences")
    for col in ("word", "sentence_id"):
        bad = words[col].isna()
        if bad.any():
            r = words[bad].iloc[0]
            raise AnnotationError(f"dataset {dataset}: {int(bad.sum())} rows have no {col} (first: story "
                                  f"{r['story']!r}, word_index {r['word_index']})")
    dup = words.duplicated(["story", "word_index"])
    if dup.any():
        r = words[dup].iloc[0]
        raise AnnotationError(f"dataset {dataset}: {int(dup.sum())} duplicated (story, word_index) rows "
                              f"(first: story {r['story']!r}, word_index {r['word_index']})")


def _sentence_key(value):
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return int(f) if f.is_integer() else value


def annotate(words: pd.DataFrame, properties: Sequence[str],
             resources: AnnotationResources | None = None) -> pd.DataFrame:
    """Annotate every word of a words table with linguistic properties.

    Parameters
    ----------
    words : the words table (story, word_index, word, sentence_id, ...), n rows; any order.
    properties : names registered in :data:`ANNOTATORS`.
    resources : what the dataset has (default: text and wordfreq only).

    Returns
    -------
    DataFrame (n rows, same order as ``words``, index 0..n-1) with columns story, word_index and one
    per property; sentence-level values repeated on the sentence's words; ``attrs`` as in the module
    docstring.
    """
    res = resources if resources is not None else AnnotationResources()
    props = list(properties)
    unknown = [p for p in props if p not in ANNOTATORS]
    if unknown:
        raise AnnotationError(f"dataset {res.dataset}: unknown properties {unknown}; registered: "
                              f"{sorted(ANNOTATORS)}")
    if len(set(props)) != len(props):
        raise AnnotationError(f"dataset {res.dataset}: properties requested twice: "
                              f"{sorted({p for p in props if props.count(p) > 1})}")
    refusals = [(p, ANNOTATORS[p].unavailable(res)) for p in props]
    refusals = [(p, m) for p, m in refusals if m]
    if refusals:
        raise PropertyUnavailable(". ".join(m for _, m in refusals), [p for p, _ in refusals])
    _check_words(words, res.dataset)

    n = len(words)
    story = words["story"].to_numpy()
    sid = np.array([_sentence_key(v) for v in words["sentence_id"]], dtype=object)
    widx = words["word_index"].to_numpy()
    text = words["word"].astype(str).to_numpy()
    cols = {p: np.full(n, np.nan) if ANNOTATORS[p].kind == "numeric" else np.full(n, None, dtype=object)
            for p in props}
    stats = {"aligned": 0, "substituted": 0, "unaligned_words": 0, "unaligned_leaves": 0,
             "untagged_from_trees": 0, "unknown_frequency": []}
    if res.trees is not None and any({"trees", "tags"} & set(ANNOTATORS[p].needs) for p in props):
        keys = set(zip(story.tolist(), sid.tolist()))
        lacking = sorted(k for k in keys if k not in res.trees)
        if lacking:
            raise AnnotationError(f"dataset {res.dataset}: {len(lacking)} of {len(keys)} sentences have no tree "
                                  f"(first: {lacking[:3]}); trees must be keyed by (story, sentence_id) of the "
                                  f"words table and cover every sentence")
    order = pd.DataFrame({"story": story, "sid": sid, "widx": widx, "pos": np.arange(n)})
    for (st, s), rows in order.groupby(["story", "sid"], sort=False):
        rows = rows.sort_values("widx")
        pos = rows["pos"].to_numpy()
        sent = _Sentence(st, s, text[pos].tolist(), res, stats)
        for p in props:
            ann = ANNOTATORS[p]
            value = ann.compute(sent)
            if ann.level == "word":
                cols[p][pos] = value
            else:
                for k in pos:
                    cols[p][k] = value
    out = pd.DataFrame({"story": story, "word_index": widx})
    for p in props:   # object columns keep None (a str dtype would turn it into NaN)
        out[p] = pd.Series(cols[p], dtype=np.float64 if ANNOTATORS[p].kind == "numeric" else object)
    unknown_freq = stats.pop("unknown_frequency")
    if unknown_freq:
        log.info("dataset %s: %d words not in the frequency list get log_frequency %s (e.g. %s)", res.dataset,
                 len(unknown_freq), res.unknown_frequency, unknown_freq[:5])
    if stats["aligned"]:
        log.info("dataset %s: trees aligned to %d sentences (%d words paired by position with other text, %d "
                 "words without leaf, %d leaves without word)", res.dataset, stats["aligned"],
                 stats["substituted"], stats["unaligned_words"], stats["unaligned_leaves"])
    if stats["untagged_from_trees"]:
        log.warning("dataset %s: %d words have no Penn tag in the trees and no tagger: pos is None there",
                    res.dataset, stats["untagged_from_trees"])
    out.attrs = {"dataset": res.dataset, "sources": {p: ANNOTATORS[p].source(res) for p in props},
                 "alignment": {k: stats[k] for k in ("aligned", "substituted", "unaligned_words",
                                                     "unaligned_leaves")},
                 "unknown_frequency_words": len(unknown_freq)}
    return out
