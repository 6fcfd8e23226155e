"""Bridges a ROS 1 robot (a real ROS 1 master) and the mmstream graph, both ways.

In (robot -> mmstream): ``image_topic`` (sensor_msgs/Image or CompressedImage) -> /camera/image,
``audio_topic`` (audio_common_msgs/AudioData or AudioDataStamped; the layout from the sibling
``audio_info`` topic when the robot publishes one, else from the ``audio_*`` parameters) ->
/microphone/audio, ``text_topic`` (std_msgs/String) -> /text/utterance. An empty topic disables
an input. Out (mmstream -> robot): /perception/emotion -> ``<output_prefix>/emotion``
(mmstream_msgs/EmotionEstimate) and ``<output_prefix>/emotion_label`` (std_msgs/String, the top
label), /perception/detections -> ``<output_prefix>/detections`` (vision_msgs/Detection2DArray; box
labels as ids, the id -> label list in the ROS parameter ``<output_prefix>/detection_labels``),
and optionally annotated frames -> ``<output_prefix>/annotated`` (sensor_msgs/Image).

rospy comes from Debian's ROS 1 packages through :mod:`mmstream.ros1.system_import`. The master
is ``master_uri`` or ``$ROS_MASTER_URI``; ``$ROS_IP`` / ``$ROS_HOSTNAME`` are read by rospy. See
docs/ros.md ("ROS 1").
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from mmstream.bag import convert
from mmstream.errors import ParameterError
from mmstream.messages import AudioChunk, Detections, EmotionEstimate, ImageFrame, TextUtterance
from mmstream.node import Component, Node, Param, Wait, run_node
from mmstream.ros1 import types as r1

_FORMATS = tuple(sorted(convert._SAMPLE_FORMATS))

PARAMS = [
    Param("master_uri", "", doc="ROS master (empty: $ROS_MASTER_URI, else http://localhost:11311)"),
    Param("ros_name", "", doc="ROS 1 node name (empty: this node's name)"),
    Param("image_topic", "/camera/image_raw", doc="robot camera topic (empty: none)"),
    Param("image_type", r1.IMAGE, doc=f"one of {list(r1.INBOUND_TYPES['image'])}"),
    Param("audio_topic", "/audio", doc="robot audio topic (empty: none)"),
    Param("audio_type", r1.AUDIO_DATA, doc=f"one of {list(r1.INBOUND_TYPES['audio'])}"),
    Param("audio_info_topic", "", doc="audio_common_msgs/AudioInfo topic (empty: 'audio_info' beside audio_topic)"),
    Param("audio_sample_rate_hz", 16000, min=1, doc="audio layout until an AudioInfo arrives"),
    Param("audio_channels", 1, min=1, max=64),
    Param("audio_sample_format", "S16LE", choices=_FORMATS),
    Param("text_topic", "/text", doc="robot speech/text topic, std_msgs/String (empty: none)"),
    Param("text_type", r1.STRING, doc=f"one of {list(r1.INBOUND_TYPES['text'])}"),
    Param("decode_jpeg", False, doc="decode CompressedImage JPEG to pixels here instead of passing it on"),
    Param("output_prefix", "/mmstream", doc="robot-side namespace of the outputs"),
    Param("emotion_topic", "/perception/emotion", doc="mmstream estimates to send to the robot (empty: none)"),
    Param("detections_topic", "/perception/detections", doc="mmstream detections to send (empty: none)"),
    Param("annotated_topic", "", doc="mmstream annotated frames to send as <prefix>/annotated (empty: none)"),
    Param("image_out", "/camera/image"), Param("audio_out", "/microphone/audio"), Param("text_out", "/text/utterance"),
    Param("keep_last", 8, min=1, doc="messages held per ROS 1 subscription while the node is busy"),
    Param("master_check_period_s", 1.0, min=0.05, doc="how often to check that the master still knows the bridge"),
]

_WAVE = ("", "wave", "raw", "pcm")  # audio_common coding formats that are plain samples


def check_types(p: dict[str, Any], node_name: str) -> None:
    """A configured type the bridge cannot speak fails here, before rospy starts."""
    for kind, supported in r1.INBOUND_TYPES.items():
        if p[f"{kind}_topic"] and p[f"{kind}_type"] not in supported:
            raise ParameterError(f"node {node_name!r} parameter '{kind}_type': {p[f'{kind}_type']!r} is not a "
                                 f"type the ROS 1 bridge speaks for {kind} (supported: {list(supported)})")


def rejection_reason(exc: Exception) -> str:
    """The kind of bad input a conversion error is (one log line per kind and topic)."""
    text = str(exc)
    if "encoding" in text or "CompressedImage format" in text:
        return "unsupported-encoding"
    if "step" in text or "not whole" in text or "data bytes" in text:
        return "size-mismatch"
    if "sample format" in text:
        return "unknown-audio-format"
    return "bad-message"


class Ros1Bridge(Component):
    NAME = "ros1_bridge"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        from mmstream.ros1.link import Ros1Link
        from mmstream.ros1.system_import import import_rospy, origin

        p = node.params
        check_types(p, node.name)
        if p["master_uri"]:
            os.environ["ROS_MASTER_URI"] = p["master_uri"]
        rospy = import_rospy()
        self.types = r1.Ros1Types()
        self.audio_options = convert.ConvertOptions(
            decode_jpeg=p["decode_jpeg"], audio_sample_rate_hz=p["audio_sample_rate_hz"],
            audio_channels=p["audio_channels"], audio_sample_format=p["audio_sample_format"])
        self.audio_format_error = ""  # set while the robot's AudioInfo names a format we cannot read
        self.link = Ros1Link(rospy, p["ros_name"] or node.name, log=node.log,
                             master_check_period_s=p["master_check_period_s"])
        self.pubs: dict[str, Any] = {}
        for kind, cls, out in (("image", ImageFrame, "image_out"), ("audio", AudioChunk, "audio_out"),
                               ("text", TextUtterance, "text_out")):
            topic = p[f"{kind}_topic"]
            if topic:
                self.pubs[kind] = node.create_publisher(cls, p[out])
                self.link.subscribe(topic, self.types.cls(p[f"{kind}_type"]), kind, keep_last=p["keep_last"])
        if p["audio_topic"]:
            info = p["audio_info_topic"] or posixpath.join(posixpath.dirname(p["audio_topic"]), "audio_info")
            self.link.subscribe(info, self.types.cls(r1.AUDIO_INFO), "audio_info", keep_last=2)
        prefix = "/" + p["output_prefix"].strip("/")
        self.label_ids: dict[str, int] = {}
        self.labels_param = f"{prefix}/detection_labels"
        if p["emotion_topic"]:
            self.emotion_pub = self.link.publisher(f"{prefix}/emotion", self.types.cls(r1.EMOTION))
            self.label_pub = self.link.publisher(f"{prefix}/emotion_label", self.types.cls(r1.STRING))
            node.create_subscription(EmotionEstimate, p["emotion_topic"], self.on_emotion, keep_last=8)
        if p["detections_topic"]:
            self.detections_pub = self.link.publisher(f"{prefix}/detections", self.types.cls(r1.DETECTION_2D_ARRAY))
            node.create_subscription(Detections, p["detections_topic"], self.on_detections, keep_last=8)
        if p["annotated_topic"]:
            self.annotated_pub = self.link.publisher(f"{prefix}/annotated", self.types.cls(r1.IMAGE), queue_size=2)
            node.create_subscription(ImageFrame, p["annotated_topic"], self.on_annotated, keep_last=2)
        node.log.info("ROS 1 node %s on master %s (rospy from %s, ROS_IP=%s): in %s, out %s/*", self.link.caller_id,
                      self.link.master_uri, origin(rospy), os.environ.get("ROS_IP", ""),
                      {k: p[f"{k}_topic"] for k in self.pubs}, prefix)

    # ------------------------------------------------------------------ robot -> mmstream
    def step(self) -> Wait:
        for inbox, msg, received_ns in self.link.take():
            if inbox.kind == "audio_info":
                self.on_audio_info(inbox.topic, msg)
            else:
                self.forward(inbox.kind, inbox.topic, msg, received_ns)
        return Wait.until_ready(self.link.fileno())

    def forward(self, kind: str, topic: str, msg: Any, received_ns: int) -> None:
        name = self.node.params[f"{kind}_type"]
        if kind == "audio" and self.audio_format_error:
            self.node.count_rejected("unknown-audio-format", f"{topic} ({name}): {self.audio_format_error}")
            return
        try:
            view = r1.plain(msg)
            log_time = received_ns
            if name == r1.AUDIO_DATA:  # no stamp: the first sample is about one chunk before arrival
                log_time = received_ns - self._chunk_duration_ns(len(view["data"]))
            out = convert.from_ros(name, view, seq=self.pubs[kind].seq + 1, log_time_ns=log_time,
                                   options=self.audio_options)
        except convert.ConvertError as exc:
            self.node.count_rejected(rejection_reason(exc), f"{topic} ({name}): {exc}")
            return
        self.pubs[kind].publish(out)

    def _chunk_duration_ns(self, nbytes: int) -> int:
        o = self.audio_options
        frame_bytes = convert._SAMPLE_FORMATS[o.audio_sample_format].itemsize * o.audio_channels
        return nbytes // frame_bytes * 1_000_000_000 // o.audio_sample_rate_hz

    def on_audio_info(self, topic: str, info: Any) -> None:
        fmt, coding = str(info.sample_format).upper(), str(info.coding_format).lower()
        if coding not in _WAVE or fmt not in convert._SAMPLE_FORMATS or info.channels < 1 or info.sample_rate < 1:
            self.audio_format_error = (f"{topic} says coding_format {info.coding_format!r}, sample_format "
                                       f"{info.sample_format!r}, {info.channels} channel(s) at {info.sample_rate} Hz "
                                       f"(supported: wave/raw {list(_FORMATS)})")
            return
        self.audio_format_error = ""
        self.audio_options = convert.ConvertOptions(
            decode_jpeg=self.audio_options.decode_jpeg, audio_sample_rate_hz=int(info.sample_rate),
            audio_channels=int(info.channels), audio_sample_format=fmt)

    # ------------------------------------------------------------------ mmstream -> robot
    def on_emotion(self, msg: EmotionEstimate) -> None:
        self.emotion_pub.publish(r1.emotion_to_ros1(self.types, msg))
        self.label_pub.publish(r1.label_to_ros1(self.types, msg))

    def on_detections(self, msg: Detections) -> None:
        known = len(self.label_ids)
        out = r1.detections_to_ros1(self.types, msg, self.label_ids)
        if len(self.label_ids) != known:
            self.link.set_param(self.labels_param, list(self.label_ids))
        self.detections_pub.publish(out)

    def on_annotated(self, msg: ImageFrame) -> None:
        if msg.encoding != "jpeg":
            self.annotated_pub.publish(r1.image_to_ros1(self.types, msg))

    def close(self) -> None:
        self.link.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(Ros1Bridge, argv)


if __name__ == "__main__":
    raise SystemExit(main())
