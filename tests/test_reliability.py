"""Bad inputs a user can give, and what each gets (docs/reliability.md lists them all).

Every case is one fixture with one thing wrong. ``error`` cases must raise the project's own
error type with a message naming the file, story, key or value and what to change; ``handled``
cases must do the documented thing. tests/test_reliability.py::test_docs_list_every_case keeps
docs/reliability.md and this file in step.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from brainalign.core.timing.stimuli import (StimulusError, build_words_table, check_words_fit_grid,
                                            make_tr_grid, read_word_tsv, words_from_textgrid)
from brainalign.core.timing.validate import check_word_coverage
from brainalign.core.timing.word_timings import read_event_table, words_from_events, words_from_gentle
from brainalign.params_check import ParameterError, base_parameters, check_parameters

ROOT = Path(__file__).resolve().parents[1]
CASES: dict[str, str] = {}   # case id -> outcome, filled by the decorator below


def case(cid: str, outcome: str):
    """Register a test as bad-input case ``cid`` with outcome ``error`` or ``handled``."""
    CASES[cid] = outcome

    return lambda f: f


def _tsv(tmp_path: Path, rows, name="story_words.tsv", header=("onset", "duration", "word")) -> Path:
    p = tmp_path / name
    pd.DataFrame(rows, columns=list(header)).to_csv(p, sep="\t", index=False)
    return p


def _words(tmp_path, rows, **kw):
    p = _tsv(tmp_path, rows)
    return build_words_table({"story": read_word_tsv(p)}, **kw)


GOOD = [(0.5, 0.3, "Once"), (0.9, 0.3, "upon"), (1.3, 0.2, "a"), (1.6, 0.4, "time.")]


# --------------------------------------------------------------------------- word timings
@case("S01 word rows out of onset order (TSV)", "error")
def test_s01_out_of_order(tmp_path):
    rows = [GOOD[0], GOOD[2], GOOD[1], GOOD[3]]
    with pytest.raises(StimulusError, match=r"story_words.tsv.*word onsets go back in time at word 3 \('upon'"):
        _words(tmp_path, rows)


@case("S02 word rows out of order with study.sort_words: true", "handled")
def test_s02_out_of_order_sorted_on_request(tmp_path, caplog):
    rows = [GOOD[0], GOOD[2], GOOD[1], GOOD[3]]
    with caplog.at_level(logging.WARNING):
        t = _words(tmp_path, rows, sort=True)
    assert t["word"].tolist() == ["Once", "upon", "a", "time."]
    assert "sorted by onset" in caplog.text


@case("S03 negative onset", "error")
def test_s03_negative_onset(tmp_path):
    with pytest.raises(StimulusError, match="negative onset.*'Once'.*t0"):
        _words(tmp_path, [(-0.5, 0.3, "Once")] + GOOD[1:])


@case("S04 offset before onset (negative duration)", "error")
def test_s04_reversed(tmp_path):
    with pytest.raises(StimulusError, match="story_words.tsv: 1 rows with missing or reversed times"):
        _words(tmp_path, [(0.5, -0.3, "Once")] + GOOD[1:])


@case("S05 non-numeric onset in an events table", "error")
def test_s05_non_numeric(tmp_path):
    ev = pd.DataFrame({"onset": ["0.5", "zero", "1.3"], "duration": [0.3, 0.3, 0.2], "word": ["a", "b", "c"]})
    with pytest.raises(StimulusError, match="ev.tsv: 1 word rows with missing, non-numeric.*'b'"):
        words_from_events(ev, source="ev.tsv")


@case("S06 rows pasted twice", "error")
def test_s06_duplicated(tmp_path):
    with pytest.raises(StimulusError, match="1 rows repeat the row before them, first word 3 \\('upon'"):
        _words(tmp_path, GOOD[:2] + [GOOD[1]] + GOOD[2:])


@case("S07 overlapping words (two alignments pasted together)", "error")
def test_s07_overlap(tmp_path):
    ev = pd.DataFrame({"onset": [0.5, 0.9, 0.95, 1.6], "duration": [0.3, 0.5, 0.5, 0.3],
                       "word": ["Once", "upon", "upon", "time."]})
    words, _ = words_from_events(ev, source="ev.tsv")
    with pytest.raises(StimulusError, match="ev.tsv.*start more than 0.05 s before the previous word ends"):
        build_words_table({"story": words})


@case("S08 wrong TR: the words fill a small share of the scan", "error")
def test_s08_wrong_tr(tmp_path):
    words = _words(tmp_path, [(0.5 + 2 * k, 0.3, f"w{k}") for k in range(100)])   # 200 s of speech
    grids = pd.DataFrame([make_tr_grid("story", 600, 2.0)])   # a 1,200 s scan (TR 2 where it is 0.2?)
    with pytest.raises(StimulusError, match="story 'story': its 100 words span 198.3 s of a 1200.0 s scan.*Is the TR right"):
        check_word_coverage(words, grids, 0.3, source="bids study")
    check_word_coverage(words, grids.assign(n_trs_total=120, n_trs=120), 0.3)   # the right scan: fine


@case("S09 words run past the end of the scan", "error")
def test_s09_past_end(tmp_path):
    words = _words(tmp_path, [(0.5 + 2 * k, 0.3, f"w{k}") for k in range(100)])
    grids = pd.DataFrame([make_tr_grid("story", 50, 2.0)])
    with pytest.raises(StimulusError, match="story"):
        check_words_fit_grid(words, grids, source="bids study")


def _lebel_with_tiers(tmp_path, tiers):
    from lebel_fixture import textgrid_text, write_lebel_study

    from brainalign.io.readers.lebel import LebelReader

    info = write_lebel_study(tmp_path / "ds")
    reader = LebelReader(tmp_path / "ds")
    story = reader.stories()[0]
    path = reader.textgrid_path(story)
    path.write_text(textgrid_text(tiers, 10.0))
    return reader, story, path, info


@case("S10 TextGrid without a 'word' tier whose second tier is the phones (LeBel)", "error")
def test_s10_textgrid_phone_fallback(tmp_path):
    tiers = {"lexical": [(0.0, 1.0, "sp"), (1.0, 1.5, "hello"), (1.5, 10.0, "sp")],
             "phone": [(0.0, 1.0, "sp"), (1.0, 1.5, "HH"), (1.5, 10.0, "sp")]}
    reader, story, path, _ = _lebel_with_tiers(tmp_path, tiers)
    with pytest.raises(StimulusError, match="second tier 'phone' is a phone tier.*word_tier"):
        reader._words(story)


@case("S11 TextGrid word tier under another name, second tier (LeBel's reference rule)", "handled")
def test_s11_textgrid_second_tier(tmp_path, caplog):
    tiers = {"phone": [(0.0, 1.0, "sp"), (1.0, 1.5, "HH"), (1.5, 10.0, "sp")],
             "lexical": [(0.0, 1.0, "sp"), (1.0, 1.5, "hello"), (1.5, 10.0, "sp")]}
    reader, story, path, _ = _lebel_with_tiers(tmp_path, tiers)
    with caplog.at_level(logging.WARNING):
        w = reader._words(story)
    assert w["word"].tolist() == ["hello"] and "using the second tier 'lexical'" in caplog.text


@case("S12 events.tsv without 'word'; trial_type holds 'word' in every row", "error")
def test_s12_constant_fallback_column(tmp_path):
    p = _tsv(tmp_path, [(0.5, 0.3, "word"), (0.9, 0.3, "word"), (1.3, 0.2, "word")], name="ev.tsv",
             header=("onset", "duration", "trial_type"))
    with pytest.raises(StimulusError, match="no 'word' column.*'trial_type' holds one value \\('word'\\).*word_column"):
        words_from_events(read_event_table(p), source=str(p))


@case("S13 events.tsv with no column that could hold the words", "error")
def test_s13_no_word_column(tmp_path):
    p = _tsv(tmp_path, [(0.5, 0.3, "a")], name="ev.tsv", header=("onset", "duration", "stim"))
    with pytest.raises(StimulusError, match="ev.tsv: no word column.*found \\['onset', 'duration', 'stim'\\].*word_column"):
        words_from_events(read_event_table(p), source=str(p))


@case("S14 a file that is not a TextGrid", "error")
def test_s14_not_textgrid(tmp_path):
    p = tmp_path / "x.TextGrid"
    p.write_text("onset\tword\n0.1\thello\n")
    with pytest.raises(StimulusError, match="x.TextGrid: not a Praat TextGrid"):
        words_from_textgrid(p)


@case("S15 TextGrid word tier holding only pauses", "error")
def test_s15_only_pauses(tmp_path):
    from lebel_fixture import textgrid_text

    p = tmp_path / "p.TextGrid"
    p.write_text(textgrid_text({"word": [(0.0, 1.0, "sp"), (1.0, 10.0, "sil")]}, 10.0))
    with pytest.raises(StimulusError, match="p.TextGrid: tier 'word' has no words"):
        words_from_textgrid(p)


@case("S16 Gentle alignment whose aligned times go back", "error")
def test_s16_gentle_order(tmp_path):
    import json

    p = tmp_path / "align.json"
    p.write_text(json.dumps({"transcript": "a b c", "words": [
        {"word": "a", "start": 1.0, "end": 1.2, "case": "success", "startOffset": 0, "endOffset": 1},
        {"word": "b", "start": 0.5, "end": 0.7, "case": "success", "startOffset": 2, "endOffset": 3},
        {"word": "c", "start": 2.0, "end": 2.2, "case": "success", "startOffset": 4, "endOffset": 5}]}))
    with pytest.raises(StimulusError, match="align.json: aligned word times are not in transcript order"):
        words_from_gentle(p)


@case("S17 word TSV with a header and no rows", "error")
def test_s17_empty(tmp_path):
    p = tmp_path / "story_words.tsv"
    p.write_text("onset\tduration\tword\n")
    with pytest.raises(StimulusError, match="story_words.tsv: no words \\(the table has 0 rows"):
        build_words_table({"story": read_word_tsv(p)})


@case("S18 word TSV without onset", "error")
def test_s18_no_onset(tmp_path):
    p = _tsv(tmp_path, [(0.3, "a")], header=("duration", "word"))
    with pytest.raises(StimulusError, match="story_words.tsv: a word TSV needs columns word, onset"):
        read_word_tsv(p)


# --------------------------------------------------------------------------- parameters
def _params(update) -> dict:
    params = base_parameters(ROOT / "conf")
    update(params)
    return params


def _bad(update, match):
    with pytest.raises(ParameterError, match=match):
        check_parameters(_params(update), ROOT / "conf")


@case("P01 misspelled key encoding.backnd", "error")
def test_p01():
    _bad(lambda p: p["encoding"].update(backnd="torch"), r"encoding.backnd \(did you mean encoding.backend\?\)")


@case("P02 misspelled top-level key 'layer'", "error")
def test_p02():
    _bad(lambda p: p.update(layer=[2]), r"  layer \(did you mean layers\?\)")


@case("P03 misspelled nested key encoding.null_model.n_draw", "error")
def test_p03():
    _bad(lambda p: p["encoding"]["null_model"].update(n_draw=10), r"did you mean encoding.null_model.n_draws")


@case("P04 unknown backend 'cuda'", "error")
def test_p04():
    _bad(lambda p: p["encoding"].update(backend="cuda"), r"encoding.backend must be one of .*'cuda'")


@case("P05 empty layer list", "error")
def test_p05():
    _bad(lambda p: p.update(layers=[]), r"layers must be a non-empty list")


@case("P06 a layer listed twice", "error")
def test_p06():
    _bad(lambda p: p.update(layers=[2, 2]), r"layers holds a value twice")


@case("P07 alpha grid with low > high", "error")
def test_p07():
    _bad(lambda p: p["encoding"].update(alphas={"low": 1e4, "high": 1.0, "n": 5}), r"0 < low < high")


@case("P08 a story listed twice in study.stories", "error")
def test_p08():
    _bad(lambda p: p["study"].update(stories=["a", "a"]), r"study.stories names \['a'\] more than once")


@case("P09 empty study.stories", "error")
def test_p09():
    _bad(lambda p: p["study"].update(stories=[]), r"study.stories must be 'all' or a non-empty list")


@case("P10 unknown cv.method", "error")
def test_p10():
    _bad(lambda p: p["cv"].update(method="leave_one_story_out"), r"cv.method must be one of")


@case("P11 negative study.trim_start", "error")
def test_p11():
    _bad(lambda p: p["study"].update(trim_start=-1), r"study.trim_start must be an integer >= 0")


@case("P12 fractional delays", "error")
def test_p12():
    _bad(lambda p: p["embedding"].update(delays=[1.5, 2]), r"embedding.delays must hold integers")


@case("P13 condition name with '..' or '/'", "error")
def test_p13():
    _bad(lambda p: p["conditions"].update({"../escape": {"kind": "text"}}), r"conditions: '../escape' cannot be used")


@case("P14 story name with '../' in study.stories", "error")
def test_p14():
    _bad(lambda p: p["study"].update(stories=["../../etc/x"]), r"study.stories: '../../etc/x' cannot be used")


@case("P15 unknown key in an env's YAML, through `kedro run` (fails before any data is read)", "error")
def test_p15_cli(tmp_path):
    from kedro_project import copy_project, edit_yaml, run_kedro

    project = copy_project(tmp_path / "p", env="test")
    edit_yaml(project / "conf" / "test" / "parameters.yml", lambda d: d["encoding"].update(backnd="torch"))
    res = run_kedro(project, "run", "--env", "test", check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "encoding.backnd (did you mean encoding.backend?)" in out
    assert not (project / "data" / "02_intermediate" / "words.parquet").exists()


@case("P16 a story the study does not have in study.stories", "error")
def test_p16(tmp_path):
    from brainalign.pipelines.data_prep.nodes import read_stimuli

    class Study:
        name, root = "bids", tmp_path

        def words(self):
            return {"a": pd.DataFrame({"word": ["x"], "onset": [0.1], "offset": [0.2]})}

        def tr_grids(self):
            return pd.DataFrame({"story": ["a"], "n_trs_total": [10], "tr": [2.0], "t0": [0.0]})
    with pytest.raises(ValueError, match=r"study.stories names \['b'\], which the bids study .* does not have"):
        read_stimuli(Study(), {"stories": ["b"]})


@case("P17 unknown encoding.solver", "error")
def test_p17():
    _bad(lambda p: p["encoding"].update(solver="fast"), r"encoding.solver must be one of")


@case("P18 unknown embedding.extraction", "error")
def test_p18():
    _bad(lambda p: p["embedding"].update(extraction="fast"), r"embedding.extraction must be exact, strided or auto")


@case("P19 empty study.subjects", "error")
def test_p19():
    _bad(lambda p: p["study"].update(subjects=[]), r"study.subjects must be 'auto' or a non-empty list")


@case("P20 task name with '/' in task_tuning.tasks", "error")
def test_p20():
    _bad(lambda p: p["task_tuning"].update(tasks=["sst2/../x"]), r"task_tuning.tasks: 'sst2/../x' cannot be used")


@case("P21 alpha grid with n = 0", "error")
def test_p21():
    _bad(lambda p: p["encoding"].update(alphas={"low": 1.0, "high": 10.0, "n": 0}), r"n >= 1")


@case("P24 unknown brain_tuning.objective", "error")
def test_p24():
    _bad(lambda p: p["brain_tuning"].update(objective="ridge"), r"brain_tuning.objective must be heads or ridge_cv")


@case("P22 `--params` with an unclosed bracket on the command line", "error")
def test_p22():
    import click

    from brainalign.cli import parse_params

    with pytest.raises(click.BadParameter, match="unbalanced brackets"):
        parse_params(None, None, "layers=[2,4")


@case("P23 study.subjects restricts the grid to the subjects named", "handled")
def test_p23():
    from brainalign.pipelines.grid import grid_from_params

    params = _params(lambda p: p["study"].update(simulate=False, reader="alice", root="/nowhere",
                                                 subjects=["s01", "s03"]))
    assert grid_from_params(params).subjects == ("s01", "s03")   # no folder listed, only these run


@case("S19 word times in milliseconds (they run far past the scan)", "error")
def test_s19_milliseconds(tmp_path):
    words = _words(tmp_path, [(500.0 + 2000 * k, 300.0, f"w{k}") for k in range(50)])
    grids = pd.DataFrame([make_tr_grid("story", 60, 2.0)])
    with pytest.raises(StimulusError, match="story"):
        check_words_fit_grid(words, grids, source="bids study")


# --------------------------------------------------------------------------- outputs and files
@case("C01 NPY folder whose index was never written (crash mid-save)", "error")
def test_c01(tmp_path):
    from brainalign.io import NpyStoriesDataset

    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "a.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(DatasetError, match="no _index.json"):
        NpyStoriesDataset(str(tmp_path / "f")).load()


@case("C02 truncated NPY file", "error")
def test_c02(tmp_path):
    from brainalign.io import NpyStoriesDataset

    ds = NpyStoriesDataset(str(tmp_path / "f"))
    ds.save({"a": np.ones((50, 4), np.float32)})
    f = tmp_path / "f" / "a.npy"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DatasetError, match="a.npy: cannot be read .*run the node that writes it again"):
        ds.load()


@case("C03 NPY file from another run than its index", "error")
def test_c03(tmp_path):
    from brainalign.io import NpyStoriesDataset

    ds = NpyStoriesDataset(str(tmp_path / "f"))
    ds.save({"a": np.ones((50, 4), np.float32)})
    np.save(tmp_path / "f" / "a.npy", np.ones((40, 4), np.float32))
    with pytest.raises(DatasetError, match=r"a.npy: shape \[40, 4\], but .* says \[50, 4\]"):
        ds.load()


@case("C04 damaged feature-cache entry", "handled")
def test_c04(tmp_path, caplog):
    from brainalign.core.representations.text import FeatureCache

    cache = FeatureCache(tmp_path)
    cache.put("k", {0: np.ones((5, 3)), 1: np.ones((5, 3))})
    (tmp_path / "k" / "layer_1.npy").write_bytes(b"\x93NUMPY garbage")
    with caplog.at_level(logging.WARNING):
        got = cache.fetch("k", [0, 1], lambda: {0: np.zeros((5, 3)), 1: np.zeros((5, 3))})
    assert "computing the features again" in caplog.text
    assert np.all(got[1] == 0) and np.all(np.load(tmp_path / "k" / "layer_1.npy") == 0)   # rebuilt


@case("C05 a story key with '../' reaching an NPY folder", "error")
def test_c05(tmp_path):
    from brainalign.io import NpyStoriesDataset

    with pytest.raises(DatasetError, match="'../x' cannot be a file name here"):
        NpyStoriesDataset(str(tmp_path / "f")).save({"../x": np.ones((2, 2))})
    assert not (tmp_path / "x.npy").exists()


@case("C06 crash while the simulated study is written", "handled")
def test_c06(tmp_path, monkeypatch):
    from brainalign.core.synthetic import study as study_mod
    from brainalign.io import StudyDataset

    def crash(data, root):
        (Path(root) / "stimuli").mkdir(parents=True)
        (Path(root) / "stimuli" / "half.tsv").write_text("onset\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(study_mod, "write_study", crash)
    fake = object.__new__(study_mod.SimulatedStudy)
    ds = StudyDataset(str(tmp_path / "synthetic"), reader="bids_volume")
    with pytest.raises(KeyboardInterrupt):
        ds.save(fake)
    assert not (tmp_path / "synthetic").exists() and not ds.exists()   # never taken for a finished study


@case("C07 a study folder that does not exist (real-data env)", "error")
def test_c07(tmp_path):
    from brainalign.io.readers.alice import AliceReader
    from brainalign.io.readers.base import MissingDataError

    with pytest.raises(MissingDataError, match="not found at .*set BRAINALIGN_ALICE_DIR"):
        AliceReader(tmp_path / "nowhere").tr_grids()


@case("C08 a model directory holding only pickled weights", "error")
def test_c08(tmp_path):
    from brainalign.core.representations.text import ModelNotFoundError, load_model

    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(ModelNotFoundError, match="only pickled weights \\['pytorch_model.bin'\\].*never unpickled"):
        load_model(str(d))


@case("C09 `kedro run` of a real-data env whose study folder is missing", "error")
def test_c09(tmp_path):
    from brainalign.io.readers.base import MissingDataError
    from brainalign.pipelines.grid import check_study_present

    params = {"study": {"simulate": False, "download": False, "reader": "alice", "root": str(tmp_path / "nowhere")}}
    with pytest.raises(MissingDataError, match="the alice study is missing: .*BRAINALIGN_ALICE_DIR.*Nothing was run"):
        check_study_present(params)
    check_study_present({"study": {**params["study"], "download": True}})   # the download node will fetch it
    check_study_present({"study": {**params["study"], "simulate": True}})


# --------------------------------------------------------------------------- the table in docs
# --------------------------------------------------------------------------- property removal
def _removal_words():
    return pd.DataFrame({"story": "s", "word_index": range(6), "word": ["It", "ran", "far.", "Dogs", "bark", "loud."],
                         "onset": np.arange(6.0), "offset": np.arange(6.0) + 0.5, "sentence_id": [0, 0, 0, 1, 1, 1]})


@case("R01 a tree property for a dataset without parse trees", "error")
def test_r01_tree_property_without_trees():
    from brainalign.core.removal.annotators import AnnotationResources, PropertyUnavailable, annotate

    with pytest.raises(PropertyUnavailable, match=r"tree_depth.*alice"):
        annotate(_removal_words(), ["tree_depth"], AnnotationResources(dataset="alice"))


@case("R02 bigram_shift on natural stimuli", "error")
def test_r02_bigram_shift():
    from brainalign.core.removal.annotators import AnnotationResources, PropertyUnavailable, annotate

    with pytest.raises(PropertyUnavailable, match="bigram_shift"):
        annotate(_removal_words(), ["bigram_shift"], AnnotationResources(dataset="simulated"))


@case("R03 a property with one class only", "error")
def test_r03_one_class():
    from brainalign.core.removal.methods import PropertyError, encode_property

    with pytest.raises(PropertyError, match=r"'tense' has one class only"):
        encode_property(["past"] * 10, "categorical", name="tense", context="fold 0")


@case("R04 too few items per class for the folds", "error")
def test_r04_too_few_per_class():
    from brainalign.core.removal.probes import probe_accuracy

    X = np.random.default_rng(0).standard_normal((12, 3))
    labels = ["a"] * 10 + ["b"] * 2
    folds = np.arange(12) % 3
    with pytest.raises(ValueError, match=r"class 'b' of property 'pos' has 2 items; 3 folds need at least 3"):
        probe_accuracy(X, labels, folds, name="pos")


@case("R05 unknown property or removal method in removal", "error")
def test_r05_unknown_property():
    from brainalign.pipelines.grid import removal_cells

    with pytest.raises(ValueError, match=r"unknown properties or methods \['tree_dept'\]"):
        removal_cells({"enabled": True, "source": "pretrained", "properties": ["tree_dept"], "methods": ["inlp"]})


@case("R06 property removal from a speech or low-level condition", "error")
def test_r06_removal_from_tr_level_source():
    from brainalign.core.representations import ConditionError, parse_conditions

    with pytest.raises(ConditionError, match="property removal works on word features"):
        parse_conditions({"low": {"kind": "lowlevel", "features": ["word_rate"]},
                          "rm": {"kind": "derived", "source": "low", "transform": "inlp", "property": "word_length"}})


def test_docs_list_every_case():
    """docs/reliability.md has one row per case here, with the same outcome, and its counts add up."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    rows = dict(re.findall(r"^\| (\w\d\d) [^|]*\| [^|]*\| (error|handled) \|", text, flags=re.M))
    want = {cid.split()[0]: outcome for cid, outcome in CASES.items()}
    assert rows == want
    for outcome in ("error", "handled"):
        n = sum(v == outcome for v in want.values())
        assert re.search(rf"\*\*{n}\*\* {outcome}", text), (outcome, n)
