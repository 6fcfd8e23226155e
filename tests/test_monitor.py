"""`mmstream monitor` on a real terminal (tmux) against a running graph, and the monitor as a launch node."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mmstream.messages import EmotionEstimate
from mmstream.viz.monitor import GraphState, bar, emotion_lines
from tests.conftest import REPO, node_cmd, wait_for

MMSTREAM = [sys.executable, "-c", "import sys; from mmstream.cli import main; sys.exit(main())"]

#: publishes an EmotionEstimate ten times a second, top label "surprise"
FAKE_EMOTION = r'''
import sys
from mmstream.messages import EmotionEstimate
from mmstream.node import Component, run_node
LABELS = ["angry", "happy", "neutral", "surprise"]
class FakeEmotion(Component):
    NAME = "fake_emotion"
    def __init__(self, node):
        super().__init__(node)
        self.pub = node.create_publisher(EmotionEstimate, "/perception/emotion")
        node.create_timer(0.1, self.tick)
    def tick(self):
        now = self.node.now_ns()
        self.pub.publish(EmotionEstimate(window_start_ns=now - 10**9, window_end_ns=now, labels=LABELS,
                                    probs=[0.05, 0.15, 0.2, 0.6], top_label="surprise", top_prob=0.6,
                                    presence={"video": True, "audio": True, "text": False}, backend="onnxruntime",
                                    latency_ms={"total": 12.5}))
raise SystemExit(run_node(FakeEmotion, sys.argv[1:]))
'''


class Tmux:
    """A private tmux server (own socket) running one command in a fixed-size window."""

    def __init__(self, socket: Path, cmd: list[str], env: dict[str, str], width: int = 150, height: int = 45) -> None:
        self.base = ["tmux", "-S", str(socket)]
        env_args = [f"{k}={v}" for k, v in env.items()]
        shell_cmd = " ".join(_quote(a) for a in ["env", *env_args, *cmd])
        subprocess.run([*self.base, "new-session", "-d", "-s", "mon", "-x", str(width), "-y", str(height),
                        shell_cmd + "; sleep 30"], check=True, timeout=10, cwd=REPO)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "mon"], capture_output=True, text=True,
                              timeout=10).stdout

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["cli", "node"])
def test_monitor_screen_shows_nodes_rates_and_emotion(spawn, run_dir: Path, tmp_path: Path, how: str) -> None:
    spawn(node_cmd("nodes.test_pattern", "--param", "fps=20", "--param", "text_period_s=0"))
    spawn([sys.executable, "-c", FAKE_EMOTION])
    cmd = ([*MMSTREAM, "monitor", "--duration", "25", "--refresh-hz", "4"] if how == "cli"
           else node_cmd("nodes.monitor", "--name", "_mon", "--param", "refresh_hz=4"))
    tmux = Tmux(tmp_path / "tmux.sock", cmd,
                env={"MMSTREAM_RUN_DIR": str(run_dir), "PYTHONPATH": str(REPO), "TERM": "xterm-256color"})
    screens: list[str] = []
    try:
        def ready() -> bool:
            s = tmux.screen()
            screens.append(s)
            return ("surprise" in s and re.search(r"/camera/image\s.*pub.*test_pattern\s.*\b(1[4-9]|2[0-5])\.\d\b", s)
                    is not None and "fake_emotion" in s)
        wait_for(ready, 30, "the monitor screen to show nodes, the camera rate and the emotion", step_s=0.3)
        screen = screens[-1]
        assert re.search(r"┃ node\s+┃ state", screen), "not the full-screen table view"
        # nodes table with both graph nodes running; the monitor's own hidden node is not listed
        assert re.search(r"test_pattern\s.*running", screen)
        assert re.search(r"fake_emotion\s.*running", screen)
        assert "_monitor_" not in screen and "_mon " not in screen
        # audio chunks of 20 ms: 50 Hz (camera: 20 fps; both with slack for a loaded machine)
        assert re.search(r"/microphone/audio\s.*pub.*\b(3[5-9]|4\d|5[0-5])\.\d\b", screen)
        # emotion panel: top label, and a bar per class, longest for the top class
        assert re.search(r"surprise 0\.60", screen)
        bars = {m.group(1): len(m.group(2).rstrip()) for m in
                re.finditer(r"(angry|happy|neutral|surprise)\s+([█▏▎▍▌▋▊▉ ]+)\s\d\.\d\d", screen)}
        assert set(bars) == {"angry", "happy", "neutral", "surprise"}
        assert bars["surprise"] == max(bars.values()) and bars["angry"] < bars["happy"]
        assert "latency 12.5 ms" in screen
    finally:
        tmux.close()


@pytest.mark.timeout(40)
def test_monitor_once_prints_plain_text_when_piped(spawn, run_dir: Path) -> None:
    spawn(node_cmd("nodes.test_pattern", "--param", "fps=10", "--param", "text_period_s=0"))
    spawn([sys.executable, "-c", FAKE_EMOTION])
    wait_for(lambda: len(list((run_dir / "nodes").glob("*.json"))) >= 2, 15, "two node records")
    proc = subprocess.run([*MMSTREAM, "monitor", "--once", "--settle", "8"], capture_output=True, text=True,
                          timeout=30, cwd=REPO, env=dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir)))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out  # no escape codes in a pipe
    assert re.search(r"^node test_pattern\s+running", out, re.M)
    assert re.search(r"^topic /camera/image\s+pub test_pattern\s+([7-9]|1[0-2])\.\d Hz drops 0", out, re.M)
    assert re.search(r"^emotion surprise 0\.60", out, re.M)


@pytest.mark.timeout(60)
def test_monitor_node_under_launch_reports_respawned_and_exited_nodes(run_dir: Path, tmp_path: Path) -> None:
    launch = tmp_path / "mon.yaml"
    launch.write_text("""
launch:
  - node: {exec: test_pattern, name: steady, params: {fps: 10, text_period_s: 0}}
  - node:
      exec: test_pattern
      name: flaky
      params: {fps: 10, count: 25, audio: false, text_period_s: 0}
      respawn: true
      respawn_delay_s: 0.2
      respawn_max: 1
  - node:
      exec: nodes.monitor
      name: monitor
      params: {plain_period_s: 0.5}
""")
    proc = subprocess.Popen([*MMSTREAM, "launch", str(launch), "--run-dir", str(run_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore
    seen: list[str] = []

    def saw(pattern: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(re.search(pattern, x) for x in seen)
    try:
        wait_for(lambda: saw(r"\[monitor\] node flaky\s+respawned ×1"), 25, "flaky shown as respawned", step_s=0.1)
        wait_for(lambda: saw(r"\[monitor\] node flaky\s+exited \(0\)"), 25, "flaky shown as exited", step_s=0.1)
        assert saw(r"\[monitor\] node steady\s+running")
        assert saw(r"\[monitor\] topic /camera/image\s+pub steady")
        assert not saw(r"\x1b\[\?1049h")  # never switched to the full-screen view in a pipe
    finally:
        os.killpg(proc.pid, 2)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def test_bars_and_emotion_lines() -> None:
    assert bar(0.0, 8) == " " * 8 and bar(1.0, 8) == "█" * 8 and bar(0.5, 8) == "████    "
    assert bar(1 / 16, 8) == "▌" + " " * 7 and bar(2.0, 4) == "████"
    est = EmotionEstimate(labels=["sad", "happy"], probs=[0.25, 0.75], top_label="happy", top_prob=0.75)
    lines = emotion_lines(est, width=8)
    assert lines[0].startswith("happy 0.75")
    assert lines[1:] == ["sad   ██       0.25", "happy ██████   0.75"]
    assert emotion_lines(None) == ["(no emotion estimate yet)"]


def test_graph_state_merges_processes_json_and_records(run_dir: Path) -> None:
    (run_dir / "processes.json").write_text(
        '[{"name": "cam", "pid": 999999, "state": "respawning", "respawns": 2, "exit_codes": [1, 1]},'
        ' {"name": "gone", "pid": 999998, "state": "exited", "respawns": 0, "exit_codes": [3]}]')
    state = GraphState(run_dir)
    views = {v.name: v for v in state.nodes()}
    assert views["cam"].state == "respawning" and views["cam"].respawns == 2
    assert views["gone"].state == "exited (3)"


def test_latency_of_replayed_stamps_is_not_shown_as_a_delay(run_dir: Path) -> None:
    from mmstream.messages import NodeStats

    state = GraphState(run_dir)
    state.on_stats(NodeStats(node="bridge", topics=[
        {"topic": "/camera/image", "direction": "sub", "rate_hz": 30.0, "drops": 2, "rejected": 0,
         "latency_p50_ms": 59929954999.0, "latency_p99_ms": 59929955008.3},
        {"topic": "/microphone/audio", "direction": "sub", "rate_hz": 50.0, "drops": 0, "rejected": 0,
         "latency_p50_ms": 3.25, "latency_p99_ms": 12.0}]))
    state.on_stats(NodeStats(node="synchronizer", topics=[  # on the bag clock: ticks, negative or not
        {"topic": "/text/utterance", "direction": "sub", "rate_hz": 0.3, "drops": 0, "rejected": 0,
         "latency_p50_ms": -6.7, "latency_p99_ms": -3.3, "clock": "sim"}]))
    from mmstream.viz.monitor import plain_lines

    lines = [x for x in plain_lines(state) if x.startswith("topic")]
    assert lines[0].split() == ["topic", "/camera/image", "sub", "bridge", "30.0", "Hz", "drops", "2", "p50",
                                "bag-time", "ms", "p99", "bag-time", "ms"]
    assert "p50 3.2 ms p99 12.0 ms" in lines[1] or "p50 3.3 ms p99 12.0 ms" in lines[1]
    assert lines[2].split()[-8:] == ["drops", "0", "p50", "sim", "ms", "p99", "sim", "ms"]


def test_a_sim_time_node_marks_its_subscriptions_clock(run_dir: Path) -> None:
    from mmstream.messages import TextUtterance
    from mmstream.node import Node

    with Node("replayed", run_dir=run_dir, params={"use_sim_time": True}) as sim, \
            Node("live", run_dir=run_dir) as live:
        sim.create_subscription(TextUtterance, "/t", lambda m: None)
        live.create_subscription(TextUtterance, "/t", lambda m: None)
        assert [t.get("clock") for t in sim.stats().topics if t["topic"] == "/t"] == ["sim"]
        assert [t.get("clock") for t in live.stats().topics if t["topic"] == "/t"] == [None]
