"""Clocks. Every stamp is integer nanoseconds.

:class:`HostClock` is epoch-based (comparable across processes on one host) but built on the
monotonic clock, so it never steps backwards while a process runs, whatever NTP does.
:class:`SimClock` follows the bag player's ``/clock`` topic on replay (``use_sim_time``).
"""

from __future__ import annotations

import time

#: nanoseconds per second: every stamp and duration in mmstream is integer nanoseconds
NS_PER_S = 1_000_000_000


class HostClock:
    """Wall-clock epoch nanoseconds that never step backwards within a process."""

    def __init__(self) -> None:
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def now_ns(self) -> int:
        return time.monotonic_ns() + self._offset_ns


class SimClock:
    """Time set from outside (the player's Clock messages); 0 until the first one arrives."""

    def __init__(self) -> None:
        self._now_ns = 0

    def now_ns(self) -> int:
        return self._now_ns

    def set(self, stamp_ns: int) -> None:
        # Monotonic within a run; a player that loops or seeks back restarts time explicitly.
        self._now_ns = int(stamp_ns)


_HOST = HostClock()


def host_now_ns() -> int:
    """The process-wide host clock."""
    return _HOST.now_ns()
