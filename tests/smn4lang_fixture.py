"""A tiny SMN4Lang (OpenNeuro ds004078) study in the published layout, with a planted signal.

Used by tests/io/test_smn4lang_reader.py and tests/pipelines/test_smn4lang_env.py.

Layout written under ``root``::

    derivatives/preprocessed_data/sub-0k/MNI/sub-0k_task-RDR_run-<N>_bold.nii.gz
        4D float32, shape VOLUME + (n_volumes,), 3 mm voxels, TR 0.71 s in the header
    sub-0k/func/sub-0k_task-RDR_run-<N>_events.tsv
        onset, duration, trial_type, stim_file (story_<N>.wav at AUDIO_ONSET s)
    derivatives/annotations/time_align/word-level/story_<N>_word_time.mat   (stories 1 and 2)
        word (cell 1 x n), start, end (1 x n, s of the audio); punctuation tokens (，。) included
    annotations/story_3_words.tsv                                            (story 3)
        word, onset, offset (TSV variant)

Stories are Chinese sentences of 2-6 words (1-2 characters each) drawn from CHARS, each ended by
``。`` (sometimes with a ``，`` inside), words 0.25-0.45 s long with short pauses. Volume i of a
run sits at audio time ``i * TR - AUDIO_ONSET``. Planted signal, computed here with numpy/scipy:
per volume, the number of sentence ends (offset of the sentence's last word) falling in
``[i TR - AUDIO_ONSET, (i + 1) TR - AUDIO_ONSET)``, convolved with a double-gamma HRF
(``scipy.stats.gamma``) and z-scored; voxels PLANTED = that x 1 + noise (sd 0.5), NOISE = noise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.io import savemat

SUBJECTS = ["sub-01", "sub-02"]
STORIES = ["story_1", "story_2", "story_3"]
MAT_STORIES = ["story_1", "story_2"]
TR = 0.71
AUDIO_ONSET = 5.0
VOLUME = (4, 3, 2)
N_VOXELS = int(np.prod(VOLUME))
PLANTED = list(range(0, 8))        # flat (C-order) voxel indices
NOISE = list(range(8, N_VOXELS))
N_SENTENCES = 28
CHARS = "我们你他她去来看说听书天人大学北京上海今明早饭水山河风雨花草小狗猫跑走读写唱歌"
END_PAD = 14.0                     # s of scan after the last word (the hemodynamic tail)


def make_words(story: str, seed: int = 0) -> pd.DataFrame:
    """Word tokens of a story as in the published word-level files: word, onset, offset (audio s);
    punctuation tokens (，。) are separate rows with their own short intervals."""
    rng = np.random.default_rng([seed, STORIES.index(story) if story in STORIES else 9])
    t, rows = 0.6, []
    for _ in range(N_SENTENCES):
        n_words = int(rng.integers(2, 7))
        comma = int(rng.integers(1, n_words)) if n_words > 3 and rng.random() < 0.5 else -1
        for k in range(n_words):
            word = "".join(CHARS[i] for i in rng.integers(0, len(CHARS), int(rng.integers(1, 3))))
            dur = float(rng.uniform(0.25, 0.45))
            rows.append((word, t, t + dur))
            t += dur + float(rng.uniform(0.02, 0.1))
            if k == comma:
                rows.append(("，", t, t + 0.05))
                t += 0.15
        rows.append(("。", t, t + 0.05))
        t += float(rng.uniform(0.4, 1.6))
    return pd.DataFrame(rows, columns=["word", "onset", "offset"])


def n_volumes(story: str, seed: int = 0) -> int:
    last = float(make_words(story, seed)["offset"].max())
    return int(np.ceil((last + AUDIO_ONSET + END_PAD) / TR))


def sentence_ends(story: str, seed: int = 0) -> np.ndarray:
    """Audio time of the end of each sentence: the offset of the last word before each 。 ."""
    w = make_words(story, seed)
    ends, last = [], None
    for word, _on, off in w.itertuples(index=False):
        if word == "。":
            ends.append(last)
        elif word != "，":
            last = off
    return np.array(ends)


def hrf(tr: float = TR, length: float = 32.0) -> np.ndarray:
    t = np.arange(0, length, tr)
    h = stats.gamma.pdf(t, 6) - stats.gamma.pdf(t, 16) / 6
    return h / h.sum()


def planted_regressor(story: str, seed: int = 0) -> np.ndarray:
    n = n_volumes(story, seed)
    counts = np.zeros(n)
    for tau in sentence_ends(story, seed):
        i = int(np.floor((tau + AUDIO_ONSET) / TR))
        if 0 <= i < n:
            counts[i] += 1
    x = np.convolve(counts, hrf())[:n]
    return (x - x.mean()) / x.std()


def bold(story: str, subject: str, seed: int = 0) -> np.ndarray:
    """(VOLUME..., n_volumes) float32."""
    n = n_volumes(story, seed)
    rng = np.random.default_rng([seed, 100 + SUBJECTS.index(subject) if subject in SUBJECTS else 199,
                                 STORIES.index(story)])
    y = rng.standard_normal((n, N_VOXELS))
    y[:, PLANTED] = planted_regressor(story, seed)[:, None] + 0.5 * y[:, PLANTED]
    y += 100.0  # a baseline, as in BOLD
    return y.T.reshape(VOLUME + (n,)).astype(np.float32)


def affine() -> np.ndarray:
    a = np.diag([3.0, 3.0, 3.0, 1.0])
    a[:3, 3] = [-6.0, -4.5, -3.0]
    return a


def bold_path(root: Path, subject: str, story: str) -> Path:
    n = story.split("_")[1]
    folder = Path(root) / "derivatives" / "preprocessed_data" / subject / "MNI"
    return folder / f"{subject}_task-RDR_run-{n}_bold.nii.gz"


def write_bold(path: Path, data: np.ndarray, tr: float = TR) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine())
    img.header.set_zooms((3.0, 3.0, 3.0, float(tr)))
    img.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def write_words(root: Path, story: str, seed: int = 0) -> Path:
    w = make_words(story, seed)
    n = story.split("_")[1]
    if story in MAT_STORIES:
        path = Path(root) / "derivatives" / "annotations" / "time_align" / "word-level" / f"story_{n}_word_time.mat"
        path.parent.mkdir(parents=True, exist_ok=True)
        cell = np.empty((1, len(w)), dtype=object)
        for k, x in enumerate(w["word"]):
            cell[0, k] = x
        savemat(path, {"word": cell, "start": w["onset"].to_numpy()[None, :], "end": w["offset"].to_numpy()[None, :]})
    else:
        path = Path(root) / "annotations" / f"story_{n}_words.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        w.to_csv(path, sep="\t", index=False)
    return path


def write_events(root: Path, subject: str, story: str, seed: int = 0) -> Path:
    n = story.split("_")[1]
    path = Path(root) / subject / "func" / f"{subject}_task-RDR_run-{n}_events.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    dur = float(make_words(story, seed)["offset"].max()) + 0.5
    pd.DataFrame({"onset": [0.0, AUDIO_ONSET], "duration": [AUDIO_ONSET, dur],
                  "trial_type": ["wait", "listen"], "stim_file": ["n/a", f"stimuli/story_{n}.wav"]}
                 ).to_csv(path, sep="\t", index=False)
    return path


def write_smn4lang_study(root: Path, subjects=SUBJECTS, stories=STORIES, seed: int = 0) -> Path:
    root = Path(root)
    for story in stories:
        write_words(root, story, seed)
        for subject in subjects:
            write_bold(bold_path(root, subject, story), bold(story, subject, seed))
            write_events(root, subject, story, seed)
    return root
