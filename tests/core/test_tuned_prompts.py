"""Tuned models as brain-encoding conditions: prefix (P-tuning v2), prompt and LoRA adapters
saved with ``save_tuned`` and read back through the ``tuned`` condition kind.

References, computed in the test from the saved files and a plain ``BertModel``: prefix: the
learned keys/values (``prompt_embeddings`` of the adapter, peft's layout: per virtual token,
``[layer0 key, layer0 value, layer1 key, ...]`` x heads x head dim) put in a key/value cache of
every layer, the input numbered from position P; prompt: the prompt embeddings prepended to the
input's word embeddings; in both the virtual positions are dropped. Each word's window is run
alone (no padding, batch of one) and its sub-tokens averaged. LoRA: the base model with
``W + alpha / r * B @ A`` written into its query and value weights.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from brainalign.core.representations import KINDS, ConditionError  # noqa: E402
from brainalign.core.representations import text as T  # noqa: E402
from brainalign.core.representations import tuned as TU  # noqa: E402
from brainalign.core.tasks import methods as M  # noqa: E402

CHARS = "我们今天去公园玩得很开心他说这是好的"
WORDS = ["我们", "今天", "去", "公园", "playing", "玩", "得", "很", "开心", "the", "他", "说", "这是", "好的"]
CTX, LAYERS = 3, [0, 1, 2]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from tiny_bert import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "base", chars=CHARS, hidden=32, layers=2, seed=4)


def _tuned(base, method, params, folder, seed=7, via_dataset=False):
    """A sentence model over ``base`` prepared with ``method``, its method parameters set to
    seeded random values (not peft's initial ones), saved with save_tuned (or through the catalog
    dataset, ``via_dataset``)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    model = M.METHODS[method].apply(AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=2),
                                    "sentence", params)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and ("prompt_encoder" in name or "lora_" in name):
                p.copy_(torch.randn(p.shape, generator=g) * (0.2 if "lora_" in name else 1.0))
    info = {"base_model": str(base), "task": "tnews"}
    if via_dataset:
        from brainalign.io.datasets import ModelDirectoryDataset

        ModelDirectoryDataset(str(folder)).save(M.TunedDirectory(model, tok, info))
    else:
        M.save_tuned(model, tok, folder, info)
    return model.eval(), tok


def _via_kind(folder):
    """Word features through the tuned condition kind (its loader, batched windows)."""
    words = pd.DataFrame({"story": "s", "word_index": np.arange(len(WORDS)), "sentence_id": 0, "word": WORDS})
    kind = KINDS["tuned"]
    params = kind.check("t", {"kind": "tuned", "model_dataset": "t.tuned_model"})
    feats = kind.extract("t", params, {"device": "cpu", "context_words": CTX, "batch_size": 5}, LAYERS,
                         words=words, t__tuned_model=str(folder))
    return {layer: feats[layer]["s"] for layer in LAYERS}


def _reference(tok, run):
    """Per word: its window alone through ``run(enc) -> hidden states`` (input positions only),
    the mean over the last word's sub-tokens."""
    out = {layer: [] for layer in LAYERS}
    for i in range(len(WORDS)):
        window = WORDS[max(0, i - CTX): i + 1]
        enc = tok(window, is_split_into_words=True, return_tensors="pt")
        last = torch.tensor([w == len(window) - 1 for w in enc.word_ids()])
        with torch.no_grad():
            hidden = run(enc)
        for layer in LAYERS:
            assert hidden[layer].shape[1] == enc["input_ids"].shape[1]
            out[layer].append(hidden[layer][0, last].mean(0).numpy())
    return {layer: np.stack(v) for layer, v in out.items()}


def _plain(base):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(base)).eval()


def _prompt_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))["prompt_embeddings"]


def _prefix_run(base, folder):
    from transformers import DynamicCache

    bert = _plain(base)
    weight = _prompt_weights(folder)                                     # (P, layers * 2 * hidden)
    cfg = bert.config
    p, heads = weight.shape[0], cfg.num_attention_heads
    kv = weight.view(p, 2 * cfg.num_hidden_layers, heads, cfg.hidden_size // heads).permute(1, 2, 0, 3)

    def run(enc):
        cache = DynamicCache()
        for layer in range(cfg.num_hidden_layers):
            cache.update(kv[2 * layer][None], kv[2 * layer + 1][None], layer)
        n = enc["input_ids"].shape[1]
        return bert(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"],
                    attention_mask=torch.ones(1, p + n, dtype=torch.long), cache=cache,
                    position_ids=torch.arange(p, p + n)[None], output_hidden_states=True).hidden_states

    return run, p


def _prompt_run(base, folder):
    bert = _plain(base)
    prompts = _prompt_weights(folder)                                    # (P, hidden)
    p = prompts.shape[0]

    def run(enc):
        embeds = torch.cat([prompts[None], bert.embeddings.word_embeddings(enc["input_ids"])], dim=1)
        hidden = bert(inputs_embeds=embeds, attention_mask=torch.ones(1, embeds.shape[1], dtype=torch.long),
                      output_hidden_states=True).hidden_states
        return [h[:, p:] for h in hidden]                              # drop the virtual positions

    return run, p


@pytest.mark.parametrize("method, params", [
    ("prefix", {"prefix_length": 3}),
    ("prefix", {"prefix_length": 3, "prefix_projection": True, "encoder_hidden_size": 16}),
    ("prompt", {"num_virtual_tokens": 4}),
])
def test_prompt_adapters_give_the_features_of_the_prompted_backbone(base, tmp_path, method, params):
    folder = tmp_path / method
    model, tok = _tuned(base, method, params, folder)
    got = _via_kind(folder)
    run, p = (_prefix_run if method == "prefix" else _prompt_run)(base, folder)
    ref = _reference(tok, run)
    trained = T.extract_word_features(WORDS, tok, model.bert, LAYERS, context_words=CTX)   # before saving
    plain = T.extract_word_features(WORDS, tok, _plain(base), LAYERS, context_words=CTX)
    for layer in LAYERS:
        assert got[layer].shape == (len(WORDS), 32)
        np.testing.assert_allclose(got[layer], ref[layer], atol=1e-5, err_msg=f"layer {layer}")
        np.testing.assert_allclose(got[layer], trained[layer], atol=1e-5, err_msg=f"layer {layer}")
    assert np.abs(got[2] - plain[2]).max() > 1e-2                       # the prompts matter
    info = json.loads((folder / "brainalign.json").read_text())
    assert info["method"] == method and info["task"] == "tnews" and info["base_model"] == str(base)
    assert info["virtual_tokens"] == p and 0 < info["trainable_fraction"] < 1
    tok2, loaded = TU.load_tuned(folder)
    assert loaded.virtual_positions == p
    assert T.model_fingerprint(loaded, tok2) != T.model_fingerprint(_plain(base), tok2)   # no stale cache hits


def test_windows_leave_room_for_the_virtual_positions(base, tmp_path):
    """A window longer than the positions left after the prompt is cut from the left (no error):
    the last word's features equal those of the window of the last max_positions - P tokens."""
    folder = tmp_path / "prompt"
    _tuned(base, "prompt", {"num_virtual_tokens": 20}, folder)
    tok, model = TU.load_tuned(folder)
    words = [CHARS[i % len(CHARS)] for i in range(120)]               # one token per word
    got = T.extract_word_features(words, tok, model, [2], context_words=200, batch_size=64)[2]
    keep = 128 - 20 - 2                                                 # positions left, less [CLS] and [SEP]
    ref = T.extract_word_features(words[-keep:], tok, model, [2], context_words=200)[2]
    np.testing.assert_allclose(got[-1], ref[-1], atol=1e-5)


def test_lora_adapter_round_trip_equals_the_merged_model(base, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "lora"
    _, tok = _tuned(base, "lora", {"r": 2, "alpha": 4}, folder)
    got = _via_kind(folder)
    merged = _plain(base)
    state = load_file(str(folder / "adapter_model.safetensors"))
    with torch.no_grad():
        for key, a in state.items():
            if key.endswith("lora_A.weight"):
                b = state[key.replace("lora_A", "lora_B")]
                module = merged.get_submodule(key.removeprefix("base_model.model.").removesuffix(".lora_A.weight"))
                module.weight += 4 / 2 * b @ a
    ref = T.extract_word_features(WORDS, tok, merged, LAYERS, context_words=CTX)
    plain = T.extract_word_features(WORDS, tok, _plain(base), LAYERS, context_words=CTX)
    for layer in LAYERS:
        np.testing.assert_allclose(got[layer], ref[layer], atol=1e-5)
    assert np.abs(got[2] - plain[2]).max() > 1e-3


@pytest.mark.parametrize("method, params, via_dataset", [("partial", {"top_layers": 1}, False), ("full", {}, True)])
def test_full_and_partial_save_the_backbone(base, tmp_path, method, params, via_dataset):
    folder = tmp_path / method
    model, tok = _tuned(base, method, params, folder, via_dataset=via_dataset)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", M.HEAD_FILE, M.INFO_FILE} <= names
    assert not any(n.startswith("adapter_") for n in names)
    assert json.loads((folder / M.INFO_FILE).read_text())["method"] == method
    got = _via_kind(folder)
    ref = T.extract_word_features(WORDS, tok, model.bert, LAYERS, context_words=CTX)
    np.testing.assert_allclose(got[2], ref[2], atol=1e-5)


def test_unsupported_prompt_learning_adapter_is_refused(base, tmp_path):
    from peft import PromptEncoderConfig, TaskType, get_peft_model

    peft_model = get_peft_model(_plain(base), PromptEncoderConfig(task_type=TaskType.FEATURE_EXTRACTION,
                                                                  num_virtual_tokens=2, encoder_hidden_size=8))
    peft_model.save_pretrained(str(tmp_path / "ptuning"))
    with pytest.raises(ConditionError, match="P_TUNING prompt-learning adapter"):
        TU.load_tuned(tmp_path / "ptuning", base_model=str(base))
