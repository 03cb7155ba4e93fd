"""core/stimuli.py, pure-function parts: TextGrid parsing (long and short format), sentence ids,
TR grids and times, word times, and the clear errors for files that disagree."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.core.timing.stimuli import (GRID_COLUMNS, WORD_COLUMNS, Interval, StimulusError,
                                     assign_sentences, build_words_table, check_words_fit_grid,
                                     make_tr_grid, read_textgrid, tr_times, word_times,
                                     words_from_textgrid)

# (xmin, xmax, text) of the planted word tier; "" and "sp" are pauses
WORDS = [(0.0, 0.35, ""), (0.35, 0.8, "the"), (0.8, 1.3, "old"), (1.3, 1.5, "sp"),
         (1.5, 2.0, 'say ""hi""'), (2.0, 2.9, ""), (2.9, 3.4, "keeper"), (3.4, 4.0, "sil")]
PHONES = [(0.0, 0.35, ""), (0.35, 0.5, "DH"), (0.5, 4.0, "AH")]
POINTS = [(1.0, "beat"), (2.5, "beat2")]


def _long_textgrid(word_tier="words"):
    def tier(idx, name, items):
        s = (f'    item [{idx}]:\n        class = "IntervalTier" \n        name = "{name}" \n'
             f"        xmin = 0 \n        xmax = 4 \n        intervals: size = {len(items)} \n")
        for k, (a, b, t) in enumerate(items, 1):
            s += (f"        intervals [{k}]:\n            xmin = {a} \n            xmax = {b} \n"
                  f'            text = "{t}" \n')
        return s

    points = ('    item [2]:\n        class = "TextTier" \n        name = "beats" \n'
              "        xmin = 0 \n        xmax = 4 \n        points: size = 2 \n")
    for k, (t, m) in enumerate(POINTS, 1):
        points += f'        points [{k}]:\n            number = {t} \n            mark = "{m}" \n'
    return ('File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0 \nxmax = 4 \n'
            "tiers? <exists> \nsize = 3 \nitem []: \n"
            + tier(1, "phones", PHONES) + points + tier(3, word_tier, WORDS))


def _short_textgrid(word_tier="word"):
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", "4", "<exists>",
             "3", '"IntervalTier"', f'"{word_tier}"', "0", "4", str(len(WORDS))]
    for a, b, t in WORDS:
        lines += [str(a), str(b), f'"{t}"']
    lines += ['"TextTier"', '"beats"', "0", "4", str(len(POINTS))]
    for t, m in POINTS:
        lines += [str(t), f'"{m}"']
    lines += ['"IntervalTier"', '"phones"', "0", "4", str(len(PHONES))]
    for a, b, t in PHONES:
        lines += [str(a), str(b), f'"{t}"']
    return "\n".join(lines) + "\n"


def _expected_intervals(items):
    return [Interval(a, b, t.replace('""', '"')) for a, b, t in items]


# --------------------------------------------------------------------------- TextGrid
@pytest.mark.parametrize("fmt", ["long", "short"])
def test_read_textgrid_both_formats(tmp_path, fmt):
    text = _long_textgrid() if fmt == "long" else _short_textgrid("words")
    path = tmp_path / f"{fmt}.TextGrid"
    path.write_text(text, encoding="utf-8")
    tiers = read_textgrid(path)
    assert list(tiers) == (["phones", "words"] if fmt == "long" else ["words", "phones"])
    assert tiers["words"] == _expected_intervals(WORDS)  # point tier skipped, quotes unescaped
    assert tiers["phones"] == _expected_intervals(PHONES)


def test_read_textgrid_utf16(tmp_path):
    path = tmp_path / "u16.TextGrid"
    path.write_text(_long_textgrid(), encoding="utf-16")
    assert read_textgrid(path)["words"] == _expected_intervals(WORDS)


@pytest.mark.parametrize("fmt", ["long", "short"])
def test_words_from_textgrid_drops_pauses(tmp_path, fmt):
    text = _long_textgrid("Word") if fmt == "long" else _short_textgrid("word")
    path = tmp_path / "s.TextGrid"
    path.write_text(text, encoding="utf-8")
    df = words_from_textgrid(path)  # tier names matched case-insensitively
    assert list(df.columns) == ["word", "onset", "offset", "pause_before"]
    assert df["word"].tolist() == ["the", "old", 'say "hi"', "keeper"]
    np.testing.assert_allclose(df["onset"], [0.35, 0.8, 1.5, 2.9])
    np.testing.assert_allclose(df["offset"], [0.8, 1.3, 2.0, 3.4])
    # silence since the previous *word* ended (first word: 0)
    np.testing.assert_allclose(df["pause_before"], [0.0, 0.0, 0.2, 0.9], atol=1e-12)


def test_words_from_textgrid_without_word_tier_names_file(tmp_path):
    path = tmp_path / "story_no_words.TextGrid"
    path.write_text(_long_textgrid("lexemes"), encoding="utf-8")
    with pytest.raises(StimulusError) as exc:
        words_from_textgrid(path)
    msg = str(exc.value)
    assert "story_no_words.TextGrid" in msg
    assert "no word tier" in msg and "lexemes" in msg and "phones" in msg
    # naming the tier explicitly works
    assert words_from_textgrid(path, tier="lexemes")["word"].tolist()[0] == "the"


def test_words_from_textgrid_only_pauses(tmp_path):
    path = tmp_path / "quiet.TextGrid"
    text = ('File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n1\n<exists>\n1\n'
            '"IntervalTier"\n"words"\n0\n1\n2\n0\n0.5\n"sp"\n0.5\n1\n""\n')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StimulusError, match="quiet.TextGrid.*only pauses"):
        words_from_textgrid(path)


def test_read_textgrid_rejects_other_files(tmp_path):
    path = tmp_path / "notes.TextGrid"
    path.write_text("just some text\n", encoding="utf-8")
    with pytest.raises(StimulusError, match="notes.TextGrid.*ooTextFile"):
        read_textgrid(path)
    trunc = tmp_path / "trunc.TextGrid"
    trunc.write_text(_short_textgrid()[:160], encoding="utf-8")
    with pytest.raises(StimulusError, match="trunc.TextGrid.*malformed"):
        read_textgrid(trunc)


# --------------------------------------------------------------------------- sentences
def test_assign_sentences_punctuated():
    w = pd.DataFrame({"word": ["Hello", "world.", "How", "are", "you?", '"Fine!"', "said",
                               "she."],
                      "pause_before": [0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]})
    # pauses are ignored when the transcript has punctuation
    np.testing.assert_array_equal(assign_sentences(w), [0, 0, 1, 1, 1, 2, 3, 3])


def test_assign_sentences_by_pause():
    w = pd.DataFrame({"word": ["the", "old", "keeper", "said", "hi", "again"],
                      "pause_before": [0.0, 0.1, 0.6, 0.49, 0.5, 0.2]})
    np.testing.assert_array_equal(assign_sentences(w), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(assign_sentences(w, pause_threshold=0.15), [0, 0, 1, 2, 3, 4])


def test_build_words_table_refuses_or_sorts_and_numbers():
    s1 = pd.DataFrame({"word": ["b.", "a"], "onset": [1.0, 0.0], "offset": [1.5, 0.5],
                       "pause_before": [0.5, 0.0]})
    s2 = pd.DataFrame({"word": ["x", "y"], "onset": [0.0, 2.0], "offset": [1.0, 2.5],
                       "pause_before": [0.0, 1.0]})
    # rows out of onset order are an error by default (the file order is the text), sorted on request
    with pytest.raises(StimulusError, match=r"story 's1': word onsets go back in time at word 2 \('a'"):
        build_words_table({"s1": s1, "s2": s2})
    t = build_words_table({"s1": s1, "s2": s2}, sort=True)
    assert list(t.columns) == WORD_COLUMNS
    assert t["word"].tolist() == ["a", "b.", "x", "y"]
    assert t["word_index"].tolist() == [0, 1, 0, 1]
    assert t["story"].tolist() == ["s1", "s1", "s2", "s2"]
    assert t["sentence_id"].tolist() == [0, 0, 0, 1]


# --------------------------------------------------------------------------- grids and times
def test_make_tr_grid_and_tr_times():
    g = make_tr_grid("lighthouse", 100, 2.0, t0=1.5, trim_start=10, trim_end=5)
    assert set(g) == set(GRID_COLUMNS)
    assert g["n_trs"] == 85 and g["n_trs_total"] == 100 and g["tr"] == 2.0
    t = tr_times(g)
    assert t.shape == (100,)
    np.testing.assert_allclose(t, [1.5 + 2.0 * i for i in range(100)])
    # also from a row of the grid table
    row = pd.DataFrame([g]).iloc[0]
    np.testing.assert_allclose(tr_times(row), t)


def test_make_tr_grid_overtrim_names_story():
    with pytest.raises(StimulusError, match="market.*no volumes"):
        make_tr_grid("market", 10, 2.0, trim_start=6, trim_end=4)


def test_word_times():
    w = pd.DataFrame({"onset": [0.0, 1.0, 3.0], "offset": [0.5, 2.0, 3.2]})
    np.testing.assert_allclose(word_times(w), [0.25, 1.5, 3.1])
    np.testing.assert_allclose(word_times(w, "onset"), [0.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="midpoint"):
        word_times(w, "offset")


def _grids(**over):
    rows = [make_tr_grid("orchard", 50, 2.0), make_tr_grid("market", 30, 1.5, t0=2.0)]
    df = pd.DataFrame(rows)
    for k, v in over.items():
        df.loc[df["story"] == "market", k] = v
    return df


def _words(last_offset_market):
    return pd.DataFrame({"story": ["orchard", "orchard", "market", "market"],
                         "onset": [0.5, 90.0, 3.0, last_offset_market - 0.3],
                         "offset": [0.8, 99.0, 3.4, last_offset_market]})


def test_check_words_fit_grid_ok_and_boundary():
    # market scan ends at 2 + 30 * 1.5 = 47 s; default tolerance one TR -> 48.5 s allowed
    check_words_fit_grid(_words(48.5), _grids())
    check_words_fit_grid(_words(40.0), _grids())
    check_words_fit_grid(_words(47.5), _grids(), tolerance=0.5)


def test_check_words_fit_grid_words_past_end_names_story():
    with pytest.raises(StimulusError) as exc:
        check_words_fit_grid(_words(48.6), _grids(), source="sub-01 files")
    msg = str(exc.value)
    assert "'market'" in msg and "sub-01 files" in msg
    assert "48.6" in msg and "47.0" in msg and "disagree on duration" in msg
    with pytest.raises(StimulusError, match="market"):
        check_words_fit_grid(_words(47.6), _grids(), tolerance=0.5)


def test_check_words_fit_grid_story_sets_and_early_words():
    w = _words(40.0)
    with pytest.raises(StimulusError, match="lighthouse"):
        check_words_fit_grid(w, pd.concat([_grids(), pd.DataFrame([make_tr_grid(
            "lighthouse", 10, 2.0)])], ignore_index=True))
    with pytest.raises(StimulusError, match="market.*60 s before"):
        check_words_fit_grid(w, _grids(t0=70.0))
