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
from mmstream.node import DONE, IDLE, Component, Node, Param, Wait, run_node

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


class RecorderNode(Component):
    NAME = "recorder"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        output = p["output"] or time.strftime("recording_%Y%m%d_%H%M%S.mcap")
        metadata = {"recorder": {"params": repr(dict(p)), "node": node.name,
                                 "mmstream_version": mmstream_version(), "started_ns": str(node.now_ns())}}
        launch_file = p["launch_file"] or os.environ.get("MMSTREAM_LAUNCH_FILE", "")
        if launch_file:
            path = Path(launch_file)
            metadata["launch"] = {"path": str(path), "text": path.read_text() if path.is_file() else ""}
        if p["graph_params"]:
            metadata["parameters"] = {"text": p["graph_params"]}
        self.config = RecorderConfig(output=output, topics=list(p["topics"]), exclude=list(p["exclude"]),
                                     compression=p["compression"], chunk_mb=p["chunk_mb"], split_mb=p["split_mb"],
                                     split_s=p["split_s"], queue_size=p["queue_size"], flush_s=p["flush_s"],
                                     metadata=metadata)
        self.recorder = Recorder(self.config)
        self.subs: dict[str, object] = {}
        node.log.info("recording to %s (%s)", output, "all topics" if not self.config.topics
                      else ", ".join(self.config.topics))
        self.discover()
        node.create_timer(p["discover_s"], self.discover)
        if p["progress_s"]:
            node.create_timer(p["progress_s"], lambda: print_progress(self.recorder.progress_line()))
        self.stop_at_s = time.monotonic() + p["duration_s"] if p["duration_s"] else None

    def discover(self) -> None:
        for topic, cls in wanted_topics(self.config, self.node.run_dir).items():
            if topic not in self.subs:
                self.subs[topic] = self.node.create_subscription(
                    cls, topic, lambda m, t=topic: self.recorder.put(t, m), keep_last=self.node.params["keep_last"])
                self.node.log.info("recording %s (%s)", topic, cls.SCHEMA)

    def step(self) -> Wait:
        if self.stop_at_s is None:
            return IDLE
        remaining = self.stop_at_s - time.monotonic()
        return DONE if remaining <= 0 else Wait.seconds(remaining)

    def close(self) -> None:
        # the node has drained its sockets into the recorder; let the writer drain its queue
        self.recorder.close()
        summary = self.recorder.summary()
        if self.node.params["progress_s"] and sys.stderr.isatty():
            sys.stderr.write("\n")
        self.node.log.info("%s", summary_text(summary))
        if summary["queue_drops"] or summary["transport_drops"]:
            self.node.log.warning("recorder dropped messages: queue %s, before the recorder %s",
                                  summary["queue_drops"], summary["transport_drops"])


def main(argv: list[str] | None = None) -> int:
    return run_node(RecorderNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
