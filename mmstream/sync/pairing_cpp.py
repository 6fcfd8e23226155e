"""The C++ ``message_filters`` pairing policies, without the transport: ``ApproximateTime`` and
``ApproximateEpsilonTime``.

ROS 2 (and ROS 1) C++ nodes pair streams with ``message_filters::sync_policies::ApproximateTime``,
whose sets differ from the Python slop policy in :mod:`mmstream.sync.pairing`: it needs no slop,
it emits each set as soon as no later message can make a better one, and it uses every input's
*future* as well as its past. Users porting a C++ pipeline expect those sets; these classes give
them, transport-free, on integer nanosecond stamps (``add(input_index, msg)`` returns the sets it
completed, in input order, and ``register_callback`` callbacks get them after the state changed).

:class:`ApproximateTimePolicy` — the pivot algorithm of the C++ policy:

* one queue per input (``deque``) plus the messages already looked at for the current candidate
  (``past``); the candidate is the set of queue fronts with the smallest span found so far, its
  *pivot* the input of its newest message;
* while every queue has a message: the fronts' oldest (``start``, lowest input on ties) and newest
  (``end``, highest input on ties). Without a candidate, a span over ``max_interval_ns`` or a newest
  input that just dropped a message makes the oldest front go (deleted); otherwise the fronts become
  the candidate. With one, the fronts replace it when ``(end - cand_end) * (1 + age_penalty) <
  start - cand_start``; either way the oldest front moves to ``past``;
* the candidate is published once the oldest front is the pivot's, or once even the newest message
  could not beat it (``(end - cand_end) * (1 + age_penalty) >= pivot - cand_start``), or — when a
  queue ran empty — once the *virtual* fronts say so: an empty input's virtual time is
  ``max(pivot time, its last stamp + inter_message_lower_bound)``, the earliest a message of it can
  still come. Publishing removes the set; what was moved to ``past`` goes back to the queues;
* a queue holding more than ``queue_size`` messages (queue and past together) drops its oldest
  (``stats["evicted"]``) and the search restarts; the input that dropped cannot be the newest of the
  next candidate until another input has moved on (the C++ ``has_dropped_messages``);
* durations scaled by ``1 + age_penalty`` truncate toward zero, as ``rclcpp::Duration * double``;
* messages closer together than an input's ``inter_message_lower_bound`` or out of order are
  counted (``stats["bound_violations"]``) and logged once per input, as the C++ policy warns once.

:class:`ApproximateEpsilonTimePolicy` — a set is the fronts of every queue when all lie within
``epsilon_ns`` after the oldest front (inclusive); otherwise the oldest front and every front within
``epsilon`` of it are dropped and the search goes on. A queue beyond ``queue_size`` drops its oldest
(only checked while some queue is empty, as upstream).

Ties, tie-breaks and the order of sets follow the C++ headers; ``tests/test_pairing_cpp.py`` runs
the upstream test cases (test_approximate_time_policy.cpp, test_approximate_epsilon_time_policy.cpp).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from mmstream.sync.pairing import header_stamp_ns

_log = logging.getLogger(__name__)

#: ``max_interval_ns`` default: the C++ Duration(INT32_MAX s, 999999999 ns), i.e. no limit in practice
NO_MAX_INTERVAL_NS = (2**31 - 1) * 1_000_000_000 + 999_999_999

Entry = tuple[int, Any]  # (stamp_ns, message)


class _PolicyBase:
    """Inputs, callbacks and stats shared by both policies."""

    def __init__(self, num_inputs: int, queue_size: int, stamp_of: Callable[[Any], int]) -> None:
        name = type(self).__name__
        if num_inputs < 2:
            raise ValueError(f"{name}: num_inputs {num_inputs} (expected >= 2)")
        if queue_size < 1:
            raise ValueError(f"{name}: queue_size {queue_size} (expected >= 1)")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self._stamp_of = stamp_of
        self._callbacks: list[Callable[..., None]] = []
        self.stats = {"received": 0, "matched": 0, "evicted": 0, "bound_violations": 0}

    def register_callback(self, fn: Callable[..., None]) -> None:
        """``fn(*msgs)`` is called with each set, in input order, after ``add`` updated the queues."""
        self._callbacks.append(fn)

    def add(self, index: int, msg: Any) -> list[tuple[Any, ...]]:
        """Queue ``msg`` on input ``index``; returns the sets this completed (also sent to callbacks)."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"{type(self).__name__}.add: input {index} (expected 0..{self.num_inputs - 1})")
        self.stats["received"] += 1
        out: list[tuple[Any, ...]] = []
        self._add((int(self._stamp_of(msg)), msg), index, out)
        self.stats["matched"] += len(out)
        for msgs in out:
            for fn in self._callbacks:
                fn(*msgs)
        return out

    def _add(self, entry: Entry, index: int, out: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError


class ApproximateTimePolicy(_PolicyBase):
    """``message_filters::sync_policies::ApproximateTime`` (C++): the pivot algorithm with age penalty."""

    def __init__(self, num_inputs: int, queue_size: int, *, age_penalty: float = 0.1,
                 max_interval_ns: int = NO_MAX_INTERVAL_NS,
                 inter_message_lower_bounds_ns: Sequence[int] | None = None,
                 stamp_of: Callable[[Any], int] = header_stamp_ns) -> None:
        super().__init__(num_inputs, queue_size, stamp_of)
        if not age_penalty >= 0:
            raise ValueError(f"ApproximateTimePolicy: age_penalty {age_penalty} (expected >= 0)")
        if max_interval_ns < 0:
            raise ValueError(f"ApproximateTimePolicy: max_interval_ns {max_interval_ns} (expected >= 0)")
        self.age_penalty = float(age_penalty)
        self._scale = Fraction(1.0 + self.age_penalty)  # the double C++ multiplies by, exactly
        self.max_interval_ns = int(max_interval_ns)
        self.lower_bounds_ns = [0] * num_inputs
        for i, bound in enumerate(inter_message_lower_bounds_ns or ()):
            self.set_inter_message_lower_bound(i, bound)
        self._queues: list[deque[Entry]] = [deque() for _ in range(num_inputs)]
        self._past: list[list[Entry]] = [[] for _ in range(num_inputs)]
        self._non_empty = 0
        self._dropped = [False] * num_inputs
        self._warned = [False] * num_inputs
        self._pivot: int | None = None
        self._pivot_ns = 0
        self._candidate: tuple[Entry, ...] = ()
        self._cand_start_ns = 0
        self._cand_end_ns = 0

    def set_inter_message_lower_bound(self, index: int, bound_ns: int) -> None:
        """The least time between two messages of input ``index`` (C++ ``setInterMessageLowerBound``)."""
        if not 0 <= index < self.num_inputs or bound_ns < 0:
            raise ValueError(f"ApproximateTimePolicy: inter-message lower bound {bound_ns} ns for input {index} "
                             f"(expected an input 0..{self.num_inputs - 1} and a bound >= 0)")
        self.lower_bounds_ns[index] = int(bound_ns)

    def pending(self) -> list[int]:
        """Messages held per input (queue and past), for inspection."""
        return [len(q) + len(p) for q, p in zip(self._queues, self._past)]

    # ------------------------------------------------------------------ add
    def _add(self, entry: Entry, index: int, out: list[tuple[Any, ...]]) -> None:
        queue = self._queues[index]
        queue.append(entry)
        if len(queue) == 1:
            self._non_empty += 1
            if self._non_empty == self.num_inputs:
                self._process(out)
        else:
            self._check_bound(index)
        if len(queue) + len(self._past[index]) > self.queue_size:
            self._non_empty = 0
            self._recover_all()
            queue.popleft()  # more than queue_size >= 1 were held: one is left
            self.stats["evicted"] += 1
            self._dropped[index] = True
            if self._pivot is not None:
                self._candidate, self._pivot = (), None
                self._process(out)

    def _check_bound(self, index: int) -> None:
        if self._warned[index]:
            return
        queue = self._queues[index]
        stamp, previous = queue[-1][0], queue[-2][0]
        if stamp < previous:
            what = f"out of order ({stamp} ns after {previous} ns)"
        elif stamp - previous < self.lower_bounds_ns[index]:
            what = (f"{stamp - previous} ns apart, closer than the inter-message lower bound "
                    f"{self.lower_bounds_ns[index]} ns")
        else:
            return
        self._warned[index] = True
        self.stats["bound_violations"] += 1
        _log.warning("ApproximateTimePolicy: messages of input %d arrived %s (logged once per input)", index, what)

    # ------------------------------------------------------------------ the search
    def _scaled(self, duration_ns: int) -> int:
        return int(duration_ns * self._scale)  # int() of a Fraction truncates toward zero

    def _process(self, out: list[tuple[Any, ...]]) -> None:
        n = self.num_inputs
        while self._non_empty == n:
            start_i, start_ns = self._boundary([q[0][0] for q in self._queues], newest=False)
            end_i, end_ns = self._boundary([q[0][0] for q in self._queues], newest=True)
            for i in range(n):
                if i != end_i:
                    self._dropped[i] = False
            if self._pivot is None:
                if end_ns - start_ns > self.max_interval_ns or self._dropped[end_i]:
                    self._delete_front(start_i)
                    continue
                self._make_candidate(start_ns, end_ns)
                self._pivot, self._pivot_ns = end_i, end_ns
            elif self._scaled(end_ns - self._cand_end_ns) < start_ns - self._cand_start_ns:
                self._make_candidate(start_ns, end_ns)
            self._move_front_to_past(start_i)
            if start_i == self._pivot or self._scaled(end_ns - self._cand_end_ns) >= self._pivot_ns - self._cand_start_ns:
                self._publish(out)
            elif self._non_empty < n:
                self._virtual_search(out)

    def _virtual_search(self, out: list[tuple[Any, ...]]) -> None:
        """A queue ran empty: move on with the earliest times its next message can have."""
        moves = [0] * self.num_inputs
        while True:
            times = [self._virtual_time(i) for i in range(self.num_inputs)]
            start_i, start_ns = self._boundary(times, newest=False)
            _, end_ns = self._boundary(times, newest=True)
            gain = self._scaled(end_ns - self._cand_end_ns)
            if gain >= self._pivot_ns - self._cand_start_ns:
                self._publish(out)  # nothing still to come can beat the candidate
                return
            if gain < start_ns - self._cand_start_ns:
                self._non_empty = 0  # it might be beaten: wait for messages, undoing the virtual moves
                for i, count in enumerate(moves):
                    for _ in range(count):
                        self._queues[i].appendleft(self._past[i].pop())
                    if self._queues[i]:
                        self._non_empty += 1
                return
            self._move_front_to_past(start_i)
            moves[start_i] += 1

    def _virtual_time(self, i: int) -> int:
        if self._queues[i]:
            return self._queues[i][0][0]
        return max(self._past[i][-1][0] + self.lower_bounds_ns[i], self._pivot_ns)

    @staticmethod
    def _boundary(times: list[int], *, newest: bool) -> tuple[int, int]:
        """(input, stamp) of the oldest (lowest input on ties) or newest (highest input on ties) time."""
        index, best = 0, times[0]
        for i, t in enumerate(times):
            if (t < best) != newest:
                index, best = i, t
        return index, best

    # ------------------------------------------------------------------ queue moves
    def _make_candidate(self, start_ns: int, end_ns: int) -> None:
        self._candidate = tuple(q[0] for q in self._queues)
        self._cand_start_ns, self._cand_end_ns = start_ns, end_ns
        for past in self._past:
            past.clear()

    def _delete_front(self, i: int) -> None:
        self._queues[i].popleft()
        if not self._queues[i]:
            self._non_empty -= 1

    def _move_front_to_past(self, i: int) -> None:
        self._past[i].append(self._queues[i].popleft())
        if not self._queues[i]:
            self._non_empty -= 1

    def _recover_all(self) -> None:
        for queue, past in zip(self._queues, self._past):
            queue.extendleft(reversed(past))
            past.clear()
            if queue:
                self._non_empty += 1

    def _publish(self, out: list[tuple[Any, ...]]) -> None:
        out.append(tuple(msg for _, msg in self._candidate))
        self._candidate, self._pivot = (), None
        self._non_empty = 0
        for queue, past in zip(self._queues, self._past):
            queue.extendleft(reversed(past))
            past.clear()
            queue.popleft()  # the candidate's message of this input
            if queue:
                self._non_empty += 1


class ApproximateEpsilonTimePolicy(_PolicyBase):
    """``message_filters::sync_policies::ApproximateEpsilonTime`` (C++): all fronts within ``epsilon_ns``."""

    def __init__(self, num_inputs: int, queue_size: int, epsilon_ns: int, *,
                 stamp_of: Callable[[Any], int] = header_stamp_ns) -> None:
        super().__init__(num_inputs, queue_size, stamp_of)
        if epsilon_ns < 0:
            raise ValueError(f"ApproximateEpsilonTimePolicy: epsilon_ns {epsilon_ns} (expected >= 0)")
        self.epsilon_ns = int(epsilon_ns)
        self._queues: list[deque[Entry]] = [deque() for _ in range(num_inputs)]
        self._non_empty = 0

    def pending(self) -> list[int]:
        return [len(q) for q in self._queues]

    def _add(self, entry: Entry, index: int, out: list[tuple[Any, ...]]) -> None:
        queue = self._queues[index]
        if not queue:
            self._non_empty += 1
        queue.append(entry)
        if self._non_empty == self.num_inputs:
            self._process(out)
        elif len(queue) > self.queue_size:
            self._pop_front(index)
            self.stats["evicted"] += 1

    def _process(self, out: list[tuple[Any, ...]]) -> None:
        while self._non_empty == self.num_inputs:
            fronts = [q[0][0] for q in self._queues]
            oldest_i = min(range(self.num_inputs), key=lambda i: (fronts[i], i))
            oldest_ns = fronts[oldest_i]
            if all(i == oldest_i or oldest_ns + self.epsilon_ns >= t for i, t in enumerate(fronts)):
                out.append(tuple(q[0][1] for q in self._queues))
                for i in range(self.num_inputs):
                    self._pop_front(i)
            else:  # no set with the oldest: it goes, with every front that could only pair with it
                for i, t in enumerate(fronts):
                    if t <= oldest_ns + self.epsilon_ns:
                        self._pop_front(i)

    def _pop_front(self, i: int) -> None:
        self._queues[i].popleft()
        if not self._queues[i]:
            self._non_empty -= 1
