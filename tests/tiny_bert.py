"""A tiny, randomly initialised BERT with a hand-made WordPiece vocabulary, built offline.

Stands in for Chinese models (e.g. ``hfl/chinese-roberta-wwm-ext``, a BERT-architecture model)
in tests: its tokenizer is ``BertTokenizerFast`` with ``tokenize_chinese_chars=True``, so every CJK
character is its own token (an unknown character is one ``[UNK]``), and ASCII words go through
WordPiece (``playing`` -> ``play`` ``##ing``). Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ASCII_PIECES = ["play", "##ing", "the", "a", "."]


def make_tiny_bert(folder: Path, chars: str, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write ``vocab.txt``, the tokenizer and a random ``BertModel`` to ``folder``; returns it.

    Parameters
    ----------
    chars : the characters of the vocabulary (each becomes one token); others map to [UNK].
    hidden, layers : model size (2 attention heads, intermediate size 2 * hidden).
    """
    from brainalign.core.representations.tiny_zh import write_random_bert

    vocab = SPECIALS + sorted(set(chars) - set("".join(SPECIALS))) + ASCII_PIECES
    return write_random_bert(folder, vocab, hidden, layers, heads=2, max_positions=128, seed=seed)


def make_word_bert(folder: Path, words: list[str], hidden: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """Tiny random ``BertModel`` + ``BertTokenizerFast`` (lower case) whose vocabulary is the
    specials, ``words``, single letters and their ``##`` pieces and ``.,?!*`` (English words stay
    whole, anything else is spelled out); written to ``folder``, which is returned."""
    import string

    from brainalign.core.representations.tiny_zh import write_random_bert

    vocab = (SPECIALS + list(words) + list(string.ascii_lowercase)
             + ["##" + c for c in string.ascii_lowercase] + list(".,?!*"))
    return write_random_bert(folder, vocab, hidden, layers, heads=2, max_positions=128, seed=seed)
