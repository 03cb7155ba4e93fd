"""The Alice reader (Brennan et al. 2016) on the real published files in ../shared/data/alice2016.

Every expected value is derived here independently of brainalign: the TextGrid is parsed with a
small regex, the time-course files with plain Python string splitting, the subject list by listing
the folder, the detrended responses with scipy, and the TR-grid timing against the published
word-rate regressor with a double-gamma HRF built from scipy.stats.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import signal, stats

from brainalign.core.timing.stimuli import StimulusError, tr_times, words_from_textgrid
from brainalign.io.readers import MissingDataError, get_reader
from brainalign.io.readers.alice import AliceReader

PAUSES = {"sp", ""}
ROI_NAMES = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]  # README of the shared data


# --------------------------------------------------------------------------- independent parsers
def _textgrid_file(alice_dir: Path) -> Path:
    files = sorted((alice_dir / "stimulus").glob("*.TextGrid"))
    assert files, f"no TextGrid in {alice_dir / 'stimulus'}"
    return files[0]


def _word_tier_intervals(path: Path) -> list[tuple[float, float, str]]:
    """(xmin, xmax, text) of every interval of the (only) word tier, by regex on the long format."""
    text = path.read_text(encoding="utf-8")
    tier_names = re.findall(r'name = "(.*)"', text)
    assert tier_names == ["word"], tier_names  # the published file has one tier
    found = re.findall(r'xmin = ([-\d.eE+]+)\s*\n\s*xmax = ([-\d.eE+]+)\s*\n\s*text = "(.*)"', text)
    declared = int(re.search(r"intervals: size = (\d+)", text).group(1))
    assert len(found) == declared
    return [(float(a), float(b), t) for a, b, t in found]


def _parse_table(path: Path) -> np.ndarray:
    rows = [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float64)


def _timecourse_subjects(alice_dir: Path) -> list[str]:
    names = [p.name for p in (alice_dir / "timecourses_6mm").iterdir()]
    return sorted(m.group(1) for n in names if (m := re.fullmatch(r"(s\d+)-timecourses\.txt", n)))


@pytest.fixture(scope="module")
def reader(alice_dir):
    return AliceReader(alice_dir)


# --------------------------------------------------------------------------- words
def test_textgrid_words_match_independent_parse(reader, alice_dir):
    intervals = _word_tier_intervals(_textgrid_file(alice_dir))
    expected = [(a, b, t) for a, b, t in intervals if t.strip() not in PAUSES]
    words = reader.words()
    assert list(words) == ["alice"]
    w = words["alice"]
    assert len(w) == len(expected)
    assert 2000 < len(expected) < 2300  # the README says 2,127
    # labels are taken without surrounding blanks (the file has e.g. "and ")
    assert w["word"].tolist() == [t.strip() for _, _, t in expected]
    np.testing.assert_allclose(w["onset"].to_numpy(), [a for a, _, _ in expected], rtol=0, atol=1e-9)
    np.testing.assert_allclose(w["offset"].to_numpy(), [b for _, b, _ in expected], rtol=0, atol=1e-9)
    # pause before a word = gap since the previous word's end (0 for the first word)
    on = np.array([a for a, _, _ in expected])
    off = np.array([b for _, b, _ in expected])
    np.testing.assert_allclose(w["pause_before"].to_numpy(),
                               np.r_[0.0, np.clip(on[1:] - off[:-1], 0, None)], atol=1e-9)
    assert not any(t in PAUSES for t in w["word"])


# --------------------------------------------------------------------------- subjects, ROIs, grid
def test_subjects_are_the_timecourse_files(reader, alice_dir):
    expected = _timecourse_subjects(alice_dir)
    assert reader.subjects() == expected
    assert "s33" in expected
    usable = [s for s in expected
              if np.all(_parse_table(alice_dir / "timecourses_6mm" / f"{s}-timecourses.txt").std(0) > 0)]
    assert len(usable) == len(expected) - 1  # every subject but s33 has signal
    if len(expected) == 28:
        assert len(usable) == 27  # as published


def test_responses_equal_the_raw_file(reader, alice_dir):
    raw = _parse_table(alice_dir / "timecourses_6mm" / "s18-timecourses.txt")
    data, targets, sources = reader.responses("s18")
    assert list(data) == ["alice"]
    assert data["alice"].shape == raw.shape
    assert raw.shape[1] == 6
    np.testing.assert_allclose(data["alice"], raw.astype(np.float32), rtol=0, atol=0)
    assert targets["target"].tolist() == ROI_NAMES
    assert targets["roi"].tolist() == ROI_NAMES
    assert Path(sources["alice"]) == alice_dir / "timecourses_6mm" / "s18-timecourses.txt"


def test_tr_grid_row_i_at_20_plus_2i(reader, alice_dir):
    grids = reader.tr_grids()
    assert len(grids) == 1
    row = grids.iloc[0]
    n_rows = _parse_table(alice_dir / "timecourses_6mm" / "s18-timecourses.txt").shape[0]
    assert row["story"] == "alice"
    assert int(row["n_trs_total"]) == n_rows
    np.testing.assert_allclose(tr_times(row), 20.0 + 2.0 * np.arange(n_rows))


def test_tr_grid_timing_matches_published_word_rate(reader, alice_dir):
    """Words of the TextGrid on a 0.1 s grid, convolved with a double-gamma HRF and sampled on the
    reader's TR grid, reproduce the published word-rate regressor; one TR off does not."""
    rate_file = alice_dir / "predictors" / "s18-rate.txt"
    if not rate_file.exists():
        pytest.skip(f"{rate_file} not present")
    rate = _parse_table(rate_file)[:, 0]
    onsets = np.array([a for a, _, t in _word_tier_intervals(_textgrid_file(alice_dir))
                       if t.strip() not in PAUSES])
    dt = 0.1
    t_fine = np.arange(0, onsets.max() + 60, dt)
    counts = np.zeros_like(t_fine)
    np.add.at(counts, np.round(onsets / dt).astype(int), 1.0)
    th = np.arange(0, 32, dt)
    hrf = stats.gamma.pdf(th, 6) - stats.gamma.pdf(th, 16) / 6
    conv = np.convolve(counts, hrf)[: len(t_fine)]

    grid = tr_times(reader.tr_grids().iloc[0])
    assert len(grid) == len(rate)
    r = np.corrcoef(np.interp(grid, t_fine, conv), rate)[0, 1]
    assert r > 0.95
    for shift in (-2.0, 2.0):  # the check is sensitive to one TR
        assert np.corrcoef(np.interp(grid + shift, t_fine, conv), rate)[0, 1] < 0.9


def test_words_fit_the_tr_grid(reader):
    from brainalign.pipelines.data_prep.nodes import read_stimuli

    words, grids = read_stimuli(reader, {"trim_start": 0, "trim_end": 0})
    assert set(words["story"]) == {"alice"}
    assert int(grids.iloc[0]["n_trs"]) == int(grids.iloc[0]["n_trs_total"])


# --------------------------------------------------------------------------- bad subject s33
def test_constant_subject_s33_is_excluded_with_a_warning(reader, alice_dir, caplog):
    from brainalign.pipelines.data_prep.nodes import prepare_responses, read_stimuli

    raw = _parse_table(alice_dir / "timecourses_6mm" / "s33-timecourses.txt")
    assert np.all(raw.std(0) == 0)  # the published bad input
    _, grids = read_stimuli(reader, {"trim_start": 0, "trim_end": 0})
    with caplog.at_level(logging.WARNING):
        kept, targets, excl = prepare_responses(reader, grids, {"detrend": True}, subject="s33")
    assert set(excl["subject"]) == {"s33"}
    per_target = excl[excl["target"] != "*"]
    assert sorted(per_target["target"]) == sorted(ROI_NAMES)
    assert per_target["reason"].str.contains("zero variance").all()
    assert per_target["reason"].str.contains("s33-timecourses.txt").all()
    assert (excl["target"] == "*").sum() == 1  # the whole subject is excluded, in one row
    assert len(targets) == 0
    assert kept["alice"].shape == (raw.shape[0], 0)
    assert not np.isnan(kept["alice"]).any()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "s33" in r.getMessage()]
    assert warnings, "no warning names s33"


def test_good_subject_is_detrended_raw_data(reader, alice_dir, caplog):
    from brainalign.pipelines.data_prep.nodes import prepare_responses, read_stimuli

    raw = _parse_table(alice_dir / "timecourses_6mm" / "s18-timecourses.txt")
    _, grids = read_stimuli(reader, {"trim_start": 1, "trim_end": 2})
    with caplog.at_level(logging.WARNING):
        kept, targets, excl = prepare_responses(reader, grids, {"detrend": True}, subject="s18")
    assert len(excl) == 0
    assert targets["target"].tolist() == ROI_NAMES
    expected = signal.detrend(raw.astype(np.float32).astype(np.float64)[1:-2], axis=0, type="linear")
    np.testing.assert_allclose(kept["alice"], expected, atol=1e-3, rtol=1e-5)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "s18" in r.getMessage()]


# --------------------------------------------------------------------------- missing data
@pytest.mark.filterwarnings("ignore:register_new_resolver")
def test_missing_alice_dir_env_var_gives_missing_data_error(repo_root, monkeypatch, tmp_path):
    """conf/alice reads the study root from BRAINALIGN_ALICE_DIR; a wrong folder is named."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from brainalign.settings import CONFIG_LOADER_ARGS

    missing = tmp_path / "no_alice_here"
    monkeypatch.setenv("BRAINALIGN_ALICE_DIR", str(missing))
    loader = OmegaConfigLoader(str(repo_root / "conf"), env="alice", **CONFIG_LOADER_ARGS)
    entry = loader["catalog"]["raw_study"]
    assert entry["root"] == str(missing)
    catalog = DataCatalog.from_config({"raw_study": entry})
    study = catalog.load("raw_study")
    assert isinstance(study, AliceReader)
    with pytest.raises(MissingDataError, match=re.escape(str(missing))) as info:
        study.subjects()
    assert "BRAINALIGN_ALICE_DIR" in str(info.value)
    assert not catalog.exists("raw_study")


def test_missing_subject_file_is_named(reader, alice_dir):
    with pytest.raises(MissingDataError, match="s99-timecourses.txt"):
        reader.responses("s99")


def test_reader_registered_by_name():
    assert get_reader("alice") is AliceReader
    with pytest.raises(ValueError, match="nope"):
        get_reader("nope")


# --------------------------------------------------------------------------- TextGrid tiers
PHONE_ONLY = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.5
tiers? <exists>
size = 1
item []:
    item [1]:
        class = "IntervalTier"
        name = "phone"
        xmin = 0
        xmax = 1.5
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = "AH0"
        intervals [2]:
            xmin = 0.5
            xmax = 1.0
            text = "L"
        intervals [3]:
            xmin = 1.0
            xmax = 1.5
            text = "IH1"
'''


def _tiny_alice(tmp_path: Path, textgrid: str) -> Path:
    root = tmp_path / "alice"
    (root / "stimulus").mkdir(parents=True)
    (root / "timecourses_6mm").mkdir()
    (root / "stimulus" / "story.TextGrid").write_text(textgrid)
    rng = np.random.default_rng(0)
    np.savetxt(root / "timecourses_6mm" / "s01-timecourses.txt", rng.standard_normal((10, 6)))
    return root


def test_textgrid_without_word_tier_names_the_file(tmp_path):
    root = _tiny_alice(tmp_path, PHONE_ONLY)
    path = root / "stimulus" / "story.TextGrid"
    with pytest.raises(StimulusError, match=re.escape(str(path))) as info:
        AliceReader(root).words()
    assert "word" in str(info.value) and "phone" in str(info.value)
    with pytest.raises(StimulusError, match=re.escape(str(path))):
        words_from_textgrid(path)


def test_short_format_textgrid_words(tmp_path):
    """Short ("ooTextFile short") format with a phone tier before the word tier; pauses dropped."""
    planted = [(0.0, 0.4, "sp"), (0.4, 0.9, "Down"), (0.9, 1.2, "the"), (1.2, 1.3, ""),
               (1.3, 2.0, "rabbit"), (2.0, 2.6, "hole")]
    lines = ['File type = "ooTextFile short"', '"TextGrid"', "", "0", "2.6", "<exists>", "2",
             '"IntervalTier"', '"phone"', "0", "2.6", "1", "0", "2.6", '"X"',
             '"IntervalTier"', '"word"', "0", "2.6", str(len(planted))]
    for a, b, t in planted:
        lines += [str(a), str(b), f'"{t}"']
    root = _tiny_alice(tmp_path, "\n".join(lines) + "\n")
    w = AliceReader(root).words()["alice"]
    kept = [p for p in planted if p[2] not in PAUSES]
    assert w["word"].tolist() == [t for _, _, t in kept]
    np.testing.assert_allclose(w["onset"], [a for a, _, _ in kept])
    np.testing.assert_allclose(w["offset"], [b for _, b, _ in kept])
    np.testing.assert_allclose(w["pause_before"], [0.0, 0.0, 0.1, 0.0])


def test_wrong_column_count_names_the_file(tmp_path):
    root = _tiny_alice(tmp_path, PHONE_ONLY)
    bad = root / "timecourses_6mm" / "s02-timecourses.txt"
    np.savetxt(bad, np.ones((10, 5)))
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        AliceReader(root).responses("s02")
