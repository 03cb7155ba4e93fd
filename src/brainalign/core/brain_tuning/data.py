"""What brain-tuning trains on: TR samples, their split, their targets and the permuted control.

Conventions (the encoding's, :mod:`brainalign.core.encoding.folds`): a *sample* indexes the kept
TRs of the stories concatenated in the order of the TR-grid table; sample ``s`` of story ``k`` is
kept TR ``j = s - start_k``, i.e. volume ``i = j + trim_start`` of the story's full grid. A fold's
``train`` samples are what brain-tuning may see; its ``test`` samples never (the fold rule).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class BrainTuningError(ValueError):
    """Bad brain-tuning input (subject, story, parameter named in the message)."""


@dataclass(frozen=True)
class SampleIndex:
    """Where each sample of the concatenated kept TRs lies.

    Attributes
    ----------
    stories : story names in TR-grid order.
    story : int array (n_samples,), the story (index into ``stories``) of each sample.
    volume : int array (n_samples,), its volume on the story's full grid (kept TR + trim_start).
    kept : int array (n_samples,), its row in the story's kept (trimmed) responses.
    """

    stories: tuple[str, ...]
    story: np.ndarray
    volume: np.ndarray
    kept: np.ndarray

    @classmethod
    def from_grids(cls, grids: pd.DataFrame) -> "SampleIndex":
        n = grids["n_trs"].to_numpy(np.int64)
        story = np.repeat(np.arange(len(grids)), n)
        kept = np.concatenate([np.arange(k) for k in n]) if len(n) else np.zeros(0, np.int64)
        volume = kept + np.repeat(grids["trim_start"].to_numpy(np.int64), n)
        return cls(tuple(map(str, grids["story"])), story, volume, kept)

    def segments(self, samples: np.ndarray) -> list[np.ndarray]:
        """``samples`` (sorted) cut into runs of consecutive samples within one story."""
        return consecutive_runs(samples, self.story)


def consecutive_runs(samples: np.ndarray, story_of_sample: np.ndarray) -> list[np.ndarray]:
    """``samples`` (sorted) cut into runs of consecutive samples of one story (``story_of_sample``:
    the story label of every sample)."""
    samples = np.sort(np.asarray(samples, np.int64))
    if samples.size == 0:
        return []
    labels = np.asarray(story_of_sample)[samples]
    cut = np.flatnonzero((np.diff(samples) != 1) | (labels[1:] != labels[:-1])) + 1
    return np.split(samples, cut)


def split_validation(index: SampleIndex, train: np.ndarray, method: str = "auto", n_stories: int = 1,
                     tail_share: float = 0.2, gap: int = 5, fold: int | str = "?") -> tuple[np.ndarray, np.ndarray]:
    """Split a fold's training samples into the samples the optimiser sees and the validation
    samples that decide early stopping.

    Parameters
    ----------
    index : the study's samples.
    train : the fold's training samples.
    method : ``stories``: the last ``n_stories`` training stories (TR-grid order) validate;
        ``tail``: the last ``tail_share`` of every run of consecutive training samples validates,
        with ``gap`` samples before it dropped from both; ``auto``: ``stories`` when the fold
        trains on at least ``n_stories + 2`` stories, else ``tail``.

    Returns
    -------
    fit, validation : sorted int arrays of samples, disjoint, both within ``train``.

    Raises
    ------
    BrainTuningError when the split leaves nothing to fit or to validate (naming the fold).
    """
    train = np.sort(np.asarray(train, np.int64))
    stories = sorted(set(index.story[train].tolist()))
    if method == "auto":
        method = "stories" if len(stories) >= int(n_stories) + 2 else "tail"
    if method == "stories":
        if len(stories) <= int(n_stories):
            raise BrainTuningError(
                f"brain_tuning fold {fold}: validation by stories needs more than {n_stories} training "
                f"stories, the fold trains on {len(stories)} ({[index.stories[k] for k in stories]}); use "
                f"brain_tuning.validation.method: tail, or fewer validation stories")
        val_stories = stories[-int(n_stories):]
        is_val = np.isin(index.story[train], val_stories)
        return train[~is_val], train[is_val]
    if method != "tail":
        raise BrainTuningError(f"brain_tuning.validation.method must be auto, stories or tail, got {method!r}")
    if not 0 < float(tail_share) < 1:
        raise BrainTuningError(f"brain_tuning.validation.tail_share must be in (0, 1), got {tail_share!r}")
    fit, val = [], []
    for seg in index.segments(train):
        n_val = int(np.ceil(float(tail_share) * len(seg)))
        n_fit = len(seg) - n_val - int(gap)
        if n_val < 1 or n_fit < 1:
            fit.append(seg)      # too short to split: all of it is fitted
            continue
        fit.append(seg[:n_fit])
        val.append(seg[len(seg) - n_val:])
    fit = np.concatenate(fit) if fit else np.zeros(0, np.int64)
    val = np.concatenate(val) if val else np.zeros(0, np.int64)
    if fit.size == 0 or val.size == 0:
        raise BrainTuningError(f"brain_tuning fold {fold}: the {len(train)} training samples leave "
                               f"{fit.size} to fit and {val.size} to validate (tail_share {tail_share}, gap {gap})")
    return fit, val


def chunks(index: SampleIndex, samples: np.ndarray, size: int) -> list[np.ndarray]:
    """``samples`` as runs of at most ``size`` consecutive samples of one story (a training step
    computes the stimulus representation of a run and of the ``max(delays)`` volumes before it once)."""
    out = []
    for seg in index.segments(samples):
        out += [seg[i:i + int(size)] for i in range(0, len(seg), int(size))]
    return out


def permute_blocks(n: int, block_len: int, rng: np.random.Generator) -> np.ndarray:
    """An order of ``n`` rows that shuffles whole blocks of ``block_len`` consecutive rows (the
    last block shorter): ``Y[order]`` is the permuted control's responses of one story, the same
    multiset of rows with the stimulus link broken beyond ``block_len``. Never the identity when
    there are at least two blocks (a draw that keeps every block in place is drawn again).

    Returns
    -------
    int array (n,), a permutation of ``arange(n)``.
    """
    if int(block_len) < 1:
        raise BrainTuningError(f"brain_tuning.permute_block_len must be >= 1, got {block_len!r}")
    starts = np.arange(0, int(n), int(block_len))
    order = rng.permutation(len(starts))
    while len(starts) > 1 and np.array_equal(order, np.arange(len(starts))):   # never the identity
        order = rng.permutation(len(starts))
    return np.concatenate([np.arange(s, min(s + int(block_len), n)) for s in starts[order]]) if n else np.zeros(0, np.int64)


def permuted_responses(responses: dict, stories: list[str], block_len: int, seed: int) -> dict:
    """Every subject's responses with the TR blocks of each story shuffled; one order per story,
    shared by the subjects (so that a jointly tuned backbone sees one consistent, stimulus-free
    mapping, as a single participant's run would).

    Parameters
    ----------
    responses : subject -> story -> (n_trs, n_targets) arrays.

    Returns
    -------
    the same structure, float32 copies.
    """
    rng = np.random.default_rng(seed)
    orders = {}
    for s in stories:
        lengths = {len(responses[sub][s]) for sub in responses}
        if len(lengths) != 1:
            raise BrainTuningError(f"brain_tuning: story {s} has different lengths across subjects {sorted(lengths)}")
        orders[s] = permute_blocks(lengths.pop(), block_len, rng)
    return {sub: {s: np.asarray(r[s], np.float32)[orders[s]] for s in stories} for sub, r in responses.items()}


def select_targets(targets: dict[str, pd.DataFrame], responses: dict, index: SampleIndex, train: np.ndarray,
                   rois=None, min_ceiling: float | None = None) -> dict[str, np.ndarray]:
    """The targets each tuned subject's head predicts.

    Parameters
    ----------
    targets : subject -> targets table (target, roi, ...), one row per response column.
    responses : subject -> story -> (n_trs, n_targets); the subjects to tune on.
    index, train : the samples and the fold's training samples (a ceiling sees only these).
    rois : None (all) or a list of ROI names.
    min_ceiling : None, or keep targets whose inter-subject noise ceiling
        (:func:`brainalign.core.encoding.metrics.intersubject_ceiling`, on the training samples
        only; needs >= 3 subjects with the same targets) is at least this.

    Returns
    -------
    subject -> int array of response columns.

    Raises
    ------
    BrainTuningError naming the subject when nothing is selected, a ROI is unknown, or the
    ceiling cannot be computed.
    """
    out = {}
    for sub in responses:
        t = targets[sub]
        keep = np.ones(len(t), bool)
        if rois is not None:
            rois = [str(r) for r in rois]
            unknown = sorted(set(rois) - set(t["roi"].astype(str)))
            if unknown:
                raise BrainTuningError(f"brain_tuning.targets.rois: subject {sub} has no ROI {unknown} "
                                       f"(its ROIs: {sorted(set(t['roi'].astype(str)))})")
            keep &= t["roi"].astype(str).isin(rois).to_numpy()
        out[sub] = keep
    if min_ceiling is not None:
        from ..encoding.metrics import intersubject_ceiling

        subs = list(responses)
        if len(subs) < 3 or len({len(targets[s]) for s in subs}) != 1:
            raise BrainTuningError(
                f"brain_tuning.targets.min_ceiling needs >= 3 tuned subjects with the same targets for an "
                f"inter-subject ceiling (got {subs}); select targets with brain_tuning.targets.rois instead")
        train = np.sort(np.asarray(train, np.int64))
        ceiling = intersubject_ceiling([training_matrix(responses[s], index, train, np.arange(len(targets[s])))
                                        for s in subs])
        for k, sub in enumerate(subs):
            out[sub] &= ceiling[k] >= float(min_ceiling)
    for sub, keep in out.items():
        if not keep.any():
            raise BrainTuningError(
                f"brain_tuning: no target of subject {sub} passes the selection (rois {rois}, min_ceiling "
                f"{min_ceiling}); lower brain_tuning.targets.min_ceiling or list other ROIs")
    return {sub: np.flatnonzero(keep) for sub, keep in out.items()}


def training_matrix(responses: dict, index: SampleIndex, samples: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Rows ``samples`` (in their order) and ``columns`` of one subject's responses (story ->
    (n_trs, n_targets)), float32 (len(samples), len(columns))."""
    samples = np.asarray(samples, np.int64)
    out = np.zeros((len(samples), len(columns)), np.float32)
    for k in np.unique(index.story[samples]):
        sel = index.story[samples] == k
        out[sel] = np.asarray(responses[index.stories[k]], np.float32)[index.kept[samples[sel]]][:, columns]
    return out
