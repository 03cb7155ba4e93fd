"""Tuning methods (core.tasks.methods): parameter counts, what trains, what stays frozen, errors.

References: parameter counts computed directly in the test (closed forms for LoRA, prefix and
prompt tuning; the numel of the chosen layers for partial tuning); weights compared bit for bit
(``torch.equal``) before and after a few optimizer steps; the backbone run by hand with a
key/value cache and explicit position ids for the position convention of prefix tuning.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from torch import nn  # noqa: E402
from transformers import (BertConfig, BertForQuestionAnswering, BertForSequenceClassification,  # noqa: E402
                          BertForTokenClassification, BertModel)

from brainalign.core.tasks import methods as M  # noqa: E402

H, LAYERS, HEADS, VOCAB, MAX_POS, N_LABELS = 32, 3, 2, 60, 64, 3


def _config(n_labels=N_LABELS):
    return BertConfig(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      intermediate_size=2 * H, max_position_embeddings=MAX_POS, num_labels=n_labels)


class SpanModel(nn.Module):
    """A custom task model as the ``span`` type builds one: a backbone child + its own head."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(2 * H, 2)

    @property
    def base_model(self):
        return self.backbone

    def forward(self, input_ids, attention_mask, spans, labels):
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(len(spans))
        logits = self.head(torch.cat([states[rows, spans[:, 0]], states[rows, spans[:, 1]]], dim=-1))
        return nn.functional.cross_entropy(logits, labels)


KINDS = {"sentence": BertForSequenceClassification, "token": BertForTokenClassification,
         "qa": BertForQuestionAnswering, "span": lambda cfg: SpanModel(BertModel(cfg, add_pooling_layer=False))}


def _model(task_type, seed=0):
    torch.manual_seed(seed)
    return KINDS[task_type](_config(2 if task_type == "qa" else N_LABELS))   # QA: start and end logits


def _batch(task_type, seed=1, n=4, length=9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[-1, length - 3:] = 0                                     # one padded row
    batch = {"input_ids": ids, "attention_mask": mask}
    if task_type == "sentence":
        batch["labels"] = torch.randint(0, N_LABELS, (n,), generator=g)
    elif task_type == "token":
        batch["labels"] = torch.randint(0, N_LABELS, (n, length), generator=g)
    elif task_type == "qa":
        batch["start_positions"] = torch.randint(0, length - 3, (n,), generator=g)
        batch["end_positions"] = batch["start_positions"] + 1
    else:
        batch["spans"] = torch.randint(0, length - 3, (n, 2), generator=g)
        batch["labels"] = torch.randint(0, 2, (n,), generator=g)
    return batch


def _loss(model, batch):
    out = model(**batch)
    return out if torch.is_tensor(out) else out.loss


def _backbone_of(model):
    return model.backbone if isinstance(model, SpanModel) else model.bert


def _head_numel(model):
    inside = {id(p) for p in _backbone_of(model).parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in inside)


# ----------------------------------------------------------------------------- counts
def _independent_counts(model):
    total = trainable = 0
    seen = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
    return trainable, total


@pytest.mark.parametrize("method, params", [
    ("full", {}), ("partial", {"top_layers": 2}), ("partial", {"fraction": 0.25}), ("partial", {"layer_fraction": 0.6}),
    ("prefix", {"prefix_length": 5}),
    ("prompt", {"num_virtual_tokens": 7}), ("lora", {}),
    ("lora", {"r": 2, "target_modules": ["query", "key", "value"]}),
])
def test_parameter_counts_match_closed_forms(method, params):
    model = _model("sentence")
    head = _head_numel(model)
    base_total = sum(p.numel() for p in model.parameters())
    layer_sizes = [sum(p.numel() for p in layer.parameters()) for layer in model.bert.encoder.layer]
    backbone_total = sum(p.numel() for p in model.bert.parameters())
    model = M.METHODS[method].apply(model, "sentence", params)
    counts = M.count_parameters(model)
    trainable, total = _independent_counts(model)
    assert (counts["trainable_params"], counts["total_params"]) == (trainable, total)
    assert counts["trainable_fraction"] == pytest.approx(trainable / total, rel=1e-12)
    if method == "full":
        expected = base_total
    elif method == "partial" and "top_layers" in params:
        expected = sum(layer_sizes[-params["top_layers"]:]) + head
    elif method == "partial" and "layer_fraction" in params:   # round(0.6 * 3) = 2 of the 3 layers
        assert LAYERS == 3
        expected = sum(layer_sizes[-2:]) + head
    elif method == "partial":
        k = next(i for i in range(1, LAYERS + 1) if sum(layer_sizes[-i:]) >= 0.25 * backbone_total)
        assert model.brainalign_tuning.params["top_layers"] == k
        expected = sum(layer_sizes[-k:]) + head
    elif method == "prefix":
        expected = params["prefix_length"] * LAYERS * 2 * H + head
    elif method == "prompt":
        expected = params["num_virtual_tokens"] * H + head
    else:
        r = params.get("r", 8)
        n_matrices = len(params.get("target_modules", ["query", "value"]))
        expected = 2 * r * H * n_matrices * LAYERS + head          # A (r x H) + B (H x r) per matrix
    assert counts["trainable_params"] == expected
    added = 0 if method in ("full", "partial") else expected - head
    assert counts["total_params"] == base_total + added


# ----------------------------------------------------------------------------- what trains
def _train(model, task_type, steps=3):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)      # every parameter offered, frozen ones too
    for step in range(steps):
        _loss(model, _batch(task_type, seed=step)).backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("task_type", ["sentence", "token", "qa", "span"])
@pytest.mark.parametrize("method, params", [
    ("full", {}), ("partial", {"top_layers": 1}), ("prefix", {"prefix_length": 4}),
    ("prompt", {"num_virtual_tokens": 4}), ("lora", {"r": 4}),
])
def test_training_changes_exactly_what_the_method_trains(method, params, task_type):
    model = _model(task_type)
    backbone = _backbone_of(model)
    top = {id(p) for p in backbone.encoder.layer[-1].parameters()}
    in_backbone = {id(p) for p in backbone.parameters()}
    before = {id(p): (name, p.detach().clone()) for name, p in model.named_parameters()}
    model = M.METHODS[method].apply(model, task_type, params)
    _train(model, task_type)
    now = {id(p): p for p in model.parameters()}
    assert set(before) <= set(now)            # no original parameter was replaced
    for key, (name, old) in before.items():
        changed = not torch.equal(old, now[key].detach())
        if key not in in_backbone:
            assert changed, f"{method}: head parameter {name} did not change"
        elif method == "full" or (method == "partial" and key in top):
            assert changed, f"{method}: trainable backbone parameter {name} did not change"
        else:
            assert not changed, f"{method}: frozen backbone parameter {name} changed"
    added = [p for key, p in now.items() if key not in before]
    if method in ("full", "partial"):
        assert not added
    else:
        assert added and all(p.requires_grad for p in added)
        for p in added:                      # the method's own parameters moved (LoRA B starts at 0)
            assert p.detach().abs().sum() > 0
        state = model.brainalign_tuning.peft_model.state_dict()
        assert any(("lora_" in k or "prompt" in k) for k in state)


def test_prompted_backbone_returns_only_the_input_positions():
    """Prompt tuning prepends virtual tokens; the backbone's outputs still hold one state per
    input token (hidden states of the virtual tokens dropped, pooler read at the real [CLS]), and
    they equal the backbone run by hand on [prompts; inputs] with the first P states dropped."""
    model = M.METHODS["prompt"].apply(_model("sentence"), "sentence", {"num_virtual_tokens": 5}).eval()
    wrapped, batch = model.bert, _batch("sentence")
    with torch.no_grad():
        out = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        prompts = wrapped.prompt_encoder["default"].embedding.weight
        raw = wrapped.backbone
        embeds = torch.cat([prompts.expand(4, -1, -1), raw.embeddings.word_embeddings(batch["input_ids"])], dim=1)
        mask = torch.cat([torch.ones(4, 5, dtype=torch.long), batch["attention_mask"]], dim=1)
        ref = raw(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
    assert out.last_hidden_state.shape == (4, 9, H)
    assert [h.shape[1] for h in out.hidden_states] == [9] * (LAYERS + 1)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state[:, 5:])
    torch.testing.assert_close(out.hidden_states[0], ref.hidden_states[0][:, 5:])
    torch.testing.assert_close(out.pooler_output, raw.pooler(ref.last_hidden_state[:, 5:]))


def test_prefix_tuning_numbers_the_input_after_the_prefix():
    """What is true of prefix tuning and positions: BERT numbers the input from the cache length,
    so with a P-token prefix the text sits at positions P..P+L-1 (as prompt tuning's does)."""
    from transformers import DynamicCache

    P = 4
    model = M.METHODS["prefix"].apply(_model("sentence"), "sentence", {"prefix_length": P}).eval()
    wrapped, batch = model.bert, _batch("sentence")
    weight = wrapped.prompt_encoder["default"].embedding.weight            # (P, layers * 2 * H)
    kv = weight.view(P, 2 * LAYERS, HEADS, H // HEADS).permute(1, 2, 0, 3)  # (2 * layers, heads, P, head dim)

    def run(position_ids):
        cache = DynamicCache()
        for layer in range(LAYERS):
            cache.update(kv[2 * layer].expand(4, -1, -1, -1), kv[2 * layer + 1].expand(4, -1, -1, -1), layer)
        mask = torch.cat([torch.ones(4, P, dtype=torch.long), batch["attention_mask"]], dim=1)
        return wrapped.backbone(input_ids=batch["input_ids"], attention_mask=mask, cache=cache,
                                position_ids=position_ids).last_hidden_state

    with torch.no_grad():
        got = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        shifted = run(torch.arange(P, P + 9).expand(4, -1))
        unshifted = run(torch.arange(9).expand(4, -1))
    torch.testing.assert_close(got, shifted)
    assert (got - unshifted).abs().max() > 1e-3


# ----------------------------------------------------------------------------- errors
def test_unknown_method_and_task_type():
    with pytest.raises(M.TuningError, match=r"unknown tuning method 'adapterx'.*'full', 'lora', 'partial'"):
        M.apply_method(_model("sentence"), "adapterx", "sentence")
    with pytest.raises(M.TuningError, match="unknown task type 'nli'"):
        M.METHODS["full"].apply(_model("sentence"), "nli", {})


def test_a_method_that_cannot_serve_a_task_type_names_both(monkeypatch):
    class SentenceOnly(M.Full):
        name = "sentence_only"
        task_types = ("sentence", "pair")

    monkeypatch.setitem(M.METHODS, "sentence_only", SentenceOnly())
    with pytest.raises(M.TuningError, match="tuning method 'sentence_only' cannot serve task type 'qa'"):
        M.apply_method(_model("qa"), "sentence_only", "qa")
    with pytest.raises(M.TuningError, match="task type 'token' needs a model with a TokenClassification head"):
        M.apply_method(_model("sentence"), "lora", "token")


@pytest.mark.parametrize("method, params, message", [
    ("prompt", {"num_virtual_tokens": 60, "max_length": 10}, r"60 virtual tokens \+ max_length 10 = 70 positions"),
    ("prefix", {"prefix_length": 20, "max_length": 50}, r"20 virtual tokens \+ max_length 50 = 70 positions"),
    ("prompt", {"num_virtual_tokens": 64}, "leave no position for the input"),
    ("full", {"max_length": 65}, "max_length 65 exceeds the model's max_position_embeddings 64"),
    ("prompt", {"num_virtual_tokens": 4, "lenght": 3}, r"unknown parameters \['lenght'\]"),
    ("partial", {}, "give exactly one of top_layers"),
    ("partial", {"top_layers": 1, "fraction": 0.2}, "give exactly one of top_layers"),
    ("partial", {"fraction": 0.2, "layer_fraction": 0.5}, "give exactly one of top_layers"),
    ("partial", {"layer_fraction": 1.5}, r"layer_fraction must be in \(0, 1\]"),
    ("partial", {"top_layers": 4}, r"integer in 0..3"),
    ("partial", {"fraction": 0.99}, "cannot be reached by encoder layers"),
    ("lora", {"target_modules": ["q_proj"]}, "tuning method 'lora' cannot be applied to BertModel"),
])
def test_parameter_errors(method, params, message):
    with pytest.raises(M.TuningError, match=message):
        M.METHODS[method].apply(_model("sentence"), "sentence", params)


def test_prompt_too_long_for_the_positions_at_run_time():
    model = M.METHODS["prompt"].apply(_model("sentence"), "sentence", {"num_virtual_tokens": 8}).eval()
    ids = torch.randint(5, VOCAB, (1, MAX_POS - 7))
    with pytest.raises(ValueError, match="inputs may hold at most 56 tokens"):
        model(input_ids=ids)


def test_model_layout_errors():
    class NoLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(4, 4))
            self.head = nn.Linear(4, 2)

    with pytest.raises(M.TuningError, match="cannot find the encoder layers of Sequential"):
        M.METHODS["partial"].apply(NoLayers(), "span", {"top_layers": 1})
    with pytest.raises(M.TuningError, match="bare backbone"):
        M.METHODS["full"].apply(BertModel(_config()), "span", {})
    with pytest.raises(M.TuningError, match="no backbone found"):
        M.METHODS["full"].apply(nn.Linear(3, 3), "span", {})
    model = M.METHODS["lora"].apply(_model("sentence"), "sentence", {})
    with pytest.raises(M.TuningError, match="already prepared with method 'lora'"):
        M.METHODS["full"].apply(model, "sentence", {})
    with pytest.raises(M.TuningError, match="not prepared by a tuning method"):
        M.save_tuned(_model("sentence"), None, "unused")
