"""Readers of the real NLU task sets (brainalign.core.tasks.readers).

The real files are read from ``<repo>/../shared/data/nlu`` (skipped when absent). Counts are
asserted exactly and, where the data README or the standard papers give them, against those
figures; first examples are compared with a plain parse written here (csv/json/zipfile/re, not the
reader's code). Every bad-input error is raised from a small file written to ``tmp_path``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from brainalign.core.tasks.readers import (
    STUDY_TASKS,
    TASKS,
    TaskData,
    TaskFormatError,
    bio_error,
    cap_examples,
    from_hf_disk,
    iob1_to_bio,
    load_task,
    majority_baseline,
    validate_task,
)

NLU = Path(__file__).resolve().parents[2].parent / "shared/data/nlu"

# exact counts found in the files (train / dev / test)
COUNTS = {
    "emotion": {"train": 16000, "dev": 2000, "test": 2000},
    "sst2": {"train": 67349, "dev": 872, "test": 1821},
    "squad": {"train": 8570, "dev": 2000},
    "srl": {"train": 20717, "dev": 2362},
    "wsd": {"train": 12180, "dev": 3045},
    "wsc": {"train": 554, "dev": 104},
    "conll2003": {"train": 14041, "dev": 3250, "test": 3453},
    "rte": {"train": 2490, "dev": 277},
    "conll2000": {"train": 8936, "dev": 2012},
    "mrpc": {"train": 4076, "dev": 1725},
    "trec": {"train": 5452, "dev": 500},
}
TYPES = {"emotion": "sentence", "sst2": "sentence", "squad": "qa", "srl": "token", "wsd": "span",
         "wsc": "span", "conll2003": "token", "rte": "pair", "conll2000": "token", "mrpc": "pair",
         "trec": "sentence"}
LABELS = {
    "emotion": ["anger", "fear", "joy", "love", "sadness", "surprise"],
    "sst2": ["negative", "positive"],
    "squad": [],
    "wsd": ["HARD1", "HARD2", "HARD3", "SERVE10", "SERVE12", "SERVE2", "SERVE6", "cord", "division",
            "formation", "interest_1", "interest_2", "interest_3", "interest_4", "interest_5", "interest_6",
            "phone", "product", "text"],
    "wsc": ["False", "True"],
    "conll2003": ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"],
    "rte": ["entailment", "not_entailment"],
    "conll2000": ["O"] + [f"{p}-{t}" for t in ["ADJP", "ADVP", "CONJP", "INTJ", "LST", "NP", "PP", "PRT",
                                                "SBAR", "UCP", "VP"] for p in "BI"],
    "mrpc": ["equivalent", "not_equivalent"],
    "trec": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
}


@pytest.fixture(scope="module")
def nlu() -> Path:
    if not NLU.is_dir():
        pytest.skip(f"real NLU data not found at {NLU} (the shared data folder beside the repository)")
    return NLU


@pytest.fixture(scope="module")
def tasks(nlu):
    """Every registered English task, loaded once for the module (the PropBank and SENSEVAL XML
    parses take a few seconds); the Chinese ones: tests/core/test_readers_zh.py."""
    return {name: load_task(name, nlu) for name in COUNTS}


# ---------------------------------------------------------------------------------------------
# the real sets: registry, counts, labels


def test_registry():
    from brainalign.core.tasks.readers_zh import ZH_STUDY_TASKS

    assert set(TASKS) == set(COUNTS) | set(ZH_STUDY_TASKS)
    assert len(STUDY_TASKS) == 10 and "trec" not in STUDY_TASKS and not set(STUDY_TASKS) & set(ZH_STUDY_TASKS)
    for name, spec in ((n, TASKS[n]) for n in COUNTS):
        assert spec.name == name and spec.type == TYPES[name] and spec.kind


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts_types_labels(tasks, name):
    task = tasks[name]
    assert isinstance(task, TaskData)
    assert task.name == name and task.type == TYPES[name]
    assert task.counts() == COUNTS[name]
    if name in LABELS:
        assert sorted(task.labels) == sorted(LABELS[name])
    assert task.source and task.notes
    validate_task(task)


def test_readme_figures(tasks):
    # data README: emotion 16,000 / 2,000 and the train label counts
    assert tasks["emotion"].label_counts("train") == {"sadness": 4666, "joy": 5362, "love": 1304,
                                                      "anger": 2159, "fear": 1937, "surprise": 572}
    # MRPC 2,753 / 1,323 train and 1,147 / 578 test for 1 / 0
    assert tasks["mrpc"].label_counts("train") == {"equivalent": 2753, "not_equivalent": 1323}
    assert tasks["mrpc"].label_counts("dev") == {"equivalent": 1147, "not_equivalent": 578}
    # SQuAD: 10,570 questions, 34,726 answers over both splits, 48 articles
    squad = tasks["squad"].splits
    assert sum(len(v) for v in squad.values()) == 10570
    assert sum(len(ex["answers"]) for v in squad.values() for ex in v) == 34726
    # CoNLL-2003 / CoNLL-2000 standard sentence and token figures
    c3 = tasks["conll2003"].splits
    n_tokens = [sum(len(ex["tokens"]) for ex in c3[s]) for s in ("train", "dev", "test")]
    assert n_tokens == [203621, 51362, 46435]
    c2 = tasks["conll2000"].splits
    assert [sum(len(ex["tokens"]) for ex in c2[s]) for s in ("train", "dev")] == [211727, 47377]
    # SST-2 67,349 / 872; RTE labels
    assert tasks["sst2"].label_counts("dev") == {"negative": 428, "positive": 444}
    assert tasks["rte"].label_counts("train") == {"entailment": 1249, "not_entailment": 1241}


def test_majority_baselines(tasks):
    assert majority_baseline(tasks["sst2"]) == ("positive", pytest.approx(444 / 872))
    assert majority_baseline(tasks["emotion"]) == ("joy", pytest.approx(704 / 2000))
    assert majority_baseline(tasks["rte"]) == ("entailment", pytest.approx(146 / 277))
    assert majority_baseline(tasks["mrpc"]) == ("equivalent", pytest.approx(1147 / 1725))
    assert majority_baseline(tasks["wsc"]) == ("False", pytest.approx(66 / 104))
    assert majority_baseline(tasks["trec"]) == ("ENTY", pytest.approx(94 / 500))
    with pytest.raises(ValueError, match="token"):
        majority_baseline(tasks["conll2003"])
    with pytest.raises(ValueError, match="qa"):
        majority_baseline(tasks["squad"])


def _bio_ok(tags):
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            return False
        prev = tag
    return True


@pytest.mark.parametrize("name", ["conll2003", "conll2000", "srl"])
def test_token_tasks_are_bio(tasks, name):
    task = tasks[name]
    for split, rows in task.splits.items():
        for ex in rows:
            assert len(ex["tokens"]) == len(ex["tags"]) > 0
            assert _bio_ok(ex["tags"])
            assert set(ex["tags"]) <= set(task.labels) | {"I-LST"}  # conll2000 dev: I-LST, train B-LST only


# ---------------------------------------------------------------------------------------------
# first examples against a plain parse


def test_emotion_and_sst2_first_examples(tasks, nlu):
    text, label = (nlu / "emotion/train.txt").read_text().splitlines()[0].split(";")
    assert tasks["emotion"].splits["train"][0] == {"text": text, "label": label}
    assert tasks["emotion"].splits["train"][0]["text"] == "i didnt feel humiliated"
    for split in ("train", "dev", "test"):
        with open(nlu / f"SST2/{split}.tsv", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        assert len(rows) - 1 == len(tasks["sst2"].splits[split])
        head = rows[0]
        first = rows[1]
        ex = tasks["sst2"].splits[split][0]
        assert ex["text"] == first[1 - head.index("label")]
        assert ex["label"] == {"0": "negative", "1": "positive"}[first[head.index("label")]]


def test_pair_first_examples(tasks, nlu):
    obj = json.loads((nlu / "superglue/RTE/train.jsonl").read_text().splitlines()[0])
    assert tasks["rte"].splits["train"][0] == {"text": obj["premise"], "text_pair": obj["hypothesis"],
                                               "label": obj["label"]}
    with open(nlu / "mrpc/msr_paraphrase_test.txt", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0][0] == "Quality" and len(rows) - 1 == 1725
    ex = tasks["mrpc"].splits["dev"][0]
    assert (ex["text"], ex["text_pair"]) == (rows[1][3], rows[1][4])
    assert ex["label"] == ("equivalent" if rows[1][0] == "1" else "not_equivalent")
    # quoting off: a sentence with bare double quotes is read whole
    assert '"the witness"' in tasks["mrpc"].splits["train"][0]["text"]


def test_trec_first_example(tasks, nlu):
    with zipfile.ZipFile(nlu / "nltk_data/qc.zip") as zf:
        line = zf.read("qc/train.txt").decode("latin-1").splitlines()[0]
    head, question = line.split(" ", 1)
    ex = tasks["trec"].splits["train"][0]
    assert (ex["text"], ex["label"], ex["fine_label"]) == (question, head.split(":")[0], head)
    assert ex["label"] == "DESC" and ex["text"].startswith("How did serfdom develop")


def test_wsc_spans(tasks, nlu):
    lines = (nlu / "superglue/WSC/train.jsonl").read_text().splitlines()
    obj = json.loads(lines[0])
    ex = tasks["wsc"].splits["train"][0]
    words = obj["text"].split(" ")
    assert ex["tokens"] == words and ex["label"] == str(obj["label"]) == "False"
    assert ex["span1"] == [obj["target"]["span1_index"], obj["target"]["span1_index"] + 1]
    assert ex["tokens"][slice(*ex["span1"])] == ["Mark"] and ex["tokens"][slice(*ex["span2"])] == ["He"]
    for rows in tasks["wsc"].splits.values():
        for ex in rows:
            assert ex["span2"][1] - ex["span2"][0] >= 1 and "" not in ex["tokens"]
    # the one wrong index of val.jsonl (line 43: span2 'it' given at word 30, 'use') is corrected
    dev42 = tasks["wsc"].splits["dev"][42]
    assert dev42["tokens"][slice(*dev42["span2"])] == ["it"]
    assert "val.jsonl line 43 span2_index 30 -> 31" in tasks["wsc"].notes


def test_squad_split_by_article(tasks, nlu):
    data = json.loads((nlu / "squad/dev-v1.1.json").read_text())["data"]
    by_id = {qa["id"]: (a["title"], p["context"], qa)
             for a in data for p in a["paragraphs"] for qa in p["qas"]}
    squad = tasks["squad"].splits
    titles = {s: {by_id[ex["id"]][0] for ex in rows} for s, rows in squad.items()}
    assert len(titles["train"]) == 38 and len(titles["dev"]) == 10 and not titles["train"] & titles["dev"]
    assert {ex["id"] for rows in squad.values() for ex in rows} == set(by_id)
    first = squad["train"][0]
    title, context, qa = by_id[first["id"]]
    assert first["context"] == context and first["question"] == qa["question"]
    assert first["answers"] == [{"text": a["text"], "answer_start": a["answer_start"]} for a in qa["answers"]]
    for rows in squad.values():
        for ex in rows:
            for a in ex["answers"]:
                assert ex["context"][a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]


def test_conll_first_sentences(tasks, nlu):
    lines = (nlu / "conll2003/eng.train").read_text().split("\n")
    first = [line.split() for line in lines[: lines.index("")]]
    ex = tasks["conll2003"].splits["train"][0]
    assert ex["tokens"] == [c[0] for c in first] == ["EU", "rejects", "German", "call", "to", "boycott",
                                                     "British", "lamb", "."]
    assert ex["tags"] == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
    # tag counts against a plain parse of the column file
    plain = Counter(line.split()[3] for line in lines if line.strip())
    assert tasks["conll2003"].label_counts("train") == plain
    with zipfile.ZipFile(nlu / "nltk_data/conll2000.zip") as zf:
        text = zf.read("conll2000/train.txt").decode()
    block = text.split("\n\n")[0].split("\n")
    ex = tasks["conll2000"].splits["train"][0]
    assert ex["tokens"] == [b.split()[0] for b in block] and ex["tags"] == [b.split()[2] for b in block]
    assert ex["tokens"][:4] == ["Confidence", "in", "the", "pound"]
    assert ex["tags"][:4] == ["B-NP", "B-PP", "B-NP", "I-NP"]


def test_wsd_instances(tasks, nlu):
    with zipfile.ZipFile(nlu / "nltk_data/senseval.zip") as zf:
        texts = {w: zf.read(f"senseval/{w}.pos").decode() for w in ("hard", "interest", "line", "serve")}
    n_inst = {w: len(re.findall(r"<instance ", t)) for w, t in texts.items()}
    assert n_inst == {"hard": 4333, "interest": 2368, "line": 4146, "serve": 4378}
    senses = Counter(s for t in texts.values() for s in re.findall(r'senseid="([^"]+)"', t))
    wsd = tasks["wsd"]
    assert wsd.label_counts("train") + wsd.label_counts("dev") == senses
    for s in senses:  # stratified: every sense in both splits, about 20 % in dev
        assert 0 < wsd.label_counts("dev")[s] < wsd.label_counts("train")[s]
    stems = {"hard", "interest", "line", "serv"}
    for rows in wsd.splits.values():
        for ex in rows:
            assert ex["span2"] is None and ex["span1"][1] == ex["span1"][0] + 1
            assert any(ex["tokens"][ex["span1"][0]].lower().startswith(s) for s in stems)
    # first instance of hard.pos: the words of its context, plain regex parse
    ctx = re.search(r"<context>(.*?)</context>", texts["hard"], re.S).group(1)
    words = re.findall(r"<wf[^>]*>([^<]*)</wf>", ctx)
    ex = wsd.splits["train"][0] if wsd.splits["train"][0]["tokens"] == words else wsd.splits["dev"][0]
    assert ex["tokens"] == words and ex["label"] == "HARD1" and words[ex["span1"][0]] == "hard"


def test_srl_examples(tasks):
    srl = tasks["srl"]
    assert "23439 examples in 7565 files" in srl.notes
    want = "And they believe the Big Board , under Mr. Phelan , has abandoned their interest .".split()
    ex = next(e for rows in srl.splits.values() for e in rows if e["tokens"] == want)
    assert ex["predicate"] == 12
    assert ex["tags"] == ["O", "O", "O", "B-ARG0", "I-ARG0", "I-ARG0", "O", "B-ARGM-ADV", "I-ARGM-ADV",
                          "I-ARGM-ADV", "O", "O", "B-V", "B-ARG1", "I-ARG1", "O"]
    for rows in srl.splits.values():
        for e in rows:
            assert e["tags"][e["predicate"]] == "B-V"
    assert "B-ARG0" in srl.labels and "B-V" in srl.labels and srl.labels[0] == "O"


# ---------------------------------------------------------------------------------------------
# capping


def test_max_examples(tasks):
    sst2 = tasks["sst2"]
    a = cap_examples(sst2, 50, seed=0)
    assert a.counts() == {"train": 50, "dev": 50, "test": 50}
    assert a.labels == sst2.labels and "Capped" in a.notes
    b = cap_examples(sst2, {"train": 100}, seed=0)
    assert b.counts() == {"train": 100, "dev": 872, "test": 1821}
    again = cap_examples(sst2, {"train": 100}, seed=0)
    other = cap_examples(sst2, {"train": 100}, seed=1)
    assert b.splits["train"] == again.splits["train"] != other.splits["train"]
    pos = [sst2.splits["train"].index(ex) for ex in b.splits["train"][:5]]
    assert pos == sorted(pos)  # file order kept
    assert cap_examples(sst2, None) is sst2
    with pytest.raises(ValueError, match="validation"):
        cap_examples(sst2, {"validation": 10})
    with pytest.raises(ValueError, match="positive int"):
        cap_examples(sst2, {"train": 0})


def test_load_task_cap_and_unknown(nlu):
    task = load_task("wsc", nlu, max_examples={"dev": 10}, seed=3)
    assert task.counts() == {"train": 554, "dev": 10}
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        load_task("nope", nlu)


# ---------------------------------------------------------------------------------------------
# bad input: small files in tmp_path


def _write(root: Path, rel: str, text: str, encoding: str = "utf-8") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _zip(root: Path, rel: str, members: dict[str, str]) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _emotion(root, train="i am happy;joy\ni am sad;sadness\n", val="so glad;joy\n", test="meh;sadness\n"):
    _write(root, "emotion/train.txt", train)
    _write(root, "emotion/val.txt", val)
    _write(root, "emotion/test.txt", test)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"emotion/train\.txt"):
        TASKS["emotion"].load(tmp_path)


def test_emotion_errors(tmp_path):
    _emotion(tmp_path)
    assert TASKS["emotion"].load(tmp_path).counts() == {"train": 2, "dev": 1, "test": 1}
    _emotion(tmp_path, train="i am happy;joy\nno label here\n")
    with pytest.raises(TaskFormatError, match=r"train\.txt:2: expected 'text;label'"):
        TASKS["emotion"].load(tmp_path)
    _emotion(tmp_path, train="i am happy;joy\n;sadness\n")
    with pytest.raises(TaskFormatError, match=r"train\.txt:2: empty text"):
        TASKS["emotion"].load(tmp_path)
    _emotion(tmp_path, val="so glad;joy\nfrightened;fear\n")
    with pytest.raises(TaskFormatError,
                       match=r"label 'fear' occurs in split 'dev' \(row 1\) but never in 'train'"):
        TASKS["emotion"].load(tmp_path)


def test_sst2_errors(tmp_path):
    _write(tmp_path, "SST2/train.tsv", "sentence\tlabel\ngood film\t1\nbad film\t0\n")
    _write(tmp_path, "SST2/dev.tsv", "label\tcontent\n1\tfine\n")
    task = TASKS["sst2"].load(tmp_path)
    assert task.splits["train"][0] == {"text": "good film", "label": "positive"}
    assert task.splits["dev"][0] == {"text": "fine", "label": "positive"} and "test" not in task.splits
    _write(tmp_path, "SST2/train.tsv", "sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n")
    with pytest.raises(TaskFormatError, match=r"train\.tsv:3: 3 tab-separated columns"):
        TASKS["sst2"].load(tmp_path)
    _write(tmp_path, "SST2/train.tsv", "sentence\tlabel\ngood film\t1\n \t0\n")
    with pytest.raises(TaskFormatError, match=r"train\.tsv:3: empty sentence"):
        TASKS["sst2"].load(tmp_path)
    _write(tmp_path, "SST2/train.tsv", "sentence\tlabel\ngood film\t2\n")
    with pytest.raises(TaskFormatError, match=r"train\.tsv:2: label '2'"):
        TASKS["sst2"].load(tmp_path)


def test_mrpc_errors(tmp_path):
    head = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n"
    _write(tmp_path, "mrpc/msr_paraphrase_train.txt", head + '1\t1\t2\tHe said "hi".\tHe said hi.\r\n'
                                                             "0\t3\t4\tA b.\tC d.\r\n")
    _write(tmp_path, "mrpc/msr_paraphrase_test.txt", head + "1\t5\t6\tE f.\tE f!\r\n")
    task = TASKS["mrpc"].load(tmp_path)
    assert task.splits["train"][0] == {"text": 'He said "hi".', "text_pair": "He said hi.",
                                       "label": "equivalent"}
    _write(tmp_path, "mrpc/msr_paraphrase_test.txt", head + "1\t5\tE f.\tE f!\r\n")
    with pytest.raises(TaskFormatError,
                       match=r"msr_paraphrase_test\.txt:2: 4 tab-separated columns, expected 5"):
        TASKS["mrpc"].load(tmp_path)


def test_rte_errors(tmp_path):
    row = {"premise": "A man sleeps.", "hypothesis": "A man rests.", "label": "entailment", "idx": 0}
    _write(tmp_path, "superglue/RTE/train.jsonl", json.dumps(row) + "\n")
    _write(tmp_path, "superglue/RTE/val.jsonl", json.dumps({**row, "label": "neutral"}) + "\n")
    with pytest.raises(TaskFormatError, match=r"val\.jsonl:1: label 'neutral'"):
        TASKS["rte"].load(tmp_path)
    _write(tmp_path, "superglue/RTE/val.jsonl", json.dumps(row) + "\n" + json.dumps({**row, "premise": ""}))
    with pytest.raises(TaskFormatError, match=r"val\.jsonl:2: empty premise"):
        TASKS["rte"].load(tmp_path)


def test_trec_errors(tmp_path):
    _zip(tmp_path, "nltk_data/qc.zip", {"qc/train.txt": "HUM:ind Who is he ?\nLOC:city Where ?\n",
                                        "qc/test.txt": "HUM:ind Who ?\nwhat is this ?\n"})
    with pytest.raises(TaskFormatError, match=r"qc\.zip:qc/test\.txt:2: expected 'COARSE:fine question'"):
        TASKS["trec"].load(tmp_path)


def test_squad_errors(tmp_path):
    def doc(answer):
        return json.dumps({"version": "1.1", "data": [{"title": f"T{i}", "paragraphs": [{
            "context": "The cat sat on the mat.", "qas": [{"id": f"q{i}", "question": "Where?",
                                                          "answers": [answer]}]}]} for i in range(5)]})

    _write(tmp_path, "squad/dev-v1.1.json", doc({"text": "the mat", "answer_start": 15}))
    task = TASKS["squad"].load(tmp_path)
    assert task.counts() == {"train": 4, "dev": 1} and task.labels == []
    _write(tmp_path, "squad/dev-v1.1.json", doc({"text": "the mat", "answer_start": 14}))
    with pytest.raises(TaskFormatError, match=r"article 'T0'.*question 'q0'.*does not match its context"):
        TASKS["squad"].load(tmp_path)
    _write(tmp_path, "squad/dev-v1.1.json", doc({"text": "the mat", "answer_start": 40}))
    with pytest.raises(TaskFormatError, match=r"question 'q0'.*lies outside its context"):
        TASKS["squad"].load(tmp_path)


def _conll2003(root, train):
    _write(root, "conll2003/eng.train", train)
    _write(root, "conll2003/eng.testa", "Paris NNP I-NP I-LOC\n\n")
    _write(root, "conll2003/eng.testb", "Rome NNP I-NP I-LOC\n")


def test_conll2003_iob1_and_errors(tmp_path):
    # IOB1: I- starts a chunk; B- only between two adjacent chunks of one type
    _conll2003(tmp_path, "-DOCSTART- -X- O O\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n"
                         "Paul NNP I-NP B-PER\nin IN I-PP O\nBerlin NNP I-NP I-LOC\n\n")
    task = TASKS["conll2003"].load(tmp_path)
    assert task.splits["train"] == [{"tokens": ["Peter", "Blackburn", "Paul", "in", "Berlin"],
                                     "tags": ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]}]
    assert task.counts() == {"train": 1, "dev": 1, "test": 1}
    assert "4 I- tags became B-" in task.notes and "train 2, dev 1, test 1" in task.notes
    _conll2003(tmp_path, "Peter NNP I-NP I-PER\nBlackburn NNP I-PER\n\n")
    with pytest.raises(ValueError, match=r"eng\.train:2: 3 columns, expected 4"):
        TASKS["conll2003"].load(tmp_path)
    _conll2003(tmp_path, "Peter NNP I-NP PER\n")
    with pytest.raises(TaskFormatError, match=r"eng\.train:1: tag 'PER' is not O, B-<type> or I-<type>"):
        TASKS["conll2003"].load(tmp_path)


def test_conll2000_bio_error(tmp_path):
    good = "He PRP B-NP\nran VBD B-VP\n\n"
    _zip(tmp_path, "nltk_data/conll2000.zip", {"conll2000/train.txt": good,
                                               "conll2000/test.txt": good + "the DT O\ndog NN I-NP\n\n"})
    with pytest.raises(TaskFormatError,
                       match=r"test\.txt: sentence starting at line 4: not BIO: tag 1 'I-NP' follows 'O'"):
        TASKS["conll2000"].load(tmp_path)


def test_wsc_errors(tmp_path):
    def row(text, i1, t1, i2, t2, label=True):
        return json.dumps({"text": text, "target": {"span1_index": i1, "span1_text": t1, "span2_index": i2,
                                                    "span2_text": t2}, "idx": 0, "label": label})

    text = "The trophy  does not fit in the suitcase because it is too big."
    _write(tmp_path, "superglue/WSC/train.jsonl", row(text, 0, "The trophy", 10, "it") + "\n"
           + row(text, 7, "the suitcase", 10, "it", False) + "\n")
    _write(tmp_path, "superglue/WSC/val.jsonl", row(text, 0, "the trophy", 9, "it") + "\n")
    task = TASKS["wsc"].load(tmp_path)
    ex = task.splits["train"][0]
    assert "" not in ex["tokens"] and ex["tokens"][slice(*ex["span1"])] == ["The", "trophy"]
    assert ex["tokens"][slice(*ex["span2"])] == ["it"] and ex["label"] == "True"
    dev = task.splits["dev"][0]  # index 9 (one off) corrected to 10
    assert dev["tokens"][slice(*dev["span2"])] == ["it"]
    assert "val.jsonl line 1 span2_index 9 -> 10" in task.notes
    _write(tmp_path, "superglue/WSC/val.jsonl", row(text, 0, "the trophy", 10, "it") + "\n"
           + row(text, 0, "the trophy", 5, "it") + "\n")
    with pytest.raises(TaskFormatError, match=r"val\.jsonl:2: span2_text 'it' does not match word 5"):
        TASKS["wsc"].load(tmp_path)


PB = """<?xml version="1.0" encoding="utf-8" standalone="no"?>
<frameset><predicate lemma="eat"><roleset id="eat.01" name="consume">
<example name="ok"><text>The cat ate the fish quickly .</text><propbank><rel relloc="2">ate</rel>
<arg type="ARG0" start="0" end="1">The cat</arg><arg type="ARG1" start="3" end="4">the fish</arg>
<arg type="ARGM-MNR" start="5" end="5">quickly</arg></propbank></example>
<example name="overlap"><text>The cat ate the fish .</text><propbank><rel relloc="2">ate</rel>
<arg type="ARG0" start="0" end="1">The cat</arg>
<arg type="ARG1" start="1" end="4">cat ate the fish</arg></propbank></example>
<example name="range"><text>The cat ate .</text><propbank><rel relloc="2">ate</rel>
<arg type="ARG1" start="3" end="7">x</arg></propbank></example>
<example name="unknown"><text>The cat ate .</text><propbank><rel relloc="2">ate</rel>
<arg type="ARG0" start="?" end="?">?</arg></propbank></example>
<example name="plain"><text>Eating .</text></example>
</roleset></predicate></frameset>
"""


def test_srl_skips_and_tags(tmp_path):
    members = {f"propbank-frames-3.4.0/frames/{name}.xml": PB for name in "abcdefghij"}
    _zip(tmp_path, "propbank_frames/propbank-frames-3.4.0.zip", members)
    task = TASKS["srl"].load(tmp_path)
    assert task.counts() == {"train": 9, "dev": 1}  # round(0.1 * 10) dev files, one example kept each
    ex = task.splits["train"][0]
    assert ex == {"tokens": "The cat ate the fish quickly .".split(), "predicate": 2,
                  "tags": ["B-ARG0", "I-ARG0", "B-V", "B-ARG1", "I-ARG1", "B-ARGM-MNR", "O"]}
    for why in ("overlapping spans", "argument span out of range", "argument position unknown",
                "not annotated"):
        assert f"{why}" in task.notes and ": 10" in task.notes.split(why)[1][:80]
    # a dev-only argument type moves its file to train (dev file: smallest md5 of the file name)
    dev_file = min("abcdefghij", key=lambda n: hashlib.md5(f"{n}.xml".encode()).hexdigest())
    members[f"propbank-frames-3.4.0/frames/{dev_file}.xml"] = PB.replace('type="ARGM-MNR"', 'type="ARGM-XYZ"')
    _zip(tmp_path, "propbank_frames/propbank-frames-3.4.0.zip", members)
    moved = TASKS["srl"].load(tmp_path)
    assert moved.counts() == {"train": 10, "dev": 0} and "B-ARGM-XYZ" in moved.labels
    assert (f"less 1 moved to train because they hold an argument type no train file holds: {dev_file}.xml"
            in moved.notes)


def test_wsd_errors(tmp_path):
    inst = ('<instance id="{id}"><answer instance="{id}" senseid="{sense}"/><context> '
            '<wf pos="DT">a</wf> <head><wf pos="JJ">{word}</wf></head> <wf pos="NN">task</wf> extra '
            '</context>'
            '</instance>')

    def pos_file(word, heads=1):
        body = "".join(inst.format(id=f"{word}{i}", sense=f"{word}_{i % 2}", word=word) for i in range(10))
        if heads == 2:
            body = body.replace('<wf pos="NN">task</wf>', '<head><wf pos="NN">task</wf></head>', 1)
        return f'<corpus lang="en"><lexelt item="{word}">{body}</lexelt></corpus>'

    words = ("hard", "interest", "line", "serve")
    files = {f"senseval/{w}.pos": pos_file(w) for w in words}
    _zip(tmp_path, "nltk_data/senseval.zip", files)
    task = TASKS["wsd"].load(tmp_path)
    assert task.counts() == {"train": 32, "dev": 8}  # round(0.2 * 5) per sense, 8 senses
    assert task.label_counts("dev") == {f"{w}_{k}": 1 for w in words for k in (0, 1)}
    ex = task.splits["train"][0]
    assert ex["tokens"] == ["a", "hard", "task", "extra"] and ex["span1"] == [1, 2] and ex["span2"] is None
    files["senseval/line.pos"] = pos_file("line", heads=2)
    _zip(tmp_path, "nltk_data/senseval.zip", files)
    with pytest.raises(TaskFormatError, match=r"line\.pos: instance 'line0' has 2 <head> target words"):
        TASKS["wsd"].load(tmp_path)


def test_validate_task_errors():
    def token_task(**ex):
        return TaskData("t", "token", ["O", "B-X", "I-X"], {"train": [ex], "dev": []}, "mem")

    with pytest.raises(TaskFormatError, match=r"split 'train', row 0: 2 tokens but 1 tags"):
        validate_task(token_task(tokens=["a", "b"], tags=["O"]))
    with pytest.raises(TaskFormatError, match=r"row 0: token 1 is empty"):
        validate_task(token_task(tokens=["a", ""], tags=["O", "O"]))
    with pytest.raises(TaskFormatError, match=r"not BIO: tag 1 'I-X' follows 'O'"):
        validate_task(token_task(tokens=["a", "b"], tags=["O", "I-X"]))
    span = TaskData("s", "span", ["a"], {"train": [{"tokens": ["x"], "span1": [0, 2], "span2": None,
                                                     "label": "a"}], "dev": []}, "mem")
    with pytest.raises(TaskFormatError, match=r"span1 \[0, 2\] is not a \[start, end\) inside 1 tokens"):
        validate_task(span)
    sent = TaskData("e", "sentence", ["a"], {"train": [{"text": "x", "label": "a"}],
                                             "dev": [{"text": "y", "label": "b"}]}, "mem")
    with pytest.raises(TaskFormatError, match=r"label 'b' occurs in split 'dev'"):
        validate_task(sent)
    with pytest.raises(TaskFormatError, match=r"no 'dev' split"):
        validate_task(TaskData("e", "sentence", ["a"], {"train": [{"text": "x", "label": "a"}]}, "mem"))


def test_bio_helpers():
    assert iob1_to_bio(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == (
        ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"], 3)
    assert iob1_to_bio(["B-PER", "I-PER"]) == (["B-PER", "I-PER"], 0)
    assert bio_error(["B-PER", "I-PER", "O"]) is None
    assert "follows 'B-PER'" in bio_error(["B-PER", "I-LOC"])


# ---------------------------------------------------------------------------------------------
# Hugging Face save_to_disk


def test_from_hf_disk_without_datasets(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        from_hf_disk(tmp_path, "sentence", text="sentence", label="label")


def test_from_hf_disk_roundtrip(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the Hugging Face 'datasets' package is not installed")
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["good", "bad", "fine"], "label": [1, 0, 1]},
                                            features=feats),
        "validation": datasets.Dataset.from_dict({"sentence": ["ok"], "label": [1]}, features=feats),
        "test": datasets.Dataset.from_dict({"sentence": ["?"], "label": [-1]}, features=feats)})
    dd.save_to_disk(str(tmp_path / "sst"))
    task = from_hf_disk(tmp_path / "sst", "sentence", text="sentence", label="label")
    assert task.name == "sst" and task.labels == ["negative", "positive"]
    assert task.counts() == {"train": 3, "dev": 1}  # the unlabelled test split is dropped
    assert task.splits["train"][0] == {"text": "good", "label": "positive"}
    tfeats = datasets.Features({"words": datasets.Sequence(datasets.Value("string")),
                                "ner": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))})
    rows = {"words": [["Ann", "Lee", "ran"]], "ner": [[1, 2, 0]]}
    ner = datasets.DatasetDict({s: datasets.Dataset.from_dict(rows, features=tfeats)
                                for s in ("train", "validation")})
    ner.save_to_disk(str(tmp_path / "ner"))
    task = from_hf_disk(tmp_path / "ner", "token", tokens="words", tags="ner")
    assert task.splits["dev"][0] == {"tokens": ["Ann", "Lee", "ran"], "tags": ["B-PER", "I-PER", "O"]}
    assert task.labels == ["O", "B-PER", "I-PER"]
    with pytest.raises(ValueError, match=r"column names for \['text_pair'\]"):
        from_hf_disk(tmp_path / "sst", "pair", text="sentence", label="label")
