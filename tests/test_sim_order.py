"""SimTimeGate: data and clock ticks handled in send order, whatever order they arrive in.

Like message_filters' tests: no transport, shuffled arrival orders (Hypothesis), a fake clock.
The player's sequence is modelled as it sends it (a tick at t-1, then messages, each followed by
a tick at its time); each topic's messages arrive in order on its own socket and ticks in order on
theirs, but the streams interleave arbitrarily. Every message must then run its callback with the
node clock at the last tick sent before it, and every tick must run after the messages before it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mmstream.messages import Clock, Header
from mmstream.sim_order import SimTimeGate, SimWaits


@dataclass
class Inbox:
    topic: str
    reliable: bool = True
    last_seq: int = 0
    queue: collections.deque = field(default_factory=collections.deque)

    def pending(self) -> int:
        return len(self.queue)

    def peek_seq(self) -> int | None:
        return self.queue[0][0] if self.queue else None

    def take(self) -> Any:
        seq, payload = self.queue.popleft()
        self.last_seq = seq
        return payload


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def player_sequence(topics: list[str]) -> list[tuple[str, Any]]:
    """What the player sends: ("tick", Clock) and (topic, (seq, bag_time)), in send order."""
    sent: list[tuple[str, Any]] = []
    seqs = {t: 0 for t in sorted(set(topics))}
    time_ns = 1000
    sent.append(("tick", Clock(header=Header(stamp_ns=time_ns - 1), published_seq=dict(seqs))))
    for topic in topics:
        seqs[topic] += 1
        sent.append((topic, (seqs[topic], time_ns)))
        sent.append(("tick", Clock(header=Header(stamp_ns=time_ns), published_seq=dict(seqs))))
        time_ns += 10
    return sent


def expected_deliveries(sent: list[tuple[str, Any]]) -> list[tuple[str, int, int]]:
    clock, out = 0, []
    for kind, item in sent:
        if kind == "tick":
            clock = item.header.stamp_ns
        else:
            out.append((kind, item[0], clock))
    return out


def run_gate(sent: list[tuple[str, Any]], arrival: list[str]) -> tuple[list[tuple[str, int, int]], list[int]]:
    """Feed ``sent`` in the stream order ``arrival`` names (one entry per item: which stream moves next)."""
    streams: dict[str, collections.deque] = collections.defaultdict(collections.deque)
    for kind, item in sent:
        streams[kind].append(item)
    inboxes = {t: Inbox(t) for t in streams if t != "tick"}
    ticks: collections.deque = collections.deque()
    gate = SimTimeGate(waits=SimWaits(), monotonic=FakeTime())
    clock = [0]
    delivered: list[tuple[str, int, int]] = []
    applied: list[int] = []

    def deliver(inbox: Inbox, payload: Any) -> None:
        delivered.append((inbox.topic, inbox.last_seq, clock[0]))

    def apply_tick(tick: Clock) -> None:
        clock[0] = tick.header.stamp_ns
        applied.append(tick.header.stamp_ns)

    def take_ticks() -> None:
        while ticks:
            gate.on_tick(ticks.popleft())

    for stream in arrival:
        item = streams[stream].popleft()
        if stream == "tick":
            ticks.append(item)
        else:
            inboxes[stream].queue.append(item)
        gate.dispatch(list(inboxes.values()), deliver, apply_tick, take_ticks=take_ticks)
    return delivered, applied


@st.composite
def replays(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], list[str]]:
    topics = draw(st.lists(st.sampled_from(["/camera/image", "/microphone/audio", "/text/utterance"]),
                           min_size=1, max_size=25))
    sent = player_sequence(topics)
    remaining = collections.Counter(kind for kind, _ in sent)
    arrival = []
    while remaining:
        stream = draw(st.sampled_from(sorted(remaining)))
        arrival.append(stream)
        remaining[stream] -= 1
        if not remaining[stream]:
            del remaining[stream]
    return sent, arrival


@given(replays())
def test_any_arrival_order_gives_the_send_order(replay: tuple[list[tuple[str, Any]], list[str]]) -> None:
    sent, arrival = replay
    delivered, applied = run_gate(sent, arrival)
    assert delivered == expected_deliveries(sent)
    assert applied == [item.header.stamp_ns for kind, item in sent if kind == "tick"]


def test_a_message_waits_for_the_tick_that_follows_it() -> None:
    sent = player_sequence(["/camera/image"])
    delivered, applied = run_gate(sent, ["tick", "/camera/image"])  # its own tick not here yet
    assert delivered == [] and applied == [999]
    delivered, applied = run_gate(sent, ["tick", "/camera/image", "tick"])
    assert delivered == [("/camera/image", 1, 999)] and applied == [999, 1000]


def test_a_tick_waits_for_the_messages_sent_before_it() -> None:
    sent = player_sequence(["/camera/image", "/text/utterance"])
    delivered, applied = run_gate(sent, ["tick", "tick", "tick", "/text/utterance"])
    assert applied == [999] and delivered == []  # tick 1000 needs camera seq 1 first
    delivered, applied = run_gate(sent, ["tick", "tick", "tick", "/text/utterance", "/camera/image"])
    assert delivered == [("/camera/image", 1, 999), ("/text/utterance", 1, 1000)]
    assert applied == [999, 1000, 1010]


def test_waits_run_out_on_a_lost_message_and_the_gate_goes_on() -> None:
    clock = FakeTime()
    gate = SimTimeGate(waits=SimWaits(reliable_s=10.0, lossy_s=0.5), monotonic=clock)
    lossy = Inbox("/camera/image", reliable=False)
    applied: list[int] = []
    gate.on_tick(Clock(header=Header(stamp_ns=5), published_seq={"/camera/image": 2}))  # seq 1-2 lost
    gate.dispatch([lossy], lambda *_: None, lambda t: applied.append(t.header.stamp_ns))
    assert applied == [] and gate.holding
    clock.now = 2.1  # past the joining wait of a subscription that has received nothing yet
    gate.dispatch([lossy], lambda *_: None, lambda t: applied.append(t.header.stamp_ns))
    assert applied == [5] and not gate.holding


def test_messages_from_a_source_that_sends_no_ticks_are_not_held_for_long() -> None:
    clock = FakeTime()
    gate = SimTimeGate(monotonic=clock)
    inbox = Inbox("/other/topic")
    inbox.queue.append((1, (1, 0)))
    got: list[Any] = []
    gate.dispatch([inbox], lambda _, m: got.append(m), lambda _: None)
    assert got == [] and gate.holding  # maybe the player's first tick is on its way
    clock.now = SimWaits().first_tick_s + 0.01
    gate.dispatch([inbox], lambda _, m: got.append(m), lambda _: None)
    assert got == [(1, 0)]
    inbox.queue.append((2, (2, 0)))
    gate.dispatch([inbox], lambda _, m: got.append(m), lambda _: None)
    assert got == [(1, 0), (2, 0)]  # not held again
