"""Exact and approximate pairing with ROS 2 message_filters semantics, fed shuffled orders."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmstream.messages import ImageFrame
from mmstream.sync import ApproximateTimeSynchronizer, ExactTimeSynchronizer

S = 1_000_000_000
MS = 1_000_000


def msg(stamp_ns: int, tag: str = "") -> ImageFrame:
    m = ImageFrame()
    m.header.stamp_ns = stamp_ns
    m.header.frame_id = tag
    return m


def test_exact_pairs_identical_stamps_whatever_the_order():
    rng = random.Random(0)
    for n in range(1, 10):
        a = [msg(t * S, "a") for t in range(n)]
        b = [msg(t * S, "b") for t in range(n)]
        sync = ExactTimeSynchronizer(2, n)
        got: list[tuple] = []
        sync.register_callback(lambda x, y: got.append((x, y)))
        for m in rng.sample(a, n):
            assert sync.add(0, m) == []
        for m in rng.sample(b, n):
            sync.add(1, m)
        assert {(id(x), id(y)) for x, y in got} == {(id(x), id(y)) for x, y in zip(a, b)}


def test_exact_queue_evicts_oldest_and_counts_replacements():
    sync = ExactTimeSynchronizer(2, 2)
    for t in (1, 2, 3):
        sync.add(0, msg(t))
    assert sorted(sync.queues[0]) == [2, 3] and sync.stats["evicted"] == 1
    assert sync.add(1, msg(1)) == []  # its partner was evicted
    first, second = msg(3, "first"), msg(3, "second")
    sync.add(0, second)
    assert sync.stats["replaced"] == 1  # same stamp: newest kept, as message_filters, but counted
    ((x, y),) = sync.add(1, msg(3))
    assert x is second and x is not first


def test_approximate_matches_ros_test_shuffled_sequences():
    """The message_filters test: scrambled sequences of N pairs, slop 0.1 s, queue N."""
    rng = random.Random(0)
    for n in range(1, 10):
        a = [msg(t * S, "a") for t in range(n)]
        b = [msg(t * S, "b") for t in range(n)]
        sync = ApproximateTimeSynchronizer(2, n, 0.1)
        got: list[tuple] = []
        sync.register_callback(lambda x, y: got.append((x, y)))
        for m in rng.sample(a, n):
            sync.add(0, m)
        assert got == []
        for m in rng.sample(b, n):
            sync.add(1, m)
        assert {(id(x), id(y)) for x, y in got} == {(id(x), id(y)) for x, y in zip(a, b)}


def test_approximate_slop_is_inclusive_per_candidate_but_span_must_be_strictly_below():
    sync = ApproximateTimeSynchronizer(2, 10, 0.05)
    sync.add(0, msg(1 * S))
    assert sync.add(1, msg(1 * S + 50 * MS)) == []  # span == slop: not < slop
    assert sync.add(1, msg(1 * S + 49 * MS)) != []
    # slop 0 never matches (max - min < 0 is impossible), exactly as message_filters
    zero = ApproximateTimeSynchronizer(2, 10, 0.0)
    zero.add(0, msg(S))
    assert zero.add(1, msg(S)) == []


def test_approximate_picks_the_closest_candidate_and_one_set_per_add():
    sync = ApproximateTimeSynchronizer(3, 10, 0.1)
    sync.add(0, msg(S + 30 * MS, "a_far"))
    sync.add(0, msg(S + 5 * MS, "a_near"))
    sync.add(1, msg(S - 20 * MS, "b"))
    ((a, b, c),) = sync.add(2, msg(S, "c"))
    assert (a.header.frame_id, b.header.frame_id, c.header.frame_id) == ("a_near", "b", "c")
    assert list(sync.queues[0]) == [S + 30 * MS] and not sync.queues[1] and not sync.queues[2]


def test_approximate_camera_and_detector_example():
    """A 30 fps camera and a detector answering 5-40 ms later: each detection joins its frame."""
    rng = random.Random(4)
    sync = ApproximateTimeSynchronizer(2, 10, 0.02)
    pairs = []
    sync.register_callback(lambda f, d: pairs.append((f.header.stamp_ns, d.header.stamp_ns)))
    for i in range(100):
        t = i * S // 30
        sync.add(0, msg(t, "frame"))
        if i % 3 == 0:  # the detector runs on every third frame and stamps with the frame time ± 8 ms
            sync.add(1, msg(t + rng.randint(-8, 8) * MS, "det"))
    assert len(pairs) == 34 and all(abs(f - d) <= 8 * MS for f, d in pairs)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_inputs"):
        ExactTimeSynchronizer(1, 5)
    with pytest.raises(ValueError, match="queue_size"):
        ExactTimeSynchronizer(2, 0)
    with pytest.raises(IndexError):
        ExactTimeSynchronizer(2, 1).add(2, msg(0))


@given(stamps=st.lists(st.integers(0, 10_000), min_size=1, max_size=30, unique=True),
       seed=st.integers(0, 2**31), queue=st.integers(1, 40))
@settings(max_examples=60)
def test_exact_property_every_common_stamp_paired_once_and_queues_bounded(stamps, seed, queue):
    rng = random.Random(seed)
    events = [(0, t) for t in stamps] + [(1, t) for t in stamps]
    rng.shuffle(events)
    sync = ExactTimeSynchronizer(2, queue)
    out = []
    for i, t in events:
        out += sync.add(i, msg(t * MS))
        assert all(len(q) <= queue for q in sync.queues)
    paired = [a.header.stamp_ns for a, _ in out]
    assert len(paired) == len(set(paired))
    assert all(a.header.stamp_ns == b.header.stamp_ns for a, b in out)
    if queue >= len(stamps):
        assert sorted(paired) == sorted(t * MS for t in stamps)


@given(stamps=st.lists(st.integers(0, 1000), min_size=1, max_size=25, unique=True),
       jitter=st.lists(st.integers(-4, 4), min_size=25, max_size=25), seed=st.integers(0, 2**31))
@settings(max_examples=60)
def test_approximate_property_sets_within_slop_each_message_used_once(stamps, jitter, seed):
    rng = random.Random(seed)
    slop = 0.005
    a = [msg(t * 10 * MS, f"a{t}") for t in stamps]
    b = [msg(t * 10 * MS + j * MS, f"b{t}") for t, j in zip(stamps, jitter)]
    events = [(0, m) for m in a] + [(1, m) for m in b]
    rng.shuffle(events)
    sync = ApproximateTimeSynchronizer(2, 50, slop)
    out = []
    for i, m in events:
        out += sync.add(i, m)
    used = [id(x) for s in out for x in s]
    assert len(used) == len(set(used))
    assert all(abs(x.header.stamp_ns - y.header.stamp_ns) < slop * S for x, y in out)
    # pairs 10 ms apart with |jitter| <= 4 ms cannot be confused: every pair is found, correctly
    assert sorted(x.header.frame_id[1:] for x, _ in out) == sorted(str(t) for t in stamps)
    assert all(x.header.frame_id[1:] == y.header.frame_id[1:] for x, y in out)
