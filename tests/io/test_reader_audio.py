"""``audio(story)`` of the dataset readers, on studies written in their layouts
(tests/lebel_fixture.py, tests/bids_fixtures.py, core/synthetic/study.py ``write_study``) with
small WAV files added in tmp_path.

Expected waveforms are the arrays the files were written from (scipy.io.wavfile, 16-bit PCM:
value / 32768), and the channel mean for stereo files.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bids_fixtures import write_bids, write_narratives
from lebel_fixture import write_lebel_study
from scipy.io import wavfile

from brainalign.core.synthetic import study as S
from brainalign.core.timing.audio import check_audio_covers_words
from brainalign.io.readers import MissingDataError, StudyReader
from brainalign.io.readers.pereira import PereiraReader
from brainalign.io.readers.bids import BidsReader
from brainalign.io.readers.bids_volume import BidsVolumeReader
from brainalign.io.readers.lebel import LebelReader
from brainalign.io.readers.narratives import NarrativesReader

RATE = 8000


def _write(path, seconds=1.0, seed=0, channels=1):
    rng = np.random.default_rng(seed)
    shape = (int(seconds * RATE),) if channels == 1 else (int(seconds * RATE), channels)
    data = rng.integers(-12000, 12000, size=shape).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, RATE, data)
    return data.astype(np.float64) / 32768.0 if channels == 1 else data.astype(np.float64).mean(1) / 32768.0


def _same(got, expected):
    wave, rate = got
    assert rate == RATE and wave.dtype == np.float32 and wave.ndim == 1
    np.testing.assert_allclose(wave, expected, atol=1e-7)


# --------------------------------------------------------------------------- default
def test_layouts_without_audio_say_so(tmp_path):
    class Dummy(StudyReader):
        name = "dummy"

    with pytest.raises(MissingDataError, match="dummy layout ships no audio for story souls"):
        Dummy(tmp_path).audio("souls")
    with pytest.raises(MissingDataError, match="pereira layout ships no audio for story passages"):
        PereiraReader(tmp_path).audio("passages")  # a reading study


# --------------------------------------------------------------------------- bids_volume
def test_bids_volume_reads_stimuli_wav(tiny_study, tiny_study_config):
    reader = BidsVolumeReader(tiny_study)
    story = tiny_study_config["stories"][0]
    expected = _write(tiny_study / "stimuli" / f"{story}.wav", seconds=0.5, channels=2)
    _same(reader.audio(story), expected)
    other = tiny_study_config["stories"][1]
    with pytest.raises(MissingDataError, match=rf"story {other}.*stimuli/{other}\.wav"):
        reader.audio(other)


def test_simulated_study_with_audio_is_written_and_read_back(tmp_path):
    rng = np.random.default_rng(3)
    words = {s: S.time_words(t, rng, max_words=40) for s, t in S.story_texts(["lighthouse", "orchard"]).items()}
    feats = {s: rng.standard_normal((len(w), 5)) for s, w in words.items()}
    audio = {}
    for s, w in words.items():
        n = int((w["offset"].max() + 1.0) * RATE)
        audio[s] = ((0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / RATE)).astype(np.float32), RATE)
    st = S.simulate_study(feats, words, n_subjects=1, volume_shape=(5, 5, 4), seed=1, audio=audio)
    root = S.write_study(st, tmp_path / "study")
    reader = BidsVolumeReader(root)
    for s in words:
        wave, rate = reader.audio(s)
        assert rate == RATE
        raw = wavfile.read(root / "stimuli" / f"{s}.wav")[1]
        assert raw.dtype == np.int16
        np.testing.assert_allclose(wave, audio[s][0], atol=2.0 ** -16 + 1e-7)
        check_audio_covers_words(len(wave) / rate, reader.words()[s], s, str(root / "stimuli" / f"{s}.wav"))
    gt = pd.read_parquet(root / "ground_truth.parquet")
    assert "sound_power_share" in gt.columns and gt["sound_power_share"].max() > 0


# --------------------------------------------------------------------------- lebel
@pytest.fixture(scope="module")
def lebel_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lebel")
    plant = write_lebel_study(root, repeats_subject=None)
    return root, plant


def test_lebel_reads_the_dataset_stimuli_folder(lebel_root):
    root, plant = lebel_root
    story = "souls"
    end = float(plant["words"][story]["offset"].max()) + 0.5
    expected = _write(root / "stimuli" / f"{story}.wav", seconds=end, seed=1)
    for reader in (LebelReader(root), LebelReader(root / "derivative")):
        got = reader.audio(story)
        _same(got, expected)
        check_audio_covers_words(len(got[0]) / got[1], reader.words()[story], story, "souls.wav")
    with pytest.raises(MissingDataError, match=r"story avatar.*stimuli/avatar\.wav"):
        LebelReader(root).audio("avatar")


# --------------------------------------------------------------------------- narratives
@pytest.fixture(scope="module")
def narratives_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("narratives")
    write_narratives(root, spaces=("volume",), extra_runs=False)
    return root


def test_narratives_reads_the_published_name_then_the_story_name(narratives_root):
    root = narratives_root
    reader = NarrativesReader(root)
    expected = _write(root / "stimuli" / "pieman_audio.wav", seed=2)
    _same(reader.audio("pieman"), expected)
    plain = _write(root / "stimuli" / "tunnel.wav", seed=3)
    _same(reader.audio("tunnel"), plain)
    with pytest.raises(MissingDataError, match=r"story lucy.*lucy_audio\.wav.*lucy\.wav"):
        reader.audio("lucy")
    # a task mapped to another Gentle folder finds that folder's audio
    mapped = _write(root / "stimuli" / "lucyoriginal_audio.wav", seed=4)
    _same(NarrativesReader(root, gentle={"lucy": "lucyoriginal"}).audio("lucy"), mapped)


# --------------------------------------------------------------------------- bids
@pytest.fixture(scope="module")
def bids_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    write_bids(root)
    return root


def test_bids_reads_the_story_wav_or_one_match(bids_root):
    root = bids_root
    reader = BidsReader(root)
    exact = _write(root / "stimuli" / "lighthouse.wav", seed=5)
    _same(reader.audio("lighthouse"), exact)
    pattern = _write(root / "stimuli" / "task-orchard_audio.wav", seed=6)
    _same(reader.audio("orchard"), pattern)
    with pytest.raises(MissingDataError, match=r"story market.*market\.wav.*\*market\*\.wav"):
        reader.audio("market")
    _write(root / "stimuli" / "market_part1.wav", seed=7)
    _write(root / "stimuli" / "market_part2.wav", seed=8)
    with pytest.raises(ValueError, match="several audio files match story market.*market_part1.wav"):
        reader.audio("market")
