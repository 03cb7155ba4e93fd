"""Constituency trees: reading (Penn Treebank sample, Le Petit Prince annotation table), aligning a
tree's leaves to the words table, and the sentence properties a tree gives, following the probing
tasks of SentEval (Conneau et al. 2018, "What you can cram into a single $&!#* vector").

Trees are :class:`nltk.Tree` objects (nltk is used only for the tree type and its bracket parser).

Readers
-------
:func:`read_treebank`   NLTK's 10% Penn Treebank sample (``treebank.zip``, ``combined/wsj_*.mrg``):
                        ``-NONE-`` leaves (traces, empty subjects, ``0`` complementisers) and the
                        constituents left empty by their removal are dropped; function tags and
                        indices stay on the labels (``NP-SBJ-1``) so that the subject can be found
                        from ``-SBJ``; every function here reads labels through :func:`base_label`
                        (``NP-SBJ-1`` -> ``NP``), and :func:`strip_function_tags` gives bare labels.
:func:`read_lpp_trees`  ``lppEN_tree.csv``: one bracketed tree per line, lower-cased words, no
                        punctuation leaves, no function tags.
:func:`read_lpp`        the LPP words table (from ``lppEN_word_information.csv``) and its trees:
                        sentence ``i`` is tree ``i`` (the table's rows are the trees' leaves, in order).

Conventions (all functions below)
---------------------------------
preterminal   a node all of whose children are leaves (strings); its label is the word's tag. (LPP
              has one leaf directly under an ``NP``; that ``NP`` is then its "tag".)
top clause    the root, or while the root is an unlabelled/``ROOT``/``TOP`` bracket with a single
              child (PTB's ``( (S ...) )``), that child.
word depth    the number of constituents strictly above the word's preterminal, counting the top
              clause and not counting the unlabelled/ROOT wrapper, the preterminal (POS) node or the
              leaf: in ``(S (NP (PRP it)) (VP (VBD ran)))`` both words have depth 2 (S, NP / S, VP).
tree depth    the maximum word depth of the sentence (SentEval TreeDepth: "the depth of the longest
              path from the root to any leaf"; the constant offset of counting the ROOT, POS and
              leaf levels as well is left out, so a one-word sentence ``(S (UH hi))`` has depth 1).
top constituents  the labels (function tags stripped) of the top clause's children joined with
              ``_`` (SentEval TopConst, "the sequence of top constituents immediately below the
              sentence node"), e.g. ``NP_VP_.``; punctuation children count (treebank trees have
              them, LPP trees do not).
main verb     from the top clause: its first child that is a verb preterminal (``VB*``/``MD``:
              inverted auxiliaries of SQ/SINV), else its first ``VP`` child, else its first clause
              child (``S``, ``SQ``, ``SINV``, ``SBARQ``, ``SBAR``: coordinated clauses take the first
              conjunct); inside a ``VP`` the first verb-preterminal child, else the first ``VP`` child
              (coordinated VPs). The main verb is therefore the first (finite) verb of the main clause's
              verb chain: the auxiliary in "has gone", "did not go", "will go".
tense         (SentEval Tense) of the main verb's tag: ``VBD`` -> past; ``VBZ``, ``VBP``, ``MD`` (all
              modals, "would"/"could" included) -> present; ``VB`` (imperatives, mis-tagged
              presents) -> present; ``VBN`` (a bare participle heading the clause) -> past; ``VBG``,
              or no verb (fragments, NP sentences) -> None.
subject number  (SentEval SubjNum) of the head of the main clause's subject: the child with the
              ``SBJ`` function tag when the tree has function tags, else the last NP child before the
              verb (chain) of the main clause, else (inversion) the first NP child after it.
object number   (SentEval ObjNum) of the main verb's direct object: the verb chain is followed down
              to the lowest VP (a VP with a VP child and no NP child is an auxiliary level); its first
              NP child that has no adverbial/predicative function tag (``PRD``, ``TMP``, ``ADV``,
              ``LOC``, ``EXT``, ``VOC``, ``MNR``, ``DIR``) is the object. No object when the lowest VP's
              verb is a form of "be" (a predicate nominal, not an object: LPP trees have no ``PRD``
              tags) or when there is no such NP. In double-object VPs the first NP (the indirect
              object) is taken.
number of an NP  ``singular`` / ``plural`` / None (undetermined). An NP with a ``CC`` "and" child
              and at least two NP conjuncts is plural. Otherwise its head is the rightmost
              nominal child (noun/pronoun/number preterminal or nested NP) before the first
              post-modifier (``PP``, ``SBAR``, ``VP``, ``S``, ``RRC``, ``PRN``, comma, colon), a nested
              NP being followed down. ``NN``/``NNP`` -> singular, ``NNS``/``NNPS`` -> plural; pronouns
              and determiners by the lexicon :data:`PRONOUN_NUMBER` ("you", "all", "some", "who",
              expletive "there" -> None); ``CD`` "one"/"1" -> singular, other numbers plural. Clausal
              subjects, missing subjects (imperatives, subjects that were only a trace) -> None.

Alignment
---------
:func:`align_leaves` maps a sentence's tree leaves to its rows in the words table by normalised text
(:func:`normalise`: lower-case, everything but letters, digits, ``%`` and ``&`` removed); punctuation leaves
(tags in :data:`PUNCT_TAGS` or nothing left by normalising) are skipped. Leaves may merge into one word ("does"
+ "n't" -> "doesn't"), words into one leaf, and a stretch of as many leaves as words that differ in
text is paired in order (spoken vs. written forms in the LPP table: "s"/"is", "nt"/"not",
"three two five"/"325"). Mismatches are: pairs whose texts are not variants of each other (variants:
one is a prefix or suffix of the other, or digits vs. number words; a word without text, as LPP's
empty rows, never disagrees), words with text and no leaf, and leaves with no word; more than
``max(1, n_words // 3)`` of them raise :class:`AlignmentError` naming the story and sentence.
"""
from __future__ import annotations

import difflib
import logging
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from nltk import Tree

log = logging.getLogger(__name__)

#: Penn Treebank part-of-speech tags (45 + the trace tag)
PENN_TAGS = frozenset(
    "CC CD DT EX FW IN JJ JJR JJS LS MD NN NNS NNP NNPS PDT POS PRP PRP$ RB RBR RBS RP SYM TO UH VB VBD "
    "VBG VBN VBP VBZ WDT WP WP$ WRB # $ . , : `` '' -LRB- -RRB- -NONE-".split())
#: tags of punctuation leaves (skipped when aligning to words)
PUNCT_TAGS = frozenset({".", ",", ":", "``", "''", "-LRB-", "-RRB-", "#", "$", "-NONE-"})
VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD"})
FINITE_TAGS = frozenset({"VBD", "VBZ", "VBP", "MD"})
NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
CLAUSE_LABELS = frozenset({"S", "SQ", "SINV", "SBARQ", "SBAR"})
NP_LABELS = frozenset({"NP", "NML", "NX", "WHNP"})
_NP_HEAD_TAGS = NOUN_TAGS | {"PRP", "CD", "EX", "DT", "WP", "WDT", "PDT"}
_POSTMODIFIERS = frozenset({"PP", "SBAR", "VP", "S", "RRC", "PRN", ",", ":", "-LRB-"})
_NON_OBJECT_FUNCTIONS = frozenset({"PRD", "TMP", "ADV", "LOC", "EXT", "VOC", "MNR", "DIR"})
_WRAPPERS = frozenset({"", "ROOT", "TOP"})
BE_FORMS = frozenset({"be", "is", "am", "are", "was", "were", "been", "being", "'s", "'re", "'m", "s", "re", "m"})

#: pronoun / determiner / quantifier -> grammatical number (absent or None: undetermined)
PRONOUN_NUMBER: dict[str, str | None] = {
    **dict.fromkeys("i me myself he him himself she her herself it itself one oneself this that "
                    "everyone everybody someone somebody anyone anybody nobody nothing something anything "
                    "everything each either neither another yourself".split(), "singular"),
    **dict.fromkeys("we us ourselves they them themselves these those both many few several others "
                    "yourselves".split(), "plural"),
    **dict.fromkeys("you all some any none who whom what which there".split(), None),
}


class TreeError(ValueError):
    """Raised for unreadable tree files; the message names the file (and line or tree)."""


class AlignmentError(TreeError):
    """Raised when a sentence's tree leaves cannot be aligned to its words; names story and sentence."""


# --------------------------------------------------------------------------- labels and leaves
def base_label(label) -> str:
    """The label without function tags and indices: ``NP-SBJ-1`` -> ``NP``, ``NP=2`` -> ``NP``;
    ``-NONE-``, ``-LRB-``, ``-RRB-`` are kept whole."""
    label = str(label)
    if label.startswith("-") and label.endswith("-"):
        return label
    return re.split(r"[-=]", label, maxsplit=1)[0]


def function_tags(label) -> frozenset[str]:
    """The function tags of a label: ``NP-SBJ-1`` -> {"SBJ"}, ``PP-LOC-CLR`` -> {"LOC", "CLR"}."""
    label = str(label)
    if label.startswith("-") and label.endswith("-"):
        return frozenset()
    parts = re.split(r"[-=]", label)[1:]
    return frozenset(p for p in parts if p and not p.isdigit())


def is_preterminal(node) -> bool:
    """True for a tree node whose children are all leaves (strings)."""
    return isinstance(node, Tree) and len(node) > 0 and all(isinstance(c, str) for c in node)


def strip_function_tags(tree: Tree) -> Tree:
    """A copy of ``tree`` with every label replaced by its :func:`base_label`."""
    if isinstance(tree, str):
        return tree
    return Tree(base_label(tree.label()), [strip_function_tags(c) for c in tree])


def clean_tree(tree: Tree) -> Tree | None:
    """A copy of ``tree`` without ``-NONE-`` preterminals and without the constituents their removal
    leaves empty (None when nothing is left)."""
    if isinstance(tree, str):
        return tree
    if base_label(tree.label()) == "-NONE-":
        return None
    kids = [k for k in (clean_tree(c) for c in tree) if k is not None]
    if not kids:
        return None
    return Tree(tree.label(), kids)


def tagged_leaves(tree: Tree) -> list[tuple[str, str]]:
    """(word, tag) of each leaf in order; the tag is the base label of the leaf's parent node."""
    out = []

    def walk(node):
        for c in node:
            if isinstance(c, str):
                out.append((c, base_label(node.label())))
            else:
                walk(c)
    walk(tree)
    return out


def normalise(text) -> str:
    """Lower-case ``text`` and keep only its letters, digits, ``%`` and ``&`` (``"Alice,"`` ->
    ``"alice"``, ``"n't"`` -> ``"nt"``, ``"50%."`` -> ``"50%"``: the treebank has ``%`` and ``&``
    leaves tagged NN and CC)."""
    return "".join(ch for ch in str(text).lower() if ch.isalnum() or ch in "%&")


# --------------------------------------------------------------------------- readers
def read_bracketed(text: str, source: str = "<string>") -> list[Tree]:
    """Every top-level bracketed tree in ``text`` (several per line or one over many lines).

    Parameters
    ----------
    text : bracketed trees, e.g. the content of a ``.mrg`` file.
    source : name used in error messages.

    Returns
    -------
    list of Tree, in order (unmodified: traces and function tags kept).
    """
    trees, depth, start = [], 0, None
    for k, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                start = k
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise TreeError(f"{source}: unbalanced ')' at character {k}")
            if depth == 0:
                chunk = text[start:k + 1]
                try:
                    trees.append(Tree.fromstring(chunk))
                except ValueError as exc:
                    raise TreeError(f"{source}: tree {len(trees)} cannot be parsed ({exc}): "
                                    f"{chunk[:80]}...") from exc
    if depth != 0:
        raise TreeError(f"{source}: unbalanced brackets (tree {len(trees)} is not closed)")
    return trees


def treebank_fileids(path: str | Path) -> list[str]:
    """The sorted ``.mrg`` file names (``wsj_0001.mrg`` ...) of a treebank zip (``combined/``)."""
    path = Path(path)
    if not path.is_file():
        raise TreeError(f"{path}: treebank zip not found (NLTK's treebank.zip, nltk_data/corpora)")
    with zipfile.ZipFile(path) as z:
        names = sorted(Path(n).name for n in z.namelist() if n.endswith(".mrg") and "/combined/" in f"/{n}")
    if not names:
        raise TreeError(f"{path}: no combined/*.mrg files (is this NLTK's treebank.zip?)")
    return names


def read_treebank(path: str | Path, fileids: Sequence[str] | None = None) -> list[tuple[str, Tree]]:
    """Sentences of a Penn Treebank zip (NLTK's ``treebank.zip``), traces removed.

    Parameters
    ----------
    path : the zip file (holds ``treebank/combined/wsj_*.mrg``).
    fileids : file names to read (``wsj_0001.mrg`` ...); default all, sorted.

    Returns
    -------
    list of (fileid, tree) in file order: the tree with its unlabelled outer bracket, function tags
    and indices kept, ``-NONE-`` leaves and the constituents left empty removed (:func:`clean_tree`).
    """
    path = Path(path)
    all_ids = treebank_fileids(path)
    wanted = all_ids if fileids is None else list(fileids)
    unknown = sorted(set(wanted) - set(all_ids))
    if unknown:
        raise TreeError(f"{path}: no files {unknown[:5]} (it has {all_ids[0]} .. {all_ids[-1]})")
    out = []
    with zipfile.ZipFile(path) as z:
        members = {Path(n).name: n for n in z.namelist() if n.endswith(".mrg") and "/combined/" in f"/{n}"}
        for fid in wanted:
            text = z.read(members[fid]).decode("utf-8", errors="strict")
            for k, tree in enumerate(read_bracketed(text, f"{path}:{fid}")):
                cleaned = clean_tree(tree)
                if cleaned is None:
                    raise TreeError(f"{path}:{fid}: tree {k} has only empty elements")
                out.append((fid, cleaned))
    return out


def read_lpp_trees(path: str | Path) -> list[Tree]:
    """Trees of the Le Petit Prince annotation table ``lppEN_tree.csv`` (one bracketed tree per
    line, in story order).

    Returns
    -------
    list of Tree, one per non-empty line; tree ``i`` is sentence ``i``.
    """
    path = Path(path)
    if not path.is_file():
        raise TreeError(f"{path}: LPP tree file not found (lppEN_tree.csv of the annotation folder)")
    trees = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            trees.append(Tree.fromstring(line.strip()))
        except ValueError as exc:
            raise TreeError(f"{path}: line {n} is not a bracketed tree ({exc})") from exc
    if not trees:
        raise TreeError(f"{path}: no trees")
    return trees


def read_lpp(annotation_dir: str | Path, story_format: str = "section{section}"
             ) -> tuple[pd.DataFrame, dict[tuple[str, int], Tree]]:
    """The Le Petit Prince words table and its trees, from ``lppEN_word_information.csv`` and
    ``lppEN_tree.csv`` of the annotation folder.

    The word-information table has one row per word, in order, and the trees' leaves in order are
    these words (15,376 of them in 1,499 trees): tree ``i`` covers the next ``len(leaves)`` rows.
    The words are the table's (spoken forms: "s" for "is", "nt" for "not"; a few are empty).

    Parameters
    ----------
    annotation_dir : folder holding the two CSVs (``lpp_en/annotation``).
    story_format : story name of a section, formatted with ``section`` (the table's 1..9).

    Returns
    -------
    words : DataFrame story, word_index (0-based per story), word, onset, offset (s, the table's,
        from the start of the section's audio), sentence_id (the tree index, 0-based over the book).
    trees : (story, sentence_id) -> Tree.
    """
    annotation_dir = Path(annotation_dir)
    info_path = annotation_dir / "lppEN_word_information.csv"
    if not info_path.is_file():
        raise TreeError(f"{info_path}: not found (the LPP annotation folder has lppEN_word_information.csv)")
    trees = read_lpp_trees(annotation_dir / "lppEN_tree.csv")
    info = pd.read_csv(info_path, keep_default_na=False, dtype={"word": str})
    missing = {"word", "onset", "offset", "section"} - set(info.columns)
    if missing:
        raise TreeError(f"{info_path}: missing columns {sorted(missing)}")
    n_leaves = [len(t.leaves()) for t in trees]
    if sum(n_leaves) != len(info):
        raise TreeError(f"{info_path}: {len(info)} words but the {len(trees)} trees of lppEN_tree.csv have "
                        f"{sum(n_leaves)} leaves; the two files do not belong together")
    sentence_id = [i for i, n in enumerate(n_leaves) for _ in range(n)]
    info = info.assign(sentence_id=sentence_id)
    split = info.groupby("sentence_id")["section"].nunique()
    if (split > 1).any():
        raise TreeError(f"{info_path}: sentences {split.index[split > 1].tolist()[:5]} span two sections")
    info["story"] = [story_format.format(section=s) for s in info["section"]]
    info["word_index"] = info.groupby("story", sort=False).cumcount()
    words = info[["story", "word_index", "word", "onset", "offset", "sentence_id"]].reset_index(drop=True)
    words["word"] = words["word"].astype(str)
    story_of = words.groupby("sentence_id")["story"].first()
    return words, {(story_of[i], i): t for i, t in enumerate(trees)}


# --------------------------------------------------------------------------- alignment
@dataclass
class Alignment:
    """Leaves of a tree aligned to the words of its sentence.

    Attributes
    ----------
    leaves_of_word : per word row (in the order given), the indices into ``tree.leaves()`` it covers
        (empty tuple: no leaf).
    n_substituted : word-leaf pairs matched by position whose texts differ.
    n_disagreeing : those of them whose texts are not variants of each other (module docstring).
    unaligned_leaves : indices of non-punctuation leaves with no word.
    unaligned_words : positions of words with text (something left by :func:`normalise`) and no leaf.
    """

    leaves_of_word: list[tuple[int, ...]]
    n_substituted: int = 0
    n_disagreeing: int = 0
    unaligned_leaves: list[int] = field(default_factory=list)
    unaligned_words: list[int] = field(default_factory=list)

    @property
    def n_mismatched(self) -> int:
        """Disagreeing pairs, words without leaf and leaves without word."""
        return self.n_disagreeing + len(self.unaligned_leaves) + len(self.unaligned_words)


_NUMBER_WORDS = re.compile(
    r"^(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|"
    r"thousand|million|billion|and)+$")


def _soft_equal(a: str, b: str) -> bool:
    # clitic and spoken/written variants: "s"/"is", "didn"/"did", "ll"/"will"; "threetwofive"/"325"
    if not a or not b:
        return False
    if (a.isdigit() and _NUMBER_WORDS.match(b)) or (b.isdigit() and _NUMBER_WORDS.match(a)):
        return True
    return a.startswith(b) or b.startswith(a) or a.endswith(b) or b.endswith(a)


def align_leaves(tree: Tree, words: Sequence[str], story: str = "?", sentence_id=None,
                 max_mismatched: int | None = None) -> Alignment:
    """Map a sentence's tree leaves to its words by normalised text (module docstring).

    Parameters
    ----------
    tree : the sentence's tree.
    words : the sentence's words, in order (the ``word`` column of its rows; attached punctuation
        is fine).
    story, sentence_id : named in the error.
    max_mismatched : most words allowed to be matched by position only with different text (soft
        variants such as "s"/"is" do not count) or to have no leaf, plus leaves with no word;
        default ``max(1, len(words) // 3)``.

    Returns
    -------
    Alignment (``leaves_of_word`` has one entry per word).
    """
    tagged = tagged_leaves(tree)
    leaf_idx = [i for i, (w, t) in enumerate(tagged) if t not in PUNCT_TAGS and normalise(w)]
    L = [normalise(tagged[i][0]) for i in leaf_idx]
    W = [normalise(w) for w in words]
    out: list[list[int]] = [[] for _ in W]
    n_sub, hard, un_leaves = 0, 0, []

    def block(li: list[int], wj: list[int]):
        nonlocal n_sub, hard
        i = j = 0
        while i < len(li) and j < len(wj):
            merged = False
            for k in range(2, min(5, len(li) - i) + 1):     # leaves i..i+k -> word j
                if "".join(L[x] for x in li[i:i + k]) == W[wj[j]]:
                    out[wj[j]].extend(leaf_idx[x] for x in li[i:i + k])
                    i, j, merged = i + k, j + 1, True
                    break
            if not merged:
                for k in range(2, min(5, len(wj) - j) + 1):  # words j..j+k -> leaf i
                    if "".join(W[y] for y in wj[j:j + k]) == L[li[i]]:
                        for y in wj[j:j + k]:
                            out[y].append(leaf_idx[li[i]])
                        i, j, merged = i + 1, j + k, True
                        break
            if merged:
                continue
            if len(li) - i == len(wj) - j:
                out[wj[j]].append(leaf_idx[li[i]])
                if L[li[i]] != W[wj[j]]:
                    n_sub += 1
                    # a word without text (LPP's empty "not" rows) cannot disagree
                    hard += bool(W[wj[j]]) and not _soft_equal(L[li[i]], W[wj[j]])
                i, j = i + 1, j + 1
            elif len(li) - i > len(wj) - j:
                un_leaves.append(leaf_idx[li[i]])
                i += 1
            else:
                j += 1
        un_leaves.extend(leaf_idx[x] for x in li[i:])

    sm = difflib.SequenceMatcher(None, L, W, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            for a, b in zip(range(i1, i2), range(j1, j2)):
                out[b].append(leaf_idx[a])
        else:
            block(list(range(i1, i2)), list(range(j1, j2)))
    un_words = [j for j, w in enumerate(W) if w and not out[j]]
    limit = max(1, len(W) // 3) if max_mismatched is None else max_mismatched
    bad = hard + len(un_leaves) + len(un_words)
    if bad > limit:
        raise AlignmentError(
            f"story {story!r}, sentence {sentence_id}: the tree's leaves cannot be aligned to the words "
            f"({bad} mismatches, at most {limit} allowed): words {' '.join(map(str, words))!r}; leaves "
            f"{' '.join(w for w, t in tagged if t not in PUNCT_TAGS)!r}. Is the tree keyed to the right "
            f"(story, sentence_id)?")
    return Alignment([tuple(o) for o in out], n_sub, hard, un_leaves, un_words)


# --------------------------------------------------------------------------- properties
def top_clause(tree: Tree) -> Tree:
    """The tree below unlabelled / ``ROOT`` / ``TOP`` single-child wrappers."""
    node = tree
    while (base_label(node.label()) in _WRAPPERS and len(node) == 1 and isinstance(node[0], Tree)
           and not is_preterminal(node)):
        node = node[0]
    return node


def word_depths(tree: Tree) -> list[int]:
    """Depth of each leaf, in order: the number of constituents above its preterminal, the top
    clause counted, ROOT wrappers not (module docstring).

    Returns
    -------
    list of int, one per ``tree.leaves()`` entry.
    """
    top = top_clause(tree)
    out = []

    def walk(node, depth):
        if is_preterminal(node):
            out.extend([max(depth, 1)] * len(node))   # a preterminal top clause: depth 1
            return
        for c in node:
            if isinstance(c, str):   # a leaf directly under a phrase: that phrase is its preterminal
                out.append(max(depth, 1))
            else:
                walk(c, depth + 1)
    # leaves above the top clause do not exist: wrappers have a single child
    walk(top, 0)
    return out


def tree_depth(tree: Tree) -> int:
    """SentEval TreeDepth: the maximum :func:`word_depths` of the tree (module docstring)."""
    depths = word_depths(tree)
    if not depths:
        raise TreeError(f"tree without leaves: {tree}")
    return max(depths)


def top_constituents(tree: Tree) -> str:
    """SentEval TopConst: labels of the top clause's children (function tags stripped) joined with
    ``_``, e.g. ``"NP_VP_."``; a one-word sentence whose top is a preterminal gives its tag."""
    top = top_clause(tree)
    if is_preterminal(top):
        return base_label(top.label())
    return "_".join(base_label(c.label()) if isinstance(c, Tree) else str(c) for c in top)


@dataclass
class MainClause:
    """The main clause of a tree (module docstring): ``clause`` the clause node, ``head`` its
    child that leads to the verb (a verb preterminal or a VP), ``verb`` the main verb's preterminal
    (None: no verb), ``lowest_vp`` the VP at the bottom of the verb chain (None: no VP)."""

    clause: Tree
    head: Tree | None
    verb: Tree | None
    lowest_vp: Tree | None


def _first(node: Tree, pred):
    return next((c for c in node if isinstance(c, Tree) and pred(c)), None)


def _is_verb(c) -> bool:
    return is_preterminal(c) and base_label(c.label()) in VERB_TAGS


def _is_vp(c) -> bool:
    return base_label(c.label()) == "VP" and not is_preterminal(c)


def main_clause(tree: Tree) -> MainClause:
    """Find the main clause, its verb and the bottom of its verb chain (module docstring)."""
    node = top_clause(tree)
    for _ in range(100):
        verb = _first(node, _is_verb)
        if verb is not None:
            return MainClause(node, verb, verb, _lowest_vp(node) if _first(node, _is_vp) is not None else None)
        vp = _first(node, _is_vp)
        if vp is not None:
            return MainClause(node, vp, _vp_verb(vp), _lowest_vp(vp))
        sub = _first(node, lambda c: base_label(c.label()) in CLAUSE_LABELS and not is_preterminal(c))
        if sub is None:
            return MainClause(node, None, None, None)
        node = sub
    return MainClause(node, None, None, None)


def _vp_verb(vp: Tree) -> Tree | None:
    for _ in range(100):
        verb = _first(vp, _is_verb)
        if verb is not None:
            return verb
        sub = _first(vp, _is_vp)
        if sub is None:
            return None
        vp = sub
    return None


def _lowest_vp(node: Tree) -> Tree:
    # follow VP children down while the current level has no NP object: auxiliaries, coordination
    vp = node if _is_vp(node) else _first(node, _is_vp)
    for _ in range(100):
        sub = _first(vp, _is_vp)
        if sub is None or _first(vp, lambda c: base_label(c.label()) == "NP") is not None:
            return vp
        vp = sub
    return vp


def tense(tree: Tree) -> str | None:
    """SentEval Tense of the main verb: ``"past"``, ``"present"`` or None (module docstring)."""
    verb = main_clause(tree).verb
    return None if verb is None else tense_of_tag(base_label(verb.label()))


def tense_of_tag(tag: str) -> str | None:
    """``VBD``/``VBN`` -> past, ``VBZ``/``VBP``/``MD``/``VB`` -> present, others None."""
    if tag in ("VBD", "VBN"):
        return "past"
    if tag in ("VBZ", "VBP", "MD", "VB"):
        return "present"
    return None


def number_of_word(word: str, tag: str) -> str | None:
    """Grammatical number of one head word from its tag (nouns, numbers) or the lexicon
    :data:`PRONOUN_NUMBER` (pronouns, determiners); None when undetermined."""
    if tag in ("NN", "NNP"):
        return "singular"
    if tag in ("NNS", "NNPS"):
        return "plural"
    w = normalise(word) if tag != "CD" else str(word).lower()
    if tag == "CD":
        return "singular" if w in ("one", "1") else "plural"
    return PRONOUN_NUMBER.get(w)


def np_number(np: Tree) -> str | None:
    """Number of an NP's head (module docstring): ``"singular"``, ``"plural"`` or None."""
    if isinstance(np, str):
        return None
    if is_preterminal(np):   # a word directly under an NP (LPP "(NP drawing)"): by the lexicon only
        lab = base_label(np.label())
        return number_of_word(np[0], lab if lab in _NP_HEAD_TAGS else "")
    kids = [c for c in np if isinstance(c, Tree)]
    labels = [base_label(c.label()) for c in kids]
    conj = any(lab == "CC" and c.leaves()[0].lower() == "and" for lab, c in zip(labels, kids))
    if conj and sum(lab in NP_LABELS for lab in labels) >= 2:
        return "plural"
    head = None
    for lab, c in zip(labels, kids):
        if lab in _POSTMODIFIERS and head is not None:
            break
        if lab in NP_LABELS or (is_preterminal(c) and lab in _NP_HEAD_TAGS):
            head = c   # the rightmost nominal child: "the boa constrictor", "all the boys"
    if head is None:
        return None
    lab = base_label(head.label())
    if lab in NP_LABELS:
        return np_number(head)
    return number_of_word(head[0], lab)


def subject_np(tree: Tree) -> Tree | None:
    """The main clause's subject constituent (module docstring), or None."""
    mc = main_clause(tree)
    kids = [c for c in mc.clause if isinstance(c, Tree)]
    tagged = [c for c in kids if "SBJ" in function_tags(c.label())]
    if tagged:
        return tagged[0]
    if any(function_tags(c.label()) for c in tree.subtrees()):
        return None   # a tree with function tags and no -SBJ: the subject was a trace (or imperative)
    if mc.head is None:
        return None
    pos = next(k for k, c in enumerate(kids) if c is mc.head)
    before = [c for c in kids[:pos] if base_label(c.label()) in NP_LABELS]
    if before:
        return before[-1]
    after = [c for c in kids[pos + 1:] if base_label(c.label()) in NP_LABELS]
    return after[0] if after else None


def subject_number(tree: Tree) -> str | None:
    """SentEval SubjNum: number of the main clause's subject head (module docstring)."""
    subj = subject_np(tree)
    if subj is None or base_label(subj.label()) not in NP_LABELS:
        return None
    return np_number(subj)


def object_np(tree: Tree) -> Tree | None:
    """The main verb's direct object NP (module docstring), or None."""
    vp = main_clause(tree).lowest_vp
    if vp is None:
        return None
    verb = _first(vp, _is_verb)
    if verb is not None and str(verb[0]).lower() in BE_FORMS:
        return None
    return _first(vp, lambda c: base_label(c.label()) == "NP"
                  and not (function_tags(c.label()) & _NON_OBJECT_FUNCTIONS))


def object_number(tree: Tree) -> str | None:
    """SentEval ObjNum: number of the main verb's direct object head (module docstring)."""
    obj = object_np(tree)
    return None if obj is None else np_number(obj)


def trees_for_words(trees: Sequence[Tree], words: pd.DataFrame, source: str = "trees") -> dict[tuple[str, int], Tree]:
    """Pair a list of trees (one per sentence, in order) with the sentences of a words table:
    tree ``i`` is the ``i``-th (story, sentence_id) in the table's order.

    Raises
    ------
    TreeError : the numbers of trees and sentences differ (naming both), since a shifted pairing
        would annotate every later sentence with another sentence's parse.
    """
    keys = list(dict.fromkeys(zip(words["story"].astype(str), words["sentence_id"].astype(int))))
    if len(keys) != len(trees):
        raise TreeError(f"{source}: {len(trees)} trees for {len(keys)} sentences of the words table (stories "
                        f"{sorted({k[0] for k in keys})}); give one tree per sentence, in story and sentence order")
    return dict(zip(keys, trees))
