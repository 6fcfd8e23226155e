"""Synchronizer node: camera frames, audio chunks and text in; time-aligned windows out.

Wraps :class:`mmstream.sync.WindowSynchronizer`; its parameters are derived from
:class:`~mmstream.sync.SyncConfig` (a ``*_ns`` field is a ``*_s`` parameter; see
docs/synchronizer.md). Every message is pushed with the node clock's time (the bag clock with
use_sim_time) and ready windows are published at once; a timer polls too, so windows whose
max_delay runs out go out even when nothing arrives. A node clock that jumps back (a replay
restarted) resets the state.
"""

from __future__ import annotations

import time
from typing import Any

from mmstream.messages import AudioChunk, ImageFrame, TextUtterance, Window
from mmstream.node import IDLE, Component, Node, Param, Wait, run_node
from mmstream.params import config_from_params, config_params
from mmstream.sync import SyncConfig, WindowSynchronizer
from mmstream.sync.config import ALL_STREAMS

PARAMS = [
    *config_params(SyncConfig, exclude=("max_buffered_audio_samples",), docs={
        "window_s": "window length", "hop_s": "time between window starts",
        "origin_s": "windows start at origin + k*hop (epoch seconds)",
        "frames_per_window": "T: frame slots per window",
        "frame_tolerance_s": "max |frame - slot|; 0 = half the slot spacing",
        "sample_rate_hz": "expected audio rate; other rates are rejected",
        "text_horizon_s": "include utterances ending this long before the window",
        "max_delay_s": "emit at the latest this long after the window end",
        "liveness_timeout_s": "a stream silent this long stops holding windows",
        "video_offset_s": "added to camera stamps to put them on the node clock",
        "audio_offset_s": "added to audio stamps", "text_offset_s": "added to text stamps",
        "streams": f"expected modalities, a subset of {list(ALL_STREAMS)}",
        "estimate_drift": "follow the audio device clock's rate",
        "emit_empty": "also emit windows holding no data",
        "watermark_emission": "emit as soon as all live streams passed the end",
    }, minimum={
        "window_s": 0.01, "hop_s": 0.01, "frames_per_window": 1, "frame_tolerance_s": 0.0, "sample_rate_hz": 1,
        "audio_channels": 1, "text_horizon_s": 0.0, "max_delay_s": 0.0, "liveness_timeout_s": 0.001,
        "audio_resync_tolerance_s": 0.0001, "max_buffered_frames": 8, "max_buffered_utterances": 1,
    }),
    Param("poll_period_s", 0.01, min=0.001, doc="while data is held, how often to emit windows whose max_delay "
                                                "ran out"),
    Param("queue", 32, min=1, doc="keep_last of each input subscription"),
    Param("reliable_input", False, doc="receive every input message (bag replay) instead of the newest `queue`"),
    Param("reliable_output", False, doc="windows wait for slow subscribers instead of being dropped"),
    Param("wait_for_subscribers", 0, min=0, doc="the first window waits for this many subscribers (replay: a "
                                                "consumer that starts late misses nothing)"),
    Param("wait_timeout_s", 10.0, min=0.0, doc="how long to wait for them"),
]

_TOPICS = {"video": (ImageFrame, "/camera/image"), "audio": (AudioChunk, "/microphone/audio"),
           "text": (TextUtterance, "/text/utterance")}


def config_from_node_params(p: dict[str, Any]) -> SyncConfig:
    return config_from_params(SyncConfig, p)


class Synchronizer(Component):
    NAME = "synchronizer"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.config = config_from_node_params(p)
        self.sync = WindowSynchronizer(self.config)
        self.pub = node.create_publisher(Window, "/sync/window", reliable=p["reliable_output"],
                                         hold_first_for=p["wait_for_subscribers"],
                                         hold_timeout_s=p["wait_timeout_s"])
        self.last_now: int | None = None
        self.reported: dict[tuple[str, str], int] = {}
        keep = None if p["reliable_input"] else p["queue"]
        for stream in self.config.streams:
            msg_type, topic = _TOPICS[stream]
            node.create_subscription(msg_type, topic, self.on_message, keep_last=keep)
        self.next_poll_s = 0.0
        if node.uses_sim_time:  # sim timers fire as clock ticks are applied: no wake-ups of their own
            node.create_timer(p["poll_period_s"], self.on_tick)

    def step(self) -> Wait:
        """On the host clock, poll for windows whose max_delay runs out only while data is held
        (an idle synchronizer sleeps until a message comes)."""
        if self.node.uses_sim_time or not any(self.sync.buffered().values()):
            return IDLE
        now_s = time.monotonic()
        if now_s >= self.next_poll_s:
            self.on_tick()
            self.next_poll_s = now_s + self.node.params["poll_period_s"]
        return Wait.seconds(self.next_poll_s - now_s)

    def emit(self, now: int) -> None:
        for window in self.sync.poll(now):
            self.pub.publish(window)

    def on_message(self, msg: Any) -> None:
        now = self.node.now_ns()
        if now == 0 and self.node.uses_sim_time:  # no /clock yet: the message's own stamp is the best guess
            now = msg.header.stamp_ns
        if self.last_now is not None and now < self.last_now - 1_000_000_000:
            self.node.log.warning("node clock jumped back %.3f s: synchronizer reset", (self.last_now - now) / 1e9)
            self.sync.reset()
        self.last_now = now
        why = self.sync.push(msg, now)
        if why is not None:
            self.node.count_rejected(f"{type(msg).__name__}_{why}", f"stamp {msg.header.stamp_ns} at {now}")
        self.emit(now)

    def on_tick(self) -> None:
        now = self.node.now_ns()
        if now == 0 and self.node.uses_sim_time:
            return
        self.last_now = now if self.last_now is None else max(now, self.last_now)
        self.emit(now)
        stats = self.sync.stats
        for key, value in (("late", stats.late), ("dropped", stats.dropped)):
            for stream in ALL_STREAMS:
                if value[stream] > self.reported.get((key, stream), 0):
                    if not self.reported.get((key, stream)):
                        self.node.log.warning("%s %s messages (counted in stats)", key, stream)
                    self.reported[(key, stream)] = value[stream]

    def close(self) -> None:
        if self.last_now is not None:
            self.emit(self.last_now)  # windows that became ready while draining
        self.node.log.info("synchronizer stats: %s", self.sync.stats.as_dict())


def main(argv: list[str] | None = None) -> int:
    return run_node(Synchronizer, argv)


if __name__ == "__main__":
    raise SystemExit(main())
