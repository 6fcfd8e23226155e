"""Recorder node: writes topics of the running graph into a ROS 2 MCAP bag.

    python -m nodes.recorder --param output=session.mcap --param topics='[/camera/image, /microphone/audio]'
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mmstream.bag.record import Recorder, RecorderConfig, print_progress, summary_text, wanted_topics
from mmstream.bag.writer import COMPRESSIONS, mmstream_version
from mmstream.node import Node, Param, run_node

PARAMS = [
    Param("output", "", type=str, doc="bag file (.mcap); empty: recording_<date>.mcap"),
    Param("topics", [], type=list, doc="topics to record (empty: all)"),
    Param("exclude", [], type=list, doc="topics never recorded"),
    Param("compression", "zstd", choices=tuple(COMPRESSIONS), doc="chunk compression"),
    Param("chunk_mb", 4.0, min=0.01, doc="chunk size before compression"),
    Param("split_mb", 0.0, min=0.0, doc="start a new file after this many MB (0: never)"),
    Param("split_s", 0.0, min=0.0, doc="start a new file after this many seconds (0: never)"),
    Param("queue_size", 512, min=1, doc="messages waiting for the writer before new ones are dropped"),
    Param("keep_last", 64, min=1, doc="per-topic receive queue (sensor QoS: never blocks publishers)"),
    Param("flush_s", 1.0, min=0.05, doc="close the chunk at least this often (bounds loss on kill -9)"),
    Param("duration_s", 0.0, min=0.0, doc="stop after this many seconds (0: until stopped)"),
    Param("progress_s", 1.0, min=0.0, doc="seconds between progress lines (0: none)"),
    Param("discover_s", 0.25, min=0.05, doc="how often to look for new topics"),
    Param("launch_file", "", type=str, doc="launch file stored in the bag's metadata (default: $MMSTREAM_LAUNCH_FILE)"),
    Param("graph_params", "", type=str, doc="parameters (YAML/JSON text) stored in the bag's metadata"),
]


def setup(node: Node) -> None:
    p = node.params
    output = p["output"] or time.strftime("recording_%Y%m%d_%H%M%S.mcap")
    metadata = {"recorder": {"params": repr({k: v for k, v in p.items()}), "node": node.name,
                             "mmstream_version": mmstream_version(), "started_ns": str(node.now_ns())}}
    launch_file = p["launch_file"] or os.environ.get("MMSTREAM_LAUNCH_FILE", "")
    if launch_file:
        path = Path(launch_file)
        metadata["launch"] = {"path": str(path), "text": path.read_text() if path.is_file() else ""}
    if p["graph_params"]:
        metadata["parameters"] = {"text": p["graph_params"]}
    cfg = RecorderConfig(output=output, topics=list(p["topics"]), exclude=list(p["exclude"]),
                         compression=p["compression"], chunk_mb=p["chunk_mb"], split_mb=p["split_mb"],
                         split_s=p["split_s"], queue_size=p["queue_size"], flush_s=p["flush_s"], metadata=metadata)
    rec = Recorder(cfg)
    subs: dict[str, object] = {}
    node.log.info("recording to %s (%s)", output, "all topics" if not cfg.topics else ", ".join(cfg.topics))

    def discover() -> None:
        for topic, cls in wanted_topics(cfg, node.run_dir).items():
            if topic not in subs:
                subs[topic] = node.create_subscription(cls, topic, lambda m, t=topic: rec.put(t, m),
                                                       keep_last=p["keep_last"])
                node.log.info("recording %s (%s)", topic, cls.SCHEMA)

    discover()
    node.create_timer(p["discover_s"], discover)
    started = time.monotonic()
    state = {"next_progress": started + p["progress_s"]}

    def loop(_: Node) -> None:
        while node.ok():
            node.spin_once(0.05)
            now = time.monotonic()
            if p["progress_s"] and now >= state["next_progress"]:
                state["next_progress"] = now + p["progress_s"]
                print_progress(rec.progress_line())
            if p["duration_s"] and now - started >= p["duration_s"]:
                node.shutdown()

    def finish() -> None:
        # take what the sockets still hold, then let the writer drain its queue
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            node.spin_once(0.02)
        rec.close()
        summary = rec.summary()
        if p["progress_s"] and sys.stderr.isatty():
            sys.stderr.write("\n")
        node.log.info("%s", summary_text(summary))
        if summary["queue_drops"] or summary["transport_drops"]:
            node.log.warning("recorder dropped messages: queue %s, before the recorder %s", summary["queue_drops"],
                             summary["transport_drops"])

    node.on_shutdown(finish)
    node._recorder_loop = loop  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    return run_node("recorder", PARAMS, setup, argv, loop=lambda node: node._recorder_loop(node))


if __name__ == "__main__":
    raise SystemExit(main())
