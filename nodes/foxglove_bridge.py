"""Serves the graph to the Foxglove app over a WebSocket (and optionally records it to MCAP).

Open the app, "Open connection" -> Foxglove WebSocket -> ws://127.0.0.1:8765, and import
config/foxglove_layout.json (see docs/live_view.md). The server binds 127.0.0.1 unless ``host``
says otherwise, and a non-loopback ``host`` also needs ``allow_remote=true``. ``port=0`` picks a
free port; the node logs the URL it serves either way.
"""

from __future__ import annotations

from mmstream import graph
from mmstream.messages import AudioChunk, Detections, EmotionEstimate, ImageFrame, NodeStats, TextUtterance
from mmstream.node import Component, Node, Param, run_node
from mmstream.viz.foxglove_bridge import FoxgloveBridge

PARAMS = [
    Param("host", "127.0.0.1", doc="address to bind; anything but loopback needs allow_remote=true"),
    Param("port", 8765, min=0, max=65535, doc="TCP port (0: any free port, logged at start)"),
    Param("allow_remote", False, doc="allow binding a non-loopback address (the WebSocket has no auth)"),
    Param("jpeg_above_bytes", 65536, min=0,
          doc="raw frames larger than this go out as JPEG, smaller ones as lossless PNG (0: always JPEG)"),
    Param("jpeg_quality", 80, min=1, max=100),
    Param("max_image_hz", 15.0, min=0.0, doc="forward at most this many frames per second (0: all)"),
    Param("mcap_path", "", doc="also write what is shown to this MCAP file (must not exist)"),
    Param("image_topic", "/camera/image"), Param("detections_topic", "/perception/detections"),
    Param("audio_topic", "/microphone/audio"), Param("text_topic", "/text/utterance"),
    Param("emotion_topic", "/perception/emotion"),
    Param("stats", True, doc="forward every node's /<node>/stats"),
    Param("discover_period_s", 1.0, min=0.1, doc="how often to look for new nodes' stats topics"),
]


class FoxgloveBridgeNode(Component):
    NAME = "foxglove_bridge"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.bridge = FoxgloveBridge(host=p["host"], port=p["port"], allow_remote=p["allow_remote"], name=node.name,
                                     jpeg_above_bytes=p["jpeg_above_bytes"], jpeg_quality=p["jpeg_quality"],
                                     mcap_path=p["mcap_path"] or None, clock=node.now_ns)
        node.log.info("serving Foxglove WebSocket on %s (port=%d)%s", self.bridge.url, self.bridge.port,
                      f", recording to {p['mcap_path']}" if p["mcap_path"] else "")
        self.min_gap_ns = int(1e9 / p["max_image_hz"]) if p["max_image_hz"] > 0 else 0
        self.last_image_ns = -(1 << 62)
        self.watched: set[str] = set()
        node.create_subscription(ImageFrame, p["image_topic"], self.on_image, keep_last=1)
        node.create_subscription(Detections, p["detections_topic"], self.bridge.on_detections, keep_last=8)
        node.create_subscription(AudioChunk, p["audio_topic"], self.bridge.on_audio, keep_last=16)
        node.create_subscription(TextUtterance, p["text_topic"], self.bridge.on_text, keep_last=16)
        node.create_subscription(EmotionEstimate, p["emotion_topic"], self.bridge.on_emotion, keep_last=8)
        if p["stats"]:
            self.discover()
            node.create_timer(p["discover_period_s"], self.discover)

    def on_image(self, frame: ImageFrame) -> None:
        stamp = frame.header.stamp_ns
        if stamp - self.last_image_ns >= self.min_gap_ns or stamp < self.last_image_ns:
            self.last_image_ns = stamp
            self.bridge.on_image(frame)

    def discover(self) -> None:
        records = graph.list_nodes(self.node.run_dir)
        for rec in records:
            name = rec.get("name", "")
            if rec["alive"] and name and name not in self.watched and not name.startswith("_"):
                self.watched.add(name)  # the subscription outlives a restart: ZeroMQ reconnects by itself
                self.node.create_subscription(NodeStats, f"/{name}/stats", self.bridge.on_stats, keep_last=4)
        for gone in set(self.bridge.stats) - {r["name"] for r in records if r["alive"]}:
            self.bridge.forget_node(gone)  # stopped nodes leave the summary table
        self.bridge.publish_summary(self.node.now_ns())

    def close(self) -> None:
        self.bridge.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(FoxgloveBridgeNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
