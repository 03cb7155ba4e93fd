"""Task types: encoding alignment checked by hand, errors, prediction decoding and the span model.

A tiny BERT with a hand-made English WordPiece vocabulary is built offline (common words, the
letters a-z and their ``##`` continuations, so an unknown word such as ``xyz`` splits into
``x ##y ##z``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import tiny_bert

torch = pytest.importorskip("torch")

from brainalign.core.tasks.types import (TASK_TYPES, QATask, TaskEncodingError, TokenTask,  # noqa: E402
                                         encode_task, get_task_type)

WORDS = ("the a an of and to in is was it he she they his her with cat dog ran sat on mat park john mary "
         "paris london went city big small good bad great awful movie film play ##ing ##ed ##s who where "
         "what when did").split()


def make_word_bert(folder, hidden=32, layers=1, seed=0):
    """Tiny random BERT with this file's English word vocabulary (tests/tiny_bert.py)."""
    return tiny_bert.make_word_bert(folder, WORDS, hidden=hidden, layers=layers, seed=seed)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_word_bert(tmp_path_factory.mktemp("word_bert"))


@pytest.fixture(scope="module")
def tok(bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bert_dir))


def pieces(tok, ids, mask=None):
    ids = [int(i) for i, m in zip(ids, mask if mask is not None else [True] * len(ids)) if m]
    return tok.convert_ids_to_tokens(ids)


class FakeModel(torch.nn.Module):
    """Returns fixed logits from a function of the inputs (no training needed)."""

    def __init__(self, fn, n_types=2):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.fn = fn
        self.config = SimpleNamespace(type_vocab_size=n_types)

    def forward(self, **inputs):
        return self.fn(inputs)


# --- registry -----------------------------------------------------------------------------------

def test_registry_and_unknown_type():
    assert set(TASK_TYPES) == {"sentence", "pair", "token", "span", "qa"}
    assert get_task_type("qa") is TASK_TYPES["qa"]
    assert {t.main_metric for t in TASK_TYPES.values()} == {"accuracy", "entity_f1", "f1"}
    with pytest.raises(ValueError, match="unknown task type 'ner'.*known"):
        get_task_type("ner")


@dataclass
class Task:
    name: str
    type: str
    labels: list
    splits: dict
    source: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)


def test_encode_task_names_task_and_split(tok):
    task = Task("toy", "sentence", ["neg", "pos"], {"train": [{"text": "good", "label": "pos"}],
                                                   "dev": [{"text": "bad", "label": "meh"}]})
    assert encode_task(task, tok, splits=["train"])["train"]["labels"].tolist() == [1]
    with pytest.raises(TaskEncodingError, match="task 'toy', split 'dev'.*'meh'.*not among"):
        encode_task(task, tok)


# --- sentence / pair ----------------------------------------------------------------------------

def test_sentence_and_pair_encoding(tok):
    enc = TASK_TYPES["sentence"].encode([{"text": "a good movie", "label": "pos"}, {"text": "bad", "label": "neg"}],
                                        tok, ["neg", "pos"], 16)
    assert enc["labels"].tolist() == [1, 0]
    assert pieces(tok, enc["input_ids"][0], enc["attention_mask"][0]) == ["[CLS]", "a", "good", "movie", "[SEP]"]
    assert enc["input_ids"].shape == enc["attention_mask"].shape == (2, 5)
    enc = TASK_TYPES["pair"].encode([{"text": "john ran", "text_pair": "he ran", "label": 1}], tok, ["0", "1"], 16)
    assert pieces(tok, enc["input_ids"][0]) == ["[CLS]", "john", "ran", "[SEP]", "he", "ran", "[SEP]"]
    assert enc["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert enc["labels"].tolist() == [1]                               # int label 1 matches "1"
    with pytest.raises(TaskEncodingError, match="example 1 has an empty 'text'"):
        TASK_TYPES["sentence"].encode([{"text": "a", "label": "x"}, {"text": "  ", "label": "x"}], tok, ["x"], 16)
    with pytest.raises(TaskEncodingError, match="lacks \\['text_pair'\\]"):
        TASK_TYPES["pair"].encode([{"text": "a", "label": "x"}], tok, ["x"], 16)


# --- token --------------------------------------------------------------------------------------

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_token_labels_on_first_subtoken(tok):
    ex = {"tokens": ["John", "played", "in", "Xyz"], "tags": ["B-PER", "O", "O", "B-LOC"]}
    enc = TASK_TYPES["token"].encode([ex], tok, TAGS, 32)
    assert pieces(tok, enc["input_ids"][0]) == ["[CLS]", "john", "play", "##ed", "in", "x", "##y", "##z", "[SEP]"]
    #                                  CLS   john  play  ##ed  in  x  ##y   ##z   SEP
    assert enc["labels"][0].tolist() == [-100, 1, 0, -100, 0, 3, -100, -100, -100]
    assert enc["word_ids"][0].tolist() == [-1, 0, 1, 1, 2, 3, 3, 3, -1]
    assert enc["token_type_ids"][0].tolist() == [0] * 9                # no predicate: nothing marked


def test_token_predicate_marking(tok):
    ex = {"tokens": ["John", "played", "in", "Xyz"], "tags": ["B-A0", "B-V", "O", "B-A1"], "predicate": 1}
    labels = ["O", "B-A0", "B-V", "B-A1"]
    enc = TASK_TYPES["token"].encode([ex], tok, labels, 32)             # auto -> token_type for BERT
    assert enc["token_type_ids"][0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]   # play ##ed
    enc = TokenTask(predicate_marking="markers").encode([ex], tok, labels, 32)
    assert pieces(tok, enc["input_ids"][0]) == ["[CLS]", "john", "*", "play", "##ed", "*", "in", "x", "##y", "##z",
                                                "[SEP]"]
    assert enc["labels"][0].tolist() == [-100, 1, -100, 2, -100, -100, 0, 3, -100, -100, -100]
    assert enc["word_ids"][0].tolist() == [-1, 0, -1, 1, 1, -1, 2, 3, 3, 3, -1]
    assert enc["token_type_ids"][0].tolist() == [0] * 11
    with pytest.raises(TaskEncodingError, match="predicate 4, not a word index in \\[0, 4\\)"):
        TASK_TYPES["token"].encode([{**ex, "predicate": 4}], tok, labels, 32)
    # a model with a single token type cannot take the token-type marking
    enc = TASK_TYPES["token"].encode([ex], tok, labels, 32)
    model = FakeModel(lambda x: SimpleNamespace(logits=torch.zeros(*x["input_ids"].shape, 4)), n_types=1)
    with pytest.raises(ValueError, match="type_vocab_size 1.*markers"):
        TASK_TYPES["token"].predict(model, enc, [ex], labels)


def test_token_errors(tok):
    task = TASK_TYPES["token"]
    with pytest.raises(TaskEncodingError, match="example 0 has 2 tokens but 1 tags"):
        task.encode([{"tokens": ["a", "b"], "tags": ["O"]}], tok, TAGS, 16)
    with pytest.raises(TaskEncodingError, match="tag 'B-ORG', which is not among"):
        task.encode([{"tokens": ["a"], "tags": ["B-ORG"]}], tok, TAGS, 16)
    with pytest.raises(TaskEncodingError, match="has no tokens"):
        task.encode([{"tokens": [], "tags": []}], tok, TAGS, 16)
    with pytest.raises(TaskEncodingError, match="token 1 is ''"):
        task.encode([{"tokens": ["a", ""], "tags": ["O", "O"]}], tok, TAGS, 16)


def test_token_prediction_truncated_words_are_o(tok, caplog):
    # words: john(1 sub-token) mary(1) xyz(3) paris(1); max_length 6 keeps CLS john mary x ##y SEP
    ex = {"tokens": ["john", "mary", "xyz", "paris"], "tags": ["B-PER", "B-PER", "B-LOC", "B-LOC"]}
    with caplog.at_level(logging.WARNING):
        enc = TASK_TYPES["token"].encode([ex], tok, TAGS, 6)
    assert "1 words of 1 examples lie past max_length=6" in caplog.text
    assert enc["labels"][0].tolist() == [-100, 1, 1, 3, -100, -100]
    # oracle model: predicts B-PER on "john"/"mary", B-LOC on "x", I-LOC elsewhere
    per = set(tok.convert_tokens_to_ids(["john", "mary"]))
    x = tok.convert_tokens_to_ids("x")

    def logits(inputs):
        ids = inputs["input_ids"]
        out = torch.zeros(*ids.shape, len(TAGS))
        for (b, t), i in zip(torch.cartesian_prod(torch.arange(ids.shape[0]), torch.arange(ids.shape[1])),
                             ids.flatten().tolist()):
            out[b, t, 1 if i in per else 3 if i == x else 4] = 1.0
        return SimpleNamespace(logits=out)

    preds = TASK_TYPES["token"].predict(FakeModel(logits), enc, [ex], TAGS)
    assert preds == [["B-PER", "B-PER", "B-LOC", "O"]]                 # paris was cut off -> O
    scores = TASK_TYPES["token"].score(preds, [ex], TAGS)
    assert scores["entity_f1"] == pytest.approx(2 * 0.75 * 1.0 / 1.75)  # 3 of 4 gold found, all 3 right
    assert scores["accuracy"] == pytest.approx(0.75)


# --- span ---------------------------------------------------------------------------------------

def test_span_masks_cover_exactly_the_span(tok):
    ex = {"tokens": ["John", "played", "with", "his", "xyz", "dog"], "span1": [4, 6], "span2": [3, 4], "label": "1"}
    wsd = {"tokens": ["she", "played", "it"], "span1": [1, 2], "span2": None, "label": "play.v.01"}
    labels = ["0", "1", "play.v.01"]
    enc = TASK_TYPES["span"].encode([ex, wsd], tok, labels, 32)
    assert pieces(tok, enc["input_ids"][0], enc["span1_mask"][0]) == ["x", "##y", "##z", "dog"]
    assert pieces(tok, enc["input_ids"][0], enc["span2_mask"][0]) == ["his"]
    assert pieces(tok, enc["input_ids"][1], enc["span1_mask"][1]) == ["play", "##ed"]
    assert not enc["span2_mask"][1].any()
    assert enc["labels"].tolist() == [1, 2]


def test_span_long_sentence_window_keeps_spans(tok, caplog):
    words = ["cat"] * 20 + ["his", "dog"] + ["mat"] * 20
    ex = {"tokens": words, "span1": [21, 22], "span2": [20, 21], "label": "1"}
    with caplog.at_level(logging.WARNING):
        enc = TASK_TYPES["span"].encode([ex], tok, ["0", "1"], 10)
    assert "cut to a window" in caplog.text
    assert enc["input_ids"].shape == (1, 10)
    assert pieces(tok, enc["input_ids"][0], enc["span1_mask"][0]) == ["dog"]
    assert pieces(tok, enc["input_ids"][0], enc["span2_mask"][0]) == ["his"]


def test_span_errors(tok):
    task = TASK_TYPES["span"]
    with pytest.raises(TaskEncodingError, match="span1 \\[2, 5\\].*<= 3"):
        task.encode([{"tokens": ["a", "b", "c"], "span1": [2, 5], "span2": None, "label": "0"}], tok, ["0"], 16)
    with pytest.raises(TaskEncodingError, match="span2 \\[1, 1\\]"):
        task.encode([{"tokens": ["a", "b", "c"], "span1": [0, 1], "span2": [1, 1], "label": "0"}], tok, ["0"], 16)
    with pytest.raises(TaskEncodingError, match="more than max_length=6"):
        task.encode([{"tokens": ["xyzxyz", "a"], "span1": [0, 1], "span2": None, "label": "0"}], tok, ["0"], 6)


def test_span_model_forward_and_save_load(bert_dir, tok, tmp_path):
    task = TASK_TYPES["span"]
    model = task.build_model(str(bert_dir), 2, ["no", "yes"])
    assert model.base_model is model.backbone and model.config.id2label == {0: "no", 1: "yes"}
    exs = [{"tokens": ["john", "sat", "on", "his", "mat"], "span1": [0, 1], "span2": [3, 4], "label": "yes"},
           {"tokens": ["she", "ran"], "span1": [1, 2], "span2": None, "label": "no"}]
    enc = task.encode(exs, tok, ["no", "yes"], 16)
    model.eval()
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids", "span1_mask", "span2_mask",
                                  "labels")}
    out = model(**inputs)
    assert out.logits.shape == (2, 2) and out.loss.ndim == 0
    # the head sees mean-pooled span states: recompute by hand from the backbone
    states = model.backbone(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    p1 = states[0, enc["span1_mask"][0]].mean(0)
    p2 = states[0, enc["span2_mask"][0]].mean(0)
    expected = model.classifier(torch.cat([p1, p2, p1 * p2]))
    torch.testing.assert_close(out.logits[0], expected, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path / "span")
    again = type(model).from_pretrained(tmp_path / "span").eval()
    torch.testing.assert_close(again(**inputs).logits, out.logits)
    assert task.predict(model, enc, exs, ["no", "yes"]) == [["no", "yes"][k] for k in out.logits.argmax(-1)]


def test_build_models_have_heads(bert_dir):
    seq = TASK_TYPES["sentence"].build_model(str(bert_dir), 3, ["a", "b", "c"])
    assert seq.config.num_labels == 3 and seq.config.id2label[2] == "c"
    assert TASK_TYPES["token"].build_model(str(bert_dir), 5).config.num_labels == 5
    assert hasattr(TASK_TYPES["qa"].build_model(str(bert_dir), 0), "qa_outputs")
    with pytest.raises(ValueError, match="n_labels must be an integer >= 2"):
        TASK_TYPES["sentence"].build_model(str(bert_dir), 1)


# --- qa -----------------------------------------------------------------------------------------

def _qa(qid, question, context, answer, start=None):
    start = context.index(answer) if start is None else start
    return {"id": qid, "question": question, "context": context, "answers": [{"text": answer, "answer_start": start}]}


def test_qa_positions_decode_to_answer(tok):
    exs = [_qa("q1", "Who went to Paris?", "John went to Paris with his dog.", "his dog"),
           _qa("q2", "Where did Mary go?", "Mary went to London.", "London"),
           _qa("q3", "What sat?", "The xyzcat sat on the mat.", "xyzcat")]
    enc = QATask().encode(exs, tok, [], 64)
    for r, ex in enumerate(exs):
        s, e = int(enc["start_positions"][r]), int(enc["end_positions"][r])
        assert enc["context_mask"][r, s] and enc["context_mask"][r, e]
        answer = ex["answers"][0]["text"]
        assert tok.decode(enc["input_ids"][r, s:e + 1]) == answer.lower()
        a, b = enc["offset_mapping"][r, s, 0], enc["offset_mapping"][r, e, 1]
        assert ex["context"][a:b] == answer
    assert enc["trainable"].tolist() == [True, True, True]
    # the question's tokens are not context
    assert pieces(tok, enc["input_ids"][1], enc["context_mask"][1]) == ["mary", "went", "to", "london", "."]


def test_qa_truncation_leaves_question_out_of_training(tok, caplog):
    context = "the cat sat on the mat. " * 10 + "John went to Paris."
    exs = [_qa("far", "Who went?", context, "John"), _qa("near", "What sat?", context, "the cat")]
    with caplog.at_level(logging.WARNING):
        enc = QATask().encode(exs, tok, [], 24)
    assert "1 of 2 questions have their gold answer past max_length=24" in caplog.text
    assert enc["input_ids"].shape[1] == 24
    assert enc["trainable"].tolist() == [False, True]
    assert QATask().train_rows(enc).tolist() == [1]


def test_qa_errors(tok):
    task = QATask()
    with pytest.raises(TaskEncodingError, match="id 'q7'.*answer 0 'Paris'.*outside its context"):
        task.encode([_qa("q7", "Where?", "John went.", "Paris", start=40)], tok, [], 64)
    with pytest.raises(TaskEncodingError, match="id 'q8'.*does not match its context at answer_start 1"):
        task.encode([_qa("q8", "Who?", "John went.", "John", start=1)], tok, [], 64)
    with pytest.raises(TaskEncodingError, match="id 'q9'.*empty 'question'"):
        task.encode([_qa("q9", "", "John went.", "John")], tok, [], 64)


def test_qa_best_span_respects_constraints(tok):
    ex = _qa("q", "Who went?", "John went to Paris with his big dog.", "his big dog")
    enc = QATask(max_answer_tokens=30).encode([ex], tok, [], 64)
    toks = pieces(tok, enc["input_ids"][0])
    ctx = enc["context_mask"][0]
    pos = {t: i for i, t in reversed(list(enumerate(toks)))}           # first position of each piece
    i_who, i_paris, i_his, i_dog, i_john = pos["who"], pos["paris"], pos["his"], pos["dog"], pos["john"]
    assert not ctx[i_who]

    def logits(start_scores, end_scores):
        def fn(inputs):
            n, length = inputs["input_ids"].shape
            s, e = torch.full((n, length), -10.0), torch.full((n, length), -10.0)
            for i, v in start_scores.items():
                s[0, i] = v
            for i, v in end_scores.items():
                e[0, i] = v
            return SimpleNamespace(start_logits=s, end_logits=e)
        return FakeModel(fn)

    # the question token has the best start score but is not context; an end before the start is refused
    model = logits({i_who: 9.0, i_his: 5.0, i_paris: 1.0}, {i_john: 8.0, i_dog: 4.0})
    assert QATask().predict(model, enc, [ex]) == ["his big dog"]
    # answers longer than max_answer_tokens are refused: john..dog is 9 tokens, "to Paris" wins
    # other positions score -10: john+dog 8 (9 tokens), john+paris 4.5 (4 tokens), to+paris 3.5 (2 tokens)
    model = logits({i_john: 2.0, pos["to"]: 1.0}, {i_dog: 6.0, i_paris: 2.5})
    assert QATask(max_answer_tokens=30).predict(model, enc, [ex]) == ["John went to Paris with his big dog"]
    assert QATask(max_answer_tokens=3).predict(model, enc, [ex]) == ["to Paris"]
    scores = QATask().score(["to Paris"], [ex])
    assert scores == {"exact_match": 0.0, "f1": 0.0, "n": 1}
