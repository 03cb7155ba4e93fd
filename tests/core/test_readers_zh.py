"""Readers of the eight Chinese CLUE task sets (brainalign.core.tasks.readers_zh).

The real files are read from ``<repo>/../shared/data/nlu_zh`` (skipped when absent), each task once
per module. Counts are asserted against the figures of the data README (``nlu_zh/`` section);
spans, entities and answers are re-checked against a plain parse of the files written here
(zipfile/json, not the reader's code). Every bad-input error is raised from a small zip or JSON
file written to ``tmp_path``. The last tests encode examples of every task with a tiny Chinese BERT
(``tests/tiny_bert.py``) and check where the labels, spans and answers land.
"""
from __future__ import annotations

import json
import random
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from brainalign.core.tasks.readers import (
    STUDY_TASKS,
    TASKS,
    TaskData,
    TaskFormatError,
    load_task,
    validate_task,
)
from brainalign.core.tasks.readers_zh import (
    BLANK_TOKEN,
    CSL_KEYWORD_SEP,
    ZH_STUDY_TASKS,
    ZH_TASKS,
    char_tokens,
    is_blank_char,
    ner_tags,
    stratified_text_split,
)

# README figures (nlu_zh/ section): rows per split, less the pairs/answers the readers drop
COUNTS = {
    "afqmc": {"train": 34_334, "dev": 4_316},
    "tnews": {"train": 53_360, "dev": 10_000},
    "ocnli": {"train": 50_486 - 49, "dev": 3_000 - 50},          # '-' pairs dropped
    "cluewsc2020": {"train": 1_244, "dev": 304},
    "csl": {"train": 20_000, "dev": 3_000},
    "cluener": {"train": 10_748, "dev": 1_343},
    "cmrc2018": {"train": 10_142, "dev": 3_219},                 # questions; none loses all answers
}
TYPES = {"iflytek": "sentence", "tnews": "sentence", "ocnli": "pair", "cluewsc2020": "span", "csl": "pair",
         "afqmc": "pair", "cluener": "token", "cmrc2018": "qa"}
ACRONYMS = {"iflytek": "LTC", "tnews": "STC", "ocnli": "NLI", "cluewsc2020": "CR", "csl": "KR", "afqmc": "SSP",
            "cluener": "NER", "cmrc2018": "QA"}
NER_TYPES = ["address", "book", "company", "game", "government", "movie", "name", "organization", "position",
             "scene"]
# README: CLUENER2020 train spans per type (2 company spans nested in a book title are dropped)
NER_TRAIN_SPANS = {"address": 2891, "book": 1139, "company": 2980 - 2, "game": 2376, "government": 1835,
                   "movie": 1123, "name": 3755, "organization": 3210, "position": 3141, "scene": 1521}


@pytest.fixture(scope="module")
def zh_root(shared_data) -> Path:
    path = shared_data / "nlu_zh"
    if not path.is_dir():
        pytest.skip(f"Chinese NLU data (CLUE) not found at {path}")
    return path


@pytest.fixture(scope="module")
def zh_tasks(zh_root) -> dict[str, TaskData]:
    """The eight tasks, each read once for the module (about 2 s together)."""
    return {name: load_task(name, zh_root) for name in ZH_STUDY_TASKS}


def _jsonl(path: Path) -> list[dict]:
    # split on LF only: 5 IFLYTEK dev sentences hold U+2028, which str.splitlines() breaks on
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _zip_jsonl(path: Path, member: str) -> list[dict]:
    with zipfile.ZipFile(path) as zf:
        return [json.loads(line) for line in zf.read(member).decode("utf-8").split("\n") if line.strip()]


def _zip_json(path: Path, member: str) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(member).decode("utf-8"))


# ---------------------------------------------------------------------------------------------
# registry


def test_registry():
    assert ZH_STUDY_TASKS == ("iflytek", "tnews", "ocnli", "cluewsc2020", "csl", "afqmc", "cluener", "cmrc2018")
    assert tuple(ZH_TASKS) == ZH_STUDY_TASKS
    assert len(STUDY_TASKS) == 10 and not set(STUDY_TASKS) & set(ZH_STUDY_TASKS)
    for name in ZH_STUDY_TASKS:
        spec = TASKS[name]
        assert spec is ZH_TASKS[name] and spec.name == name and spec.type == TYPES[name]
        assert not spec.study and f"({ACRONYMS[name]})" in spec.kind
        assert all(f.split("/")[0] == name and not Path(f).is_absolute() for f in spec.files)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="afqmc_public.zip"):
        TASKS["afqmc"].load(tmp_path)


# ---------------------------------------------------------------------------------------------
# the real sets


@pytest.mark.parametrize("name", ZH_STUDY_TASKS)
def test_counts_and_types(zh_tasks, name):
    task = zh_tasks[name]
    assert task.name == name and task.type == TYPES[name]
    if name == "iflytek":
        assert sum(task.counts().values()) == 2_599 and set(task.counts()) == {"train", "dev"}
    else:
        assert task.counts() == COUNTS[name]
    assert task.source and task.notes
    validate_task(task)


def test_label_sets_and_readme_label_counts(zh_tasks, zh_root):
    tnews_names = sorted(r["label_desc"] for r in _jsonl(zh_root / "tnews/labels.json"))
    assert len(tnews_names) == 15 and zh_tasks["tnews"].labels == tnews_names
    tnews = zh_tasks["tnews"].label_counts("train")
    assert tnews["news_stock"] == 257 and tnews["news_tech"] == 5_955 and min(tnews.values()) == 257
    iflytek_names = sorted(r["label_des"] for r in _jsonl(zh_root / "iflytek/labels.json"))
    assert len(iflytek_names) == 119 and zh_tasks["iflytek"].labels == iflytek_names   # all 119 in train
    assert zh_tasks["ocnli"].labels == ["contradiction", "entailment", "neutral"]
    assert zh_tasks["ocnli"].label_counts("train") == {"entailment": 16_779, "neutral": 17_182,
                                                       "contradiction": 16_476}
    assert zh_tasks["ocnli"].label_counts("dev") == {"entailment": 947, "neutral": 1_103, "contradiction": 900}
    assert "train 49, dev 50" in zh_tasks["ocnli"].notes
    assert zh_tasks["afqmc"].label_counts("train") == {"0": 23_761, "1": 10_573}
    assert zh_tasks["afqmc"].label_counts("dev") == {"0": 2_978, "1": 1_338}
    assert zh_tasks["csl"].label_counts("train") == {"0": 10_000, "1": 10_000}
    assert zh_tasks["csl"].label_counts("dev") == {"0": 1_500, "1": 1_500}
    assert zh_tasks["cluewsc2020"].label_counts("train") == {"true": 517, "false": 727}
    assert zh_tasks["cluewsc2020"].label_counts("dev") == {"true": 111, "false": 193}
    assert zh_tasks["cluener"].labels == ["O"] + [f"{p}-{t}" for t in NER_TYPES for p in "BI"]
    assert zh_tasks["cmrc2018"].labels == []


def test_tnews_dev_titles_in_train(zh_tasks, zh_root):
    train = {r["sentence"] for r in _jsonl(zh_root / "tnews/train.json")}
    dev = _jsonl(zh_root / "tnews/dev.json")
    shared = {r["sentence"] for r in dev if r["sentence"] in train}
    assert len(shared) == 924                                   # README: 924 dev titles also in train
    assert "924 distinct dev titles" in zh_tasks["tnews"].notes
    assert zh_tasks["tnews"].splits["dev"][0] == {"text": dev[0]["sentence"], "label": dev[0]["label_desc"]}


def test_pair_examples(zh_tasks, zh_root):
    raw = _zip_jsonl(zh_root / "csl/csl_public.zip", "train.json")
    ex = zh_tasks["csl"].splits["train"][0]
    assert ex == {"text": raw[0]["abst"], "text_pair": CSL_KEYWORD_SEP.join(raw[0]["keyword"]),
                  "label": raw[0]["label"]}
    assert all(row["text_pair"].split(CSL_KEYWORD_SEP) == r["keyword"]
               for row, r in zip(zh_tasks["csl"].splits["train"], raw))
    raw = _zip_jsonl(zh_root / "afqmc/afqmc_public.zip", "dev.json")
    assert zh_tasks["afqmc"].splits["dev"][-1] == {"text": raw[-1]["sentence1"], "text_pair": raw[-1]["sentence2"],
                                                  "label": raw[-1]["label"]}


def test_iflytek_split(zh_tasks, zh_root):
    task = zh_tasks["iflytek"]
    raw = [{"text": r["sentence"], "label": r["label_des"]} for r in _jsonl(zh_root / "iflytek/dev.json")]
    train, dev = task.splits["train"], task.splits["dev"]
    key = lambda r: (r["text"], r["label"])  # noqa: E731
    assert Counter(map(key, train)) + Counter(map(key, dev)) == Counter(map(key, raw))   # covers all rows
    assert not {r["text"] for r in train} & {r["text"] for r in dev}                    # disjoint texts
    assert {r["label"] for r in dev} <= {r["label"] for r in train}
    assert len({r["label"] for r in train}) == 119
    assert 0.18 < len(dev) / len(raw) < 0.22
    # deterministic and independent of the row order (hash-based)
    assert load_task("iflytek", zh_root).splits == task.splits
    shuffled = raw[:]
    random.Random(1).shuffle(shuffled)
    tr, dv, _ = stratified_text_split(shuffled, 0.2)
    assert Counter(key(shuffled[i]) for i in dv) == Counter(map(key, dev))
    assert sorted(tr + dv) == list(range(len(raw)))


def test_cluener_entities(zh_tasks, zh_root):
    task = zh_tasks["cluener"]
    per_type = Counter(t[2:] for r in task.splits["train"] for t in r["tags"] if t.startswith("B-"))
    assert per_type == NER_TRAIN_SPANS
    for split in ("train", "dev"):
        raw = _zip_jsonl(zh_root / "cluener/cluener_public.zip", f"{split}.json")
        rows = task.splits[split]
        assert len(rows) == len(raw)
        kept = 0
        for r, ex in zip(raw, rows):
            assert ex["tokens"] == list(r["text"]) and len(ex["tags"]) == len(r["text"])
            for kind, entities in r["label"].items():
                for entity, spans in entities.items():
                    for s, e in spans:
                        assert r["text"][s:e + 1] == entity                # end inclusive
                        if ex["tags"][s:e + 1] == [f"B-{kind}"] + [f"I-{kind}"] * (e - s):
                            assert "".join(ex["tokens"][s:e + 1]) == entity
                            kept += 1
        n_entities = sum(t.startswith("B-") for ex in rows for t in ex["tags"])
        assert kept == n_entities == sum(len(v) for r in raw for ents in r["label"].values()
                                         for v in ents.values()) - (2 if split == "train" else 0)
    assert "train 2 in 1 rows" in task.notes and "dev 0" in task.notes


def test_cluewsc_spans(zh_tasks, zh_root):
    for split in ("train", "dev"):
        raw = _zip_jsonl(zh_root / "cluewsc2020/cluewsc2020_public.zip", f"{split}.json")
        for r, ex in zip(raw, zh_tasks["cluewsc2020"].splits[split]):
            assert ex["tokens"] == list(r["text"]) and ex["label"] == r["label"]
            for key in ("span1", "span2"):
                s, e = ex[key]
                assert s == r["target"][f"{key}_index"]
                assert "".join(ex["tokens"][s:e]) == r["target"][f"{key}_text"]


def test_cmrc2018_answers(zh_tasks, zh_root):
    task = zh_tasks["cmrc2018"]
    for split in ("train", "dev"):
        for ex in task.splits[split]:
            for a in ex["answers"]:
                assert ex["context"][a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
    n_answers = {s: sum(len(ex["answers"]) for ex in task.splits[s]) for s in ("train", "dev")}
    assert n_answers == {"train": 10_142, "dev": 9_657 - 193}     # the 193 answer_start -1 answers dropped
    # raw quirks (README): 193 dev answers at -1; 21 train / 7 dev offsets not at their text
    for split, n_off, n_unset in (("train", 21, 0), ("dev", 7, 193)):
        raw = _zip_json(zh_root / "cmrc2018/cmrc2018_public.zip", f"{split}.json")["data"]
        answers = [(p["context"], a) for art in raw for p in art["paragraphs"] for q in p["qas"]
                   for a in q["answers"]]
        assert sum(a["answer_start"] == -1 for _, a in answers) == n_unset
        assert sum(a["answer_start"] >= 0 and c[a["answer_start"]:a["answer_start"] + len(a["text"])] != a["text"]
                   for c, a in answers) == n_off
        assert f"{n_off} answers not at their answer_start moved" in task.notes
    moved = next(ex for ex in task.splits["train"] if ex["id"] == "TRAIN_2283_QUERY_1")
    assert moved["answers"] == [{"text": "日本", "answer_start": 226}]   # given 227; occurs at 226 and 260
    assert "193 with answer_start -1 and 0 with an offset dropped" in task.notes


# ---------------------------------------------------------------------------------------------
# bad inputs (small files written to tmp_path)


def _zip(path: Path, members: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


def _lines(*objs) -> str:
    return "\n".join(json.dumps(o, ensure_ascii=False) for o in objs)   # no final newline, as some CLUE files


def test_sentence_errors(tmp_path):
    labels = _lines({"label": "100", "label_desc": "news_story"}, {"label": "101", "label_desc": "news_culture"})
    row = {"label": "100", "label_desc": "news_story", "sentence": "上课时学生手机响个不停", "keywords": ""}
    (tmp_path / "tnews").mkdir()
    (tmp_path / "tnews/labels.json").write_text(labels, encoding="utf-8")
    (tmp_path / "tnews/dev.json").write_text(_lines(row), encoding="utf-8")
    (tmp_path / "tnews/train.json").write_text(_lines(row, {**row, "sentence": "  \u3000"}), encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"tnews/train\.json:2: empty sentence"):
        TASKS["tnews"].load(tmp_path)
    (tmp_path / "tnews/train.json").write_text(_lines(row, {**row, "label": "105"}), encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"tnews/train\.json:2: label '105' is not one of the 2 codes"):
        TASKS["tnews"].load(tmp_path)
    (tmp_path / "tnews/train.json").write_text(_lines(row, {**row, "label_desc": "news_culture"}), encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"train\.json:2: label_desc 'news_culture' does not match label '100'"):
        TASKS["tnews"].load(tmp_path)
    # a dev label never in train
    (tmp_path / "tnews/train.json").write_text(_lines(row), encoding="utf-8")
    (tmp_path / "tnews/dev.json").write_text(_lines({**row, "label": "101", "label_desc": "news_culture"}),
                                             encoding="utf-8")
    with pytest.raises(TaskFormatError, match="label 'news_culture' occurs in split 'dev'"):
        TASKS["tnews"].load(tmp_path)


def test_iflytek_small_split_and_errors(tmp_path):
    (tmp_path / "iflytek").mkdir()
    (tmp_path / "iflytek/labels.json").write_text(
        _lines({"label": "0", "label_des": "打车"}, {"label": "1", "label_des": "地图导航"}), encoding="utf-8")
    rows = [{"label": "0", "label_des": "打车", "sentence": f"打车软件第{i}版"} for i in range(10)]
    rows.append({"label": "1", "label_des": "地图导航", "sentence": "导航"})            # one row: stays in train
    rows.append(dict(rows[0]))                                                          # an identical row
    (tmp_path / "iflytek/dev.json").write_text(_lines(*rows), encoding="utf-8")
    task = TASKS["iflytek"].load(tmp_path)
    assert task.labels == ["地图导航", "打车"] and {r["label"] for r in task.splits["dev"]} == {"打车"}
    assert len(task.splits["dev"]) in (2, 3) and sum(task.counts().values()) == 12
    dev_texts = [r["text"] for r in task.splits["dev"]]
    assert rows[0]["sentence"] not in dev_texts or dev_texts.count(rows[0]["sentence"]) == 2
    assert "split HERE" in task.notes
    rows[3]["sentence"] = ""
    (tmp_path / "iflytek/dev.json").write_text(_lines(*rows), encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"iflytek/dev\.json:4: empty sentence"):
        TASKS["iflytek"].load(tmp_path)


def test_stratified_split_same_text_two_labels():
    # label "a" has 20 texts; each text also occurs once more under a label of its own ("b<i>", one
    # row: never dev), so every text chosen for dev under "a" is kept in train instead
    rows = [{"text": f"t{i}", "label": "a"} for i in range(20)] + [{"text": f"t{i}", "label": f"b{i}"}
                                                                    for i in range(20)]
    train, dev, moved = stratified_text_split(rows, 0.5)
    assert dev == [] and moved == 10 and train == list(range(40))
    rows = [{"text": f"t{i}", "label": "a"} for i in range(20)] + [{"text": "u", "label": "b"}]
    train, dev, moved = stratified_text_split(rows, 0.5)
    assert len(dev) == 10 and moved == 0 and 20 in train and sorted(train + dev) == list(range(21))


def test_pair_errors(tmp_path):
    ok = {"sentence1": "花呗怎么还款", "sentence2": "花呗如何还钱", "label": "1"}
    _zip(tmp_path / "afqmc/afqmc_public.zip", {"train.json": _lines(ok, {**ok, "sentence1": " "}),
                                               "dev.json": _lines(ok)})
    with pytest.raises(TaskFormatError, match=r"afqmc_public\.zip:train\.json:2: empty sentence1"):
        TASKS["afqmc"].load(tmp_path)
    _zip(tmp_path / "afqmc/afqmc_public.zip", {"train.json": _lines(ok), "dev.json": _lines(ok, {**ok, "label": 1})})
    with pytest.raises(TaskFormatError, match=r"afqmc_public\.zip:dev\.json:2: label 1 is not one of"):
        TASKS["afqmc"].load(tmp_path)

    nli = {"sentence1": "他说今天下雨", "sentence2": "今天下雨了", "label": "entailment"}
    _zip(tmp_path / "ocnli/ocnli_public.zip",
         {"train.50k.json": _lines(nli, {**nli, "label": "-"}, {**nli, "label": "neutral"}),
          "dev.json": _lines(nli, {**nli, "label": "-"})})
    task = TASKS["ocnli"].load(tmp_path)
    assert task.counts() == {"train": 2, "dev": 1} and "train 1, dev 1" in task.notes
    _zip(tmp_path / "ocnli/ocnli_public.zip",
         {"train.50k.json": _lines(nli, {**nli, "label": "yes"}), "dev.json": _lines(nli)})
    with pytest.raises(TaskFormatError, match=r"ocnli_public\.zip:train\.50k\.json:2: label 'yes'"):
        TASKS["ocnli"].load(tmp_path)
    _zip(tmp_path / "ocnli/ocnli_public.zip", {"train.50k.json": _lines(nli), "dev.json": "{not json"})
    with pytest.raises(TaskFormatError, match=r"ocnli_public\.zip:dev\.json:1: not JSON"):
        TASKS["ocnli"].load(tmp_path)

    csl = {"id": 0, "abst": "本文提出一种方法", "keyword": ["方法", "模型,训练"], "label": "1"}
    _zip(tmp_path / "csl/csl_public.zip", {"train.json": _lines(csl), "dev.json": _lines(csl)})
    task = TASKS["csl"].load(tmp_path)
    assert task.splits["train"][0]["text_pair"] == "方法；模型,训练"
    assert "2 rows a keyword containing a comma" in task.notes
    _zip(tmp_path / "csl/csl_public.zip", {"train.json": _lines(csl, {**csl, "keyword": "方法"}),
                                           "dev.json": _lines(csl)})
    with pytest.raises(TaskFormatError, match=r"csl_public\.zip:train\.json:2: keyword '方法' is not a non-empty"):
        TASKS["csl"].load(tmp_path)
    _zip(tmp_path / "csl/csl_public.zip", {"train.json": _lines(csl), "dev.json": _lines({**csl, "abst": "\n"})})
    with pytest.raises(TaskFormatError, match=r"csl_public\.zip:dev\.json:1: empty abst"):
        TASKS["csl"].load(tmp_path)


def test_cluewsc_errors(tmp_path):
    row = {"target": {"span1_index": 3, "span1_text": "伤口", "span2_index": 27, "span2_text": "它们"},
           "idx": 0, "label": "false",
           "text": "裂开的伤口涂满尘土，里面有碎石子和木头刺，我小心翼翼把它们剔除出去。"}
    _zip(tmp_path / "cluewsc2020/cluewsc2020_public.zip", {"train.json": _lines(row), "dev.json": _lines(row)})
    task = TASKS["cluewsc2020"].load(tmp_path)
    assert task.splits["train"][0]["span1"] == [3, 5] and task.splits["train"][0]["span2"] == [27, 29]
    bad = {**row, "target": {**row["target"], "span2_index": 26}}
    _zip(tmp_path / "cluewsc2020/cluewsc2020_public.zip", {"train.json": _lines(row), "dev.json": _lines(row, bad)})
    with pytest.raises(TaskFormatError, match=r"cluewsc2020_public\.zip:dev\.json:2: span2_text '它们' does not "
                                              r"match the text at span2_index 26 \('把它'\)"):
        TASKS["cluewsc2020"].load(tmp_path)
    for broken, msg in (({**row, "label": True}, "label True is not one of"), ({**row, "text": " "}, "empty text"),
                        ({**row, "target": {"span1_index": 3}}, "target has no valid span1_index")):
        _zip(tmp_path / "cluewsc2020/cluewsc2020_public.zip", {"train.json": _lines(broken), "dev.json": _lines(row)})
        with pytest.raises(TaskFormatError, match=r"cluewsc2020_public\.zip:train\.json:1: " + msg):
            TASKS["cluewsc2020"].load(tmp_path)


def test_cluener_errors_overlaps_and_blanks(tmp_path):
    row = {"text": "浙商银行企业信贷部叶老桂博士", "label": {"name": {"叶老桂": [[9, 11]]},
                                                         "company": {"浙商银行": [[0, 3]]}}}
    nested = {"text": "题为《招商银行：投资》的文章",
              "label": {"book": {"《招商银行：投资》": [[2, 10]]}, "company": {"招商银行": [[3, 6]]}}}
    spaced = {"text": "演员Tom Hanks说", "label": {"name": {"Tom Hanks": [[2, 10]]}}}
    _zip(tmp_path / "cluener/cluener_public.zip",
         {"train.json": _lines(row, nested, spaced), "dev.json": _lines(row)})
    task = TASKS["cluener"].load(tmp_path)
    ex = task.splits["train"][0]
    assert ex["tags"] == ["B-company"] + ["I-company"] * 3 + ["O"] * 5 + ["B-name", "I-name", "I-name", "O", "O"]
    assert task.splits["train"][1]["tags"][2:11] == ["B-book"] + ["I-book"] * 8            # the longest kept
    assert "train 1 in 1 rows (line 2: company '招商银行' [3, 6])" in task.notes
    sp = task.splits["train"][2]
    assert sp["tokens"][5] == BLANK_TOKEN and len(sp["tokens"]) == len(spaced["text"])       # indices unchanged
    assert sp["tags"][2:11] == ["B-name"] + ["I-name"] * 8 and "1 blank characters replaced" in task.notes
    for broken, msg in (({**row, "label": {"name": {"叶老": [[9, 11]]}}},
                         r"name '叶老' does not match the text at \[9, 11\] \('叶老桂'\)"),
                        ({**row, "label": {"name": {"士": [[14, 14]]}}},
                         r"name '士' span \[14, 14\] is not \[start, end\]"),
                        ({**row, "text": ""}, "empty text"), ({"text": "好"}, "'label' is not an object")):
        _zip(tmp_path / "cluener/cluener_public.zip", {"train.json": _lines(row), "dev.json": _lines(row, broken)})
        with pytest.raises(TaskFormatError, match=r"cluener_public\.zip:dev\.json:2: " + msg):
            TASKS["cluener"].load(tmp_path)


def test_cmrc2018_fixes_and_errors(tmp_path):
    ctx = "日本、中国和日本的关系。日本在东方。"
    qas = [{"id": "Q1", "question": "哪个国家？", "answers": [{"text": "日本", "answer_start": 0}]},
           {"id": "Q2", "question": "哪个国家？", "answers": [{"text": "日本", "answer_start": 7}]},   # at 6
           {"id": "Q3", "question": "哪里？", "answers": [{"text": "东方", "answer_start": -1},
                                                       {"text": "西方", "answer_start": -1}]},
           {"id": "Q4", "question": "什么？", "answers": [{"text": "美国", "answer_start": 3}]}]
    doc = {"version": "v1.0", "data": [{"id": "A", "title": "t", "paragraphs": [{"id": "P1", "context": ctx,
                                                                                "qas": qas}]}]}
    _zip(tmp_path / "cmrc2018/cmrc2018_public.zip",
         {"train.json": json.dumps(doc, ensure_ascii=False), "dev.json": json.dumps(doc, ensure_ascii=False)})
    task = TASKS["cmrc2018"].load(tmp_path)
    answers = {ex["id"]: ex["answers"] for ex in task.splits["train"]}
    assert answers == {"Q1": [{"text": "日本", "answer_start": 0}], "Q2": [{"text": "日本", "answer_start": 6}],
                       "Q3": [{"text": "东方", "answer_start": 15}]}
    assert ("train: 4 questions / 5 answers read; 1 answers not at their answer_start moved to the nearest "
            "occurrence of their text, 1 with answer_start -1 located, 1 with answer_start -1 and 1 with an "
            "offset dropped (their text does not occur in the context), 1 questions left without answers "
            "dropped; 3 questions kept") in task.notes
    bad = json.loads(json.dumps(doc))
    bad["data"][0]["paragraphs"][0]["qas"][1]["question"] = " "
    _zip(tmp_path / "cmrc2018/cmrc2018_public.zip",
         {"train.json": json.dumps(doc), "dev.json": json.dumps(bad)})
    with pytest.raises(TaskFormatError, match=r"cmrc2018_public\.zip:dev\.json: article 0 paragraph 'P1' "
                                              r"question 'Q2': empty question"):
        TASKS["cmrc2018"].load(tmp_path)
    bad = json.loads(json.dumps(doc))
    bad["data"][0]["paragraphs"][0]["context"] = ""
    _zip(tmp_path / "cmrc2018/cmrc2018_public.zip", {"train.json": json.dumps(bad), "dev.json": json.dumps(doc)})
    with pytest.raises(TaskFormatError, match=r"train\.json: article 0 paragraph 'P1': empty context"):
        TASKS["cmrc2018"].load(tmp_path)
    _zip(tmp_path / "cmrc2018/cmrc2018_public.zip", {"train.json": "[]", "dev.json": json.dumps(doc)})
    with pytest.raises(TaskFormatError, match=r"train\.json: not a SQuAD JSON"):
        TASKS["cmrc2018"].load(tmp_path)


def test_blank_chars_and_ner_tags():
    assert [is_blank_char(c) for c in " \u3000\t\u200b\ufeff\u0301\ufffd好A，"] == [True] * 7 + [False] * 3
    assert char_tokens("A B\u200b好") == (["A", BLANK_TOKEN, "B", BLANK_TOKEN, "好"], 2)
    tags, dropped = ner_tags(6, [("a", 1, 2), ("b", 0, 4), ("c", 4, 5)])
    assert tags == ["B-b", "I-b", "I-b", "I-b", "I-b", "O"] and dropped == [("a", 1, 2), ("c", 4, 5)]


# ---------------------------------------------------------------------------------------------
# encoding with a tiny Chinese BERT


@pytest.fixture(scope="module")
def samples(zh_tasks) -> dict[str, TaskData]:
    """8 train examples of each task (for QA: the first 8 whose answer lies within 300 characters)."""
    out = {}
    for name, task in zh_tasks.items():
        rows = task.splits["train"]
        if name == "cmrc2018":
            rows = [ex for ex in rows if ex["answers"][0]["answer_start"] + len(ex["answers"][0]["text"]) < 300]
        out[name] = TaskData(name, task.type, task.labels, {"train": rows[:8]}, task.source)
    return out


@pytest.fixture(scope="module")
def tiny_tokenizer(samples, tmp_path_factory):
    from tiny_bert import make_tiny_bert
    from transformers import BertTokenizerFast

    chars = set()
    for task in samples.values():
        for ex in task.splits["train"]:
            for key in ("text", "text_pair", "question", "context"):
                chars |= set(ex.get(key, ""))
            chars |= set("".join(ex.get("tokens", [])))
    folder = make_tiny_bert(tmp_path_factory.mktemp("tiny_zh_bert"), "".join(sorted(chars)), hidden=16, layers=1)
    return BertTokenizerFast.from_pretrained(str(folder))


def test_every_character_gets_a_subtoken(zh_tasks, tiny_tokenizer):
    # every distinct character of CLUENER and CLUEWSC2020 is one word with >= 1 sub-token under a
    # lower-casing Chinese BERT tokenizer (the study model's normaliser), so no label is lost
    chars = sorted({c for name in ("cluener", "cluewsc2020") for split in ("train", "dev")
                    for ex in zh_tasks[name].splits[split] for c in ex["tokens"]})
    enc = tiny_tokenizer(chars, is_split_into_words=True, truncation=False)
    assert set(w for w in enc.word_ids() if w is not None) == set(range(len(chars)))


def test_encode_each_task(samples, tiny_tokenizer):
    import torch

    from brainalign.core.tasks.types import encode_task

    for name, task in samples.items():
        enc = encode_task(task, tiny_tokenizer, max_length=512 if name == "cmrc2018" else 256)["train"]
        assert enc["input_ids"].shape[0] == 8, name
        rows = task.splits["train"]
        if task.type in ("sentence", "pair", "span"):
            assert enc["labels"].tolist() == [task.labels.index(ex["label"]) for ex in rows]
        if name == "cluener":
            for r, ex in enumerate(rows):
                word_ids = enc["word_ids"][r].tolist()
                for w, tag in enumerate(ex["tags"]):
                    first = word_ids.index(w)                            # every character has a sub-token
                    assert enc["labels"][r, first] == task.labels.index(tag)
                    assert tiny_tokenizer.convert_ids_to_tokens(int(enc["input_ids"][r, first])) == \
                        tiny_tokenizer.tokenize(ex["tokens"][w])[0]
        if name == "cluewsc2020":
            for r, ex in enumerate(rows):
                enc_words = tiny_tokenizer(ex["tokens"], is_split_into_words=True).word_ids()
                for key in ("span1", "span2"):
                    mask = enc[f"{key}_mask"][r, :len(enc_words)].tolist()
                    covered = {w for w, m in zip(enc_words, mask) if m}
                    assert covered == set(range(*ex[key]))
        if name == "cmrc2018":
            assert bool(enc["trainable"].all())
            for r, ex in enumerate(rows):
                s, e = int(enc["start_positions"][r]), int(enc["end_positions"][r])
                begin, end = enc["offset_mapping"][r, s, 0].item(), enc["offset_mapping"][r, e, 1].item()
                ans = ex["answers"][0]
                a0, a1 = ans["answer_start"], ans["answer_start"] + len(ans["text"])
                assert begin <= a0 and end >= a1 and bool(enc["context_mask"][r, s:e + 1].all())
                # a CJK character is its own token: boundaries on CJK characters are exact
                if "\u4e00" <= ans["text"][0] <= "\u9fff":
                    assert begin == a0
                if "\u4e00" <= ans["text"][-1] <= "\u9fff":
                    assert end == a1
        assert isinstance(enc["input_ids"], torch.Tensor)
