"""Camera frames held for windows, sorted by (node-clock) stamp; nearest frame per slot."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from mmstream.messages import ImageFrame


@dataclass
class HeldFrame:
    t_ns: int  # stamp on the node clock (offset applied)
    frame: ImageFrame


class FrameBuffer:
    """At most ``capacity`` frames sorted by stamp; equal stamps keep the first (counted duplicate)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._times: list[int] = []
        self._frames: list[HeldFrame] = []

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        self._times.clear()
        self._frames.clear()

    def push(self, t_ns: int, frame: ImageFrame) -> tuple[bool, int]:
        """Insert; returns (inserted, frames evicted because the buffer was full)."""
        i = bisect.bisect_left(self._times, t_ns)
        if i < len(self._times) and self._times[i] == t_ns:
            return False, 0
        self._times.insert(i, t_ns)
        self._frames.insert(i, HeldFrame(t_ns, frame))
        evicted = 0
        while len(self._frames) > self._capacity:
            self._times.pop(0)
            self._frames.pop(0)
            evicted += 1
        return True, evicted

    def nearest(self, slot_ns: int, tolerance_ns: int, lo_ns: int, hi_ns: int) -> HeldFrame | None:
        """The frame closest to ``slot_ns`` within the tolerance and inside [lo_ns, hi_ns);
        on a tie the earlier one."""
        i = bisect.bisect_left(self._times, slot_ns)
        best: HeldFrame | None = None
        best_d = tolerance_ns + 1
        for j in (i - 1, i):  # earlier candidate first: wins ties
            if 0 <= j < len(self._times) and lo_ns <= self._times[j] < hi_ns:
                d = abs(self._times[j] - slot_ns)
                if d < best_d:
                    best, best_d = self._frames[j], d
        return best

    def earliest_ns(self) -> int | None:
        return self._times[0] if self._times else None

    def trim_before(self, t_ns: int) -> None:
        i = bisect.bisect_left(self._times, t_ns)
        if i:
            del self._times[:i]
            del self._frames[:i]
