"""The Foxglove bridge node in its own process, a real WebSocket client speaking foxglove.sdk.v1."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from websockets.asyncio.client import connect

from mmstream.errors import ParameterError
from mmstream.messages import AudioChunk
from mmstream.viz.foxglove_bridge import audio_level, check_bind_host
from tests.conftest import node_cmd

#: publishes Detections and EmotionEstimate ten times a second (what inference would publish)
FAKE_INFERENCE = r'''
import sys, numpy as np
from mmstream.messages import Detections, EmotionEstimate
from mmstream.node import Component, run_node
LABELS = ["angry", "happy", "neutral"]
class FakeInference(Component):
    NAME = "fake_inference"
    def __init__(self, node):
        super().__init__(node)
        self.det = node.create_publisher(Detections, "/perception/detections")
        self.emo = node.create_publisher(EmotionEstimate, "/perception/emotion")
        node.create_timer(0.1, self.tick)
    def tick(self):
        now = self.node.now_ns()
        self.det.publish(Detections(window_start_ns=now - 10**9, window_end_ns=now, box_labels=["face"],
                               image_width=320, image_height=240, event_labels=["face_present", "speech_present"],
                               event_scores=[0.9, 0.75], boxes=np.array([[40, 30, 140, 150]], np.float32),
                               box_scores=np.array([0.95], np.float32)))
        self.emo.publish(EmotionEstimate(window_start_ns=now - 10**9, window_end_ns=now, labels=LABELS,
                                         probs=[0.1, 0.7, 0.2], top_label="happy", top_prob=0.7, backend="test"))
raise SystemExit(run_node(FakeInference, sys.argv[1:]))
'''


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            q.put(line)
    threading.Thread(target=pump, daemon=True).start()
    return q


def _wait_line(q: queue.Queue[str], pattern: str, timeout_s: float, seen: list[str]) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError(f"no line matching {pattern!r} within {timeout_s}s; output: {''.join(seen)[-2000:]}")


def _protobuf_class(schema_b64: str, name: str) -> Any:
    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(schema_b64))
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


async def _collect(port: int, want: set[str], timeout_s: float,
                   until: Callable[[dict[str, list[Any]]], bool] = lambda got: True,
                   ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Connect, subscribe to every advertised channel, decode messages until each topic in ``want``
    has 2 and ``until(got)`` holds."""
    channels: dict[int, dict[str, Any]] = {}
    decoders: dict[int, Any] = {}
    got: dict[str, list[Any]] = {}
    others: list[Any] = []
    async with connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"], max_size=None) as ws:
        assert ws.subprotocol == "foxglove.sdk.v1"
        info = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert info["op"] == "serverInfo"
        deadline = time.monotonic() + timeout_s
        while any(len(got.get(t, [])) < 2 for t in want) or not until(got):
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"timed out; advertised {sorted(c['topic'] for c in channels.values())}, "
                                     f"received { {t: len(v) for t, v in got.items()} }; "
                                     f"other ops {others[:5]}") from None
            if isinstance(raw, str):
                msg = json.loads(raw)
                if msg["op"] != "advertise":
                    others.append(msg)
                if msg["op"] == "advertise":
                    subs = []
                    for ch in msg["channels"]:
                        channels[ch["id"]] = ch
                        if ch["encoding"] == "protobuf":
                            decoders[ch["id"]] = _protobuf_class(ch["schema"], ch["schemaName"])
                        subs.append({"id": ch["id"], "channelId": ch["id"]})  # subscription id = channel id
                    await ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
                continue
            opcode, sub_id, log_time = struct.unpack_from("<BIQ", raw)
            assert opcode == 1  # MessageData
            ch = channels[sub_id]
            payload = raw[13:]
            value = decoders[sub_id].FromString(payload) if sub_id in decoders else json.loads(payload)
            got.setdefault(ch["topic"], []).append(value)
    return {c["topic"]: c for c in channels.values()}, got


@pytest.mark.timeout(60)
def test_bridge_serves_advertised_channels_and_messages(spawn, run_dir: Path, tmp_path: Path) -> None:
    mcap_path = tmp_path / "shown.mcap"
    spawn(node_cmd("nodes.test_pattern", "--param", "fps=10", "--param", "text_period_s=0.3"))
    spawn([sys.executable, "-c", FAKE_INFERENCE])
    bridge = spawn(node_cmd("nodes.foxglove_bridge", "--param", "port=0", "--param", f"mcap_path={mcap_path}",
                            "--param", "discover_period_s=0.2"))
    out: list[str] = []
    q = _lines(bridge)
    port = int(_wait_line(q, r"serving Foxglove WebSocket on ws://127\.0\.0\.1:\d+ \(port=(\d+)\)", 20, out).group(1))

    want = {"/camera/image", "/perception/faces", "/audio/level", "/perception/events", "/text/log",
            "/perception/emotion", "/graph/stats"}
    def stats_of_test_pattern(got: dict[str, list[Any]]) -> bool:
        return any(s["node"] == "test_pattern" for s in got.get("/graph/stats", []))
    advertised, got = asyncio.run(_collect(port, want, timeout_s=30, until=stats_of_test_pattern))

    # schemas the Foxglove app knows
    assert advertised["/camera/image"]["schemaName"] == "foxglove.CompressedImage"
    assert advertised["/perception/faces"]["schemaName"] == "foxglove.ImageAnnotations"
    assert advertised["/text/log"]["schemaName"] == "foxglove.Log"
    assert advertised["/perception/emotion"]["encoding"] == "json"

    img = got["/camera/image"][-1]
    assert img.format == "jpeg"  # 320x240x3 bytes > 64 KiB: JPEG
    pixels = cv2.imdecode(np.frombuffer(img.data, np.uint8), cv2.IMREAD_COLOR)
    assert pixels.shape == (240, 320, 3)
    # the test pattern's horizontal ramp survives the JPEG round trip
    assert pixels[120, 300, 0] > 200 and pixels[120, 10, 0] < 60

    faces = got["/perception/faces"][-1]
    corners = [(p.x, p.y) for p in faces.points[0].points]
    assert corners == [(40, 30), (140, 30), (140, 150), (40, 150)]
    assert "face" in faces.texts[0].text

    level = got["/audio/level"][-1]
    assert math.isclose(level["rms_dbfs"], 20 * math.log10(0.3 / math.sqrt(2)), abs_tol=0.5)  # 0.3 amplitude sine
    assert got["/perception/events"][-1]["scores"]["speech_present"] == pytest.approx(0.75)
    assert re.fullmatch(r"test utterance number \d+", got["/text/log"][-1].message)
    emo = got["/perception/emotion"][-1]
    assert emo["top_label"] == "happy" and emo["probs"] == pytest.approx({"angry": 0.1, "happy": 0.7, "neutral": 0.2})
    assert {s["node"] for s in got["/graph/stats"]} >= {"test_pattern"}

    # stop the bridge: the MCAP it wrote holds what it showed
    bridge.send_signal(signal.SIGINT)
    assert bridge.wait(10) == 0
    from mcap.reader import make_reader

    with open(mcap_path, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    topics = {ch.topic for ch in summary.channels.values()}
    assert want <= topics
    counts = summary.statistics.channel_message_counts
    by_topic = {summary.channels[cid].topic: n for cid, n in counts.items()}
    assert by_topic["/camera/image"] >= 2 and by_topic["/perception/emotion"] >= 2


@pytest.mark.timeout(30)
def test_non_loopback_host_needs_allow_remote(run_dir: Path) -> None:
    proc = subprocess.run(node_cmd("nodes.foxglove_bridge", "--param", "host=0.0.0.0", "--param", "port=0"),
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2
    assert "allow_remote" in proc.stderr
    with pytest.raises(ParameterError, match="not a loopback"):
        check_bind_host("192.168.1.10", allow_remote=False)
    check_bind_host("::1", allow_remote=False)
    check_bind_host("0.0.0.0", allow_remote=True)


def test_audio_level_of_known_signals() -> None:
    t = np.arange(16000) / 16000
    sine = AudioChunk(samples=(0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None])
    lv = audio_level(sine)
    assert lv["rms_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)
    assert lv["peak_dbfs"] == pytest.approx(20 * math.log10(0.5), abs=0.05)
    assert 0.0 < lv["level"] < 1.0
    silent = audio_level(AudioChunk(samples=np.zeros((160, 1), np.int16)))
    assert silent["rms_dbfs"] == -90.0 and silent["level"] == 0.0
    full = audio_level(AudioChunk(samples=np.full((160, 1), 32767, np.int16)))
    assert full["level"] == pytest.approx(1.0, abs=1e-3)


def test_shipped_layout_is_current_and_shows_every_bridge_topic() -> None:
    from mmstream.viz.foxglove_bridge import TOPICS
    from mmstream.viz.foxglove_layout import layout_json

    shipped = (Path(__file__).resolve().parents[1] / "config" / "foxglove_layout.json").read_text()
    assert shipped == layout_json(), "regenerate: python -m mmstream.viz.foxglove_layout > config/foxglove_layout.json"
    layout = json.loads(shipped)
    text = json.dumps(layout["configById"])
    for key in ("image", "faces", "audio_level", "events", "text", "emotion", "summary"):
        assert TOPICS[key] in text, f"layout does not show {TOPICS[key]}"

    def leaves(node: Any) -> list[str]:
        return [node] if isinstance(node, str) else leaves(node["first"]) + leaves(node["second"])
    assert sorted(leaves(layout["layout"])) == sorted(layout["configById"])


@pytest.mark.timeout(30)
def test_small_frames_go_out_as_lossless_png() -> None:
    from mmstream.messages import ImageFrame
    from mmstream.viz.foxglove_bridge import FoxgloveBridge

    bridge = FoxgloveBridge(port=0, jpeg_above_bytes=64 * 48 * 3)  # a 64x48 bgr8 frame is not above it
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            frame = ImageFrame(encoding="bgr8", height=48, width=64, data=img)
            frame.header.stamp_ns = time.time_ns()
            bridge.on_image(frame)
            time.sleep(0.02)
    threading.Thread(target=feed, daemon=True).start()
    try:
        advertised, got = asyncio.run(_collect(bridge.port, {"/camera/image"}, timeout_s=15))
    finally:
        stop.set()
        bridge.close()
    assert advertised["/camera/image"]["schemaName"] == "foxglove.CompressedImage"
    msg = got["/camera/image"][-1]
    assert msg.format == "png"
    assert np.array_equal(cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR), img)
