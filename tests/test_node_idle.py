"""An idle node costs nothing: every built-in node with a finished or idle source sleeps in one poll.

Real processes; what is measured is each process's CPU time (all its threads, from /proc), never
wall time, over 5 s once start-up is over. The budget is 2% of one core.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import REPO, node_cmd

BUDGET = 0.02  # of one core
WINDOW_S = 5.0
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def test_idle_and_finished_nodes_use_almost_no_cpu(spawn, run_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    srt = REPO / "mmstream/data/sample.srt"
    bag = REPO / "mmstream/data/sample.mcap"
    nodes = {
        # finished sources that stay up
        "text_file": node_cmd("nodes.text", "--name", "text_file", "-p", f"source={srt}", "-p", "realtime=false",
                              "-p", "exit_on_end=false", "-p", "topic=/idle/text_file"),
        "player": node_cmd("nodes.player", "-p", f"bag={bag}", "-p", "fast=true", "-p", "exit_on_end=false",
                           "-p", "keyboard=false", "-p", "progress_s=0", "-r", "/camera/image:=/idle/cam",
                           "-r", "/microphone/audio:=/idle/mic", "-r", "/text/utterance:=/idle/txt",
                           "-r", "/clock:=/idle/clock"),
        # idle sources: an open stdin nobody writes to, a text socket nobody sends to
        "text_stdin": node_cmd("nodes.text", "--name", "text_stdin", "-p", "topic=/idle/text_stdin"),
        "text_zmq": node_cmd("nodes.text", "--name", "text_zmq", "-p", "source=zmq",
                             "-p", f"endpoint=ipc://{run_dir}/idle_text.sock", "-p", "topic=/idle/text_zmq"),
        "test_pattern": node_cmd("nodes.test_pattern", "-p", "fps=0", "-p", "audio=false", "-p", "text_period_s=0",
                                 "-r", "/camera/image:=/idle/pattern"),
        # nodes waiting for input that does not come
        "synchronizer": node_cmd("nodes.synchronizer"),
        "inference": node_cmd("nodes.inference", "-p", "verify=false"),
        "console": node_cmd("nodes.console"),
        "annotator": node_cmd("nodes.annotator"),
        "recorder": node_cmd("nodes.recorder", "-p", f"output={tmp_path / 'idle.mcap'}", "-p", "progress_s=0",
                             "-p", "topics=[/nothing/here]"),
        "foxglove_bridge": node_cmd("nodes.foxglove_bridge", "-p", "port=0"),
        "monitor": node_cmd("nodes.monitor", "-p", "view=plain", "-p", "plain_period_s=60"),
    }
    procs = {name: spawn(cmd, stdin=subprocess.PIPE) for name, cmd in nodes.items()}

    # start-up (imports, the model, the bag played out) is over once a node used < budget for a second
    settled: set[str] = set()
    deadline = time.monotonic() + 60
    last = {name: cpu_s(p.pid) for name, p in procs.items()}
    while len(settled) < len(procs) and time.monotonic() < deadline:
        time.sleep(1.0)
        for name, p in procs.items():
            assert p.poll() is None, f"{name} exited with {p.returncode}"
            now = cpu_s(p.pid)
            if now - last[name] < BUDGET:
                settled.add(name)
            last[name] = now

    start = {name: cpu_s(p.pid) for name, p in procs.items()}
    t0 = time.monotonic()
    time.sleep(WINDOW_S)  # the measurement window itself
    elapsed = time.monotonic() - t0
    use = {name: round((cpu_s(p.pid) - start[name]) / elapsed, 4) for name, p in procs.items()}
    assert all(p.poll() is None for p in procs.values()), {n: p.returncode for n, p in procs.items()}
    over = {name: u for name, u in use.items() if u >= BUDGET}
    assert not over, f"nodes above {BUDGET:.0%} of a core while idle: {over} (all: {use})"
