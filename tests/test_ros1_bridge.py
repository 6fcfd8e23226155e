"""The ROS 1 bridge against a real ROS 1 master (Debian's rosmaster, rospy, rostopic).

Each test starts ``rosmaster --core`` on a free port with its own ROS_HOME, the bridge as its own
process, and ROS 1 peers that are not our code: ``rostopic pub`` / ``rostopic echo`` and a rospy
script run by the system Python (tests/ros1_peer.py). The mmstream side is a probe node in the test.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, node_cmd, wait_for
from mmstream.messages import AudioChunk, Detections, EmotionEstimate, ImageFrame, TextUtterance
from mmstream.node import Node

SYSTEM_PY = "/usr/bin/python3"
HAVE_ROS1 = bool(shutil.which("rosmaster") and shutil.which("rostopic")) and os.path.exists(
    "/usr/lib/python3/dist-packages/rospy")
pytestmark = [pytest.mark.skipif(not HAVE_ROS1, reason="ROS 1 not installed (scripts/setup.sh --dev installs "
                                                       "python3-rospy, python3-rosmaster, python3-rostopic)"),
              pytest.mark.timeout(60)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """Collects a process's output lines on a thread; wait for one matching a pattern."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.seen, self._q = proc, [], queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen.append(self._q.get_nowait())
            except queue.Empty:
                return self.seen

    def wait(self, pattern: str, timeout_s: float = 15.0) -> re.Match[str]:
        deadline, checked = time.monotonic() + timeout_s, 0
        while True:
            lines = self.drain()
            for line in lines[checked:]:
                m = re.search(pattern, line)
                if m:
                    return m
            checked = len(lines)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout_s}s; output:\n" + "\n".join(lines))
            try:
                self.seen.append(self._q.get(timeout=min(0.1, left)))
            except queue.Empty:
                pass


class Master:
    """A real rosmaster on a free port, with its own ROS_HOME; stop() and start() again for outages."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        (tmp / "ros_home").mkdir(exist_ok=True)
        self.env = {"ROS_MASTER_URI": self.uri, "ROS_IP": "127.0.0.1", "ROS_HOME": str(tmp / "ros_home")}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["rosmaster", "--core", "-p", str(self.port)], env={**os.environ, **self.env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)

        def up() -> bool:
            try:
                return xmlrpc.client.ServerProxy(self.uri).getPid("/test")[0] == 1
            except OSError:
                return False

        wait_for(up, 15, f"rosmaster on {self.uri}", step_s=0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def master(tmp_path: Path):
    m = Master(tmp_path)
    m.start()
    yield m
    m.stop()


@dataclass
class Probe:
    """The mmstream side of a test: a node subscribed to the bridge's outputs."""

    node: Node
    got: dict[str, list] = field(default_factory=lambda: {"image": [], "audio": [], "text": []})

    def create_publisher(self, cls, topic):
        return self.node.create_publisher(cls, topic)

    def spin_once(self, timeout_s: float) -> None:
        self.node.spin_once(timeout_s)


@pytest.fixture
def probe(run_dir: Path):
    p = Probe(Node("probe", run_dir=run_dir))
    for kind, cls, topic in (("image", ImageFrame, "/camera/image"), ("audio", AudioChunk, "/microphone/audio"),
                             ("text", TextUtterance, "/text/utterance")):
        p.node.create_subscription(cls, topic, p.got[kind].append, keep_last=None)
    yield p
    p.node.close()


def spin_until(probe: Probe, pred, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        probe.spin_once(0.05)
        if pred():
            return
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def start_bridge(spawn, master: Master, *params: str) -> Lines:
    args = [a for p in params for a in ("--param", p)]
    lines = Lines(spawn(node_cmd("nodes.ros1_bridge", *args), env=master.env))
    lines.wait(r"ROS 1 node /ros1_bridge on master " + re.escape(master.uri))
    return lines


def peer(spawn, master: Master, *args: str) -> Lines:
    return Lines(spawn([SYSTEM_PY, str(REPO / "tests" / "ros1_peer.py"), *args], env=master.env))


def rostopic(spawn, master: Master, *args: str) -> Lines:
    return Lines(spawn(["rostopic", *args], env=master.env))


# ---------------------------------------------------------------------------------------------


def test_robot_inputs_reach_mmstream_and_estimates_reach_the_robot(spawn, master, probe, tmp_path):
    bridge = start_bridge(spawn, master, "audio_type=audio_common_msgs/AudioDataStamped")
    # robot -> mmstream: a rospy camera (system Python), rostopic pub for speech, a rospy microphone
    cam = peer(spawn, master, "pub", "image", "/camera/image_raw", "--count", "5")
    rostopic(spawn, master, "pub", "-r", "10", "/text", "std_msgs/String", "data: 'hello from rostopic'")
    mic = peer(spawn, master, "pub", "audio_stamped", "/audio", "--count", "5")
    spin_until(probe, lambda: len(probe.got["image"]) >= 5 and len(probe.got["audio"]) >= 5
               and probe.got["text"], 20, "images, audio and text from the robot")
    cam.wait("sent 5"), mic.wait("sent 5")
    frame = probe.got["image"][0]
    assert (frame.encoding, frame.height, frame.width, frame.header.frame_id) == ("rgb8", 48, 64, "cam")
    assert frame.header.stamp_ns == 1_000 * 10**9 + 5_000_000  # the ROS 1 header stamp, in ns
    assert frame.data.reshape(-1)[:5].tolist() == [0, 1, 2, 3, 4]
    chunk = probe.got["audio"][0]
    assert (chunk.sample_rate_hz, chunk.channels, chunk.samples.shape) == (16000, 1, (320, 1))
    assert chunk.header.stamp_ns == 1_000 * 10**9 + 5_000_000 and chunk.samples[0, 0] == -20000
    assert probe.got["text"][0].text == "hello from rostopic"

    # mmstream -> robot: rostopic echo reads the label; a rospy subscriber decodes the custom types
    label = rostopic(spawn, master, "echo", "-n", "1", "/mmstream/emotion_label")
    emotion = peer(spawn, master, "echo", "/mmstream/emotion")
    dets = peer(spawn, master, "echo", "/mmstream/detections")
    emotion.wait("subscribed"), dets.wait("subscribed")
    est_pub = probe.create_publisher(EmotionEstimate, "/perception/emotion")
    det_pub = probe.create_publisher(Detections, "/perception/detections")
    est = EmotionEstimate(labels=["neutral", "happy"], probs=[0.25, 0.75], top_label="happy", top_prob=0.75,
                          presence={"video": True, "audio": False}, backend="onnxruntime")
    est.header.stamp_ns = 1_234 * 10**9 + 42
    det = Detections(boxes=np.array([[10, 20, 30, 60]], np.float32), box_scores=np.array([0.9], np.float32),
                     box_labels=["face"], image_width=64, image_height=48)
    got_label: list[str] = []

    def delivered() -> bool:  # publish until the late ROS subscribers have connected and seen one
        est_pub.publish(est)
        det_pub.publish(det)
        probe.spin_once(0.05)
        return any("data: \"happy\"" in s for s in label.drain()) and bool(
            [s for s in emotion.drain() if s.startswith("{")]) and bool([s for s in dets.drain() if s.startswith("{")])

    wait_for(delivered, 20, "estimate, label and detections on the ROS 1 side", step_s=0.1)
    e = json.loads(next(s for s in emotion.seen if s.startswith("{")))
    assert e["type"] == "mmstream_msgs/EmotionEstimate" and e["top_label"] == "happy"
    assert e["labels"] == ["neutral", "happy"] and e["probs"] == [0.25, 0.75] and e["stamp_ns"] == 1_234 * 10**9 + 42
    assert e["presence_modalities"] == ["video", "audio"] and e["presence"] == [True, False]
    d = json.loads(next(s for s in dets.seen if s.startswith("{")))
    assert d["type"] == "vision_msgs/Detection2DArray"
    assert d["detections"] == [{"id": 0, "score": 0.9, "cx": 20.0, "w": 20.0}]
    code, _, labels = xmlrpc.client.ServerProxy(master.uri).getParam("/test", "/mmstream/detection_labels")
    assert (code, labels) == (1, ["face"])  # the id -> label list, on the parameter server
    assert "dropped bad input" not in "\n".join(bridge.drain())


def test_bad_input_is_counted_and_logged_once_per_kind_and_the_bridge_keeps_running(spawn, master, probe):
    bridge = start_bridge(spawn, master)
    peer(spawn, master, "pub", "bad_encoding", "/camera/image_raw", "--count", "3").wait("sent 3")
    m = bridge.wait(r"dropped bad input \(unsupported-encoding\): (.*)")
    assert "/camera/image_raw" in m.group(1) and "'yuv422'" in m.group(1) and "rgb8" in m.group(1)
    peer(spawn, master, "pub", "bad_step", "/camera/image_raw", "--count", "3").wait("sent 3")
    m = bridge.wait(r"dropped bad input \(size-mismatch\): (.*)")
    assert "/camera/image_raw" in m.group(1) and "step 64" in m.group(1)
    # the robot's AudioInfo says mp3: its AudioData cannot be read as samples
    peer(spawn, master, "pub", "audio_info_mp3", "/audio_info", "--count", "1", "--linger", "5")
    # ... good input still flows meanwhile
    peer(spawn, master, "pub", "text", "/text", "--count", "40")
    spin_until(probe, lambda: len(probe.got["text"]) >= 3, 15, "text after bad images")
    peer(spawn, master, "pub", "audio", "/audio", "--count", "3").wait("sent 3")
    m = bridge.wait(r"dropped bad input \(unknown-audio-format\): (.*)")
    assert "/audio" in m.group(1) and "'mp3'" in m.group(1)
    peer(spawn, master, "pub", "image", "/camera/image_raw", "--count", "20")
    spin_until(probe, lambda: len(probe.got["image"]) >= 1, 15, "a good image after the bad ones")
    out = "\n".join(bridge.drain())
    for kind in ("unsupported-encoding", "size-mismatch", "unknown-audio-format"):
        assert out.count(f"dropped bad input ({kind})") == 1, out  # once per kind, the rest counted
    assert not probe.got["audio"]


def test_a_type_the_bridge_cannot_speak_fails_at_start_listing_the_supported_ones(run_dir):
    r = subprocess.run(node_cmd("nodes.ros1_bridge", "--param", "image_type=sensor_msgs/PointCloud2"), cwd=REPO,
                       env={**os.environ, "MMSTREAM_RUN_DIR": str(run_dir)}, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert "sensor_msgs/PointCloud2" in r.stderr and "['sensor_msgs/Image', 'sensor_msgs/CompressedImage']" in r.stderr


def test_a_master_that_goes_away_and_comes_back_is_picked_up_again(spawn, master, probe):
    bridge = start_bridge(spawn, master, "master_check_period_s=0.2")
    # the probe connects to the bridge's new publisher asynchronously: publish until it hears some
    peer(spawn, master, "pub", "text", "/text", "--count", "40")
    spin_until(probe, lambda: len(probe.got["text"]) >= 2, 15, "text before the outage")
    master.stop()
    bridge.wait(r"ROS master .* unreachable")
    master.start()  # a new roscore on the same port: it knows nobody
    bridge.wait(r"does not know /ros1_bridge \(it restarted\): registering again")
    before = len(probe.got["text"])
    peer(spawn, master, "pub", "text", "/text", "--count", "3")  # a robot node started after the restart
    spin_until(probe, lambda: len(probe.got["text"]) >= before + 3, 15, "text from a publisher on the new master")
    label = rostopic(spawn, master, "echo", "-n", "1", "/mmstream/emotion_label")
    pub = probe.create_publisher(EmotionEstimate, "/perception/emotion")

    def heard() -> bool:
        pub.publish(EmotionEstimate(labels=["sad"], probs=[1.0], top_label="sad", top_prob=1.0))
        probe.spin_once(0.05)
        return any('data: "sad"' in s for s in label.drain())

    wait_for(heard, 15, "rostopic echo on the new master hearing the bridge", step_s=0.1)


def test_rospy_is_reached_from_the_venv_without_the_rest_of_the_system_packages():
    code = ("from mmstream.ros1.system_import import import_rospy\n"
            "import importlib.util as u\n"
            "r = import_rospy()\n"
            "import sensor_msgs.msg, yaml\n"
            "print(r.__file__)\n"
            "print(yaml.__file__)\n"
            "print(u.find_spec('apt') is None, u.find_spec('dbus') is None)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 0, out.stderr
    rospy_file, yaml_file, hidden = out.stdout.split("\n")[:3]
    assert rospy_file.startswith("/usr/lib/python3/dist-packages/rospy/")
    assert not yaml_file.startswith("/usr/lib/python3")  # the venv's PyYAML wins
    assert hidden == "True True"  # other system packages stay invisible


def test_generated_types_match_installed_definitions_and_convert_views():
    from mmstream.bag import convert
    from mmstream.ros1 import types as r1
    from mmstream.ros1.system_import import import_rospy

    import_rospy()
    import genpy.dynamic
    from sensor_msgs.msg import Image

    t = r1.Ros1Types()
    # genpy on a definition gives the MD5 catkin gives: the installed Image's, from its text
    regenerated = genpy.dynamic.generate_dynamic("sensor_msgs/Image", Image._full_text)["sensor_msgs/Image"]
    assert regenerated._md5sum == Image._md5sum == t.cls(r1.IMAGE)._md5sum
    assert t.cls(r1.AUDIO_DATA)._md5sum == "f43a8e1b362b75baa741461b46adc7e0"  # audio_common_msgs/AudioData
    img = Image(width=2, height=1, encoding="bgr8", step=6, data=bytes(range(6)))
    img.header.stamp.secs, img.header.stamp.nsecs = 7, 9
    frame = convert.from_ros(r1.IMAGE, r1.plain(img))
    assert frame.header.stamp_ns == 7_000_000_009 and frame.data.tolist() == [[[0, 1, 2], [3, 4, 5]]]
    back = r1.image_to_ros1(t, frame)
    assert (back.encoding, back.step, bytes(back.data), back.header.stamp.nsecs) == ("bgr8", 6, bytes(range(6)), 9)


def test_ros1_robot_launch_gives_a_camera_only_robot_estimates(spawn, master, tmp_path):
    """launch/ros1_robot.yaml end to end: a robot with a camera and no microphone or speech topic."""
    import cv2

    cap, frames = cv2.VideoCapture(str(REPO / "mmstream" / "data" / "sample.mp4")), []
    while len(frames) < 45:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, (320, 240)), cv2.COLOR_BGR2RGB).tobytes())
    raw = tmp_path / "frames.rgb"
    raw.write_bytes(b"".join(frames))
    launch = Lines(spawn([sys.executable, "-m", "mmstream", "launch", str(REPO / "launch" / "ros1_robot.yaml")],
                         env=master.env))
    label = rostopic(spawn, master, "echo", "-n", "1", "/mmstream/emotion_label")
    emotion = peer(spawn, master, "echo", "/mmstream/emotion", "--count", "6")
    peer(spawn, master, "pub", "frames", "/camera/image_raw", "--count", "300", "--rate", "15", "--raw", str(raw),
         "--width", "320", "--height", "240")
    label.wait(r"data: \"\w+\"", timeout_s=45)
    emotion.wait(r"^\{.*\}$", timeout_s=10)
    wait_for(lambda: len([s for s in emotion.drain() if s.startswith("{")]) >= 6, 20, "six estimates")
    presence = [dict(zip(e["presence_modalities"], e["presence"]))
                for e in (json.loads(s) for s in emotion.seen if s.startswith("{"))]
    assert any(p["video"] for p in presence)  # the face in the robot's frames was seen
    assert not any(p["audio"] or p["text"] for p in presence)  # the missing inputs masked, never invented
    assert "error" not in "\n".join(launch.drain()).lower()
