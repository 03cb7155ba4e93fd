"""The project's own tiny Chinese BERT (core/representations/tiny_zh.py): its tokenizer splits CJK
text into characters as Chinese BERTs do, it is built once and reproducibly, and it loads through
the model registry like any other model."""
from __future__ import annotations

import json
from pathlib import Path
import zipfile

import pytest
import torch

from brainalign.core.representations.text import MODELS, load_model
from brainalign.core.representations.tiny_zh import chinese_vocabulary, tiny_chinese_bert, write_tiny_chinese_bert


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINALIGN_MODEL_DIR", str(root))
    yield root
    mp.undo()


def test_vocabulary_has_each_cjk_character_once():
    vocab = chinese_vocabulary()
    assert len(vocab) == len(set(vocab))
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    cjk = {chr(c) for c in range(0x4E00, 0xA000)}
    assert cjk <= set(vocab)
    assert {"“", "”", "℃", "Ⅲ", "①", "，", "。", "a", "##a", "ａ", "##ｂ"} <= set(vocab)


def test_registered_model_tokenizes_like_a_chinese_bert(built):
    tok, model = load_model("tiny-chinese-bert")
    assert model.config.num_hidden_layers == 4 and model.config.type_vocab_size == 2
    text = "我们在北京大学读书，温度是20℃。Hello"
    pieces = tok.tokenize(text)
    assert pieces[:9] == list("我们在北京大学读书")          # one token per CJK character
    assert "[UNK]" not in pieces and "h" in pieces and "##e" in pieces   # ASCII words in characters
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    assert [text[a:b] for a, b in enc["offset_mapping"]][:4] == ["我", "们", "在", "北"]


def test_built_once_and_reproducible(built, tmp_path):
    first = tiny_chinese_bert()
    stamp = Path(first, "model.safetensors").stat().st_mtime_ns
    assert tiny_chinese_bert() == first and Path(first, "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in built.iterdir() if p.name.startswith(".tiny")]   # no build folder left behind
    again = write_tiny_chinese_bert(tmp_path / "again")
    from transformers import BertModel
    a = BertModel.from_pretrained(first, use_safetensors=True).state_dict()
    b = BertModel.from_pretrained(str(again), use_safetensors=True).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = write_tiny_chinese_bert(tmp_path / "seed1", seed=1)
    c = BertModel.from_pretrained(str(other), use_safetensors=True).state_dict()
    assert not torch.equal(a["embeddings.word_embeddings.weight"], c["embeddings.word_embeddings.weight"])


def test_unknown_characters_are_rare_in_chinese_task_text(built, shared_data):
    """On real CLUE text (first 300 dev rows of CLUENER2020 and CSL): fewer than 1 in 1,000 tokens
    is [UNK]."""
    root = shared_data / "nlu_zh"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    tok, _ = load_model("tiny-chinese-bert")
    n = unk = 0
    for zpath, member, key in (("cluener/cluener_public.zip", "dev.json", "text"),
                               ("csl/csl_public.zip", "dev.json", "abst")):
        lines = zipfile.ZipFile(root / zpath).read(member).decode("utf-8").splitlines()[:300]
        for line in lines:
            ids = tok(json.loads(line)[key], add_special_tokens=False)["input_ids"]
            n += len(ids)
            unk += ids.count(tok.unk_token_id)
    assert n > 10_000 and unk / n < 1e-3, (unk, n)
    assert "tiny-chinese-bert" in MODELS
