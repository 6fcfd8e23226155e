"""Windows of a bag exactly as ``bag play`` + the synchronizer node cut them, in one process.

Why :func:`mmstream.train.dataset.bag_windows` differs from the graph (26 windows on the sample
where the demo graph emits 23): it pushes each message at its own log time and, at the end,
polls far past the last message, so the last windows — those ending after the bag's last
message time — come out by their deadline. In the graph the synchronizer's clock is the
player's ``/clock``: a message is handled at the tick sent *before* it (the previous message
time, or a 10 ms grid tick), the node's 10 ms timer polls on ticks, and the last tick is the
last message time, so a window whose end (+ max_delay) lies beyond it is never emitted. Its
start time differs too (the first poll is at the first tick, 1 ns before the first message).

Here the real :class:`~mmstream.bag.play.Player` produces the same sequence of ticks and
messages it would publish (``fast``, its ``publish`` callable collects them), and
:class:`NodeSynchronizer` does what ``nodes/synchronizer.py`` does with each, on the same sim
clock and timer rule as :class:`mmstream.node.Node`. So the windows are the graph's, value for
value, and any change to the player's tick schedule is followed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mmstream.bag.convert import ConvertOptions
from mmstream.bag.play import CLOCK_TOPIC, PlayConfig, Player
from mmstream.bag.reader import BagMessage
from mmstream.messages import AudioChunk, Clock, ImageFrame, NodeStats, TextUtterance, Window
from mmstream.sync import SyncConfig, WindowSynchronizer

#: the synchronizer node's input topics and their message types
SYNC_INPUTS = {"video": ("/camera/image", ImageFrame), "audio": ("/microphone/audio", AudioChunk),
               "text": ("/text/utterance", TextUtterance)}


class NodeSynchronizer:
    """``nodes/synchronizer.py`` on sim time, without the node: ticks and messages in, windows out.

    ``tick(stamp_ns)`` is a /clock message applied (sim clock set, the poll timer fired when due,
    as ``Node._apply_one_tick`` does); ``message(topic, msg)`` is a subscription callback.
    """

    def __init__(self, cfg: SyncConfig, *, poll_period_ns: int) -> None:
        self.sync = WindowSynchronizer(cfg)
        self.topics = {SYNC_INPUTS[s][0]: SYNC_INPUTS[s][1] for s in cfg.streams}
        self.period_ns = poll_period_ns
        self.now_ns = 0                         # SimClock: 0 until the first tick
        self.timer_next_ns = poll_period_ns     # created at setup, when the sim clock reads 0
        self._last_now: int | None = None
        self.rejected: dict[str, int] = {}

    def tick(self, stamp_ns: int) -> list[Window]:
        if stamp_ns < self.now_ns:  # the clock restarted (a loop): timers restart from it
            self.timer_next_ns = stamp_ns + self.period_ns
        self.now_ns = stamp_ns
        if self.now_ns < self.timer_next_ns:
            return []
        self.timer_next_ns += self.period_ns
        if self.timer_next_ns <= self.now_ns:  # fell behind: skip, don't burst (Node._fire_timers)
            self.timer_next_ns = self.now_ns + self.period_ns
        if self.now_ns == 0:
            return []
        self._last_now = self.now_ns if self._last_now is None else max(self.now_ns, self._last_now)
        return self.sync.poll(self.now_ns)

    def message(self, topic: str, msg: Any) -> list[Window]:
        cls = self.topics.get(topic)
        if cls is None or not isinstance(msg, cls):
            return []  # not subscribed (or another type: the wire would reject it)
        now = self.now_ns or msg.header.stamp_ns
        if self._last_now is not None and now < self._last_now - 1_000_000_000:
            self.sync.reset()  # the node clock jumped back: the node resets
        self._last_now = now
        why = self.sync.push(msg, now)
        if why is not None:
            key = f"{type(msg).__name__}_{why}"
            self.rejected[key] = self.rejected.get(key, 0) + 1
        return self.sync.poll(now)


class RangePlayer(Player):
    """The player reading only log times in ``[start_ns, end_ns]`` (split ranges), seeking in the
    reader instead of decoding everything before the range. Its ticks are the player's ticks."""

    def __init__(self, cfg: PlayConfig, publish: Any, *, start_ns: int | None, end_ns: int | None) -> None:
        super().__init__(cfg, publish, lambda _timeout_s: None)
        self.start_ns, self.end_ns = start_ns, end_ns

    def _selected(self) -> Iterator[BagMessage]:
        for bm in self.reader.messages(topics=self.cfg.topics or None, start_ns=self.start_ns, end_ns=self.end_ns):
            if self.cfg.skip_recorded_clock and bm.out_topic == CLOCK_TOPIC:
                continue
            if not self.cfg.play_stats and isinstance(bm.msg, NodeStats):
                continue
            yield bm


@dataclass
class GraphReplay:
    """One pass of a bag (or a range of it) through the player and the synchronizer node."""

    bag: str
    sync: SyncConfig
    topic_map: dict[str, str] = field(default_factory=dict)
    options: ConvertOptions = field(default_factory=ConvertOptions)
    poll_period_ns: int = 10_000_000
    clock_hz: float = 100.0
    start_ns: int | None = None
    end_ns: int | None = None
    problems: list[str] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    messages: int = 0

    def run(self, on_window: Callable[[Window], None]) -> None:
        """Replay; ``on_window`` gets each window as the synchronizer node would publish it, in order
        (called from inside the player's loop, so nothing is held: a long bag streams through)."""
        node = NodeSynchronizer(self.sync, poll_period_ns=self.poll_period_ns)
        seqs: dict[str, int] = {}

        def publish(topic: str, msg: Any) -> int:
            seqs[topic] = seqs.get(topic, 0) + 1
            if topic == CLOCK_TOPIC and isinstance(msg, Clock):
                windows = node.tick(msg.header.stamp_ns)
            else:
                self.messages += 1
                windows = node.message(topic, msg)
            for window in windows:
                on_window(window)
            return seqs[topic]

        cfg = PlayConfig(bag=self.bag, fast=True, topic_map=dict(self.topic_map), clock_hz=self.clock_hz,
                         convert_options=self.options)
        player = RangePlayer(cfg, publish, start_ns=self.start_ns, end_ns=self.end_ns)
        try:
            player.play_once()
        finally:
            self.problems = list(player.reader.problems)
            self.rejected = dict(node.rejected)


def graph_windows(bag: str, sync: SyncConfig, **kw: Any) -> list[Window]:
    """All windows of a bag as the graph emits them (small bags and tests: holds them all)."""
    out: list[Window] = []
    GraphReplay(bag, sync, **kw).run(out.append)
    return out
