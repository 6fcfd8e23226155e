"""ROS 2 type support without a network: names, RIHS01 hashes, golden CDR, discovery, QoS, conversion, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mmstream.bag import convert
from mmstream.messages import Detections, EmotionEstimate, Header, ImageFrame
from mmstream.ros2 import Ros2Error, codec
from mmstream.ros2.bridge import Ros2Bridge, parse_routes
from mmstream.ros2.discovery import from_env
from mmstream.ros2.naming import dds_topic, dds_type
from mmstream.ros2.qos import QosProfile, explain_mismatch
from mmstream.ros2.typesupport import type_support
from mmstream.testing import NodeHarness

pytestmark = pytest.mark.timeout(60)

#: what real ROS 2 (Jazzy) prints / generates for these types: `ros2 topic info -v` for Image,
#: rosidl's generated *__description.c for Detection2DArray, and published golden-hash tables
PUBLISHED_RIHS01 = {
    "sensor_msgs/msg/Image": "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    "sensor_msgs/msg/CompressedImage": "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
    "std_msgs/msg/String": "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
    "std_msgs/msg/Header": "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    "builtin_interfaces/msg/Time": "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
    "rosgraph_msgs/msg/Clock": "RIHS01_692f7a66e93a3c83e71765d033b60349ba68023a8c689a79e48078bcb5c58564",
    "vision_msgs/msg/Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
}


@pytest.mark.parametrize("ros_type", sorted(PUBLISHED_RIHS01))
def test_rihs01_equals_what_ros2_prints(ros_type: str) -> None:
    assert type_support(ros_type).type_hash == PUBLISHED_RIHS01[ros_type]
    assert type_support(ros_type).user_data == f"typehash={PUBLISHED_RIHS01[ros_type]};".encode()


def test_names_follow_rmw() -> None:
    assert dds_topic("/camera/image_raw") == "rt/camera/image_raw"
    assert dds_topic("image", "/robot1") == "rt/robot1/image"
    assert dds_type("sensor_msgs/Image") == "sensor_msgs::msg::dds_::Image_"
    assert dds_type("vision_msgs/msg/Detection2DArray") == "vision_msgs::msg::dds_::Detection2DArray_"
    with pytest.raises(Ros2Error, match="invalid ROS 2 topic"):
        dds_topic("/bad//name")


def _rosbags_cdr(ros_type: str, value: dict) -> bytes:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)

    def build(t: str, v: dict):
        cls = store.types[t]
        kw = {}
        for name, (kind, spec) in store.fielddefs[t][1]:
            x = v[name]
            if kind == 2:  # a nested message
                kw[name] = build(spec, x)
            elif isinstance(x, bytes):
                kw[name] = np.frombuffer(x, np.uint8)
            else:
                kw[name] = x
        return cls(**kw)
    return bytes(store.serialize_cdr(build(ros_type, value), ros_type))


def test_golden_cdr_image_compressed_string_equal_rosbags() -> None:
    frame = ImageFrame(header=Header(stamp_ns=1_700_000_000_123_456_789, frame_id="cam"), encoding="rgb8",
                       height=3, width=5, data=np.arange(45, dtype=np.uint8).reshape(3, 5, 3))
    jpeg = ImageFrame(header=Header(stamp_ns=5, frame_id="c"), encoding="jpeg", height=1, width=1,
                      data=np.frombuffer(b"\xff\xd8not-really-a-jpeg\xff\xd9", np.uint8))
    cases = [(codec.IMAGE, convert.image_to_ros(frame)), (codec.COMPRESSED_IMAGE, convert.compressed_image_to_ros(jpeg)),
             (codec.STRING, codec.label_to_ros(EmotionEstimate(top_label="happy")))]
    for ros_type, value in cases:
        ours = type_support(ros_type).encode(value)
        assert ours[:4] == b"\x00\x01\x00\x00"  # XCDR1 little endian
        assert ours == _rosbags_cdr(ros_type, value), ros_type


def test_discovery_follows_ros_environment() -> None:
    d = from_env({})
    assert (d.domain_id, d.range, d.static_peers) == (0, "LOCALHOST", ())
    xml = d.cyclone_xml()
    assert "<AllowMulticast>false</AllowMulticast>" in xml and '<Peer address="localhost"/>' in xml
    d = from_env({"ROS_DOMAIN_ID": "42", "ROS_AUTOMATIC_DISCOVERY_RANGE": "subnet", "ROS_STATIC_PEERS": "10.0.0.2;robot"})
    assert (d.domain_id, d.range, d.static_peers) == (42, "SUBNET", ("10.0.0.2", "robot"))
    assert "AllowMulticast" not in d.cyclone_xml() and '<Peer address="robot"/>' in d.cyclone_xml()
    assert from_env({"ROS_LOCALHOST_ONLY": "0"}).range == "SUBNET"
    assert from_env({"ROS_LOCALHOST_ONLY": "1"}).range == "LOCALHOST"
    with pytest.raises(Ros2Error, match="ROS_DOMAIN_ID"):
        from_env({"ROS_DOMAIN_ID": "x"})
    with pytest.raises(Ros2Error, match="out of range"):
        from_env({"ROS_DOMAIN_ID": "300"})


def test_qos_mismatch_in_words() -> None:
    assert explain_mismatch(QosProfile("best_effort"), QosProfile("reliable")) is None
    assert explain_mismatch(QosProfile("reliable"), QosProfile("best_effort")) == \
        "the reader asks for reliable but the writer offers best_effort"


def test_unsupported_types_fail_at_start_listing_supported() -> None:
    with pytest.raises(Ros2Error, match=r"cannot take in 'sensor_msgs/msg/PointCloud2' \(supported inputs: .*Image"):
        parse_routes([{"ros_topic": "/p", "type": "sensor_msgs/PointCloud2", "topic": "/p"}], [])
    with pytest.raises(Ros2Error, match="say which with msg"):
        parse_routes([], [{"topic": "/x", "ros_topic": "/y", "type": "std_msgs/String"}])
    with pytest.raises(Ros2Error, match=r"unknown key\(s\) \['typo'\]"):
        parse_routes([{"ros_topic": "/p", "type": "sensor_msgs/Image", "topic": "/p", "typo": 1}], [])


class _Sink:
    def __init__(self) -> None:
        self.published, self.written, self.rejected = [], [], {}

    def bridge(self, routes) -> Ros2Bridge:
        return Ros2Bridge(routes, publish=lambda r, m: self.published.append(m),
                          write=lambda r, b: self.written.append(b),
                          count_rejected=lambda k, d: self.rejected.__setitem__(k, self.rejected.get(k, 0) + 1))


def _image_cdr(encoding: str, width: int, height: int, step: int, data: bytes) -> bytes:
    return type_support(codec.IMAGE).encode({
        "header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": "f"}, "height": height, "width": width,
        "encoding": encoding, "is_bigendian": 0, "step": step, "data": data})


def test_bad_input_is_counted_per_kind_and_the_bridge_goes_on() -> None:
    sink = _Sink()
    routes = parse_routes([{"ros_topic": "/cam", "type": codec.IMAGE, "topic": "/camera/image"},
                           {"ros_topic": "/mic", "type": convert.AUDIO_STAMPED, "topic": "/microphone/audio"}], [])
    b = sink.bridge(routes)
    cam, mic = routes
    b.on_sample(cam, _image_cdr("32FC1", 4, 2, 16, bytes(32)))
    b.on_sample(cam, _image_cdr("32FC1", 4, 2, 16, bytes(32)))
    b.on_sample(cam, _image_cdr("rgb8", 4, 2, 12, bytes(20)))          # data != step x height
    b.on_sample(cam, b"\x00\x01\x00\x00\x01")                           # truncated CDR
    b.on_sample(cam, b"\x00\x03\x00\x00" + bytes(8))                    # XCDR2 / unknown encapsulation
    audio = type_support(convert.AUDIO_STAMPED).encode({
        "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": ""},
        "audio": {"audio_data": {"float32_data": [], "int32_data": [], "int24_data": [], "int16_data": [1, 2],
                                 "int8_data": [], "uint8_data": []},
                  "info": {"format": 99, "channels": 1, "rate": 16000, "chunk": 2}}})
    b.on_sample(mic, audio)
    assert sink.rejected == {"ros2 encoding on /cam": 2, "ros2 size on /cam": 1, "ros2 cdr on /cam": 2,
                             "ros2 audio_format on /mic": 1}
    b.on_sample(cam, _image_cdr("rgb8", 4, 2, 12, bytes(range(24))))
    assert len(sink.published) == 1 and sink.published[0].data.reshape(-1).tolist() == list(range(24))


def test_yuv422_and_bayer_become_bgr8() -> None:
    sink = _Sink()
    (cam,) = parse_routes([{"ros_topic": "/cam", "type": codec.IMAGE, "topic": "/camera/image"}], [])
    b = sink.bridge([cam])
    uyvy = bytes([128, 200, 128, 200] * 8)  # U Y V Y: grey, luma 200
    frame = b.on_sample(cam, _image_cdr("yuv422", 4, 4, 8, uyvy))
    assert frame.encoding == "bgr8" and frame.data.shape == (4, 4, 3)
    px = frame.data[0, 0].astype(int)
    assert px.max() - px.min() <= 2 and px[0] > 200  # grey (U = V = 128), video-range luma 200 -> ~214
    mosaic = np.zeros((4, 4), np.uint8)
    mosaic[0::2, 0::2] = 255  # red sites of an RGGB mosaic: a red image
    frame = b.on_sample(cam, _image_cdr("bayer_rggb8", 4, 4, 4, mosaic.tobytes()))
    px = frame.data[1, 1]
    assert px[2] > 200 and px[0] < 50 and px[1] < 50  # B, G, R: red


class _FakeDds:
    fd = -1

    def __init__(self) -> None:
        self.writes, self.readers, self.writers, self.pending = [], [], [], []

    def add_reader(self, route): self.readers.append(route)
    def add_writer(self, route): self.writers.append(route)
    def write(self, route, cdr): self.writes.append((route.ros_topic, cdr))
    def check_matches(self, *, warn): return []
    def close(self): pass

    def take(self, deliver):
        for route_topic, cdr in self.pending:
            deliver(next(r for r in self.readers if r.ros_topic == route_topic), cdr, 0)
        self.pending.clear()


def test_node_in_harness_routes_both_ways() -> None:
    from nodes.ros2_bridge import Ros2BridgeNode

    class Harnessed(Ros2BridgeNode):
        def make_dds(self):
            return _FakeDds()

    h = NodeHarness(Harnessed, params={"audio_topic": "", "text_topic": ""})
    dds = h.component.dds
    assert [r.ros_topic for r in dds.readers] == ["/camera/image_raw"]
    assert sorted(r.ros_topic for r in dds.writers) == ["/mmstream/detections", "/mmstream/emotion",
                                                        "/mmstream/emotion_label"]
    dds.pending.append(("/camera/image_raw", _image_cdr("mono8", 2, 2, 2, b"\x01\x02\x03\x04")))
    h.step()
    (img,) = h.published("/camera/image")
    assert img.encoding == "mono8" and img.header.stamp_ns == 1_000_000_002 and img.header.frame_id == "f"
    h.send("/perception/emotion", EmotionEstimate(labels=["a", "b"], probs=[0.3, 0.7], top_label="b", top_prob=0.7))
    h.send("/perception/detections", Detections(boxes=np.array([[10, 20, 30, 60]], np.float32),
                                                box_scores=np.array([0.9], np.float32), box_labels=["face"]))
    got = {t: c for t, c in dds.writes}
    label = type_support(codec.STRING).decode(got["/mmstream/emotion_label"])
    assert label.data == "b"
    det = type_support(codec.DETECTION_2D_ARRAY).decode(got["/mmstream/detections"]).detections[0]
    assert (det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y) == \
        (20.0, 40.0, 20.0, 40.0)
    assert det.results[0].hypothesis.class_id == "face" and abs(det.results[0].hypothesis.score - 0.9) < 1e-6
    est = type_support(codec.EMOTION).decode(got["/mmstream/emotion"])
    assert est.top_label == "b" and list(est.labels) == ["a", "b"]
    h.close()
