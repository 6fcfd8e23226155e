"""The C++ message_filters policies on the upstream test cases.

Inputs and expected sets transcribed from ros2/message_filters test/test_approximate_time_policy.cpp
and test/test_approximate_epsilon_time_policy.cpp (stamps in seconds; input 0 = A, 1 = B, ...),
plus cases of our own for what upstream does not test (max interval, age penalty 0, eviction counts,
Hypothesis properties on shuffled arrivals).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmstream.messages import ImageFrame
from mmstream.sync.pairing_cpp import ApproximateEpsilonTimePolicy, ApproximateTimePolicy

S = 1_000_000_000


def msg(stamp_ns: int) -> ImageFrame:
    m = ImageFrame()
    m.header.stamp_ns = stamp_ns
    return m


def run(policy, inputs: list[tuple[float, int]]) -> list[tuple[float, ...]]:
    """Feed (stamp_s, input) in order; the sets as tuples of stamps in seconds (callback order)."""
    got: list[tuple[float, ...]] = []
    policy.register_callback(lambda *ms: got.append(tuple(m.header.stamp_ns / S for m in ms)))
    returned = []
    for stamp_s, index in inputs:
        returned += policy.add(index, msg(int(stamp_s * S)))
    assert [tuple(m.header.stamp_ns / S for m in s) for s in returned] == got
    return got


# --------------------------------------------------------------- ApproximateTime, two inputs
APPROX_PAIRS = {
    # name: (queue_size, inputs, expected sets, inter-message lower bound of input 0 in s)
    "ExactMatch": (10, [(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)],
                   [(0, 0), (3, 3), (6, 6)], None),
    "PerfectMatch": (10, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)],
                     [(0, 1), (3, 4)], None),
    "ImperfectMatch": (10, [(0, 0), (1, 1), (2, 0), (3, 0), (5, 1), (6, 0), (7, 1)],
                       [(0, 1), (6, 5)], None),
    "Acceleration": (10, [(0, 0), (7, 1), (12, 0), (15, 1), (17, 0), (18, 1)],
                     [(12, 7), (17, 18)], None),
    "DroppedMessages_queue1": (1, [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0),
                                   (14, 1)],
                               [(4, 3), (10, 11)], None),
    "DroppedMessages_queue2": (2, [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0),
                                   (14, 1)],
                               [(0, 1), (4, 3), (8, 7), (10, 11)], None),
    "LongQueue": (5, [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (3, 1), (9, 0),
                      (10, 0), (11, 0), (12, 0), (10, 1), (13, 0)],
                  [(10, 10)], None),
    "DoublePublish": (10, [(0, 0), (1, 1), (3, 1), (3, 0)], [(0, 1), (3, 3)], None),
    "RateBound_1.5": (10, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4)], 1.5),
    "RateBound_2": (10, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4), (6, 7)], 2.0),
}


@pytest.mark.parametrize("name", sorted(APPROX_PAIRS))
def test_approximate_time_upstream_two_topic_cases(name):
    queue_size, inputs, expected, bound_s = APPROX_PAIRS[name]
    policy = ApproximateTimePolicy(2, queue_size)
    if bound_s is not None:
        policy.set_inter_message_lower_bound(0, int(bound_s * S))
    assert run(policy, inputs) == [tuple(float(t) for t in s) for s in expected]


def test_approximate_time_upstream_four_topics():
    inputs = [(0, 0), (1, 1), (2, 2), (3, 3), (5, 0), (5, 3), (6, 1), (6, 2), (8, 0), (9, 1), (10, 2), (11, 3),
              (10, 0), (13, 0), (14, 1)]
    policy = ApproximateTimePolicy(4, 10)
    assert run(policy, inputs) == [(0, 1, 2, 3), (5, 6, 6, 5), (10, 9, 10, 11)]
    assert policy.stats["bound_violations"] == 0


def test_out_of_order_and_bound_violations_are_counted_once_per_input(caplog):
    # checked when a message joins a queue that still holds one (as upstream); once per input
    policy = ApproximateTimePolicy(2, 10, inter_message_lower_bounds_ns=[2 * S, 0])
    run(policy, [(5, 0), (6, 0), (4, 0)])
    run(policy, [(3, 1), (2, 1)])
    assert policy.stats["bound_violations"] == 1
    other = ApproximateTimePolicy(2, 10)
    run(other, [(3, 1), (2, 1), (1, 1)])
    assert other.stats["bound_violations"] == 1
    assert [r.getMessage().split(" arrived ")[1].split(" (")[0] for r in caplog.records] == [
        "1000000000 ns apart, closer than the inter-message lower bound 2000000000 ns",
        "out of order"]
    assert policy.stats["bound_violations"] + other.stats["bound_violations"] == 2


def test_approximate_time_upstream_early_publish():
    """The set is published when e (7 s) shows no later message of A can beat it, not at queue full."""
    policy = ApproximateTimePolicy(4, 10)
    assert run(policy, [(0, 0), (1, 1), (2, 2), (3, 3), (7, 0)]) == [(0, 1, 2, 3)]


# --------------------------------------------------------------- ApproximateEpsilonTime
EPSILON_CASES = {
    # name: (epsilon s, inputs, expected); queue size 10 throughout
    "ExactMatch": (0.5, [(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)], [(0, 0), (3, 3), (6, 6)]),
    "PerfectMatch": (1.5, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4), (6, 7)]),
    "ImperfectMatch": (1.5, [(0, 0), (1, 1), (2, 0), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4), (6, 7)]),
}


@pytest.mark.parametrize("name", sorted(EPSILON_CASES))
def test_approximate_epsilon_time_upstream_cases(name):
    epsilon_s, inputs, expected = EPSILON_CASES[name]
    policy = ApproximateEpsilonTimePolicy(2, 10, int(epsilon_s * S))
    assert run(policy, inputs) == [tuple(float(t) for t in s) for s in expected]


def test_approximate_epsilon_is_inclusive_and_drops_what_cannot_pair():
    policy = ApproximateEpsilonTimePolicy(3, 10, S)
    assert run(policy, [(0, 0), (1, 1), (1, 2)]) == [(0, 1, 1)]  # exactly epsilon after the oldest: a set
    policy = ApproximateEpsilonTimePolicy(2, 10, S)
    assert run(policy, [(0, 0), (2.5, 1), (3, 0)]) == [(3, 2.5)]  # 0 cannot pair with 2.5: dropped
    assert policy.pending() == [0, 0]


def test_approximate_epsilon_queue_bound_while_waiting():
    policy = ApproximateEpsilonTimePolicy(2, 2, S)
    run(policy, [(0, 0), (1, 0), (2, 0)])
    assert policy.pending() == [2, 0] and policy.stats["evicted"] == 1


# --------------------------------------------------------------- ours: what upstream does not test
def test_max_interval_refuses_wide_sets():
    wide = [(0, 0), (3, 1), (10, 0), (10.5, 1), (20, 0)]
    assert run(ApproximateTimePolicy(2, 10), wide) == [(0, 3), (10, 10.5)]
    limited = ApproximateTimePolicy(2, 10, max_interval_ns=S)
    assert run(limited, wide) == [(10, 10.5)]  # 0..3 spans 3 s > 1 s: the oldest is dropped instead


def test_age_penalty_zero_waits_for_the_best_set():
    # 1.2 on A beats the first candidate (0, 1); (5, 5.1) waits until A moves on (9.5), because a
    # later message on B alone (9) starts no search: the C++ policy only searches when a queue fills
    policy = ApproximateTimePolicy(2, 10, age_penalty=0.0)
    inputs = [(0, 0), (1, 1), (1.2, 0), (5, 0), (5.1, 1), (9, 1)]
    assert run(policy, inputs) == [(1.2, 1)]
    assert policy.add(0, msg(int(9.5 * S)))[0][1].header.stamp_ns == int(5.1 * S)


def test_duration_scaling_truncates_like_rclcpp():
    policy = ApproximateTimePolicy(2, 10, age_penalty=0.5)
    assert policy._scaled(3) == 4 and policy._scaled(-3) == -4 and policy._scaled(1) == 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_inputs"):
        ApproximateTimePolicy(1, 5)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateEpsilonTimePolicy(2, 0, 1)
    with pytest.raises(ValueError, match="age_penalty"):
        ApproximateTimePolicy(2, 5, age_penalty=-1)
    with pytest.raises(ValueError, match="lower bound"):
        ApproximateTimePolicy(2, 5).set_inter_message_lower_bound(2, 0)
    with pytest.raises(IndexError):
        ApproximateTimePolicy(2, 5).add(2, msg(0))


@given(periods=st.lists(st.integers(5, 40), min_size=2, max_size=4), offsets=st.data(),
       queue=st.integers(1, 12), count=st.integers(1, 40))
@settings(max_examples=80, deadline=None)
def test_property_sets_are_ordered_disjoint_and_bounded(periods, offsets, queue, count):
    """Per-input ordered streams at different rates: each message is used at most once, sets come out
    in time order on every input, the queues stay bounded, and a set's span respects max_interval."""
    n = len(periods)
    events = []
    for i, period in enumerate(periods):
        start = offsets.draw(st.integers(0, 30))
        events += [(start + k * period, i) for k in range(count)]
    events.sort()
    max_interval = 25
    policy = ApproximateTimePolicy(n, queue, max_interval_ns=max_interval, stamp_of=lambda m: m[0])
    out = []
    for t, i in events:
        out += policy.add(i, (t, i, random.random()))
        assert all(p <= queue for p in policy.pending())
    for i in range(n):
        stamps = [s[i][0] for s in out]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(max(m[0] for m in s) - min(m[0] for m in s) <= max_interval for s in out)
    assert all(m[1] == i for s in out for i, m in enumerate(s))
