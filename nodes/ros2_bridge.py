"""Bridges a running ROS 2 robot (over DDS, no ROS install) and the mmstream graph, both ways.

    mmstream run ros2_bridge -p 'inputs=[{ros_topic: /camera/image_raw, type: sensor_msgs/msg/Image, topic: /camera/image}]' \\
        -p 'outputs=[{topic: /perception/emotion, ros_topic: /mmstream/emotion, type: mmstream_msgs/msg/EmotionEstimate}]'

``inputs``: ROS topics taken in (``ros_topic``, ``type``, mmstream ``topic``; optional ``qos``
best_effort|reliable, ``depth``, ``durability``). ``outputs``: mmstream topics sent out (``topic``,
``ros_topic``, ``type``, ``msg`` when several classes map to the type, QoS keys as above).
Discovery follows ROS_DOMAIN_ID / ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_STATIC_PEERS /
ROS_LOCALHOST_ONLY unless the parameters say otherwise. See docs/ros.md.
"""

from __future__ import annotations

import time
from typing import Any

from mmstream.bag.convert import ConvertOptions
from mmstream.messages import Message
from mmstream.node import DONE, Component, Node, Param, Wait, run_node
from mmstream.bag.convert import AUDIO_DATA_STAMPED, COMPRESSED_IMAGE, IMAGE, STRING
from mmstream.ros2.bridge import Ros2Bridge, Route, parse_routes, standard_routes
from mmstream.ros2.discovery import RANGES, from_env

PARAMS = [
    Param("image_topic", "/camera/image_raw", doc="robot camera topic (empty: none)"),
    Param("image_type", "sensor_msgs/msg/Image", choices=(IMAGE, COMPRESSED_IMAGE, "sensor_msgs/Image",
                                                          "sensor_msgs/CompressedImage")),
    Param("audio_topic", "/audio", doc="robot audio topic (empty: none)"),
    Param("audio_type", AUDIO_DATA_STAMPED, doc="audio_common_msgs AudioDataStamped, AudioStamped or AudioData"),
    Param("text_topic", "/text", doc="robot speech/text topic (empty: none)"),
    Param("text_type", STRING, doc="std_msgs/msg/String or mmstream_msgs/msg/TextUtterance"),
    Param("clock_topic", "", doc="rosgraph_msgs/Clock topic to follow (e.g. /clock; empty: none)"),
    Param("image_out", "/camera/image"), Param("audio_out", "/microphone/audio"), Param("text_out", "/text/utterance"),
    Param("output_prefix", "/mmstream", doc="robot-side namespace of the outputs"),
    Param("emotion_topic", "/perception/emotion", doc="estimates sent as <prefix>/emotion and <prefix>/emotion_label"),
    Param("detections_topic", "/perception/detections", doc="detections sent as <prefix>/detections"),
    Param("annotated_topic", "", doc="annotated frames sent as <prefix>/annotated (empty: none)"),
    Param("inputs", [], type=list, doc="more ROS topics to take in: [{ros_topic, type, topic, qos?, depth?}]"),
    Param("outputs", [], type=list, doc="more mmstream topics to send: [{topic, ros_topic, type, msg?, qos?, depth?}]"),
    Param("namespace", "/", doc="ROS namespace for relative ros_topic names"),
    Param("domain_id", -1, min=-1, max=232, doc="DDS domain (-1: ROS_DOMAIN_ID, default 0)"),
    Param("discovery_range", "", choices=("", *RANGES),
          doc="'' follows ROS_AUTOMATIC_DISCOVERY_RANGE (default LOCALHOST) / ROS_LOCALHOST_ONLY"),
    Param("static_peers", "", doc="';'-separated hosts ('' follows ROS_STATIC_PEERS)"),
    Param("no_match_warn_s", 5.0, min=0.0, doc="say why a route has no DDS peer after this long"),
    Param("check_period_s", 1.0, min=0.05, doc="how often peers gained and lost are checked"),
    Param("keep_last", 8, min=1, doc="mmstream messages kept per output route"),
    Param("decode_jpeg", False, doc="decode CompressedImage JPEG to bgr8 (default: pass JPEG on)"),
    Param("audio_sample_rate_hz", 16000, min=1, doc="audio_common_msgs AudioData(Stamped) layout: rate"),
    Param("audio_channels", 1, min=1, doc="... channels"),
    Param("audio_sample_format", "S16LE", choices=("S16LE", "F32LE"), doc="... sample format"),
]


class Ros2BridgeNode(Component):
    NAME = "ros2_bridge"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        ins, outs = standard_routes(p)
        self.routes = parse_routes([*ins, *p["inputs"]], [*outs, *p["outputs"]], namespace=p["namespace"])
        if not self.routes:
            node.log.warning("no inputs or outputs configured: the bridge has nothing to do")
        self.discovery = from_env(domain_id=p["domain_id"], range_=p["discovery_range"],
                                  static_peers=p["static_peers"])
        self.pubs: dict[str, Any] = {}
        for r in self.routes:
            if r.direction == "in" and r.topic not in self.pubs:
                self.pubs[r.topic] = node.create_publisher(r.cls, r.topic)
        self.dds = self.make_dds()
        options = ConvertOptions(decode_jpeg=p["decode_jpeg"], audio_sample_rate_hz=p["audio_sample_rate_hz"],
                                 audio_channels=p["audio_channels"], audio_sample_format=p["audio_sample_format"])
        self.bridge = Ros2Bridge(self.routes, publish=self._publish, write=self.dds.write,
                                 count_rejected=node.count_rejected, options=options)
        for r in self.routes:
            if r.direction == "in":
                self.dds.add_reader(r)
            else:
                self.dds.add_writer(r)
                node.create_subscription(r.cls, r.topic, self._sender(r), keep_last=p["keep_last"])
            node.log.info("route %s", r.describe())
        node.log.info("DDS participant up: %s", self.discovery.describe())
        self.started_s = time.monotonic()
        self.next_check_s = self.started_s

    def make_dds(self) -> Any:
        """The DDS side (tests replace it with a fake)."""
        from mmstream.ros2.dds import DdsGraph
        return DdsGraph(self.discovery, log=self.node.log)

    def _publish(self, route: Route, msg: Message) -> None:
        self.pubs[route.topic].publish(msg)

    def _sender(self, route: Route) -> Any:
        return lambda msg: self.bridge.on_message(route, msg)

    def step(self) -> Wait:
        self.dds.take(self.bridge.on_sample)
        if not self.node.ok():
            return DONE
        now = time.monotonic()
        if now >= self.next_check_s:
            self.dds.check_matches(warn=now - self.started_s >= self.node.params["no_match_warn_s"])
            self.next_check_s = now + self.node.params["check_period_s"]
        return Wait.until_ready(self.dds.fd, timeout_s=max(0.0, self.next_check_s - now))

    def close(self) -> None:
        self.dds.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(Ros2BridgeNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
