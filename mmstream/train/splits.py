"""Deterministic train/val/test splits by group (session or speaker), never by window.

Every window carries its session and speaker; all windows of one group land in the same split,
so windows cut from one clip (which overlap in time and share a speaker) never leak across splits.
Groups are ordered by a seeded hash of their name (stable across machines and Python runs,
unlike ``hash()``), then dealt to the splits by cumulative window count against the fractions.
Each split gets at least one group while there are enough groups.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Sequence

import numpy as np

from mmstream.errors import MmstreamError

SPLITS = ("train", "val", "test")


class SplitError(MmstreamError):
    """A split cannot be made as asked (too few groups, bad fractions) or leaks."""


def _rank(group: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def assign_splits(groups: Sequence[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, str]:
    """group name -> "train"/"val"/"test", weighting each group by how many windows it has."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise SplitError(f"split fractions {fractions} must be three non-negative numbers")
    total_f = float(sum(fractions))
    fr = [f / total_f for f in fractions]
    counts = Counter(groups)
    names = sorted(counts, key=lambda g: _rank(g, seed))
    wanted = [i for i, f in enumerate(fr) if f > 0]
    if len(names) < len(wanted):
        raise SplitError(f"{len(names)} groups cannot fill {len(wanted)} non-empty splits "
                         f"(fractions {fractions}); record more sessions/speakers or change split.by")
    total = sum(counts.values())
    out: dict[str, str] = {}
    bounds = np.cumsum(fr) * total
    done = 0
    for pos, g in enumerate(names):
        remaining_groups = len(names) - pos
        # index of the split the cumulative count falls in
        k = int(np.searchsorted(bounds, done + counts[g] / 2.0, side="right"))
        k = min(k, 2)
        # keep enough groups for the later non-empty splits that have none yet
        later_empty = [j for j in wanted if j > k and j not in {SPLITS.index(v) for v in out.values()}]
        if remaining_groups <= len(later_empty):
            k = later_empty[0]
        while fr[k] == 0:
            k = min(k + 1, 2) if any(fr[j] > 0 for j in range(k + 1, 3)) else max(j for j in wanted)
        out[g] = SPLITS[k]
        done += counts[g]
    # a wanted split still empty (one big group swallowed its share): give it the smallest group of
    # the split that has the most groups
    for j in wanted:
        if SPLITS[j] in out.values():
            continue
        members = {s: [g for g in names if out[g] == s] for s in SPLITS}
        donor = max(members, key=lambda s: (len(members[s]), -SPLITS.index(s)))
        if len(members[donor]) < 2:
            raise SplitError(f"cannot give split {SPLITS[j]!r} a group without emptying another "
                             f"(groups: {dict(counts)})")
        g = min(members[donor], key=lambda g: (counts[g], _rank(g, seed)))
        out[g] = SPLITS[j]
    return out


def split_indices(groups: Sequence[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, np.ndarray]:
    """split name -> sorted int64 window indices."""
    mapping = assign_splits(groups, fractions, seed)
    idx: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, g in enumerate(groups):
        idx[mapping[g]].append(i)
    return {s: np.asarray(v, np.int64) for s, v in idx.items()}


def check_no_leakage(groups: Sequence[str], splits: dict[str, np.ndarray]) -> None:
    """SplitError if one group has windows in two splits, or a window is in two splits."""
    seen: dict[str, str] = {}
    owner: dict[int, str] = {}
    for name, idx in splits.items():
        for i in idx.tolist():
            if i in owner:
                raise SplitError(f"window {i} is in both {owner[i]!r} and {name!r}")
            owner[i] = name
            g = groups[i]
            if seen.setdefault(g, name) != name:
                raise SplitError(f"group {g!r} leaks: windows in {seen[g]!r} and {name!r}")
