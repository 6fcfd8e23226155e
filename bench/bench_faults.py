"""Faults survived, measured: a pipeline under a launch with respawn, hit by one fault at a time; JSON.

    mmstream bench faults [--faults kill,stop,tool,stall,backend,disk,cable,demo] [--stall-s 30] [--down-s 10] [--quick]

Each fault reports seconds until estimates (or frames) flow again, what was lost while it
lasted (counted, not hidden), and whether the launch survived:

* ``kill``: kill -9 of each node of test_pattern -> synchronizer -> inference (every node respawns,
  respawn delay 0.2 s) -> seconds to estimates again, estimates missing at the 2 Hz window rate;
* ``stop``: SIGSTOP of each node for ``--stop-s``, then SIGCONT -> seconds after SIGCONT to estimates;
* ``tool``: ``mmstream topic hz`` killed -9 leaves no node record;
* ``stall``: a subscriber of /camera/image (bench/stalled_subscriber.py) stops reading for
  ``--stall-s`` -> the camera's rate and the pipeline's estimates during the stall, the stalled
  node's RSS over the stall, its drops counted afterwards;
* ``backend``: the inference node's ONNX Runtime session starts raising mid-run
  (bench/faulty_inference.py) -> the fallback backend takes over, how many estimates were lost,
  how many times it was logged;
* ``disk``: the recorder on a small tmpfs (mounted as root) until the disk is full -> its exit
  code and error line, and how much of what it wrote before an independent MCAP reader (the
  ``mcap`` package's stream reader, CRCs checked) reads back;
* ``cable``: two network namespaces joined by a veth (root), sensors in one and synchronizer +
  inference in the other over CURVE tcp; the veth goes down for ``--down-s`` and up again ->
  seconds after link-up to estimates again;
* ``demo``: ``launch/demo.yaml live:=true`` on the sample's files, kill -9 of its inference node
  -> respawned, seconds to estimates again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NODES = ("test_pattern", "synchronizer", "inference")
WINDOW_RATE_HZ = 2.0  # the synchronizer's default: 1 s windows every 0.5 s
DATA = REPO / "mmstream" / "data"
FAULTS = ("kill", "stop", "tool", "stall", "backend", "disk", "cable", "demo")

_RESPAWN = "respawn: true, respawn_delay_s: 0.2, respawn_max: 20"
LAUNCH = f"""\
launch:
  - node: {{exec: test_pattern, name: test_pattern, params: {{fps: 15.0, text_period_s: 1.0}}, {_RESPAWN}}}
  - node: {{exec: synchronizer, name: synchronizer, {_RESPAWN}}}
  - node: {{exec: inference, name: inference, params: {{backend: onnxruntime}}, {_RESPAWN}}}
"""


# --------------------------------------------------------------------------- helpers


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _pids(run_dir: Path) -> dict[str, int]:
    try:
        procs = json.loads((run_dir / "processes.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {p["name"]: p["pid"] for p in procs if p["pid"] and p["state"] == "running"}


class Graph:
    """A launch running in a private run dir; its output goes to ``log``."""

    def __init__(self, run_dir: Path, tmp: Path, log: Path, proc: subprocess.Popen[bytes]) -> None:
        self.run_dir, self.tmp, self.log, self.proc = run_dir, tmp, log, proc

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextlib.contextmanager
def launched(launch_text: str, *args: str, prefix: list[str] | None = None, tmp: Path | None = None,
             env: dict[str, str] | None = None, name: str = "graph") -> Iterator[Graph]:
    """Start ``mmstream launch`` on ``launch_text`` (a file path for ``launch/...``, else YAML text);
    stopped with SIGINT (SIGKILL after 20 s) on exit. ``prefix``: e.g. ``ip netns exec NS``."""
    with contextlib.ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mmfault-", dir="/tmp")))
        run_dir = tmp / f"run_{name}"
        if launch_text.startswith("launch/"):
            launch_file = REPO / launch_text
        else:
            launch_file = tmp / f"{name}.yaml"
            launch_file.write_text(textwrap.dedent(launch_text))
        full_env = dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1", **(env or {}))
        log_path = tmp / f"{name}.log"
        log = stack.enter_context(open(log_path, "w"))
        proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "mmstream.cli", "launch", str(launch_file),
                                 *args], cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not (run_dir / "processes.json").exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            yield Graph(run_dir, tmp, log_path, proc)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Estimates:
    """Receipt times (and backend names) of /perception/emotion, in this process: a node of the graph."""

    def __init__(self, run_dir: Path, topic: str = "/perception/emotion") -> None:
        from mmstream.messages import EmotionEstimate
        from mmstream.node import Node

        self.node = Node(f"_bench_faults_{os.getpid()}", run_dir=run_dir, params={"log_level": "warning"})
        self.times: list[float] = []
        self.backends: list[tuple[float, str]] = []
        self.node.create_subscription(EmotionEstimate, topic, self._on, keep_last=16)

    def _on(self, msg: object) -> None:
        now = time.monotonic()
        self.times.append(now)
        self.backends.append((now, getattr(msg, "backend", "")))

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

    def first(self, timeout_s: float = 60.0) -> None:
        if self.wait_after(time.monotonic() - 1e6, timeout_s) is None:
            raise RuntimeError(f"bench faults: the pipeline produced no estimate in {timeout_s:g} s")

    def count_between(self, a: float, b: float) -> int:
        return sum(1 for x in self.times if a <= x < b)

    def close(self) -> None:
        self.node.close()


@contextlib.contextmanager
def estimates(run_dir: Path) -> Iterator[Estimates]:
    est = Estimates(run_dir)
    try:
        yield est
    finally:
        est.close()


def _gap_report(est: Estimates, fault_t: float, recovered_s: float | None) -> dict:
    """Estimates missing between the last one before the fault and the first after recovery."""
    before = [x for x in est.times if x <= fault_t]
    if recovered_s is None or not before:
        return {"recovered_s": None, "lost_estimates": None}
    gap = fault_t + recovered_s - before[-1]
    return {"recovered_s": round(recovered_s, 3), "gap_s": round(gap, 3),
            "lost_estimates": max(0, round(gap * WINDOW_RATE_HZ) - 1)}


def _kill9(est: Estimates, run_dir: Path, name: str, timeout_s: float) -> dict:
    pid = _pids(run_dir)[name]
    t = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    rec = est.wait_after(t, timeout_s)
    row = {"fault": "kill -9", "node": name, **_gap_report(est, t, rec)}
    new_pid = _pids(run_dir).get(name)
    row["respawned"] = new_pid is not None and new_pid != pid
    return row


# --------------------------------------------------------------------------- kill -9, SIGSTOP, CLI tool


def run(nodes: list[str], stop_s: float, timeout_s: float) -> dict:
    """kill -9 then SIGSTOP/SIGCONT of each of ``nodes``, then a CLI tool killed -9."""
    results: list[dict] = []
    with launched(LAUNCH, name="faults") as g, estimates(g.run_dir) as est:
        est.first()
        est.spin_for(2.0)
        for name in nodes:
            results.append(_kill9(est, g.run_dir, name, timeout_s))
            est.spin_for(2.0)
        for name in nodes:
            pid = _pids(g.run_dir)[name]
            os.kill(pid, signal.SIGSTOP)
            est.spin_for(stop_s)
            t = time.monotonic()
            os.kill(pid, signal.SIGCONT)
            rec = est.wait_after(t, timeout_s)
            results.append({"fault": f"SIGSTOP {stop_s:g} s, then SIGCONT", "node": name,
                            **_gap_report(est, t - stop_s, None if rec is None else rec + stop_s),
                            "after_cont_s": None if rec is None else round(rec, 3),
                            "same_process": _pids(g.run_dir).get(name) == pid})
            est.spin_for(2.0)
        env = dict(os.environ, MMSTREAM_RUN_DIR=str(g.run_dir))
        hz = subprocess.Popen([sys.executable, "-m", "mmstream.cli", "topic", "hz", "/camera/image"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3.0)
        hz.kill()
        hz.wait()
        from mmstream import graph

        tools = [n["name"] for n in graph.list_nodes(g.run_dir) if n["name"].startswith("_cli_")]
        results.append({"fault": "kill -9 of `mmstream topic hz`", "records_left": tools})
        alive = g.alive()
    kills = [r["recovered_s"] for r in results if r.get("fault") == "kill -9" and r.get("recovered_s") is not None]
    return {"bench": "faults", "pipeline": "test_pattern -> synchronizer -> inference (onnxruntime), respawn 0.2 s",
            "results": results, "launch_survived": alive,
            "kill9_recovery_max_s": max(kills) if kills else None,
            "kill9_all_recovered": len(kills) == len(nodes)}


# --------------------------------------------------------------------------- a subscriber that stops reading


def stalled_subscriber(stall_s: float = 30.0, *, stall_after_s: float = 4.0) -> dict:
    """A subscriber of /camera/image stops reading for ``stall_s``: the camera, the rest of the
    pipeline and the stalled node's memory are watched through it."""
    from mmstream.messages import ImageFrame, NodeStats

    launch = LAUNCH + ("  - node: {exec: bench.stalled_subscriber, name: stalled, params: "
                       f"{{stall_after_s: {stall_after_s}, stall_s: {stall_s}}}}}\n")
    frames: list[float] = []
    stats: dict[str, NodeStats] = {}
    with launched(launch, name="stall") as g, estimates(g.run_dir) as est:
        est.node.create_subscription(ImageFrame, "/camera/image", lambda m: frames.append(time.monotonic()),
                                     keep_last=4)
        for name in ("stalled", "test_pattern"):
            est.node.create_subscription(NodeStats, f"/{name}/stats",
                                         lambda m, name=name: stats.__setitem__(name, m), keep_last=2)
        est.first()
        deadline = time.monotonic() + 30
        while "stalling for" not in g.output() and time.monotonic() < deadline:
            est.spin_for(0.1)
        t0 = time.monotonic()
        pid = _pids(g.run_dir)["stalled"]
        rss: list[float] = []
        while time.monotonic() < t0 + stall_s - 0.5:
            est.spin_for(0.5)
            if (mb := rss_mb(pid)) is not None:
                rss.append(mb)
        t1 = time.monotonic()
        before_t = t0 - min(stall_after_s, 3.0)
        frames_before = sum(1 for x in frames if before_t <= x < t0) / (t0 - before_t)
        frames_during = sum(1 for x in frames if t0 <= x < t1) / (t1 - t0)
        est_during = est.count_between(t0, t1) / (t1 - t0)
        deadline = time.monotonic() + 15
        while "reading again" not in g.output() and time.monotonic() < deadline:
            est.spin_for(0.1)
        stats.pop("stalled", None)
        est.spin_for(2.5)  # its next NodeStats, after the stall
        st = stats.get("stalled")
        sub = next((t for t in (st.topics if st else []) if t["topic"] == "/camera/image" and t["direction"] == "sub"),
                   None)
        same = _pids(g.run_dir).get("stalled") == pid
        alive = g.alive()
    return {"fault": f"subscriber stops reading {stall_s:g} s", "node": "stalled (keep_last 4, sensor QoS)",
            "camera_hz_before": round(frames_before, 2), "camera_hz_during": round(frames_during, 2),
            "estimates_hz_during": round(est_during, 2),
            "stalled_rss_mb": {"min": round(min(rss), 1), "max": round(max(rss), 1),
                               "growth_mb": round(rss[-1] - rss[0], 2)} if rss else None,
            "stalled_drops": None if sub is None else sub["drops"],
            "stalled_received": None if sub is None else sub["count"],
            "same_process": same, "launch_survived": alive}


# --------------------------------------------------------------------------- backend raising mid-run


def backend_failure(*, fail_after_batches: int = 6, timeout_s: float = 30.0) -> dict:
    """The inference node's ONNX Runtime session starts raising after some batches."""
    launch = LAUNCH.replace("exec: inference, name: inference, params: {backend: onnxruntime}",
                            "exec: bench.faulty_inference, name: inference, "
                            f"params: {{backend: onnxruntime, fallback: onnxruntime, fail_after_batches: {fail_after_batches}}}")
    from bench.faulty_inference import FAULTY_NAME

    with launched(launch, name="backend") as g, estimates(g.run_dir) as est:
        est.first()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not any(b != FAULTY_NAME for _, b in est.backends):
            est.spin_for(0.1)
        est.spin_for(3.0)
        pid_after = _pids(g.run_dir).get("inference")
        alive = g.alive()
        out = g.output()
    faulty = [t for t, b in est.backends if b == FAULTY_NAME]
    fallback = [(t, b) for t, b in est.backends if b != FAULTY_NAME]
    gap = fallback[0][0] - faulty[-1] if faulty and fallback else None
    fell_back = [line for line in out.splitlines() if "falling back" in line]
    return {"fault": f"inference backend raises after {fail_after_batches} batches",
            "estimates_by_failing_backend": len(faulty), "estimates_after": len(fallback),
            "fallback_backend": fallback[0][1] if fallback else None,
            "gap_s": None if gap is None else round(gap, 3),
            "lost_estimates": None if gap is None else max(0, round(gap * WINDOW_RATE_HZ) - 1),
            "fallback_log_lines": len(fell_back), "log": fell_back[:1],
            "respawned": any("respawning inference" in line for line in out.splitlines()),
            "inference_pid": pid_after, "launch_survived": alive}


# --------------------------------------------------------------------------- disk full while recording


def _read_mcap(path: Path) -> dict:
    """What an independent reader (the mcap package's stream reader, CRCs validated) gets out of ``path``."""
    from mcap.stream_reader import StreamReader

    counts: dict[str, int] = {}
    channels: dict[int, str] = {}
    stopped = None
    first_ns = last_ns = None
    try:
        with open(path, "rb") as f:
            for rec in StreamReader(f, emit_chunks=False, validate_crcs=True).records:
                kind = type(rec).__name__
                if kind == "Channel":
                    channels[rec.id] = rec.topic
                elif kind == "Message":
                    topic = channels.get(rec.channel_id, "?")
                    counts[topic] = counts.get(topic, 0) + 1
                    first_ns = rec.log_time if first_ns is None else min(first_ns, rec.log_time)
                    last_ns = rec.log_time if last_ns is None else max(last_ns, rec.log_time)
    except Exception as exc:  # noqa: BLE001 - the truncated tail ends the read; say how
        stopped = f"{type(exc).__name__}: {exc}".strip(": ")
    return {"messages": sum(counts.values()), "by_topic": counts, "stopped_by": stopped,
            "span_s": None if first_ns is None else round((last_ns - first_ns) / 1e9, 2)}


def disk_full(*, size_mb: int = 8, timeout_s: float = 60.0) -> dict:
    """The recorder writes uncompressed camera frames onto a ``size_mb`` tmpfs until it is full."""
    if os.geteuid() != 0:
        return {"fault": "disk full while recording", "skipped": "needs root to mount a tmpfs"}
    with tempfile.TemporaryDirectory(prefix="mmdisk-", dir="/tmp") as tmp:
        mnt = Path(tmp) / "disk"
        mnt.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(mnt)],
                       check=True, capture_output=True, timeout=20)
        try:
            out = mnt / "rec.mcap"
            launch = f"""\
                launch:
                  - node: {{exec: test_pattern, name: test_pattern, params: {{fps: 30.0, width: 320, height: 240}}}}
                  - node: {{exec: recorder, name: recorder, params: {{output: "{out}", compression: none,
                            chunk_mb: 0.5, flush_s: 0.5, progress_s: 0}}}}
                """
            with launched(launch, tmp=Path(tmp), name="disk") as g:
                t0 = time.monotonic()
                code = None
                while time.monotonic() < t0 + timeout_s:
                    procs = json.loads((g.run_dir / "processes.json").read_text())
                    rec = next(p for p in procs if p["name"] == "recorder")
                    if rec["state"] != "running" and rec["exit_codes"]:
                        code = rec["exit_codes"][-1]
                        break
                    time.sleep(0.2)
                stopped_after = time.monotonic() - t0
                others_alive = "test_pattern" in _pids(g.run_dir)
                text = g.output()
            lines = [line for line in text.splitlines() if line.startswith("[recorder]")]
            errors = [line for line in lines if " ERROR " in line]
            read = _read_mcap(out)
            size = out.stat().st_size if out.exists() else 0
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)
    return {"fault": f"disk full while recording ({size_mb} MiB tmpfs)", "recorder_exit_code": code,
            "stopped_after_s": round(stopped_after, 2), "error_lines": errors[:2],
            "enospc_named": any("No space left on device" in e and str(out) in e for e in errors),
            "misreported_as_encode_error": sum("cannot encode" in line for line in lines),
            "tracebacks": sum("Traceback" in line for line in lines),
            "file_bytes": size, "readable": read, "graph_kept_running": others_alive}


# --------------------------------------------------------------------------- cable pull between two hosts


@contextlib.contextmanager
def two_hosts(tag: str | None = None) -> Iterator[dict[str, str]]:
    """Network namespaces a (10.77.0.1) and b (10.77.0.2) joined by a veth (as in
    tests/test_security_netns.py); yields their names and the veth ends. Needs root."""
    tag = tag or f"{os.getpid() % 100000}"
    ns = {"a": f"mmfa{tag}", "b": f"mmfb{tag}", "va": f"vfa{tag}", "vb": f"vfb{tag}"}

    def sh(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, timeout=20)

    try:
        for n in ("a", "b"):
            sh("ip", "netns", "add", ns[n])
            sh("ip", "-n", ns[n], "link", "set", "lo", "up")
        sh("ip", "link", "add", ns["va"], "type", "veth", "peer", "name", ns["vb"])
        for dev, n, addr in ((ns["va"], "a", "10.77.0.1/24"), (ns["vb"], "b", "10.77.0.2/24")):
            sh("ip", "link", "set", dev, "netns", ns[n])
            sh("ip", "-n", ns[n], "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns[n], "link", "set", dev, "up")
        yield ns
    finally:
        for n in ("a", "b"):
            subprocess.run(["ip", "netns", "del", ns[n]], capture_output=True, timeout=20)


def _secured(body: str, key: str, endpoints: dict[str, str], key_dir: Path) -> str:
    return textwrap.dedent(body) + "endpoints: " + json.dumps(endpoints) + "\n" + textwrap.dedent(f"""\
        security:
          key_dir: {key_dir}
          key: {key}
          allow:
            host_a: {{publish: ["/camera/*", "/microphone/*", "/text/*"], subscribe: ["/perception/*"]}}
            host_b: {{subscribe: ["/camera/*", "/microphone/*", "/text/*"], publish: ["/perception/*"]}}
        """)


def cable_pull(*, down_s: float = 10.0, timeout_s: float = 60.0) -> dict:
    """Sensors on host a, synchronizer + inference on host b over CURVE tcp; the veth goes down and up."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return {"fault": "cable pull", "skipped": "needs root and ip (iproute2)"}
    from mmstream import security

    with tempfile.TemporaryDirectory(prefix="mmcable-", dir="/tmp") as tmp_s, two_hosts() as ns:
        tmp = Path(tmp_s)
        keys = tmp / "keys"
        security.generate_keys(keys, ["host_a", "host_b"])
        for me, other in (("host_a", "host_b"), ("host_b", "host_a")):  # each host: its secret, the other's public
            d = tmp / f"keys_{me}"
            d.mkdir(mode=0o700)
            for name in (f"{me}.key", f"{me}.key_secret", f"{other}.key"):
                shutil.copy2(keys / name, d / name)
        endpoints = {t: f"tcp://10.77.0.1:{port}" for t, port in
                     (("/camera/image", 47201), ("/microphone/audio", 47202), ("/text/utterance", 47203))}
        a = _secured("""\
            launch:
              - node: {exec: test_pattern, name: test_pattern, params: {fps: 15.0, text_period_s: 1.0}}
            """, "host_a", endpoints, tmp / "keys_host_a")
        b = _secured("""\
            launch:
              - node: {exec: synchronizer, name: synchronizer}
              - node: {exec: inference, name: inference, params: {backend: onnxruntime}}
            """, "host_b", endpoints, tmp / "keys_host_b")
        with launched(a, prefix=["ip", "netns", "exec", ns["a"]], tmp=tmp, name="host_a") as ga, \
                launched(b, prefix=["ip", "netns", "exec", ns["b"]], tmp=tmp, name="host_b") as gb, \
                estimates(gb.run_dir) as est:  # ipc in b's run dir: unix sockets cross namespaces
            est.first()
            est.spin_for(2.0)
            rate_before = est.count_between(time.monotonic() - 2.0, time.monotonic()) / 2.0
            t_down = time.monotonic()
            subprocess.run(["ip", "-n", ns["a"], "link", "set", ns["va"], "down"], check=True, timeout=20)
            est.spin_for(down_s)
            t_up = time.monotonic()
            subprocess.run(["ip", "-n", ns["a"], "link", "set", ns["va"], "up"], check=True, timeout=20)
            during = est.count_between(t_down + 1.5, t_up)  # windows already cut may still land at first
            rec = est.wait_after(t_up, timeout_s)
            est.spin_for(3.0)
            after = est.count_between(time.monotonic() - 2.0, time.monotonic()) / 2.0
            alive = ga.alive() and gb.alive()
            respawns = [line for line in (ga.output() + gb.output()).splitlines() if "died" in line]
    return {"fault": f"cable pull: veth down {down_s:g} s, then up", "transport": "CURVE tcp between two namespaces",
            "estimates_hz_before": rate_before, "estimates_while_down": during,
            "recovered_after_link_up_s": None if rec is None else round(rec, 3),
            "estimates_hz_after": after, "nodes_died": respawns, "launches_survived": alive}


# --------------------------------------------------------------------------- the demo's live launch


def demo_live_kill(node: str = "inference", *, timeout_s: float = 30.0) -> dict:
    """``launch/demo.yaml live:=true`` on the sample's files; kill -9 of one of its nodes."""
    args = ["live:=true", f"video:={DATA / 'sample.mp4'}", f"audio:={DATA / 'sample.wav'}",
            f"text:={DATA / 'sample.srt'}", "backend:=onnxruntime"]
    with launched("launch/demo.yaml", *args, name="demo") as g, estimates(g.run_dir) as est:
        est.first()
        est.spin_for(2.0)
        row = _kill9(est, g.run_dir, node, timeout_s)
        est.spin_for(1.0)
        row["launch_survived"] = g.alive()
    row["fault"] = "kill -9 in launch/demo.yaml live:=true"
    return row


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {','.join(FAULTS)}")
    ap.add_argument("--nodes", default=",".join(NODES), help="nodes for kill and stop")
    ap.add_argument("--stop-s", type=float, default=3.0)
    ap.add_argument("--stall-s", type=float, default=30.0)
    ap.add_argument("--down-s", type=float, default=10.0)
    ap.add_argument("--timeout-s", type=float, default=30.0, help="give up on a recovery after this long")
    ap.add_argument("--quick", action="store_true", help="short stall and cable pull (5 s), synchronizer only")
    args = ap.parse_args(argv)
    if args.quick:
        args.stall_s, args.down_s, args.nodes, args.stop_s = 5.0, 5.0, "synchronizer", 1.0
    wanted = args.faults.split(",")
    unknown = sorted(set(wanted) - set(FAULTS))
    if unknown:
        ap.error(f"unknown faults {unknown}; expected some of {list(FAULTS)}")
    report: dict = {"bench": "faults"}
    if {"kill", "stop", "tool"} & set(wanted):
        report["respawn"] = run(args.nodes.split(","), args.stop_s, args.timeout_s)
    for name, fn in (("stall", lambda: stalled_subscriber(args.stall_s)), ("backend", backend_failure),
                     ("disk", disk_full), ("cable", lambda: cable_pull(down_s=args.down_s)),
                     ("demo", demo_live_kill)):
        if name in wanted:
            try:
                report[name] = fn()
            except Exception as exc:  # noqa: BLE001 - one fault's failure is a result, not the end of the run
                report[name] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
