"""Faults survived, measured: the live pipeline under a launch with respawn, hit one fault at a time.

Starts test_pattern -> synchronizer -> inference (every node respawns) in a private run dir,
subscribes to /perception/emotion, and for each fault reports JSON: seconds from the fault
until estimates flow again (target < 2 s after a respawn delay of 0.2 s), estimates expected
but missing while it was down (at the nominal window rate), and whether the launch survived.

Faults: kill -9 of each node in turn; SIGSTOP then SIGCONT of each node (``--stop-s`` apart);
and a CLI tool (``mmstream topic hz``) killed -9 leaves no node record.

    python bench/bench_faults.py [--nodes test_pattern,synchronizer,inference] [--stop-s 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODES = ("test_pattern", "synchronizer", "inference")
WINDOW_RATE_HZ = 2.0  # the synchronizer's default: 1 s windows every 0.5 s

LAUNCH = """\
launch:
  - node: {exec: test_pattern, name: test_pattern, params: {fps: 15.0, text_period_s: 1.0},
           respawn: true, respawn_delay_s: 0.2, respawn_max: 20}
  - node: {exec: synchronizer, name: synchronizer, respawn: true, respawn_delay_s: 0.2, respawn_max: 20}
  - node: {exec: inference, name: inference, params: {backend: onnxruntime},
           respawn: true, respawn_delay_s: 0.2, respawn_max: 20}
"""


class Estimates:
    """Receipt times of /perception/emotion in this process (a node of the graph)."""

    def __init__(self, run_dir: Path) -> None:
        from mmstream.messages import EmotionEstimate
        from mmstream.node import Node

        self.node = Node("_bench_faults", run_dir=run_dir, params={"log_level": "warning"})
        self.times: list[float] = []
        self.node.create_subscription(EmotionEstimate, "/perception/emotion",
                                      lambda m: self.times.append(time.monotonic()), keep_last=16)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.node.spin_once(0.05)

    def wait_after(self, t: float, timeout_s: float) -> float | None:
        """Seconds from ``t`` to the first estimate received after it (None: none in time)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            after = [x for x in self.times if x > t]
            if after:
                return after[0] - t
            self.node.spin_once(0.05)
        return None


def _pids(run_dir: Path) -> dict[str, int]:
    procs = json.loads((run_dir / "processes.json").read_text())
    return {p["name"]: p["pid"] for p in procs if p["pid"] and p["state"] == "running"}


def _gap_report(est: Estimates, fault_t: float, recovered_s: float | None) -> dict:
    """Estimates missing between the last one before the fault and the first after recovery."""
    before = [x for x in est.times if x <= fault_t]
    if recovered_s is None or not before:
        return {"recovered_s": None, "lost_estimates": None}
    gap = fault_t + recovered_s - before[-1]
    return {"recovered_s": round(recovered_s, 3), "gap_s": round(gap, 3),
            "lost_estimates": max(0, round(gap * WINDOW_RATE_HZ) - 1)}


def run(nodes: list[str], stop_s: float, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="mmfault-", dir="/tmp") as tmp:
        run_dir = Path(tmp) / "run"
        launch_file = Path(tmp) / "faults.yaml"
        launch_file.write_text(textwrap.dedent(LAUNCH))
        env = dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1")
        log = open(Path(tmp) / "launch.log", "w")
        launcher = subprocess.Popen([sys.executable, "-m", "mmstream.cli", "launch", str(launch_file)],
                                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        old_run_dir = os.environ.get("MMSTREAM_RUN_DIR")
        os.environ["MMSTREAM_RUN_DIR"] = str(run_dir)  # this process's subscriber joins the graph
        results: list[dict] = []
        try:
            deadline = time.monotonic() + 30
            while not (run_dir / "processes.json").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            est = Estimates(run_dir)
            first = est.wait_after(time.monotonic() - 1000, 60)
            if first is None:
                raise SystemExit("bench faults: the pipeline produced no estimate in 60 s")
            est.spin_for(2.0)
            for name in nodes:
                pid = _pids(run_dir)[name]
                t = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                rec = est.wait_after(t, timeout_s)
                row = {"fault": "kill -9", "node": name, **_gap_report(est, t, rec)}
                new_pid = _pids(run_dir).get(name)
                row["respawned"] = new_pid is not None and new_pid != pid
                results.append(row)
                est.spin_for(2.0)
            for name in nodes:
                pid = _pids(run_dir)[name]
                os.kill(pid, signal.SIGSTOP)
                est.spin_for(stop_s)
                t = time.monotonic()
                os.kill(pid, signal.SIGCONT)
                rec = est.wait_after(t, timeout_s)
                results.append({"fault": f"SIGSTOP {stop_s:g} s, then SIGCONT", "node": name,
                                **_gap_report(est, t - stop_s, None if rec is None else rec + stop_s),
                                "after_cont_s": None if rec is None else round(rec, 3),
                                "same_process": _pids(run_dir).get(name) == pid})
                est.spin_for(2.0)
            hz = subprocess.Popen([sys.executable, "-m", "mmstream.cli", "topic", "hz", "/camera/image"],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3.0)
            hz.kill()
            hz.wait()
            from mmstream import graph

            tools = [n["name"] for n in graph.list_nodes(run_dir) if n["name"].startswith("_cli_")]
            results.append({"fault": "kill -9 of `mmstream topic hz`", "records_left": tools})
            est.node.close()
            alive = launcher.poll() is None
        finally:
            launcher.send_signal(signal.SIGINT)
            try:
                launcher.wait(20)
            except subprocess.TimeoutExpired:
                launcher.kill()
            log.close()
            if old_run_dir is None:
                os.environ.pop("MMSTREAM_RUN_DIR", None)
            else:
                os.environ["MMSTREAM_RUN_DIR"] = old_run_dir
    kills = [r["recovered_s"] for r in results if r.get("fault") == "kill -9" and r.get("recovered_s") is not None]
    return {"bench": "faults", "pipeline": "test_pattern -> synchronizer -> inference (onnxruntime), respawn 0.2 s",
            "results": results, "launch_survived": alive,
            "kill9_recovery_max_s": max(kills) if kills else None,
            "kill9_all_recovered": len(kills) == len(nodes)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default=",".join(NODES))
    ap.add_argument("--stop-s", type=float, default=3.0)
    ap.add_argument("--timeout-s", type=float, default=30.0, help="give up on a recovery after this long")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.nodes.split(","), args.stop_s, args.timeout_s), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
