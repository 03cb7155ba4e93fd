"""core/folds.py: fold structure properties and the folds-table round trip."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.core.encoding.folds import (_Splits, contiguous_blocks, folds_from_table, folds_to_table,
                                   inner_splits, leave_stories_out, make_folds, story_offsets)


def _story_labels(n_trs):
    return np.repeat(np.arange(len(n_trs)), n_trs)


def test_story_offsets():
    np.testing.assert_array_equal(story_offsets([3, 5, 2]), [0, 3, 8, 10])


@pytest.mark.parametrize("n_folds", [None, 5, 10])
def test_leave_one_story_out(n_folds):
    n_trs = [7, 12, 5, 9, 11]
    labels = _story_labels(n_trs)
    total = sum(n_trs)
    folds = leave_stories_out(n_trs, n_folds)
    assert len(folds) == len(n_trs)
    seen = []
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(total))
        held = np.unique(labels[test])
        assert len(held) == 1  # one whole story
        assert (labels[test] == held[0]).sum() == n_trs[held[0]]
        assert not np.isin(held[0], labels[train])
        seen.append(held[0])
    assert sorted(seen) == list(range(len(n_trs)))  # each story tested exactly once


def test_leave_stories_out_round_robin_groups():
    n_trs = [4, 6, 5, 3, 7]
    labels = _story_labels(n_trs)
    folds = leave_stories_out(n_trs, 2)
    assert len(folds) == 2
    groups = [sorted(np.unique(labels[test]).tolist()) for _, test in folds]
    assert groups == [[0, 2, 4], [1, 3]]  # dealt round robin
    all_test = np.sort(np.concatenate([t for _, t in folds]))
    np.testing.assert_array_equal(all_test, np.arange(sum(n_trs)))  # tested exactly once
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        assert len(train) + len(test) == sum(n_trs)
        # whole stories only
        assert set(np.unique(labels[train])).isdisjoint(np.unique(labels[test]))


def test_leave_stories_out_needs_two_stories():
    with pytest.raises(ValueError, match="at least 2"):
        leave_stories_out([30])


@pytest.mark.parametrize("n,k,gap", [(100, 5, 5), (53, 4, 3), (40, 3, 0), (97, 7, 2)])
def test_contiguous_blocks_properties(n, k, gap):
    folds = contiguous_blocks(n, k, gap)
    assert len(folds) == k
    tests = [t for _, t in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(n))  # cover, once
    for train, test in folds:
        assert np.all(np.diff(test) == 1)  # contiguous
        assert len(np.intersect1d(train, test)) == 0
        # every train index is more than `gap` away from every test index
        dist = np.abs(train[:, None] - test[None, :]).min()
        assert dist > gap
        # ...and exactly `gap` samples are dropped on each side (no more)
        lo, hi = test[0], test[-1] + 1
        expected_train = [i for i in range(n) if i < lo - gap or i >= hi + gap]
        np.testing.assert_array_equal(train, expected_train)
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1  # balanced


def test_contiguous_blocks_errors():
    with pytest.raises(ValueError, match="at least 2"):
        contiguous_blocks(100, 1)
    with pytest.raises(ValueError, match="too few"):
        contiguous_blocks(10, 2, gap=10)


def test_make_folds_dispatch():
    a = make_folds([10, 12, 8])
    b = leave_stories_out([10, 12, 8])
    assert len(a) == 3
    for (tr1, te1), (tr2, te2) in zip(a, b):
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_array_equal(te1, te2)
    single = make_folds([50], gap=2)
    assert len(single) == 5  # contiguous blocks, default 5 folds
    for train, test in single:
        assert np.abs(train[:, None] - test[None, :]).min() > 2
    forced = make_folds([20, 30], method="contiguous_blocks", n_folds=3, gap=1)
    assert len(forced) == 3
    with pytest.raises(ValueError, match="unknown fold method"):
        make_folds([10, 10], method="kfold")


def test_folds_table_round_trip():
    folds = contiguous_blocks(60, 4, 3) + leave_stories_out([20, 25, 15])
    table = folds_to_table(folds)
    assert list(table.columns) == ["fold", "sample", "role"]
    assert set(table["role"]) == {"train", "test"}
    # gap samples appear in neither role
    f0 = table[table["fold"] == 1]
    assert len(f0) == 60 - 6
    back = folds_from_table(table)
    assert len(back) == len(folds)
    for (tr1, te1), (tr2, te2) in zip(folds, back):
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_array_equal(te1, te2)
    # order of rows in the table does not matter
    shuffled = table.sample(frac=1.0, random_state=0)
    for (tr1, te1), (tr2, te2) in zip(folds, folds_from_table(shuffled)):
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_array_equal(te1, te2)


def test_folds_table_is_a_plain_dataframe_with_parquet_friendly_types(tmp_path):
    table = folds_to_table(leave_stories_out([5, 6]))
    table.to_csv(tmp_path / "f.csv", index=False)
    back = folds_from_table(pd.read_csv(tmp_path / "f.csv"))
    np.testing.assert_array_equal(back[0][1], np.arange(5))
    np.testing.assert_array_equal(back[1][1], np.arange(5, 11))


def test_inner_splits_leave_one_story_out_within_train():
    n_trs = [10, 8, 12, 9]
    labels = _story_labels(n_trs)
    outer = leave_stories_out(n_trs)
    train, _ = outer[1]  # stories 0, 2, 3
    splits = inner_splits(train, labels, n_inner=5, gap=5)
    assert len(splits) == 3
    held = []
    for itr, iva in splits:
        # positions within train
        assert itr.max() < len(train) and iva.max() < len(train)
        np.testing.assert_array_equal(np.sort(np.r_[itr, iva]), np.arange(len(train)))
        st = np.unique(labels[train][iva])
        assert len(st) == 1
        assert not np.isin(st[0], labels[train][itr])
        held.append(int(st[0]))
    assert held == [0, 2, 3]  # in order of first appearance


def test_inner_splits_story_order_of_first_appearance():
    labels = np.array(["c"] * 5 + ["a"] * 5 + ["b"] * 5)
    splits = inner_splits(np.arange(15), labels)
    assert [labels[va][0] for _, va in splits] == ["c", "a", "b"]


def test_inner_splits_falls_back_to_blocks_with_gap():
    labels = _story_labels([30, 40, 20])
    train = np.flatnonzero(labels != 2)  # 2 stories left -> contiguous blocks
    splits = inner_splits(train, labels, n_inner=4, gap=3)
    assert len(splits) == 4
    n = len(train)
    np.testing.assert_array_equal(np.sort(np.concatenate([v for _, v in splits])), np.arange(n))
    for itr, iva in splits:
        assert np.all(np.diff(iva) == 1)
        assert np.abs(itr[:, None] - iva[None, :]).min() > 3
        assert itr.max() < n
    # one story (the whole training set) -> blocks too
    one = inner_splits(np.arange(50), np.zeros(50, int), n_inner=5, gap=2)
    assert len(one) == 5 and all(len(v) == 10 for _, v in one)


def test_splits_wrapper_interface():
    folds = contiguous_blocks(30, 3, 1)
    sp = _Splits(folds)
    assert sp.get_n_splits() == 3
    got = list(sp.split(np.zeros((30, 2))))
    assert len(got) == 3
    for (a, b), (c, d) in zip(got, folds):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_held_out_stories_and_train_only():
    from brainalign.core.encoding.folds import held_out_stories, tested_stories

    n = [10, 12, 8, 6]
    (train, test), = make_folds(n, "held_out_stories", stories=list("abcd"), test_stories=["c"])
    np.testing.assert_array_equal(test, np.arange(22, 30))
    np.testing.assert_array_equal(train, np.r_[np.arange(22), np.arange(30, 36)])
    assert len(held_out_stories(n, [0, 3])) == 1
    folds = make_folds(n, "leave_stories_out", stories=list("abcd"), train_only_stories=["b"])
    assert len(folds) == 3
    for tr, te in folds:  # story b (samples 10..21) is always trained on, never tested
        assert set(range(10, 22)) <= set(tr) and not set(range(10, 22)) & set(te)
    assert tested_stories(folds, n, list("abcd")) == ["a", "c", "d"]
    with pytest.raises(ValueError, match="cv.test_stories.*'z'"):
        make_folds(n, "held_out_stories", stories=list("abcd"), test_stories=["z"])
    with pytest.raises(ValueError, match="at least one test story"):
        make_folds(n, "held_out_stories", stories=list("abcd"))
    with pytest.raises(ValueError, match="none is left to train"):
        held_out_stories([5, 5], [0, 1])
    with pytest.raises(ValueError, match="leave-stories-out needs"):
        leave_stories_out([5, 5], train_only=[0, 1])
