"""The ROS 2 bridge over real DDS on loopback, between separate processes, both directions.

Peers: ``tests/ros2_peer.py`` (Cyclone DDS from PyPI, messages encoded and decoded by rosbags) and a
C program built here on Debian's Cyclone DDS 0.10 (``cyclonedds-dev``, ``idlc -t``: no type
information, XCDR1, the USER_DATA rmw_cyclonedds_cpp writes), which shares no code with the bridge.
Each test runs on its own DDS domain with loopback-only discovery.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, node_cmd
from mmstream.messages import AudioChunk, Clock, Detections, EmotionEstimate, Header, ImageFrame, TextUtterance
from mmstream.node import Node
from mmstream.ros2.discovery import from_env

pytest.importorskip("cyclonedds", reason="scripts/setup.sh --dev installs the ros extra (cyclonedds)")
pytestmark = pytest.mark.timeout(60)
PEER = str(REPO / "tests" / "ros2_peer.py")
_domain = [100 + os.getpid() % 60]


@pytest.fixture
def dds_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh DDS domain, loopback only (every process of the test gets it)."""
    _domain[0] += 1
    env = {"ROS_DOMAIN_ID": str(_domain[0]), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "CYCLONEDDS_URI": from_env({}).cyclone_xml()}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


class Lines:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.seen, self._q = proc, [], queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))

    def wait(self, pattern: str, timeout_s: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        for line in self.seen:
            if (m := re.search(pattern, line)):
                return m
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._q.get(timeout=min(0.1, left))
            except queue.Empty:
                continue
            self.seen.append(line)
            if (m := re.search(pattern, line)):
                return m
        raise AssertionError(f"no line matching {pattern!r} in {timeout_s}s:\n" + "\n".join(self.seen))

    def json(self, timeout_s: float = 20.0) -> dict:
        """The next JSON line not returned before."""
        self._used = getattr(self, "_used", 0)
        deadline = time.monotonic() + timeout_s
        while True:
            lines = [line for line in self.seen if line.startswith("{")]
            if len(lines) > self._used:
                self._used += 1
                return json.loads(lines[self._used - 1])
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no JSON line in {timeout_s}s:\n" + "\n".join(self.seen))
            try:
                self.seen.append(self._q.get(timeout=min(0.1, left)))
            except queue.Empty:
                pass


class Probe:
    """The mmstream side: subscribes to what the bridge publishes, publishes what it sends out."""

    def __init__(self, run_dir: Path) -> None:
        self.node = Node("probe", run_dir=run_dir)
        self.got: dict[str, list] = {}

    def listen(self, cls, topic: str) -> list:
        self.got[topic] = []
        self.node.create_subscription(cls, topic, self.got[topic].append, keep_last=None)
        return self.got[topic]

    def until(self, pred, timeout_s: float, what: str, every=None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.node.spin_once(0.05)
            if every is not None:
                every()
            if pred():
                return
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; got "
                             f"{ {k: len(v) for k, v in self.got.items()} }")


@pytest.fixture
def probe(run_dir: Path):
    p = Probe(run_dir)
    yield p
    p.node.close()


def bridge(spawn, *params: str) -> Lines:
    args = [a for p in params for a in ("--param", p)]
    lines = Lines(spawn(node_cmd("nodes.ros2_bridge", *args)))
    lines.wait("DDS participant up")
    return lines


def peer(spawn, *args: str) -> Lines:
    return Lines(spawn([sys.executable, PEER, *args]))


def _image_json(encoding: str = "rgb8", w: int = 64, h: int = 48, ch: int = 3, fill: int = 0) -> str:
    return json.dumps({"header": {"stamp": {"sec": 5, "nanosec": 7}, "frame_id": "cam"}, "height": h, "width": w,
                       "encoding": encoding, "step": w * ch, "data": {"fill": fill, "len": w * h * ch}})


def test_robot_inputs_of_every_type_reach_mmstream(spawn, dds_env, probe) -> None:
    extra = ('inputs=[{ros_topic: /cam_jpeg, type: sensor_msgs/msg/CompressedImage, topic: /camera/jpeg},'
             ' {ros_topic: /audio2, type: audio_common_msgs/msg/AudioStamped, topic: /microphone/audio2},'
             ' {ros_topic: /utterance, type: mmstream_msgs/msg/TextUtterance, topic: /text/utterance2}]')
    images, jpegs = probe.listen(ImageFrame, "/camera/image"), probe.listen(ImageFrame, "/camera/jpeg")
    audio, audio2 = probe.listen(AudioChunk, "/microphone/audio"), probe.listen(AudioChunk, "/microphone/audio2")
    texts, texts2 = probe.listen(TextUtterance, "/text/utterance"), probe.listen(TextUtterance, "/text/utterance2")
    clocks = probe.listen(Clock, "/clock")
    bridge(spawn, extra, "clock_topic=/clock")
    import cv2
    ok, jpg = cv2.imencode(".jpg", np.full((24, 32, 3), 90, np.uint8))
    n = "--count", "3"
    peer(spawn, "pub", "sensor_msgs/msg/Image", "/camera/image_raw", *n, "--msg", _image_json())
    peer(spawn, "pub", "sensor_msgs/msg/CompressedImage", "/cam_jpeg", *n, "--msg", json.dumps(
        {"header": {"stamp": {"sec": 6}}, "format": "jpeg", "data": jpg.reshape(-1).tolist()}))
    s16 = np.array([-20000, 5, 7, 9], "<i2").view(np.uint8).tolist()
    peer(spawn, "pub", "audio_common_msgs/msg/AudioDataStamped", "/audio", *n, "--msg", json.dumps(
        {"header": {"stamp": {"sec": 8, "nanosec": 1}}, "audio": {"data": s16}}))
    peer(spawn, "pub", "audio_common_msgs/msg/AudioStamped", "/audio2", *n, "--msg", json.dumps(
        {"header": {"stamp": {"sec": 9}}, "audio": {"audio_data": {"float32_data": [0.5, -0.25]},
                                                    "info": {"format": 1, "channels": 2, "rate": 48000}}}))
    peer(spawn, "pub", "std_msgs/msg/String", "/text", *n, "--msg", '{"data": "hello robot"}')
    peer(spawn, "pub", "mmstream_msgs/msg/TextUtterance", "/utterance", *n, "--msg", json.dumps(
        {"header": {"stamp": {"sec": 3}}, "start_ns": 3_000_000_000, "end_ns": 4_000_000_000, "text": "hi",
         "source": "asr", "language": "en"}))
    peer(spawn, "pub", "rosgraph_msgs/msg/Clock", "/clock", *n, "--msg", '{"clock": {"sec": 12, "nanosec": 5}}')
    probe.until(lambda: all(probe.got.values()), 30, "one message of every input type")
    f = images[0]
    assert (f.encoding, f.height, f.width, f.header.frame_id, f.header.stamp_ns) == ("rgb8", 48, 64, "cam", 5_000_000_007)
    assert f.data.reshape(-1)[:4].tolist() == [0, 1, 2, 3]
    assert (jpegs[0].encoding, jpegs[0].height, jpegs[0].width) == ("jpeg", 24, 32)
    a = audio[0]
    assert (a.sample_rate_hz, a.channels, a.header.stamp_ns, a.samples[:, 0].tolist()) == \
        (16000, 1, 8_000_000_001, [-20000, 5, 7, 9])
    assert (audio2[0].sample_rate_hz, audio2[0].channels, audio2[0].samples.tolist()) == (48000, 2, [[0.5, -0.25]])
    assert texts[0].text == "hello robot" and abs(texts[0].header.stamp_ns - time.time_ns()) < 30e9
    assert (texts2[0].text, texts2[0].start_ns, texts2[0].source) == ("hi", 3_000_000_000, "asr")
    assert clocks[0].header.stamp_ns == 12_000_000_005


def test_outputs_of_every_type_reach_ros_readers(spawn, dds_env, probe) -> None:
    bridge(spawn, "annotated_topic=/annotated", "image_topic=''", "audio_topic=''", "text_topic=''",
           'outputs=[{topic: /annotated_jpeg, ros_topic: /mmstream/annotated/compressed, '
           'type: sensor_msgs/msg/CompressedImage}]')
    echo = {t: peer(spawn, "echo", ty, t) for t, ty in (
        ("/mmstream/emotion", "mmstream_msgs/msg/EmotionEstimate"), ("/mmstream/emotion_label", "std_msgs/msg/String"),
        ("/mmstream/detections", "vision_msgs/msg/Detection2DArray"), ("/mmstream/annotated", "sensor_msgs/msg/Image"),
        ("/mmstream/annotated/compressed", "sensor_msgs/msg/CompressedImage"))}
    for e in echo.values():
        e.wait("subscribed")
    pubs = {t: probe.node.create_publisher(c, t) for t, c in (
        ("/perception/emotion", EmotionEstimate), ("/perception/detections", Detections), ("/annotated", ImageFrame),
        ("/annotated_jpeg", ImageFrame))}
    stamp = Header(stamp_ns=42_000_000_017, frame_id="cam")

    def send() -> None:
        pubs["/perception/emotion"].publish(EmotionEstimate(header=Header(stamp.stamp_ns), labels=["neutral", "happy"],
                                                            probs=[0.25, 0.75], top_label="happy", top_prob=0.75))
        pubs["/perception/detections"].publish(Detections(
            header=Header(stamp.stamp_ns), boxes=np.array([[10, 20, 30, 60]], np.float32),
            box_scores=np.array([0.5], np.float32), box_labels=["face"]))
        pubs["/annotated"].publish(ImageFrame(header=Header(stamp.stamp_ns, frame_id="cam"), encoding="bgr8",
                                              height=4, width=6, data=np.full((4, 6, 3), 7, np.uint8)))
        pubs["/annotated_jpeg"].publish(ImageFrame(header=Header(stamp.stamp_ns), encoding="jpeg", height=1, width=1,
                                                   data=np.frombuffer(b"\xff\xd8abc\xff\xd9", np.uint8)))

    done = {}

    def poll() -> None:
        for t, e in echo.items():
            if t not in done and any(line.startswith("{") for line in (e.seen + [e._q.queue[0]] if e._q.qsize() else e.seen)):
                done[t] = e.json(1)["msg"]

    probe.until(lambda: len(done) == len(echo), 30, "every output at a ROS reader", every=lambda: (send(), poll()))
    est = done["/mmstream/emotion"]
    assert est["top_label"] == "happy" and est["labels"] == ["neutral", "happy"] and est["probs"] == [0.25, 0.75]
    assert est["header"]["stamp"] == {"sec": 42, "nanosec": 17}
    assert done["/mmstream/emotion_label"] == {"data": "happy"}
    det = done["/mmstream/detections"]["detections"][0]
    assert det["bbox"]["center"]["position"] == {"x": 20.0, "y": 40.0} and det["bbox"]["size_y"] == 40.0
    assert det["results"][0]["hypothesis"] == {"class_id": "face", "score": 0.5}
    img = done["/mmstream/annotated"]
    assert (img["encoding"], img["width"], img["height"], img["step"], img["header"]["frame_id"]) == ("bgr8", 6, 4, 18, "cam")
    assert img["data"]["len"] == 72 and img["data"]["head"][:2] == [7, 7]
    assert done["/mmstream/annotated/compressed"]["format"] == "jpeg"


@pytest.fixture(scope="module")
def c_peer(tmp_path_factory) -> Path:
    if not (shutil.which("idlc") and shutil.which("gcc") and Path("/usr/include/dds/dds.h").exists()):
        pytest.skip("Debian's cyclonedds-dev / cyclonedds-tools not installed (scripts/setup.sh installs them)")
    out = tmp_path_factory.mktemp("c_peer")
    src = REPO / "tests" / "ros2_c_peer"
    subprocess.run(["idlc", "-t", "-o", str(out), str(src / "ros_types.idl")], check=True, timeout=30)
    subprocess.run(["gcc", "-O1", "-o", str(out / "peer"), str(src / "peer.c"), str(out / "ros_types.c"),
                    f"-I{out}", "-lddsc"], check=True, timeout=60)
    return out / "peer"


def test_c_peer_on_debian_cyclonedds_exchanges_image_and_string(spawn, dds_env, probe, c_peer) -> None:
    images = probe.listen(ImageFrame, "/camera/image")
    bridge(spawn, "audio_topic=''", "text_topic=''", "annotated_topic=/annotated")
    label_echo = Lines(spawn([str(c_peer), "echo", "string", "/mmstream/emotion_label", "1"]))
    image_echo = Lines(spawn([str(c_peer), "echo", "image", "/mmstream/annotated", "1"]))
    cam = Lines(spawn([str(c_peer), "pub", "image", "/camera/image_raw", "3"]))
    label_echo.wait("subscribed"), image_echo.wait("subscribed")
    est_pub = probe.node.create_publisher(EmotionEstimate, "/perception/emotion")
    img_pub = probe.node.create_publisher(ImageFrame, "/annotated")
    pixels = (np.arange(64 * 48 * 3) % 256).astype(np.uint8).reshape(48, 64, 3)

    def send() -> None:
        est_pub.publish(EmotionEstimate(labels=["calm"], probs=[1.0], top_label="calm", top_prob=1.0))
        img_pub.publish(ImageFrame(header=Header(stamp_ns=3_250_000_000, frame_id="ann"), encoding="rgb8",
                                   height=48, width=64, data=pixels))

    probe.until(lambda: bool(images) and "string calm" in "".join(label_echo.seen + list(label_echo._q.queue))
                and "image" in "".join(image_echo.seen + list(image_echo._q.queue)), 30, "C peer exchange", every=send)
    cam.wait("sent 3")
    f = images[0]
    assert (f.encoding, f.width, f.height, f.header.frame_id, f.header.stamp_ns) == ("rgb8", 64, 48, "c_cam", 7_500_000_000)
    assert np.array_equal(f.data, pixels)
    label_echo.wait("string calm")
    m = image_echo.wait(r"image rgb8 64x48 step 192 frame_id ann stamp 3\.250000000 bytes 9216 sum (\d+)")
    assert int(m.group(1)) == int(pixels.sum())


def test_bad_input_logged_once_per_kind_and_a_returning_robot_is_picked_up(spawn, dds_env, probe) -> None:
    images = probe.listen(ImageFrame, "/camera/image")
    log = bridge(spawn, "audio_topic=''", "text_topic=''", "no_match_warn_s=0.5", "check_period_s=0.2")
    log.wait(r"/camera/image_raw: no DDS writer on rt/camera/image_raw yet")
    bad = peer(spawn, "pub", "sensor_msgs/msg/Image", "/camera/image_raw", "--count", "4", "--msg",
               _image_json(encoding="32FC1", ch=4))
    bad.wait("sent 4")
    short = peer(spawn, "pub", "sensor_msgs/msg/Image", "/camera/image_raw", "--count", "2", "--msg",
                 json.dumps({"height": 48, "width": 64, "encoding": "rgb8", "step": 192, "data": {"fill": 0, "len": 100}}))
    short.wait("sent 2")
    log.wait(r"dropped bad input \(ros2 encoding on /camera/image_raw\).*'32FC1' is not supported \(supported: \[")
    log.wait(r"dropped bad input \(ros2 size on /camera/image_raw\).*expected step >= 192 and data = step x height")
    log.wait(r"/camera/image_raw: 0 matched DDS peer\(s\) \(was 1\)")
    assert images == []
    # the robot comes back (a new process): picked up without restarting the bridge
    good = peer(spawn, "pub", "sensor_msgs/msg/Image", "/camera/image_raw", "--count", "3", "--msg", _image_json())
    probe.until(lambda: bool(images), 20, "an image from the returning robot")
    good.wait("sent 3")
    assert sum("ros2 encoding on" in line for line in log.seen) == 1  # once per kind, later ones counted


def test_qos_mismatch_is_explained_with_both_profiles(spawn, dds_env) -> None:
    log = bridge(spawn, "image_topic=''", "audio_topic=''", "text_topic=''", "no_match_warn_s=0.5", "check_period_s=0.2",
                 "inputs=[{ros_topic: /cam, type: sensor_msgs/msg/Image, topic: /camera/image, qos: reliable}]")
    peer(spawn, "pub", "sensor_msgs/msg/Image", "/cam", "--qos", "best_effort", "--timeout", "8", "--msg", _image_json())
    log.wait(r"/cam: not matched\. Our reader: sensor_msgs/msg/Image, reliable, keep-last 5, volatile; peer writer "
             r"with best_effort, keep-last 5, volatile: the reader asks for reliable but the writer offers best_effort")


def test_unsupported_type_fails_at_start(spawn, dds_env) -> None:
    proc = subprocess.run(node_cmd("nodes.ros2_bridge", "--param", "image_type=sensor_msgs/msg/PointCloud2"),
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "PointCloud2" in proc.stderr + proc.stdout


def test_ros2_robot_launch_gives_a_camera_only_robot_estimates(spawn, dds_env, tmp_path) -> None:
    """launch/ros2_robot.yaml end to end: a DDS robot with a camera and no microphone or speech topic."""
    import cv2

    cap, frames = cv2.VideoCapture(str(REPO / "mmstream" / "data" / "sample.mp4")), []
    while len(frames) < 45:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, (320, 240)), cv2.COLOR_BGR2RGB).tobytes())
    raw = tmp_path / "frames.rgb"
    raw.write_bytes(b"".join(frames))
    launch = Lines(spawn([sys.executable, "-m", "mmstream", "launch", str(REPO / "launch" / "ros2_robot.yaml")]))
    label = peer(spawn, "echo", "std_msgs/msg/String", "/mmstream/emotion_label", "--timeout", "50")
    emotion = peer(spawn, "echo", "mmstream_msgs/msg/EmotionEstimate", "/mmstream/emotion", "--count", "4",
                   "--timeout", "50")
    peer(spawn, "pub", "sensor_msgs/msg/Image", "/camera/image_raw", "--count", "600", "--rate", "15", "--raw",
         str(raw), "--timeout", "50", "--msg", json.dumps({"height": 240, "width": 320, "encoding": "rgb8", "step": 960}))
    assert label.json(45)["msg"]["data"]
    ests = [emotion.json(20)["msg"] for _ in range(4)]
    presence = [dict(zip(e["presence_modalities"], e["presence"])) for e in ests]
    assert any(p.get("video") for p in presence)  # the robot's frames were seen
    assert not any(p.get("audio") or p.get("text") for p in presence)  # missing inputs masked, never invented
    assert "error" not in "\n".join(launch.seen).lower()
