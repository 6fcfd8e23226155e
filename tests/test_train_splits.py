"""Splits by session/speaker: deterministic, never leaking a group across splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmstream.train.splits import SplitError, assign_splits, check_no_leakage, split_indices


@given(st.lists(st.integers(0, 12), min_size=3, max_size=300), st.integers(0, 5))
def test_no_group_in_two_splits_and_every_window_once(group_ids: list[int], seed: int) -> None:
    groups = [f"spk{g}" for g in group_ids]
    if len(set(groups)) < 3:
        with pytest.raises(SplitError):
            split_indices(groups, seed=seed)
        return
    splits = split_indices(groups, seed=seed)
    check_no_leakage(groups, splits)
    allidx = np.sort(np.concatenate(list(splits.values())))
    assert allidx.tolist() == list(range(len(groups)))
    for name in ("train", "val", "test"):
        assert len(splits[name]) > 0, name
    owner = {}
    for name, idx in splits.items():
        for i in idx:
            assert owner.setdefault(groups[i], name) == name


def test_deterministic_and_independent_of_order() -> None:
    groups = [f"s{i % 17}" for i in range(500)]
    a = assign_splits(groups, seed=3)
    b = assign_splits(list(reversed(groups)), seed=3)
    assert a == b
    assert assign_splits(groups, seed=4) != a  # the seed changes the deal


def test_fractions_roughly_respected() -> None:
    groups = [f"s{i % 40}" for i in range(4000)]
    sizes = {k: len(v) for k, v in split_indices(groups, (0.7, 0.15, 0.15)).items()}
    assert abs(sizes["train"] / 4000 - 0.7) < 0.05
    assert abs(sizes["val"] / 4000 - 0.15) < 0.05


def test_leak_is_detected() -> None:
    groups = ["a", "a", "b", "c"]
    with pytest.raises(SplitError, match="group 'a' leaks"):
        check_no_leakage(groups, {"train": np.array([0]), "val": np.array([1, 2]), "test": np.array([3])})
    with pytest.raises(SplitError, match="window 0"):
        check_no_leakage(groups, {"train": np.array([0, 1]), "val": np.array([0]), "test": np.array([3])})


def test_zero_fraction_split_stays_empty() -> None:
    s = split_indices(["a", "b", "c", "d"], (0.5, 0.5, 0.0))
    assert len(s["test"]) == 0 and len(s["train"]) and len(s["val"])
