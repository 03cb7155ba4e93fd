"""A tiny, randomly initialised GPT-2 (a causal model) with a word-level tokenizer, built offline.

The tokenizer is built with the ``tokenizers`` library: a ``WordLevel`` model over a given
vocabulary (lower-cased; unknown words become ``<unk>``) after a ``Whitespace`` pre-tokenizer, so
punctuation is its own token (``boats,`` -> ``boats`` ``,``: a word of two sub-tokens). It is
wrapped in ``PreTrainedTokenizerFast`` and saved with ``save_pretrained``, so
``AutoTokenizer``/``AutoModel`` (and :func:`brainalign.core.representations.text.load_model`)
load the folder like any local model. With ``bos=True`` every sequence starts with ``<s>`` (as
Llama-style tokenizers do). Nothing is downloaded.
"""
from __future__ import annotations

import re
from pathlib import Path

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def make_tiny_gpt2(folder: Path, words: list[str], hidden: int = 64, layers: int = 2, heads: int = 2,
                   bos: bool = False, seed: int = 0, n_positions: int = 1024) -> Path:
    """Write a word-level tokenizer and a random ``GPT2Model`` to ``folder``; returns it.

    Parameters
    ----------
    words : text whose (lower-cased, punctuation-split) tokens make the vocabulary.
    hidden, layers, heads : model size (``n_embd``, ``n_layer``, ``n_head``).
    bos : prepend ``<s>`` to every sequence.
    n_positions : the model's position limit.
    """
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pieces = sorted({p for w in words for p in re.findall(r"\w+|[^\w\s]+", str(w).lower())})
    vocab = {t: i for i, t in enumerate(SPECIALS + [p for p in pieces if p not in SPECIALS])}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                  bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(vocab), n_embd=hidden, n_layer=layers, n_head=heads,
                        n_positions=n_positions, bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"])
    GPT2Model(config).eval().save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
