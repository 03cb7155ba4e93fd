"""Word timings from Gentle align.json and from BIDS events tables (core/word_timings.py).

Expected values are planted in the inputs and worked out by hand in the tests."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from brainalign.core.timing.stimuli import StimulusError
from brainalign.core.timing.word_timings import (interpolate_unaligned, read_event_table, words_from_events,
                                          words_from_gentle)

NAN = np.nan


def test_interpolation_spreads_a_run_evenly_between_its_neighbours():
    on = np.array([1.0, NAN, NAN, 4.0, 5.0])
    off = np.array([1.5, NAN, NAN, 4.5, 5.5])
    new_on, new_off = interpolate_unaligned(on, off)
    # gap 1.5 .. 4.0 shared by 2 words: 1.25 s each
    np.testing.assert_allclose(new_on, [1.0, 1.5, 2.75, 4.0, 5.0])
    np.testing.assert_allclose(new_off, [1.5, 2.75, 4.0, 4.5, 5.5])


def test_interpolation_at_the_edges_uses_the_median_duration():
    on = np.array([NAN, 2.0, 3.0, NAN])
    off = np.array([NAN, 2.4, 3.2, NAN])  # durations 0.4, 0.2 -> median 0.3
    new_on, new_off = interpolate_unaligned(on, off)
    np.testing.assert_allclose(new_on, [1.7, 2.0, 3.0, 3.2])
    np.testing.assert_allclose(new_off, [2.0, 2.4, 3.2, 3.5])
    # never before 0
    a, b = interpolate_unaligned(np.array([NAN, NAN, 0.2]), np.array([NAN, NAN, 0.6]))
    np.testing.assert_allclose(a, [0.0, 0.1, 0.2])
    np.testing.assert_allclose(b, [0.1, 0.2, 0.6])
    # overlapping neighbours (previous ends at 1.3, next starts at 1.1): zero-length words at the
    # next onset, so onsets stay in word order
    a, b = interpolate_unaligned(np.array([1.0, NAN, NAN, 1.1]), np.array([1.3, NAN, NAN, 1.4]))
    np.testing.assert_array_equal(a[1:3], [1.1, 1.1])
    np.testing.assert_array_equal(b[1:3], [1.1, 1.1])
    assert (np.diff(a) >= 0).all()


def _gentle(tmp_path, items, transcript=None):
    path = tmp_path / "align.json"
    doc = {"words": items}
    if transcript is not None:
        doc["transcript"] = transcript
    path.write_text(json.dumps(doc))
    return path


def test_gentle_words_get_punctuation_and_interpolated_times(tmp_path):
    transcript = 'Hello, "big" world. It rains!'
    items = [
        {"word": "Hello", "case": "success", "alignedWord": "hello", "start": 0.5, "end": 0.9,
         "startOffset": 0, "endOffset": 5},
        {"word": "big", "case": "not-found-in-audio", "startOffset": 8, "endOffset": 11},
        {"word": "world", "case": "success", "alignedWord": "world", "start": 1.5, "end": 2.0,
         "startOffset": 13, "endOffset": 18},
        {"word": "It", "case": "success", "alignedWord": "<unk>", "start": 2.6, "end": 2.7,
         "startOffset": 20, "endOffset": 22},
        {"word": "rains", "case": "success", "alignedWord": "rains", "start": 2.7, "end": 3.1,
         "startOffset": 23, "endOffset": 28},
    ]
    words, info = words_from_gentle(_gentle(tmp_path, items, transcript))
    assert words["word"].tolist() == ["Hello,", '"big"', "world.", "It", "rains!"]
    np.testing.assert_allclose(words["onset"], [0.5, 0.9, 1.5, 2.6, 2.7])
    np.testing.assert_allclose(words["offset"], [0.9, 1.5, 2.0, 2.7, 3.1])
    np.testing.assert_allclose(words["pause_before"], [0, 0, 0, 0.6, 0])
    assert info == {"n_words": 5, "n_unaligned": 1, "cases": {"not-found-in-audio": 1}}

    dropped, info = words_from_gentle(_gentle(tmp_path, items, transcript), unaligned="drop")
    assert dropped["word"].tolist() == ["Hello,", "world.", "It", "rains!"]
    assert info["n_unaligned"] == 1
    plain, _ = words_from_gentle(_gentle(tmp_path, items, transcript), punctuation=False)
    assert plain["word"].tolist() == ["Hello", "big", "world", "It", "rains"]
    # without a transcript the tokens are used as they are
    no_text, _ = words_from_gentle(_gentle(tmp_path, items))
    assert no_text["word"].tolist() == ["Hello", "big", "world", "It", "rains"]


def test_gentle_bad_files_are_errors_naming_the_file(tmp_path):
    path = tmp_path / "align.json"
    path.write_text("{not json")
    with pytest.raises(StimulusError, match="align.json"):
        words_from_gentle(path)
    path = _gentle(tmp_path, [{"word": "a", "case": "not-found-in-audio"}])
    with pytest.raises(StimulusError, match="none of the 1 words is aligned"):
        words_from_gentle(path)
    path = _gentle(tmp_path, [{"word": "a", "case": "success", "start": 2.0, "end": 2.5},
                              {"word": "b", "case": "success", "start": 1.0, "end": 1.5}])
    with pytest.raises(StimulusError, match="not in transcript order"):
        words_from_gentle(path)
    with pytest.raises(ValueError, match="unaligned"):
        words_from_gentle(path, unaligned="guess")


def test_events_word_rows_are_kept_and_non_words_counted(tmp_path):
    path = tmp_path / "sub-01_task-x_events.tsv"
    pd.DataFrame({"onset": [0.0, 2.0, 2.5, 3.0, 9.0, 3.6],
                  "duration": [2.0, 0.4, 0.4, 6.0, 1.0, 0.3],
                  "trial_type": ["silence", "word", "word", "music", "silence", "word"],
                  "word": ["n/a", "Once", "upon", "n/a", "n/a", "time."]}).to_csv(path, sep="\t", index=False)
    words, dropped = words_from_events(read_event_table(path), source=str(path))
    assert words["word"].tolist() == ["Once", "upon", "time."]          # sorted by onset
    np.testing.assert_allclose(words["onset"], [2.0, 2.5, 3.6])
    np.testing.assert_allclose(words["offset"], [2.4, 2.9, 3.9])
    assert dropped == {"silence": 2, "music": 1}
    # trial_type as the word column
    tt = pd.DataFrame({"onset": [0.0, 1.0, 1.5], "duration": [1.0, 0.4, 0.4],
                       "trial_type": ["Silence", "hello", "there"]})
    words, dropped = words_from_events(tt)
    assert words["word"].tolist() == ["hello", "there"] and dropped == {"Silence": 1}
    # an explicit column, and no non-word labels at all
    other = tt.rename(columns={"trial_type": "token_text"})
    words, dropped = words_from_events(other, word_column="token_text", non_words=[])
    assert words["word"].tolist() == ["Silence", "hello", "there"] and dropped == {}


def test_events_bad_tables_are_errors():
    with pytest.raises(StimulusError, match="no column 'w'"):
        words_from_events(pd.DataFrame({"onset": [0.0], "duration": [1.0], "word": ["a"]}), word_column="w")
    with pytest.raises(StimulusError, match="no word column"):
        words_from_events(pd.DataFrame({"onset": [0.0], "duration": [1.0]}))
    with pytest.raises(StimulusError, match="onset and duration"):
        words_from_events(pd.DataFrame({"time": [0.0], "word": ["a"]}))
    with pytest.raises(StimulusError, match="negative-duration"):
        words_from_events(pd.DataFrame({"onset": [0.0, 1.0], "duration": [1.0, -0.2], "word": ["a", "b"]}),
                          source="ev.tsv")
    with pytest.raises(StimulusError, match="no word rows"):
        words_from_events(pd.DataFrame({"onset": [0.0], "duration": [1.0], "trial_type": ["silence"]}))
