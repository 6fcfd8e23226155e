"""Supervisor (mmstream/supervisor.py) in-process, over small real processes (tests/supervised_child.py):
prefixed output, files in the run directory, exit codes, required nodes, respawn limits, and the
SIGINT -> SIGTERM -> SIGKILL escalation. End-to-end launches through the CLI are in test_launch.py."""

from __future__ import annotations

import json
import os
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mmstream import supervisor as supervisor_module
from mmstream.launch import parse_launch
from mmstream.supervisor import Supervisor

pytestmark = pytest.mark.timeout(60)


class Lines:
    """A text sink the supervisor prints to; tests wait on what it has received."""

    def __init__(self) -> None:
        self._text = ""
        self._changed = threading.Condition()

    def write(self, s: str) -> int:
        with self._changed:
            self._text += s
            self._changed.notify_all()
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def lines(self) -> list[str]:
        with self._changed:
            return self._text.splitlines()

    def wait_for(self, pred: Callable[[list[str]], bool], timeout_s: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: pred(self._text.splitlines()), timeout_s):
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; output:\n{self._text}")


def _supervisor(tmp_path: Path, run_dir: Path, nodes: str) -> tuple[Supervisor, Lines]:
    path = tmp_path / "graph.yaml"
    path.write_text("launch:\n" + textwrap.indent(textwrap.dedent(nodes).strip(), "  ") + "\n")
    out = Lines()
    return Supervisor(parse_launch(path), run_dir, out=out, color=False), out


def _stop_when(sup: Supervisor, out: Lines, pred: Callable[[list[str]], bool], what: str) -> threading.Thread:
    """Ask ``sup`` to stop (as Ctrl-C would) once its output satisfies ``pred``; run() stays on the main thread."""
    def stop() -> None:
        try:
            out.wait_for(pred, 30, what)
        finally:
            sup.request_stop()

    t = threading.Thread(target=stop, daemon=True)
    t.start()
    return t


def _count(lines: list[str], text: str) -> int:
    return sum(text in line for line in lines)


def test_clean_exits_prefixed_output_and_run_dir_files(tmp_path: Path, run_dir: Path) -> None:
    sup, out = _supervisor(tmp_path, run_dir, """
        - node: {exec: tests.supervised_child, name: alpha, env: {CHILD_TAG: a1}, remap: {/x: /y}}
        - node: {exec: tests.supervised_child, name: beta}
    """)
    assert sup.run() == 0
    alpha = next(line for line in out.lines if line.startswith("[alpha] child up"))
    assert "env=a1" in alpha  # the node's env reached it
    params_file = run_dir / "params" / "alpha.yaml"
    assert f"--name alpha --params-file {params_file} --run-dir {run_dir} --remap /x:=/y" in alpha
    assert yaml.safe_load(params_file.read_text()) == {}
    assert any(line.startswith("[beta] child up") for line in out.lines)
    assert _count(out.lines, "finished cleanly") == 2
    state = {p["name"]: p for p in json.loads((run_dir / "processes.json").read_text())}
    assert {n: (p["state"], p["exit_codes"], p["respawns"]) for n, p in state.items()} == {
        "alpha": ("exited", [0], 0), "beta": ("exited", [0], 0)}
    launch = json.loads((run_dir / "launch.json").read_text())
    assert launch["nodes"] == ["alpha", "beta"] and launch["launch_file"] == str((tmp_path / "graph.yaml").resolve())
    assert (run_dir / "launch.yaml").read_text() == (tmp_path / "graph.yaml").read_text()


def test_a_failed_node_fails_the_launch_and_others_run_on(tmp_path: Path, run_dir: Path) -> None:
    sup, out = _supervisor(tmp_path, run_dir, """
        - node: {exec: tests.supervised_child, name: broken, env: {CHILD_CODE: "3"}}
        - node: {exec: tests.supervised_child, name: server, env: {CHILD_MODE: serve}}
    """)
    _stop_when(sup, out, lambda ls: _count(ls, "died with exit code 3") and _count(ls, "[server] child up"),
               "broken to die while server runs")
    assert sup.run() == 1
    assert any(line.startswith("[server] child got SIGINT") for line in out.lines)  # stopped by SIGINT, cleanly
    state = {p["name"]: p["exit_codes"] for p in json.loads((run_dir / "processes.json").read_text())}
    assert state == {"broken": [3], "server": [0]}


def test_a_required_node_ending_stops_the_rest(tmp_path: Path, run_dir: Path) -> None:
    fifo = tmp_path / "ready.fifo"
    os.mkfifo(fifo)
    sup, out = _supervisor(tmp_path, run_dir, f"""
        - node: {{exec: tests.supervised_child, name: server, env: {{CHILD_MODE: serve, CHILD_READY_FIFO: "{fifo}"}}}}
        - node: {{exec: tests.supervised_child, name: job, required: true, env: {{CHILD_AWAIT_FIFO: "{fifo}"}}}}
    """)
    assert sup.run() == 0  # the required node finished cleanly: not a failure
    assert _count(out.lines, "job is required: shutting down the launch") == 1
    assert any(line.startswith("[server] child got SIGINT") for line in out.lines)


def test_respawn_restarts_up_to_respawn_max(tmp_path: Path, run_dir: Path) -> None:
    log = tmp_path / "starts.log"
    sup, out = _supervisor(tmp_path, run_dir, f"""
        - node: {{exec: tests.supervised_child, name: flaky, respawn: true, respawn_delay_s: 0.05, respawn_max: 2,
                  env: {{CHILD_CODE: "1", CHILD_LOG: "{log}"}}}}
    """)
    assert sup.run() == 1  # its last exit was a failure and no respawn was left
    assert len(log.read_text().split()) == 3  # the first start and two respawns
    assert [line for line in out.lines if "respawning" in line] == ["[launch] respawning flaky (1/2)",
                                                                    "[launch] respawning flaky (2/2)"]
    state = json.loads((run_dir / "processes.json").read_text())[0]
    assert state["respawns"] == 2 and state["exit_codes"] == [1, 1, 1]


def test_stop_escalates_from_sigint_to_sigterm_to_sigkill(tmp_path: Path, run_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_module, "SIGTERM_TIMEOUT_S", 0.3)
    sup, out = _supervisor(tmp_path, run_dir, """
        - node: {exec: tests.supervised_child, name: deaf, sigint_timeout_s: 0.3, env: {CHILD_MODE: stubborn}}
        - node: {exec: tests.supervised_child, name: deafer, sigint_timeout_s: 0.3,
                 env: {CHILD_MODE: stubborn, CHILD_IGNORE_TERM: "1"}}
    """)
    _stop_when(sup, out, lambda ls: _count(ls, "child up") == 2, "both children up")
    assert sup.run() == 1  # killed by a signal other than SIGINT: failures
    assert _count(out.lines, "deaf did not stop in time, sending SIGTERM") == 1
    assert _count(out.lines, "deafer did not stop in time, sending SIGTERM") == 1
    assert _count(out.lines, "deafer did not stop in time, sending SIGKILL") == 1
    assert _count(out.lines, "deaf did not stop in time, sending SIGKILL") == 0  # SIGTERM was enough
    state = {p["name"]: p["exit_codes"] for p in json.loads((run_dir / "processes.json").read_text())}
    assert state == {"deaf": [-15], "deafer": [-9]}


def test_stale_node_records_are_cleared_when_a_launch_starts(tmp_path: Path, run_dir: Path) -> None:
    (run_dir / "nodes").mkdir(parents=True)
    (run_dir / "nodes" / "ghost.json").write_text('{"name": "ghost", "pid": 1}')
    sup, _ = _supervisor(tmp_path, run_dir, "- node: {exec: tests.supervised_child, name: once}")
    assert sup.run() == 0
    assert not (run_dir / "nodes" / "ghost.json").exists()


def _rec(name: str, pub: list[str] = (), sub: list[str] = ()) -> dict:
    return {"name": name, "pub": [{"topic": t} for t in pub], "sub": [{"topic": t} for t in sub]}


def test_shutdown_stages_stop_publishers_before_their_subscribers() -> None:
    records = [_rec("sync", ["/sync/window", "/sync/stats"], ["/camera/image", "/clock"]),
               _rec("camera", ["/camera/image", "/camera/stats"], []),
               _rec("inference", ["/perception/emotion"], ["/sync/window", "/clock"]),
               _rec("console", [], ["/perception/emotion"]),
               _rec("monitor", [], ["/sync/stats", "/camera/stats", "/perception/emotion"])]
    stages = supervisor_module.shutdown_stages(["console", "monitor", "inference", "sync", "camera"], records)
    assert stages == [["camera"], ["sync"], ["inference"], ["console", "monitor"]]  # stats and /clock aside
    cycle = [_rec("a", ["/x"], ["/y"]), _rec("b", ["/y"], ["/x"])]
    assert supervisor_module.shutdown_stages(["a", "b"], cycle) == [["a", "b"]]  # a cycle stops together
