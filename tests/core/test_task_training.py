"""Training task models: one tiny run per task type, a learnable signal, early stopping, the LR schedule.

Models are tiny random BERTs (hidden 32, one layer) with an English word vocabulary, built offline.
"""
from __future__ import annotations

import math
import random

import pytest
import tiny_bert

torch = pytest.importorskip("torch")

from brainalign.core.tasks.train import (linear_warmup_decay, make_optimizer, make_scheduler,  # noqa: E402
                                         schedule_steps, set_seed, train_task_model)
from brainalign.core.tasks.types import TASK_TYPES, SentenceTask  # noqa: E402

FILLER = "the a of and to in is was it he she they with on city big small movie film".split()
WORDS = FILLER + ("good great bad awful cat dog mat park john mary paris london went sat ran who where what did "
                  "play ##ing ##ed ##s").split()


def make_word_bert(folder, hidden=32, layers=1, seed=0):
    """Tiny random BERT with this file's English word vocabulary (tests/tiny_bert.py)."""
    return tiny_bert.make_word_bert(folder, WORDS, hidden=hidden, layers=layers, seed=seed)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_word_bert(tmp_path_factory.mktemp("word_bert_train"))


@pytest.fixture(scope="module")
def tok(bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bert_dir))


# --- toy data (each with a learnable signal) ----------------------------------------------------

def sentiment(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice(["neg", "pos"])
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 6))]
        words.insert(rng.randrange(len(words) + 1),
                     rng.choice(["good", "great"] if label == "pos" else ["bad", "awful"]))
        out.append({"text": " ".join(words), "label": label})
    return out


def pairs(n, seed):
    rng = random.Random(seed)
    nouns = ["cat", "dog", "mat", "park"]
    out = []
    for _ in range(n):
        a, same = rng.choice(nouns), rng.random() < 0.5
        b = a if same else rng.choice([x for x in nouns if x != a])
        out.append({"text": f"the {a} sat", "text_pair": f"a {b} ran", "label": "1" if same else "0"})
    return out


NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def ner(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(4, 8)):
            r = rng.random()
            if r < 0.2:
                tokens.append(rng.choice(["john", "mary"]))
                tags.append("B-PER")
            elif r < 0.35:
                tokens += ["paris", "xyz"]                             # "xyz": three sub-tokens
                tags += ["B-LOC", "I-LOC"]
            else:
                tokens.append(rng.choice(FILLER))
                tags.append("O")
        out.append({"tokens": tokens, "tags": tags})
    return out


def spans(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens = [rng.choice(FILLER + ["cat", "dog", "park"]) for _ in range(6)]
        i, j = rng.sample(range(6), 2)
        label = "animal" if tokens[i] in ("cat", "dog") else "other"
        out.append({"tokens": tokens, "span1": [i, i + 1], "span2": [j, j + 1] if rng.random() < 0.5 else None,
                    "label": label})
    return out


def qa(n, seed):
    rng = random.Random(seed)
    out = []
    for k in range(n):
        who, where = rng.choice(["john", "mary"]), rng.choice(["paris", "london", "park", "city"])
        pre = " ".join(rng.choice(FILLER) for _ in range(rng.randint(0, 4)))
        context = f"{pre} {who} went to the {where} . it was big .".strip()
        question, answer = (f"where did {who} go ?", where) if rng.random() < 0.5 else ("who went ?", who)
        out.append({"id": f"q{k}", "question": question, "context": context,
                    "answers": [{"text": answer, "answer_start": context.index(f" {answer} ") + 1
                                 if f" {answer} " in context else context.index(answer)}]})
    return out


DATA = {"sentence": (sentiment, ["neg", "pos"]), "pair": (pairs, ["0", "1"]), "token": (ner, NER_TAGS),
        "span": (spans, ["animal", "other"]), "qa": (qa, [])}


@pytest.mark.parametrize("type_name", ["sentence", "pair", "token", "span", "qa"])
def test_training_loss_goes_down(type_name, bert_dir, tok):
    make, labels = DATA[type_name]
    kind = TASK_TYPES[type_name]
    train, dev = make(48, 1), make(16, 2)
    model = kind.build_model(str(bert_dir), max(len(labels), 2), labels or None)
    train_enc, dev_enc = kind.encode(train, tok, labels, 48), kind.encode(dev, tok, labels, 48)
    seen = []
    model, history, best = train_task_model(
        model, train_enc, dev_enc, dev, type_name, epochs=4, batch_size=8, lr=3e-3, seed=0, device="cpu",
        patience=None, progress=False, labels=labels, on_epoch=lambda e, entry: seen.append(e))
    assert seen == [1, 2, 3, 4] and len(history) == 4
    assert history[0]["train_loss"] > history[-1]["train_loss"]
    assert f"dev_{kind.main_metric}" in history[0] and best[kind.main_metric] == max(
        h[f"dev_{kind.main_metric}"] for h in history)
    assert not model.training


def test_sentence_signal_is_learned(bert_dir, tok):
    labels = ["neg", "pos"]
    kind = TASK_TYPES["sentence"]
    train, dev = sentiment(64, 3), sentiment(40, 4)
    majority = max(sum(ex["label"] == lab for ex in dev) for lab in labels) / len(dev)
    model = kind.build_model(str(bert_dir), 2, labels)
    model, history, best = train_task_model(
        model, kind.encode(train, tok, labels, 32), kind.encode(dev, tok, labels, 32), dev, "sentence",
        epochs=6, batch_size=8, lr=5e-3, seed=0, device="cpu", progress=False, patience=3)
    assert best["accuracy"] >= max(0.85, majority + 0.25), history
    # the returned model is the best epoch's: re-scoring it gives the best dev metrics
    again = kind.evaluate(model, kind.encode(dev, tok, labels, 32), dev, labels)
    assert again["accuracy"] == pytest.approx(best["accuracy"])


class ScriptedTask(SentenceTask):
    """Sentence task whose dev accuracy follows a script (to force the best epoch)."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def evaluate(self, model, encoded, examples, labels, *, batch_size=64, device=None):
        self.calls += 1
        return {"accuracy": self.script[self.calls - 1], "macro_f1": 0.0, "n": len(examples)}


def _scripted_run(bert_dir, tok, seed=0):
    labels = ["neg", "pos"]
    set_seed(seed)                                            # the new head's initialisation
    model = TASK_TYPES["sentence"].build_model(str(bert_dir), 2, labels)
    for p in model.bert.embeddings.parameters():              # a frozen part (as partial fine-tuning)
        p.requires_grad_(False)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    snapshots = {}

    def on_epoch(epoch, entry):
        snapshots[epoch] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    train, dev = sentiment(24, 5), sentiment(8, 6)
    kind = SentenceTask()
    model, history, best = train_task_model(
        model, kind.encode(train, tok, labels, 32), kind.encode(dev, tok, labels, 32), dev,
        ScriptedTask([0.5, 0.9, 0.6, 0.4, 0.95, 0.99]), epochs=6, batch_size=8, lr=1e-2, seed=seed,
        device="cpu", patience=2, progress=False, on_epoch=on_epoch)
    return model, history, best, snapshots, frozen_before


def test_early_stopping_restores_best_epoch(bert_dir, tok):
    model, history, best, snapshots, frozen_before = _scripted_run(bert_dir, tok)
    # accuracies 0.5, 0.9 (best), 0.6, 0.4 -> two epochs without improvement after epoch 2: stop at 4
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert best["epoch"] == 2 and best["accuracy"] == 0.9
    final = dict(model.named_parameters())
    for name, value in snapshots[2].items():
        torch.testing.assert_close(final[name].detach(), value, rtol=0, atol=0)
    assert any(not torch.equal(final[n].detach(), v) for n, v in snapshots[4].items())
    for name, value in frozen_before.items():                   # frozen parameters never moved
        assert torch.equal(final[name].detach(), value)
    # same seed -> same run
    _, history2, _, snapshots2, _ = _scripted_run(bert_dir, tok)
    assert [h["train_loss"] for h in history2] == [h["train_loss"] for h in history]
    for name, value in snapshots[4].items():
        assert torch.equal(snapshots2[4][name], value)


def test_lr_schedule_follows_formula(bert_dir, tok):
    from transformers import get_linear_schedule_with_warmup

    total, warmup = 10, 3
    # warm-up 0, 1/3, 2/3, then (10 - s) / 7: 7/7, 6/7, ..., 1/7, then 0
    expected = [0, 1 / 3, 2 / 3] + [(10 - s) / 7 for s in range(3, 11)] + [0.0]
    assert [linear_warmup_decay(s, total, warmup) for s in range(12)] == pytest.approx(expected)
    param = torch.nn.Parameter(torch.zeros(2, 2))
    ours = make_scheduler(torch.optim.AdamW([param], lr=1.0), total, warmup)
    theirs = get_linear_schedule_with_warmup(torch.optim.AdamW([param], lr=1.0), warmup, total)
    for _ in range(total):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr())
        ours.optimizer.step(), ours.step(), theirs.optimizer.step(), theirs.step()
    # the trainer: 20 rows, batch 8 -> 3 steps/epoch, 4 epochs -> 12 steps, warm-up ceil(0.25 * 12) = 3
    assert schedule_steps(20, 8, 4, 0.25) == (3, 12, 3)
    labels = ["neg", "pos"]
    kind = TASK_TYPES["sentence"]
    model = kind.build_model(str(bert_dir), 2, labels)
    lr = 1e-3
    _, history, best = train_task_model(model, kind.encode(sentiment(20, 7), tok, labels, 32), None, None,
                                        "sentence", epochs=4, batch_size=8, lr=lr, warmup_ratio=0.25, seed=1,
                                        device="cpu", progress=False)
    for h in history:                                           # lr of each epoch's last update
        assert h["lr"] == pytest.approx(lr * linear_warmup_decay(3 * h["epoch"] - 1, 12, 3))
    assert best["epoch"] == 4


def test_optimizer_takes_trainable_parameters_only(bert_dir):
    model = TASK_TYPES["sentence"].build_model(str(bert_dir), 2)
    for p in model.bert.parameters():
        p.requires_grad_(False)
    opt = make_optimizer(model, 1e-3, 0.01)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in params} == {id(p) for p in model.classifier.parameters()}
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]      # matrix decays, bias not
    for p in model.classifier.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        make_optimizer(model, 1e-3)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train_task_model(model, {}, None, None, "sentence", epochs=0, batch_size=8, lr=1e-3, seed=0)
    assert math.isclose(linear_warmup_decay(0, 10, 0), 1.0)
