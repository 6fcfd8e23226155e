"""Record a running graph, replay it, control playback, replay deterministically — real processes."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bag_helpers import assert_same, write_robot_bag
from conftest import REPO, node_cmd, wait_for
from mmstream.bag.play import send_control
from mmstream.bag.reader import BagReader
from mmstream.messages import AudioChunk, ImageFrame, NodeStats, TextUtterance, Window
from mmstream.node import Node

pytestmark = pytest.mark.timeout(90)

TOPICS = {"/camera/image": ImageFrame, "/microphone/audio": AudioChunk, "/text/utterance": TextUtterance}


def _publish_graph(node: Node, seconds: float, *, reliable: bool = False) -> dict[str, int]:
    """Publish frames (30 Hz), audio (50 Hz) and text (2 Hz) for ``seconds``; returns the last seq per topic."""
    pubs = {t: node.create_publisher(cls, t, reliable=reliable) for t, cls in TOPICS.items()}
    for t, pub in pubs.items():
        assert pub.wait_for_subscribers(1, timeout_s=15.0), f"recorder never subscribed to {t}"
    rng = np.random.default_rng(5)
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        now = node.now_ns()
        if n % 5 == 0:
            img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
            pubs["/camera/image"].publish(ImageFrame(encoding="bgr8", height=120, width=160, data=img))
        if n % 3 == 0:
            pubs["/microphone/audio"].publish(AudioChunk(samples=rng.standard_normal((320, 1)).astype(np.float32)))
        if n % 75 == 0:
            pubs["/text/utterance"].publish(TextUtterance(start_ns=now - 1000, end_ns=now, text=f"utterance {n}"))
        n += 1
        node.spin_once(0.0)
        time.sleep(max(0.0, n / 150 - elapsed))  # 150 Hz base tick
    return {t: p.seq for t, p in pubs.items()}


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout_s: float = 20.0) -> str:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=timeout_s)
    return out


def _recorder(spawn: Any, out: Path, *extra: str) -> subprocess.Popen[str]:
    topics = json.dumps(list(TOPICS))
    return spawn(node_cmd("nodes.recorder", "-p", f"output={out}", "-p", f"topics={topics}",
                          "-p", "progress_s=0.5", *extra))


def test_record_running_graph_keeps_every_message(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "graph.mcap"
    # a deep receive queue: on this shared 2-core machine the recorder may be starved of CPU for a while
    rec = _recorder(spawn, out, "-p", "keep_last=512")
    with Node("talker", run_dir=run_dir) as node:
        last = _publish_graph(node, 2.0)
    log = _stop(rec)
    assert rec.returncode == 0, log
    assert '"queue_drops": {}, "transport_drops": {}' in log, log
    assert "recorder finished" in log and "recording" in log  # summary and progress lines
    reader = BagReader(out)
    seqs: dict[str, list[int]] = {}
    for m in reader.messages():
        seqs.setdefault(m.topic, []).append(m.seq)
    for topic, n in last.items():
        assert seqs[topic] == list(range(1, n + 1)), f"{topic}: missing {sorted(set(range(1, n + 1)) - set(seqs[topic]))}"
    assert last["/camera/image"] >= 50 and reader.problems == []
    meta = reader.metadata()
    assert "recorder" in meta and "mmstream_version" in meta["recorder"]


def test_kill_9_leaves_a_readable_bag(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed.mcap"
    rec = _recorder(spawn, out, "-p", "flush_s=0.2", "-p", "chunk_mb=64")
    with Node("talker", run_dir=run_dir) as node:
        last = _publish_graph(node, 1.5)
        time.sleep(0.6)  # past at least two flushes
        rec.send_signal(signal.SIGKILL)
        rec.wait(10)
    reader = BagReader(out)
    seqs: dict[str, list[int]] = {}
    for m in reader.messages():
        seqs.setdefault(m.topic, []).append(m.seq)
    assert any("ends early" in p for p in reader.problems), reader.problems
    for topic, n in last.items():
        got = seqs.get(topic, [])
        assert got == list(range(1, len(got) + 1)), topic  # a clean prefix
    # everything published at least 0.6 s before the kill was flushed in a completed chunk
    assert len(seqs["/camera/image"]) == last["/camera/image"], (len(seqs["/camera/image"]), last)


class _Consumer:
    """An in-test node on sim time: receives replayed topics reliably, cuts windows with the real
    synchronizer on the node clock, and keeps a digest of everything it saw."""

    def __init__(self, run_dir: Path, *, windows: bool = True) -> None:
        from mmstream.sync.config import SyncConfig
        from mmstream.sync.window_sync import WindowSynchronizer

        self.node = Node("consumer", params={"use_sim_time": True}, run_dir=run_dir)
        self.received: dict[str, list[Any]] = {t: [] for t in TOPICS}
        self.events: dict[str, list[str]] = {t: [] for t in TOPICS}   # per topic: stamp + data digest
        self.now_at_callback: dict[str, list[int]] = {t: [] for t in TOPICS}
        self.windows: list[Window] = []
        self.sync = WindowSynchronizer(SyncConfig(frames_per_window=4, sample_rate_hz=16000)) if windows else None
        for topic, cls in TOPICS.items():
            self.node.create_subscription(cls, topic, lambda m, t=topic: self._on(t, m), keep_last=None)
        # (no second /clock subscription here: the player waits for one subscriber per topic, and the
        # node's own clock subscription must be the one it waited for, or it could miss the first ticks)
        if self.sync is not None:
            self.node.create_timer(0.05, self._poll)

    def _on(self, topic: str, msg: Any) -> None:
        self.received[topic].append(msg)
        digest = hashlib.sha1(b"".join(a.tobytes() for a in msg.array_fields())).hexdigest()[:12]
        self.events[topic].append(f"stamp={msg.header.stamp_ns} {digest}")
        self.now_at_callback[topic].append(self.node.now_ns())
        if self.sync is not None:
            self.sync.push(msg, self.node.now_ns())

    def _poll(self) -> None:
        assert self.sync is not None
        for w in self.sync.poll(self.node.now_ns()):
            self.windows.append(w)

    def spin_until_done(self, player: subprocess.Popen[str], timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while player.poll() is None and time.monotonic() < deadline:
            self.node.spin_once(0.01)
        # what is still in the sockets: the player exits as soon as its queues are handed over
        quiet_since, seen = time.monotonic(), -1
        while time.monotonic() - quiet_since < 0.5 and time.monotonic() < deadline + 10:
            self.node.spin_once(0.02)
            total = sum(len(v) for v in self.received.values())
            if total != seen:
                quiet_since, seen = time.monotonic(), total
        out, _ = player.communicate(timeout=10)
        return out

    def window_digest(self) -> list[str]:
        out = []
        for w in self.windows:
            arrays = b"".join(a.tobytes() for a in w.array_fields())
            out.append(f"{w.start_ns} {w.end_ns} {w.presence} {w.coverage} {[u.text for u in w.utterances]} "
                       f"{hashlib.sha1(arrays).hexdigest()}")
        return out

    def close(self) -> None:
        self.node.close()


def _player(spawn: Any, bag: Path, *params: str) -> subprocess.Popen[str]:
    return spawn(node_cmd("nodes.player", "-p", f"bag={bag}", "-p", "wait_for_subscribers=1",
                          "-p", "keyboard=false", "-p", "drain_timeout_s=1.5", *params))


ROBOT_MAP = json.dumps({"/camera/image_raw": "camera", "/audio/audio": "microphone", "/speech/text": "text"})
ROBOT_TOPICS = json.dumps(["/camera/image_raw", "/audio/audio", "/speech/text"])


def _seq_gaps(msgs: list[Any]) -> list[tuple[int, int]]:
    seqs = [m.header.seq for m in msgs]
    return [(a, b) for a, b in zip([0] + seqs, seqs + [seqs[-1] if seqs else 0]) if b != a + 1][:5]


def test_replay_matches_the_recording(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "graph.mcap"
    rec = _recorder(spawn, out)
    with Node("talker", run_dir=run_dir) as node:
        _publish_graph(node, 1.0)
    _stop(rec)
    consumer = _Consumer(run_dir, windows=False)
    try:
        log = consumer.spin_until_done(_player(spawn, out, "-p", "fast=true"))
        assert "player finished" in log, log
        recorded: dict[str, list[Any]] = {}
        for m in BagReader(out).messages():
            recorded.setdefault(m.topic, []).append(m.msg)
        for topic in TOPICS:
            assert len(consumer.received[topic]) == len(recorded[topic]) > 0, topic
            for a, b in zip(recorded[topic], consumer.received[topic]):
                a.header.seq = b.header.seq  # the player's publisher numbers its own messages
                assert_same(a, b)
        assert consumer.node.now_ns() >= max(m.header.stamp_ns for ms in recorded.values() for m in ms) > 0  # ticks applied
    finally:
        consumer.close()


def test_robot_bag_from_rosbags_plays_and_replay_is_deterministic(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    """A rosbag2 directory written by rosbags (sensor_msgs/Image, audio_common, std_msgs/String) plays through
    our player into the synchronizer; two replays at different rates give byte-identical events and windows."""
    bag = tmp_path / "robot"
    counts = write_robot_bag(bag, seconds=2.0)
    runs = []
    for params in (("-p", "rate=2.0"), ("-p", "fast=true")):
        consumer = _Consumer(run_dir)
        try:
            log = consumer.spin_until_done(_player(spawn, bag, "-p", f"topic_map={ROBOT_MAP}",
                                                   "-p", f"topics={ROBOT_TOPICS}", *params))
            assert "player finished" in log, log
            audio = consumer.received["/microphone/audio"]
            assert len(consumer.received["/camera/image"]) == counts["image"]
            assert len(audio) == counts["audio"], (_seq_gaps(audio), log)
            assert len(consumer.received["/text/utterance"]) == counts["text"]
            runs.append((consumer.events, consumer.window_digest(), consumer.now_at_callback))
        finally:
            consumer.close()
    (events_a, windows_a, now_a), (events_b, windows_b, now_b) = runs
    assert len(windows_a) >= 2, "the replay yielded no windows"
    assert events_a == events_b  # the same messages, in the same order per topic, with the same data
    assert now_a == now_b  # the node clock at every callback is the same at any rate
    assert windows_a == windows_b


def test_pause_step_resume_over_the_control_socket(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    bag = tmp_path / "robot"
    write_robot_bag(bag, seconds=2.0)
    endpoint = f"ipc://{run_dir}/ctl.sock"
    consumer = _Consumer(run_dir, windows=False)
    try:
        player = _player(spawn, bag, "-p", f"topic_map={ROBOT_MAP}", "-p", f"topics={ROBOT_TOPICS}",
                         "-p", f"control_endpoint={endpoint}",
                         "-p", "rate=0.5")
        wait_for(lambda: (consumer.node.spin_once(0.01), len(consumer.received["/microphone/audio"]) > 2)[1],
                 20, "playback to start")
        paused = send_control(endpoint, "pause")
        assert paused["ok"] and paused["paused"]
        for _ in range(30):
            consumer.node.spin_once(0.01)
        before = send_control(endpoint, "status")["published"]
        time.sleep(0.3)
        assert send_control(endpoint, "status")["published"] == before  # nothing goes out while paused
        send_control(endpoint, "step 3")
        wait_for(lambda: send_control(endpoint, "status")["published"] == before + 3, 5, "three steps")
        time.sleep(0.2)
        assert send_control(endpoint, "status")["published"] == before + 3
        assert not send_control(endpoint, "jump")["ok"]
        cli = subprocess.run([sys.executable, "-m", "mmstream", "bag", "control", "status", "--endpoint", endpoint],
                             cwd=REPO, capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0 and json.loads(cli.stdout)["published"] == before + 3, cli.stderr
        assert send_control(endpoint, "rate 50")["rate"] == 50.0
        send_control(endpoint, "resume")
        log = consumer.spin_until_done(player)
        assert "player finished" in log
    finally:
        consumer.close()


def test_cli_info_and_play(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    bag = tmp_path / "robot"
    write_robot_bag(bag, seconds=1.0)
    info = subprocess.run([sys.executable, "-m", "mmstream", "bag", "info", str(bag), "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert {t["topic"] for t in data["topics"]} == {"/camera/image_raw", "/camera/image_raw/compressed",
                                                   "/audio/audio", "/speech/text"}
    assert data["duration_s"] > 0.9
    play = spawn([sys.executable, "-m", "mmstream", "bag", "play", str(bag), "--fast", "-m", "/camera/image_raw=camera"])
    out, _ = play.communicate(timeout=60)
    assert play.returncode == 0 and "player finished" in out, out
    bad = subprocess.run([sys.executable, "-m", "mmstream", "bag", "info", str(tmp_path / "missing.mcap")], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "missing.mcap" in bad.stderr and "does not exist" in bad.stderr


def test_cli_record_a_launched_source(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.mcap"
    rec = spawn([sys.executable, "-m", "mmstream", "bag", "record", "/camera/image", "/microphone/audio",
                 "-o", str(out), "--duration", "4", "--split-s", "1", "--launch", "launch/test_pattern.yaml",
                 "--params-text", "test_pattern: {fps: 30}"])
    spawn(node_cmd("nodes.test_pattern", "-p", "fps=30", "-p", "width=64", "-p", "height=48",
                   "-p", "text_period_s=0", "-p", "wait_for_subscribers=1"))
    log, _ = rec.communicate(timeout=30)
    assert rec.returncode == 0, log
    assert "recorder finished" in log
    files = sorted(tmp_path.glob("cli_*.mcap"))
    assert len(files) >= 2, log  # split by duration
    seqs = [m.seq for m in BagReader(out).messages(topics=["/camera/image"])]
    assert len(seqs) > 30 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap across the split
    meta = BagReader(files[0]).metadata()
    assert meta["launch"]["text"] == (REPO / "launch" / "test_pattern.yaml").read_text()
    assert meta["parameters"]["text"] == "test_pattern: {fps: 30}" and meta["mmstream"]["version"]


def test_keyboard_pause_and_step(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    import os
    import pty

    bag = tmp_path / "robot"
    write_robot_bag(bag, seconds=2.0)
    endpoint = f"ipc://{run_dir}/kb.sock"
    master, slave = pty.openpty()
    player = spawn(node_cmd("nodes.player", "-p", f"bag={bag}", "-p", f"topic_map={ROBOT_MAP}", "-p", "rate=0.25",
                            "-p", f"topics={ROBOT_TOPICS}", "-p", f"control_endpoint={endpoint}"), stdin=slave)
    os.close(slave)
    try:
        wait_for(lambda: _status(endpoint).get("published", 0) > 0, 20, "playback to start")
        os.write(master, b" ")
        wait_for(lambda: _status(endpoint).get("paused") is True, 5, "space to pause")
        before = _status(endpoint)["published"]
        os.write(master, b"s")
        wait_for(lambda: _status(endpoint)["published"] == before + 1, 5, "s to step one message")
        os.write(master, b"q")
        player.communicate(timeout=20)
        assert player.returncode == 0
    finally:
        os.close(master)


def _status(endpoint: str) -> dict[str, Any]:
    try:
        return send_control(endpoint, "status", timeout_s=1.0)
    except Exception:  # the socket is not bound yet
        return {}


def test_overload_drops_are_counted_not_hidden(spawn: Any, run_dir: Path, tmp_path: Path) -> None:
    """A recorder that cannot keep up drops, never blocks the publisher, and accounts for every lost message."""
    out = tmp_path / "overload.mcap"
    rec = spawn(node_cmd("nodes.recorder", "-p", f"output={out}", "-p", 'topics=["/camera/image"]',
                         "-p", "queue_size=2", "-p", "keep_last=2", "-p", "progress_s=0"))
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    with Node("blaster", run_dir=run_dir) as node:
        pub = node.create_publisher(ImageFrame, "/camera/image")
        assert pub.wait_for_subscribers(1, timeout_s=15.0)
        t0 = time.monotonic()
        for i in range(300):
            pub.publish(ImageFrame(encoding="bgr8", height=480, width=640, data=frames[i % 4]))
        publish_s = time.monotonic() - t0
        time.sleep(1.5)  # let the recorder drain, then one more so a trailing gap shows in seq
        pub.publish(ImageFrame(encoding="bgr8", height=480, width=640, data=frames[0]))
        time.sleep(1.0)
        last = pub.seq
    log = _stop(rec)
    summary = json.loads(log.split("recorder finished:", 1)[1].splitlines()[0])
    got = [m.seq for m in BagReader(out).messages()]
    dropped = sum(summary["queue_drops"].values()) + sum(summary["transport_drops"].values())
    assert dropped > 0 and "dropped messages" in log
    first, final = summary["seq_range"]["/camera/image"]
    assert final == last and got[-1] == last
    assert len(got) == summary["messages"] == summary["received"] - sum(summary["queue_drops"].values())
    assert len(got) + dropped == last - first + 1, (len(got), summary, last)
    assert publish_s < 3.0  # 300 frames of 0.9 MB: the publisher was never held up by the recorder




def _sync_params() -> list[str]:
    """Replay: the bag clock, and every message delivered (reliable in and out, never dropped)."""
    return ["-p", "use_sim_time=true", "-p", "reliable_input=true", "-p", "reliable_output=true"]


def test_replays_through_the_synchronizer_node_give_identical_windows(spawn: Any, run_dir: Path,
                                                                       tmp_path: Path) -> None:
    bag = tmp_path / "robot"
    write_robot_bag(bag, seconds=3.0)
    params = _sync_params()
    digests = []
    sync_logs: list[str] = []
    for rate in (("-p", "rate=2.0"), ("-p", "fast=true")):
        sync = spawn(node_cmd("nodes.synchronizer", *params))
        windows: list[Window] = []
        with Node("window_sink", params={"use_sim_time": True}, run_dir=run_dir) as sink:
            sink.create_subscription(Window, "/sync/window", windows.append, keep_last=None)
            # the synchronizer is up and our sockets reach it once its stats arrive (the window publisher binds
            # just before them; a subscription exposes no "connected" flag to wait on)
            stats: list[NodeStats] = []
            sink.create_subscription(NodeStats, "/synchronizer/stats", stats.append)
            def window_subscribed() -> bool:
                sink.spin_once(0.01)
                return any(t["topic"] == "/sync/window" and t.get("subscribers", 0) >= 1
                           for s in stats[-1:] for t in s.topics)

            wait_for(window_subscribed, 30, "the synchronizer to see our window subscription")
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                sink.spin_once(0.01)
            # the player waits for the synchronizer on every data topic and for both of us on /clock
            player = _player(spawn, bag, "-p", f"topic_map={ROBOT_MAP}", "-p", f"topics={ROBOT_TOPICS}", *rate)
            deadline = time.monotonic() + 60
            while player.poll() is None and time.monotonic() < deadline:
                sink.spin_once(0.01)
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                sink.spin_once(0.01)
        sync_logs.append(_stop(sync))
        digests.append([f"{w.start_ns} {w.end_ns} {w.presence} "
                        f"{hashlib.sha1(b''.join(a.tobytes() for a in w.array_fields())).hexdigest()}"
                        for w in windows])
    assert len(digests[0]) >= 3, "no windows came out of the synchronizer"
    assert not any("node clock jumped back" in log for log in sync_logs)
    assert digests[0] == digests[1]


def test_a_finished_player_waits_for_a_slow_subscriber_then_exits(spawn: Any, run_dir: Path) -> None:
    """ZeroMQ drops what a subscriber has not read when its publisher exits (tests/test_transport_end.py):
    the finished player ends each stream and exits only once its subscriber confirmed it has it all."""
    sample = REPO / "mmstream/data/sample.mcap"
    expected = sum(1 for m in BagReader(sample).messages() if m.out_topic == "/camera/image")
    got: list[int] = []
    with Node("slow_consumer", run_dir=run_dir) as node:
        sub = node.create_subscription(ImageFrame, "/camera/image",
                                       lambda m: (got.append(m.header.seq), time.sleep(0.003)), keep_last=None)
        player = _player(spawn, sample, "-p", "fast=true", "-p", "topics=[/camera/image]", "-p", "clock=false",
                         "-p", "progress_s=0")
        wait_for(lambda: (node.spin_once(0.02), sub.ended > 0)[1], 60, "the end of the stream")
        out, _ = player.communicate(timeout=10)  # it confirmed: the player goes
        assert player.returncode == 0, out
        assert got == list(range(1, expected + 1))
