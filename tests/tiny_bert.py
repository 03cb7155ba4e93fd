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
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = SPECIALS + sorted(set(chars) - set("".join(SPECIALS))) + ASCII_PIECES
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder))  # reads vocab.txt; lower case, CJK split
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128)
    model = BertModel(config).eval()
    tok.save_pretrained(str(folder))
    model.save_pretrained(str(folder))
    return folder


def make_word_bert(folder: Path, words: list[str], hidden: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """Tiny random ``BertModel`` + ``BertTokenizerFast`` (lower case) whose vocabulary is the
    specials, ``words``, single letters and their ``##`` pieces and ``.,?!*`` (English words stay
    whole, anything else is spelled out); written to ``folder``, which is returned."""
    import string

    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = (SPECIALS + list(words) + list(string.ascii_lowercase)
             + ["##" + c for c in string.ascii_lowercase] + list(".,?!*"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
