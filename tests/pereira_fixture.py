"""A tiny Pereira et al. 2018 study in the published layout (MATLAB v5 files written with
``scipy.io.savemat``), with a planted signal.

Used by tests/io/test_pereira_reader.py and tests/pipelines/test_pereira_env.py.

Layout written under ``root``::

    <subject>/data_384sentences.mat   experiment 2: N_PASSAGES["exp2"] passages x 4 sentences
    <subject>/data_243sentences.mat   experiment 3: N_PASSAGES["exp3"] passages x 3 sentences

Each file holds ``examples_passagesentences`` (n_sentences, n_voxels) double, ``keySentences``
(cell column), ``labelsPassageForEachSentence`` (1-based passage of each sentence),
``labelsPassageCategory`` (1-based topic of each passage), ``keyPassageCategory`` (topic names),
``keyPassages`` and ``meta`` (struct: ``colToCoord`` 1-based (n_voxels, 3), ``dimensions``,
``nvoxels``, ``atlases`` (cell column of names), ``rois`` (cell column of cells of ROI names),
``roiMultimask`` (cell column of (n_voxels, 1) label vectors, 0 = none)).

Sentences come from three topics (animals, food, vehicles) built from templates; passages
alternate topics, so every contiguous block of sentences holds all topics. Voxels (the same in
every file of a subject):

* ``v0``-``v7`` (PLANTED, network language): topic pattern x 1 + Gaussian noise (sd 0.5);
* ``v8``-``v11`` multiple demand, ``v12``-``v15`` default mode, ``v16``-``v19`` no network: noise;
* the ``visual`` atlas is present but labels no voxel (a logged note, not an error).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import savemat

SUBJECTS = ["M02", "P01"]
FILES = {"exp2": "data_384sentences.mat", "exp3": "data_243sentences.mat"}
SENTENCES_PER_PASSAGE = {"exp2": 4, "exp3": 3}
N_PASSAGES = {"exp2": 12, "exp3": 12}
TOPICS = ["animals", "food", "vehicles"]
N_VOXELS = 20
PLANTED = list(range(0, 8))
NOISE = list(range(8, 20))
DIMENSIONS = (6, 5, 4)

#: atlas name -> ROI names; voxel -> (atlas, 1-based ROI) below
ATLASES = {
    "languageLH": ["LH_PostTemp", "LH_IFG"],
    "languageRH": ["RH_PostTemp"],
    "MD": ["LH_MFG", "RH_MFG"],
    "DMN": ["LH_PCC"],
    "visual": ["LH_V1"],
    "aal_1ofN": ["Precentral_L", "Frontal_Sup_L"],
}
VOXEL_LABELS = {
    **{v: ("languageLH", 1) for v in (0, 1, 2)},
    **{v: ("languageLH", 2) for v in (3, 4, 5)},
    **{v: ("languageRH", 1) for v in (6, 7)},
    **{v: ("MD", 1) for v in (8, 9)},
    **{v: ("MD", 2) for v in (10, 11)},
    **{v: ("DMN", 1) for v in (12, 13, 14, 15)},
}
#: expected (roi, network) of each voxel, as the reader should label it
EXPECTED = {v: (ATLASES[a][r - 1], {"languageLH": "language", "languageRH": "language", "MD": "multiple_demand",
                                    "DMN": "default_mode"}[a]) for v, (a, r) in VOXEL_LABELS.items()}
EXPECTED.update({v: ("none", "none") for v in range(16, 20)})

_WORDS = {
    "animals": (["The dog", "A small cat", "The old horse", "A brown rabbit", "The hungry wolf", "The young cow"],
                ["chased a squirrel across the field.", "slept in the warm barn all day.",
                 "drank water from the cold river.", "hid from the fox under a bush.",
                 "ran through the meadow with its puppies.", "licked its fur beside the fence."]),
    "food": (["The fresh bread", "A bowl of soup", "The ripe tomato", "The chocolate cake", "A plate of rice",
              "The spicy curry"],
             ["was served with butter and cheese.", "tasted of garlic, salt and pepper.",
              "was baked in the oven for an hour.", "was eaten at dinner with the family.",
              "smelled of onions and fresh herbs.", "was sliced and put on the kitchen table."]),
    "vehicles": (["The red truck", "A fast train", "The old bicycle", "The city bus", "A small airplane",
                  "The delivery van"],
                 ["drove down the highway at night.", "stopped at the station near the bridge.",
                  "needed new tires and a full tank of fuel.", "carried passengers to the airport.",
                  "was parked in the garage with its engine off.", "crossed the border before sunrise."]),
}


def make_sentences(story: str, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sentences, passage of each sentence (1-based), topic index of each passage (0-based))."""
    rng = np.random.default_rng(seed + (2 if story == "exp2" else 3))
    sentences, passage, topics = [], [], []
    for p in range(N_PASSAGES[story]):
        t = p % len(TOPICS)
        topics.append(t)
        subj, pred = _WORDS[TOPICS[t]]
        for _ in range(SENTENCES_PER_PASSAGE[story]):
            sentences.append(f"{subj[rng.integers(len(subj))]} {pred[rng.integers(len(pred))]}")
            passage.append(p + 1)
    return sentences, np.array(passage), np.array(topics)


def _cell_column(items) -> np.ndarray:
    c = np.empty((len(items), 1), dtype=object)
    for k, x in enumerate(items):
        c[k, 0] = x
    return c


def coords() -> np.ndarray:
    """1-based (n_voxels, 3) voxel coordinates (distinct) inside DIMENSIONS."""
    grid = np.stack(np.unravel_index(np.arange(N_VOXELS) * 5 + 3, DIMENSIONS), axis=1)
    return (grid + 1).astype(float)


def meta_struct(n_voxels: int = N_VOXELS, col_to_coord: np.ndarray | None = None, labels=VOXEL_LABELS,
                atlases=ATLASES) -> dict:
    names = list(atlases)
    masks = []
    for a in names:
        m = np.zeros((n_voxels, 1))
        for v, (atlas, r) in labels.items():
            if atlas == a and v < n_voxels:
                m[v, 0] = r
        masks.append(m)
    return {"colToCoord": coords() if col_to_coord is None else col_to_coord,
            "dimensions": np.array(DIMENSIONS, dtype=float), "nvoxels": float(n_voxels),
            "atlases": _cell_column(names),
            "rois": _cell_column([_cell_column(atlases[a]) for a in names]),
            "roiMultimask": _cell_column(masks)}


def responses(story: str, subject: str, seed: int = 0) -> np.ndarray:
    """(n_sentences, N_VOXELS): planted topic effects in PLANTED voxels, noise elsewhere."""
    sentences, passage, topics = make_sentences(story, seed)
    rng = np.random.default_rng([seed, SUBJECTS.index(subject) if subject in SUBJECTS else 9,
                                 2 if story == "exp2" else 3])
    pattern = np.random.default_rng([seed, 77]).standard_normal((len(TOPICS), len(PLANTED)))
    y = rng.standard_normal((len(sentences), N_VOXELS))
    topic_of_sentence = topics[passage - 1]
    y[:, PLANTED] = pattern[topic_of_sentence] + 0.5 * y[:, PLANTED]
    return y


def write_file(path: Path, story: str, subject: str, seed: int = 0, examples_key: str = "examples_passagesentences",
               meta: dict | None = None, sentences: list[str] | None = None, data: np.ndarray | None = None) -> Path:
    s, passage, topics = make_sentences(story, seed)
    sentences = s if sentences is None else sentences
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {
        examples_key: responses(story, subject, seed) if data is None else data,
        "keySentences": _cell_column(sentences),
        "labelsPassageForEachSentence": passage.reshape(-1, 1).astype(float),
        "labelsPassageCategory": (topics + 1).reshape(-1, 1).astype(float),
        "keyPassageCategory": np.array(TOPICS, dtype=object).reshape(1, -1),
        "keyPassages": _cell_column([f"{TOPICS[t]}_{p + 1}" for p, t in enumerate(topics)]),
        "meta": meta_struct() if meta is None else meta,
    }, do_compression=True)
    return path


def write_pereira_study(root: Path, subjects=SUBJECTS, partial: dict[str, list[str]] | None = None,
                        seed: int = 0) -> Path:
    """Write every subject's exp2 and exp3 files; ``partial`` maps extra subjects to the
    experiments they have (e.g. ``{"M03": ["exp2"]}``)."""
    root = Path(root)
    todo = {s: list(FILES) for s in subjects}
    todo.update(partial or {})
    for subject, stories in todo.items():
        for story in stories:
            write_file(root / subject / FILES[story], story, subject, seed)
    return root
