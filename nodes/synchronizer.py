"""Synchronizer node: camera frames, audio chunks and text in; time-aligned windows out.

Wraps :class:`mmstream.sync.WindowSynchronizer` (see docs/synchronizer.md for the parameters).
Every message is pushed with the node clock's time (the bag clock with use_sim_time) and ready
windows are published at once; a timer polls too, so windows whose max_delay runs out go out
even when nothing arrives. A node clock that jumps back (a replay restarted) resets the state.
"""

from __future__ import annotations

from typing import Any

from mmstream.messages import AudioChunk, ImageFrame, TextUtterance, Window
from mmstream.node import Node, Param, run_node
from mmstream.sync import SyncConfig, WindowSynchronizer
from mmstream.sync.config import ALL_STREAMS, s_to_ns

PARAMS = [
    Param("window_s", 1.0, min=0.01, doc="window length"),
    Param("hop_s", 0.5, min=0.01, doc="time between window starts"),
    Param("origin_s", 0.0, doc="windows start at origin + k*hop (epoch seconds)"),
    Param("frames_per_window", 8, min=1, max=1024, doc="T: frame slots per window"),
    Param("frame_tolerance_s", 0.0, min=0.0, doc="max |frame - slot|; 0 = half the slot spacing"),
    Param("sample_rate_hz", 16000, min=1, doc="expected audio rate; other rates are rejected"),
    Param("audio_channels", 1, min=1, max=64),
    Param("text_horizon_s", 0.0, min=0.0, doc="include utterances ending this long before the window"),
    Param("max_delay_s", 0.3, min=0.0, doc="emit at the latest this long after the window end"),
    Param("liveness_timeout_s", 0.5, min=0.001, doc="a stream silent this long stops holding windows"),
    Param("video_offset_s", 0.0, doc="added to camera stamps to put them on the node clock"),
    Param("audio_offset_s", 0.0, doc="added to audio stamps"),
    Param("text_offset_s", 0.0, doc="added to text stamps"),
    Param("streams", "video,audio,text", doc="expected modalities, comma-separated"),
    Param("estimate_drift", True, doc="follow the audio device clock's rate"),
    Param("audio_resync_tolerance_s", 0.04, min=0.0001),
    Param("max_buffered_frames", 120, min=8),
    Param("max_buffered_utterances", 256, min=1),
    Param("emit_empty", False, doc="also emit windows holding no data"),
    Param("watermark_emission", True, doc="emit as soon as all live streams passed the end"),
    Param("poll_period_s", 0.01, min=0.001, doc="timer that emits windows whose max_delay ran out"),
    Param("queue", 32, min=1, doc="keep_last of each input subscription"),
    Param("reliable_input", False, doc="receive every input message (bag replay) instead of the newest `queue`"),
    Param("reliable_output", False, doc="windows wait for slow subscribers instead of being dropped"),
    Param("hold_first_window", False, doc="the first window waits (up to 10 s) for a subscriber (replay: "
                                          "a consumer that starts late misses nothing)"),
]


def config_from_params(p: dict[str, Any]) -> SyncConfig:
    streams = tuple(s.strip() for s in str(p["streams"]).split(",") if s.strip())
    return SyncConfig(
        window_ns=s_to_ns(p["window_s"]), hop_ns=s_to_ns(p["hop_s"]), origin_ns=s_to_ns(p["origin_s"]),
        frames_per_window=p["frames_per_window"], frame_tolerance_ns=s_to_ns(p["frame_tolerance_s"]),
        sample_rate_hz=p["sample_rate_hz"], audio_channels=p["audio_channels"],
        text_horizon_ns=s_to_ns(p["text_horizon_s"]), max_delay_ns=s_to_ns(p["max_delay_s"]),
        liveness_timeout_ns=s_to_ns(p["liveness_timeout_s"]), video_offset_ns=s_to_ns(p["video_offset_s"]),
        audio_offset_ns=s_to_ns(p["audio_offset_s"]), text_offset_ns=s_to_ns(p["text_offset_s"]),
        streams=streams, estimate_drift=p["estimate_drift"],
        audio_resync_tolerance_ns=s_to_ns(p["audio_resync_tolerance_s"]),
        max_buffered_frames=p["max_buffered_frames"], max_buffered_utterances=p["max_buffered_utterances"],
        emit_empty=p["emit_empty"], watermark_emission=p["watermark_emission"],
    )


def setup(node: Node) -> None:
    p = node.params
    cfg = config_from_params(p)
    sync = WindowSynchronizer(cfg)
    pub = node.create_publisher(Window, "/sync/window", reliable=p["reliable_output"],
                                hold_first_for=1 if p["hold_first_window"] else 0)
    state = {"last_now": None, "reported": {}}

    def emit(now: int) -> None:
        for window in sync.poll(now):
            pub.publish(window)

    def on_message(msg: Any) -> None:
        now = node.now_ns()
        if now == 0 and node.uses_sim_time:  # no /clock yet: the message's own stamp is the best guess
            now = msg.header.stamp_ns
        last = state["last_now"]
        if last is not None and now < last - 1_000_000_000:
            node.log.warning("node clock jumped back %.3f s: synchronizer reset", (last - now) / 1e9)
            sync.reset()
        state["last_now"] = now
        why = sync.push(msg, now)
        if why is not None:
            node.count_rejected(f"{type(msg).__name__}_{why}", f"stamp {msg.header.stamp_ns} at {now}")
        emit(now)

    def on_tick() -> None:
        now = node.now_ns()
        if now == 0 and node.uses_sim_time:
            return
        state["last_now"] = now if state["last_now"] is None else max(now, state["last_now"])
        emit(now)
        s = sync.stats
        for key, value in (("late", s.late), ("dropped", s.dropped)):
            for stream in ALL_STREAMS:
                if value[stream] > state["reported"].get((key, stream), 0):
                    if not state["reported"].get((key, stream)):
                        node.log.warning("%s %s messages (counted in stats)", key, stream)
                    state["reported"][(key, stream)] = value[stream]

    keep = None if p["reliable_input"] else p["queue"]
    if "video" in cfg.streams:
        node.create_subscription(ImageFrame, "/camera/image", on_message, keep_last=keep)
    if "audio" in cfg.streams:
        node.create_subscription(AudioChunk, "/microphone/audio", on_message, keep_last=keep)
    if "text" in cfg.streams:
        node.create_subscription(TextUtterance, "/text/utterance", on_message, keep_last=keep)
    node.create_timer(p["poll_period_s"], on_tick)
    node.on_shutdown(lambda: node.log.info("synchronizer stats: %s", sync.stats.as_dict()))


def main(argv: list[str] | None = None) -> int:
    return run_node("synchronizer", PARAMS, setup, argv)


if __name__ == "__main__":
    raise SystemExit(main())
