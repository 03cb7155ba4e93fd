"""Dataset readers, one module per published layout, registered by name in :data:`READERS`.

A reader is constructed with the study's root directory (and options) and offers:

``check()``               raise if the directory is not a readable study of this layout
``subjects()``            list of subject ids
``words()``               dict story -> DataFrame(word, onset, offset, pause_before), seconds
                          on the same clock as the TR grid
``tr_grids()``            DataFrame(story, n_trs_total, tr, t0) before trimming
``responses(subject, stories=None)``
                          (mapping story -> array (n_trs_total, n_targets), possibly lazy;
                          targets DataFrame with target, roi, network and i, j, k where voxels;
                          dict story -> file). A missing story is a MissingDataError naming
                          the file.
``ground_truth()``        DataFrame or None (simulated studies only)
"""
from __future__ import annotations

from .alice import AliceReader
from .base import MissingDataError, StudyReader
from .bids import BidsReader
from .bids_volume import BidsVolumeReader
from .lebel import LebelReader
from .narratives import NarrativesReader
from .pereira import PereiraReader
from .smn4lang import Smn4langReader

READERS: dict[str, type[StudyReader]] = {
    "bids_volume": BidsVolumeReader,
    "alice": AliceReader,
    "lebel": LebelReader,
    "narratives": NarrativesReader,
    "bids": BidsReader,
    "pereira": PereiraReader,
    "smn4lang": Smn4langReader,
}


def get_reader(name: str) -> type[StudyReader]:
    """The reader class registered under ``name``."""
    try:
        return READERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset reader {name!r}; registered: {sorted(READERS)}") from None


__all__ = ["READERS", "get_reader", "StudyReader", "MissingDataError"]
