"""Player timing and clock logic, in-process (publish collected in a list; no sockets)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmstream.bag.play import PlayConfig, Player, PlayerControl
from mmstream.bag.writer import BagWriter
from mmstream.messages import AudioChunk, Clock, Header, ImageFrame, NodeStats, TextUtterance

T0 = 1_000_000_000_000


def _bag(path: Path, seconds: float = 1.0) -> Path:
    with BagWriter(path) as w:
        for i in range(int(seconds * 20)):  # frames at 20 Hz
            t = T0 + i * 50_000_000
            w.write("/camera/image", ImageFrame(Header(t, i + 1), "mono8", 2, 2, np.full((2, 2, 1), i, np.uint8)), t)
        for i in range(int(seconds * 10)):  # audio at 10 Hz, between frames
            t = T0 + i * 100_000_000 + 25_000_000
            w.write("/microphone/audio", AudioChunk(Header(t, i + 1), samples=np.zeros((1600, 1), np.float32)), t)
        w.write("/text/utterance", TextUtterance(Header(T0, 1), T0, T0 + 1, "hi"), T0 + 500_000_000)
        w.write("/clock", Clock(Header(T0 + 1)), T0 + 1)
        w.write("/old/stats", NodeStats(node="old"), T0 + 2)
    return path


class Sink:
    def __init__(self) -> None:
        self.out: list[tuple[str, Any, float]] = []
        self.seq: dict[str, int] = {}

    def publish(self, topic: str, msg: Any) -> int:
        self.seq[topic] = self.seq.get(topic, 0) + 1
        msg.header.seq = self.seq[topic]
        self.out.append((topic, msg, time.monotonic()))
        return self.seq[topic]

    def data(self) -> list[tuple[str, Any]]:
        return [(t, m) for t, m, _ in self.out if t != "/clock"]

    def ticks(self) -> list[Clock]:
        return [m for t, m, _ in self.out if t == "/clock"]


def _play(path: Path, **kw: Any) -> tuple[Sink, Player]:
    sink = Sink()
    player = Player(PlayConfig(bag=str(path), **kw), sink.publish, lambda timeout_s: time.sleep(timeout_s))
    player.play()
    return sink, player


@pytest.mark.parametrize("clock_hz", [0.0, 100.0])
def test_clock_ticks_follow_messages_and_carry_published_seq(tmp_path: Path, clock_hz: float) -> None:
    sink, _ = _play(_bag(tmp_path / "b.mcap"), fast=True, clock_hz=clock_hz, clock_every_message=clock_hz == 0)
    data = sink.data()
    assert len(data) == 20 + 10 + 1  # recorded /clock and NodeStats are not replayed
    ticks = sink.ticks()
    stamps = [t.header.stamp_ns for t in ticks]
    assert stamps == sorted(set(stamps))  # strictly increasing
    # a tick at every message time, sent after that message, listing it
    sent_seq: dict[str, int] = {}
    for topic, msg, _ in sink.out:
        if topic == "/clock":
            # every topic the player will publish is listed from the first tick on (0 before its first message)
            assert set(msg.published_seq) == {"/camera/image", "/microphone/audio", "/text/utterance"}
            for t, s in msg.published_seq.items():
                assert s == sent_seq.get(t, 0)
        else:
            sent_seq[topic] = msg.header.seq
    msg_times = {m.header.stamp_ns for t, m in data if t != "/text/utterance"}
    assert stamps[0] == T0 - 1  # the clock starts just before the first message
    if clock_hz == 0:  # a tick right after every message time
        assert msg_times <= set(stamps)
        default, _ = _play(_bag(tmp_path / "c.mcap"), fast=True)  # the default: every message time + 100 Hz grid
        default_stamps = {t.header.stamp_ns for t in default.ticks()}
        assert msg_times <= default_stamps and max(np.diff(sorted(default_stamps))) < 20_000_000
    else:  # clock_every_message off: at most one tick per 10 ms, never two periods without one
        gaps = np.diff(stamps[1:-1])
        assert gaps.min() >= 10_000_000 and gaps.max() < 20_000_000
        assert len(ticks) < 0.95 * 100 + 3


def test_same_ticks_at_any_rate(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "b.mcap", seconds=0.5)
    fast, _ = _play(bag, fast=True)
    timed, _ = _play(bag, rate=5.0)
    key = lambda s: [(t, m.header.stamp_ns, getattr(m, "published_seq", None)) for t, m, _ in s.out]  # noqa: E731
    assert key(fast) == key(timed)


def test_rate_scales_wall_time(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "b.mcap", seconds=1.0)
    t0 = time.monotonic()
    sink, player = _play(bag, rate=4.0)
    wall = time.monotonic() - t0
    first_wall = sink.out[0][2]
    last = sink.data()[-1]
    assert 0.2 < sink.out[-1][2] - first_wall < 0.4, wall  # 0.95 s of bag at 4x
    assert player.lag_max_s < 0.1
    assert last[1].header.stamp_ns == T0 + 19 * 50_000_000


def test_start_duration_topics_and_loop(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "b.mcap", seconds=1.0)
    sink, _ = _play(bag, fast=True, start_s=0.5, duration_s=0.2, topics=["/camera/image"])
    stamps = [m.header.stamp_ns for t, m in sink.data()]
    assert {t for t, _ in sink.data()} == {"/camera/image"}
    assert stamps == [T0 + k * 50_000_000 for k in range(10, 15)]


def test_loop_restarts_until_stopped(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "b.mcap", seconds=0.2)
    sink = Sink()
    control = PlayerControl()

    def publish(topic: str, msg: Any) -> int:
        seq = sink.publish(topic, msg)
        if len(sink.data()) >= 25:
            control.command("stop")
        return seq

    player = Player(PlayConfig(bag=str(bag), fast=True, loop=True, topics=["/camera/image"]), publish,
                    lambda s: None, control)
    player.play()
    stamps = [m.header.stamp_ns for _, m in sink.data()]
    assert len(stamps) == 25 and stamps[:4] == stamps[4:8]  # the bag (4 frames) again and again
    ticks = [m.header.stamp_ns for m in sink.ticks()]
    assert ticks.count(T0 - 1) >= 6  # the clock goes back to the start each pass


def test_control_commands() -> None:
    c = PlayerControl()
    assert c.command("pause")["paused"] and not c.command("resume")["paused"]
    assert c.command("step 2")["paused"] and c.steps == 2
    assert not c.command("rate -1")["ok"] and not c.command("rate x")["ok"]
    assert c.command("rate 3")["rate"] == 3.0
    assert not c.command("warp")["ok"] and "unknown command" in c.command("warp")["error"]
    assert c.command("stop")["stopped"]


def test_rate_must_be_positive(tmp_path: Path) -> None:
    from mmstream.errors import BagError

    with pytest.raises(BagError, match="rate"):
        Player(PlayConfig(bag=str(_bag(tmp_path / "b.mcap")), rate=0.0), lambda t, m: 0, lambda s: None)
