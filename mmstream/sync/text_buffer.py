"""Text utterances held for windows: an utterance belongs to every window it overlaps, and to
those starting at most the text horizon after it ended."""

from __future__ import annotations

from dataclasses import dataclass

from mmstream.messages import TextUtterance


@dataclass
class HeldUtterance:
    start_ns: int  # node clock (offset applied)
    end_ns: int  # node clock; a zero-length utterance is treated as lasting 1 ns
    utterance: TextUtterance

    @property
    def key(self) -> tuple[int, int, str, str]:
        return (self.start_ns, self.end_ns, self.utterance.text, self.utterance.source)


class TextBuffer:
    def __init__(self, capacity: int, horizon_ns: int) -> None:
        self._capacity = capacity
        self.horizon_ns = horizon_ns
        self._held: list[HeldUtterance] = []
        self._keys: set[tuple[int, int, str, str]] = set()

    def __len__(self) -> int:
        return len(self._held)

    def clear(self) -> None:
        self._held.clear()
        self._keys.clear()

    def relevant_until_ns(self, u: HeldUtterance) -> int:
        """Windows starting before this time can hold ``u``."""
        return u.end_ns + self.horizon_ns

    def push(self, u: HeldUtterance) -> tuple[bool, int]:
        """Insert; returns (inserted, utterances evicted because the buffer was full)."""
        if u.key in self._keys:
            return False, 0
        self._held.append(u)
        self._held.sort(key=lambda h: (h.start_ns, h.end_ns, h.utterance.text))
        self._keys.add(u.key)
        evicted = 0
        while len(self._held) > self._capacity:
            old = min(self._held, key=lambda h: h.end_ns)
            self._held.remove(old)
            self._keys.discard(old.key)
            evicted += 1
        return True, evicted

    def select(self, start_ns: int, end_ns: int) -> list[HeldUtterance]:
        """Utterances overlapping [start, end) or ending within the horizon before start."""
        return [u for u in self._held if u.start_ns < end_ns and self.relevant_until_ns(u) > start_ns]

    def earliest_ns(self) -> int | None:
        return min((u.start_ns for u in self._held), default=None)

    def trim_before(self, window_start_ns: int) -> None:
        """Forget utterances that no window starting at or after ``window_start_ns`` can hold."""
        keep = [u for u in self._held if self.relevant_until_ns(u) > window_start_ns]
        if len(keep) != len(self._held):
            self._held = keep
            self._keys = {u.key for u in keep}
