"""A small, randomly initialised Chinese BERT that the project writes itself (registered model name
``tiny-chinese-bert``).

No Chinese model can be downloaded offline, so the Chinese study (``conf/smn4lang_tuning``) runs
with this model where ``hfl/chinese-roberta-wwm-ext`` cannot be had. It has the architecture and
the tokenizer behaviour of the real one (BERT; ``BertTokenizerFast`` with
``tokenize_chinese_chars=True``: every CJK character is its own token), a vocabulary that covers
the characters of Chinese text (on the first 1,000 dev rows of AFQMC, CLUENER2020, CSL and OCNLI: 5
``[UNK]`` in 344,886 tokens, for Japanese kana and an emoji), and random weights (seeded): its
scores are smoke figures, never results.

Vocabulary (written to ``vocab.txt``, 23,662 entries): the five BERT specials; every CJK Unified
Ideograph of the basic block U+4E00-U+9FFF (20,992; RoBERTa-wwm-ext's own vocabulary has 21,128
entries, most of them these characters); CJK symbols and punctuation U+3000-U+303F; the printable
full-width forms U+FF01-U+FF5E, the printable ASCII characters and the symbols of ``OTHER_BLOCKS``
(Latin-1, Greek, general punctuation, letterlike and number forms, operators, enclosed numbers), each also as a ``##``
continuation piece (so any ASCII or full-width word splits into characters, never into
``[UNK]``). The model has 1.6 M parameters, 1.5 M of them the embeddings: partial tuning by
``fraction`` is meaningless on it; use ``top_layers``.

The folder is built once per (size, seed) under ``$BRAINALIGN_MODEL_DIR`` (default
``~/.cache/brainalign/models``) and renamed into place when complete, so an interrupted build is
never read.
"""
from __future__ import annotations

import string
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
#: Unicode blocks of the symbols in the vocabulary besides CJK, full-width and ASCII
OTHER_BLOCKS = ((0x00A1, 0x00FF), (0x0391, 0x03C9), (0x2010, 0x205E), (0x2100, 0x218F), (0x2190, 0x21FF),
                (0x2200, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x257F), (0x25A0, 0x25FF))
#: architecture of the registered ``tiny-chinese-bert`` (4 blocks: partial tuning has 4 proportions)
DEFAULT_SIZE = {"hidden": 64, "layers": 4, "heads": 4}


def chinese_vocabulary() -> list[str]:
    """The vocabulary, in ``vocab.txt`` order (see the module docstring)."""
    cjk = [chr(c) for c in range(0x4E00, 0xA000)]
    symbols = [chr(c) for c in range(0x3000, 0x3040) if not chr(c).isspace()]
    full_width = [chr(c) for c in range(0xFF01, 0xFF5F)]
    ascii_chars = [c for c in string.printable if not c.isspace()]
    # symbols of Chinese text beside the CJK block: Latin-1 (·), Greek, general punctuation
    # (“ ” — …), letterlike and number forms (℃ Ⅲ), mathematical operators (∶ ≥), enclosed numbers (①)
    other = [chr(c) for lo, hi in OTHER_BLOCKS for c in range(lo, hi + 1)
             if chr(c).isprintable() and not chr(c).isspace()]
    pieces = [f"##{c}" for c in ascii_chars + full_width + other]
    vocab, seen = [], set()
    for tok in SPECIALS + cjk + symbols + full_width + ascii_chars + other + pieces:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    return vocab


def write_random_bert(folder: str | Path, vocab: list[str], hidden: int, layers: int, heads: int = 2,
                      max_positions: int = 512, seed: int = 0) -> Path:
    """Write ``vocab.txt``, its ``BertTokenizerFast`` (lower case, CJK characters split) and a
    ``BertModel`` with seeded random weights (safetensors) to ``folder``.

    Parameters
    ----------
    folder : the model directory (created).
    vocab : the vocabulary, in order (BERT's specials first; a repeated entry counts once).
    hidden, layers, heads : model size (intermediate size ``2 * hidden``, 2 token types).
    max_positions : ``max_position_embeddings``.
    seed : ``torch.manual_seed`` before the weights are drawn (same seed, same weights).

    Returns
    -------
    Path of ``folder``.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder))   # reads vocab.txt; lower case, CJK split
    if len(tok) != len(dict.fromkeys(vocab)):   # a repeated entry is one token
        raise RuntimeError(f"{folder}: the tokenizer read {len(tok)} entries of vocab.txt's "
                           f"{len(dict.fromkeys(vocab))} distinct ones")
    tok.save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(tok), hidden_size=int(hidden), num_hidden_layers=int(layers),
                        num_attention_heads=int(heads), intermediate_size=2 * int(hidden),
                        max_position_embeddings=int(max_positions), type_vocab_size=2)
    torch.manual_seed(int(seed))
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_tiny_chinese_bert(folder: str | Path, hidden: int = 64, layers: int = 4, heads: int = 4,
                            seed: int = 0) -> Path:
    """Write the tiny Chinese BERT (:func:`chinese_vocabulary`, 512 positions) to ``folder``
    (:func:`write_random_bert`); returns ``folder``."""
    return write_random_bert(folder, chinese_vocabulary(), hidden, layers, heads, 512, seed)


def tiny_chinese_bert(hidden: int = DEFAULT_SIZE["hidden"], layers: int = DEFAULT_SIZE["layers"],
                      heads: int = DEFAULT_SIZE["heads"], seed: int = 0) -> str:
    """Path of the model folder, built on first use (the ``tiny-chinese-bert`` registry entry)."""
    from .text import build_once

    return build_once(f"tiny-chinese-bert-h{hidden}-l{layers}-a{heads}-s{seed}",
                      lambda tmp: write_tiny_chinese_bert(tmp, hidden, layers, heads, seed))
