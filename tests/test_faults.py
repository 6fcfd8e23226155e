"""Faults survived: short versions of `mmstream bench faults` (bench/bench_faults.py), each fault once.

kill -9 and SIGSTOP/SIGCONT under respawn; a subscriber that stops reading (5 s here, 30 s in the
bench); the inference backend raising mid-run; the disk filling up under the recorder (a tmpfs,
root); a cable pull between two network namespaces (root); kill -9 of the inference node of
``launch/demo.yaml live:=true``; and the monitor naming a node that stays down.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mmstream.launch import parse_launch
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(120)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount a tmpfs / make network namespaces)")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # its fault nodes are bench.faulty_inference / bench.stalled_subscriber
    spec = importlib.util.spec_from_file_location("bench_faults", REPO / "bench" / "bench_faults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_kill9_and_sigstop_of_the_synchronizer_recover_and_tools_leave_no_record(bench: ModuleType) -> None:
    report = bench.run(["synchronizer"], stop_s=1.0, timeout_s=20.0)
    kill, stop, tool = report["results"]
    assert kill["respawned"] and kill["recovered_s"] is not None and kill["recovered_s"] < 5.0, report
    assert kill["lost_estimates"] is not None  # counted, not hidden
    assert stop["same_process"] and stop["after_cont_s"] is not None and stop["after_cont_s"] < 3.0, report
    assert tool["records_left"] == [], report
    assert report["launch_survived"]


@pytest.mark.timeout(90)
def test_a_subscriber_that_stops_reading_costs_the_publisher_nothing_and_its_memory_stays_flat(
        bench: ModuleType) -> None:
    r = bench.stalled_subscriber(5.0, stall_after_s=2.0)
    assert r["camera_hz_during"] >= 0.8 * r["camera_hz_before"] > 0, r  # the camera keeps its rate
    assert r["estimates_hz_during"] >= 1.0, r  # the rest of the graph keeps going (2 Hz nominal)
    assert r["stalled_rss_mb"]["max"] - r["stalled_rss_mb"]["min"] < 5.0, r  # keep-last: no backlog builds up
    assert r["stalled_drops"] >= 0.5 * 5.0 * r["camera_hz_before"], r  # ~ frames during the stall, counted
    assert r["same_process"] and r["launch_survived"], r


@pytest.mark.timeout(90)
def test_a_backend_raising_mid_run_falls_back_and_says_so_once(bench: ModuleType) -> None:
    r = bench.backend_failure(fail_after_batches=3)
    # (the first estimates can meet a consumer still connecting: at least one came from the failing backend)
    assert r["estimates_by_failing_backend"] >= 1 and r["estimates_after"] >= 2, r
    assert r["fallback_backend"] == "onnxruntime", r
    assert r["fallback_log_lines"] == 1, r  # logged once, not per window
    assert "injected fault" in r["log"][0] and "falling back to onnxruntime" in r["log"][0]
    assert not r["respawned"] and r["launch_survived"], r  # the node itself never went down
    assert r["lost_estimates"] is not None and r["lost_estimates"] <= 2, r


@needs_root
@pytest.mark.timeout(90)
def test_disk_full_while_recording_is_a_clear_error_and_what_was_written_reads_back(bench: ModuleType) -> None:
    r = bench.disk_full(size_mb=8)
    assert r["recorder_exit_code"] not in (None, 0), r
    assert r["enospc_named"], r  # one ERROR line naming the file and "No space left on device"
    assert r["graph_kept_running"], r
    read = r["readable"]
    assert read["messages"] > 20 and "/camera/image" in read["by_topic"], r  # complete chunks, CRCs checked
    assert read["stopped_by"] in (None, "EndOfFile"), r  # only the unfinished tail is missing, no corrupt chunk


@needs_root
@pytest.mark.skipif(not shutil.which("ip"), reason="needs ip (iproute2)")
@pytest.mark.timeout(100)
def test_a_cable_pull_between_two_hosts_heals_when_the_link_returns(bench: ModuleType) -> None:
    r = bench.cable_pull(down_s=4.0, timeout_s=30.0)
    assert r["estimates_hz_before"] > 1.0, r
    assert r["estimates_while_down"] == 0, r  # really cut
    assert r["recovered_after_link_up_s"] is not None and r["recovered_after_link_up_s"] < 10.0, r
    assert r["nodes_died"] == [] and r["launches_survived"], r


@pytest.mark.timeout(90)
def test_kill9_of_inference_in_the_live_demo_respawns_it_and_estimates_come_back(bench: ModuleType) -> None:
    r = bench.demo_live_kill("inference", timeout_s=30.0)
    assert r["respawned"] and r["launch_survived"], r
    assert r["recovered_s"] is not None and r["recovered_s"] < 10.0, r
    assert r["lost_estimates"] is not None, r


LIVE_LAUNCHES = [("demo.yaml", {"live": "true"}), ("emotion_pipeline.yaml", {}), ("live_view.yaml", {}),
                 ("sensors.yaml", {}), ("test_pattern.yaml", {})]


@pytest.mark.parametrize(("name", "args"), LIVE_LAUNCHES)
def test_every_node_of_a_live_launch_file_respawns_or_stops_the_launch(name: str, args: dict[str, str]) -> None:
    desc = parse_launch(REPO / "launch" / name, {**args, "monitor": "true"} if name == "demo.yaml" else args)
    bare = [n.name for n in desc.nodes if not (n.respawn and n.respawn_max > 0) and not n.required]
    assert bare == [], f"{name}: nodes that stay down when they fail: {bare}"


def test_replaying_demo_stops_when_a_perception_node_fails() -> None:
    desc = parse_launch(REPO / "launch" / "demo.yaml", {})
    assert all(n.required for n in desc.nodes), [(n.name, n.required) for n in desc.nodes]


def test_the_monitor_names_a_node_that_stays_down(tmp_path: Path) -> None:
    from mmstream.viz.monitor import GraphState, plain_lines, render

    (tmp_path / "processes.json").write_text(json.dumps([
        {"name": "camera", "pid": 1, "state": "running", "respawns": 0, "exit_codes": []},
        {"name": "inference", "pid": 999999, "state": "exited", "respawns": 5, "exit_codes": [-9] * 6},
        {"name": "text", "pid": 999998, "state": "exited", "respawns": 0, "exit_codes": [0]},
    ]))
    state = GraphState(tmp_path)
    assert [n.name for n in state.down()] == ["inference"]  # a clean exit is not a failure
    lines = plain_lines(state)
    assert "DOWN inference: exited (-9) after 5 respawns, not restarted" in lines, lines
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render(state))
    assert "DOWN inference" in console.export_text()
