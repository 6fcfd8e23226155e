"""message_filters-style pairing of discrete streams (two cameras, a camera and a detector).

Same semantics as ROS 2 ``message_filters`` (Python): ``TimeSynchronizer(fs, queue_size)`` and
``ApproximateTimeSynchronizer(fs, queue_size, slop)``, without the transport: call
``add(input_index, msg)``; matched sets come back as tuples (input order) and go to any callbacks
registered with ``register_callback`` *after* the queues were updated.

Shared rules (as in message_filters):

* each input has a queue keyed by integer stamp (ns); when a queue holds more than
  ``queue_size`` messages the oldest stamp is evicted (counted in ``stats["evicted"]``);
* a message with the same stamp as one already queued on that input replaces it — as in
  message_filters, but counted (``stats["replaced"]``) rather than silent;
* a matched set is removed from every queue.

Exact: whenever a stamp is present in every queue the set is emitted (oldest first).

Approximate: when message m (stamp t) arrives on input i, for every other input take the queued
stamps with |s - t| <= slop, ordered by that distance; if some input has none, nothing happens.
Combinations are tried in ``itertools.product`` order (closest first, last input varying fastest)
and the first whose stamps span strictly less than ``slop`` (max - min < slop) is emitted — one
set per ``add``. Only the arriving message's neighbourhood is searched, so a set completed by an
earlier arrival is found only when a later message of that set arrives (as in message_filters).

The C++ policies (``ApproximateTime`` with its pivot search and age penalty, and
``ApproximateEpsilonTime``), whose sets differ from these, are in :mod:`mmstream.sync.pairing_cpp`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from mmstream.clock import NS_PER_S


def header_stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp_ns)


class ExactTimeSynchronizer:
    """Emit sets of messages, one per input, whose stamps are identical."""

    def __init__(self, num_inputs: int, queue_size: int, *,
                 stamp_of: Callable[[Any], int] = header_stamp_ns) -> None:
        if num_inputs < 2:
            raise ValueError(f"{type(self).__name__}: num_inputs {num_inputs} (expected >= 2)")
        if queue_size < 1:
            raise ValueError(f"{type(self).__name__}: queue_size {queue_size} (expected >= 1)")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self._stamp_of = stamp_of
        self.queues: list[dict[int, Any]] = [{} for _ in range(num_inputs)]
        self._callbacks: list[Callable[..., None]] = []
        self.stats = {"received": 0, "matched": 0, "evicted": 0, "replaced": 0}

    def register_callback(self, fn: Callable[..., None]) -> None:
        """``fn(*msgs)`` is called with each matched set, in input order."""
        self._callbacks.append(fn)

    def add(self, index: int, msg: Any) -> list[tuple[Any, ...]]:
        """Queue ``msg`` on input ``index``; returns the sets this completed (also sent to callbacks)."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"{type(self).__name__}.add: input {index} (expected 0..{self.num_inputs - 1})")
        stamp = self._stamp_of(msg)
        self.stats["received"] += 1
        queue = self.queues[index]
        if stamp in queue:
            self.stats["replaced"] += 1
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.stats["evicted"] += 1
        matched = self._match(index, stamp)
        self.stats["matched"] += len(matched)
        for msgs in matched:
            for fn in self._callbacks:
                fn(*msgs)
        return matched

    def _match(self, index: int, stamp: int) -> list[tuple[Any, ...]]:
        common = set(self.queues[0]).intersection(*self.queues[1:])
        out = []
        for t in sorted(common):
            out.append(tuple(q.pop(t) for q in self.queues))
        return out


class ApproximateTimeSynchronizer(ExactTimeSynchronizer):
    """Emit sets whose stamps lie within ``slop_s`` of each other (message_filters semantics)."""

    def __init__(self, num_inputs: int, queue_size: int, slop_s: float, *,
                 stamp_of: Callable[[Any], int] = header_stamp_ns) -> None:
        super().__init__(num_inputs, queue_size, stamp_of=stamp_of)
        if slop_s < 0:
            raise ValueError(f"ApproximateTimeSynchronizer: slop_s {slop_s} (expected >= 0)")
        self.slop_ns = int(round(slop_s * NS_PER_S))

    def _match(self, index: int, stamp: int) -> list[tuple[Any, ...]]:
        others: list[Sequence[int]] = []
        for j, q in enumerate(self.queues):
            if j == index:
                continue
            near = sorted((s for s in q if abs(s - stamp) <= self.slop_ns), key=lambda s: abs(s - stamp))
            if not near:
                return []
            others.append(near)
        for combo in itertools.product(*others):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self.slop_ns and all(t in q for q, t in zip(self.queues, stamps)):
                return [tuple(q.pop(t) for q, t in zip(self.queues, stamps))]
        return []
