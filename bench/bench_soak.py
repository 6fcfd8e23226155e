"""Load held: the live pipeline at nominal rates for N minutes; prints JSON.

    mmstream bench soak [--minutes 10] [--warmup-s 10] [--intervals 10]

The graph is launch/demo.yaml's live pipeline on the sample's own files, looping (camera
sample.mp4 640x480 @30, microphone sample.wav in 20 ms blocks, text sample.srt), started by the
real launcher, with one change: the derived paths are *reliable* (synchronizer -> inference
windows, inference -> console estimates, and this program's own estimate subscription), so the
run shows both kinds of path. Sensor topics keep their keep-last QoS: their drops are counted,
not hidden. Every node respawns, as in every live launch file; a respawn during the run is
reported (and fails the run's targets).

Measured over the run (after ``--warmup-s``), split into ``--intervals`` equal intervals:
* drops per subscription from every node's NodeStats (delta over the run), grouped into
  reliable and sensor paths; estimates lost on the reliable path also as gaps in ``seq`` seen here;
* RSS of every node sampled every few seconds: growth = median of the last interval's samples
  over the median of the first interval's, in percent (target < 5 % per node);
* the latency from a window's end to its estimate arriving here (host clock): p50/p99 per
  interval; stable = the last interval's p99 within 1.5x (or 25 ms) of the first's, and no
  interval above 3x the run's median p99;
* each node's CPU (cores) over the run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmstream.clock import host_now_ns  # noqa: E402
from mmstream.messages import EmotionEstimate, NodeStats  # noqa: E402
from mmstream.node import Node  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")
NODES = ("camera", "microphone", "text", "synchronizer", "inference", "console")
RELIABLE_TOPICS = ("/sync/window", "/perception/emotion")
RSS_GROWTH_MAX_PCT = 5.0

LAUNCH = """\
launch:
  - node: {{exec: camera, name: camera, params: {{source: "{data}/sample.mp4", width: 640, height: 480, fps: 30,
           loop: true}}, respawn: true, respawn_delay_s: 2.0, respawn_max: 5}}
  - node: {{exec: microphone, name: microphone, params: {{source: "{data}/sample.wav", loop: true}},
           respawn: true, respawn_delay_s: 0.5, respawn_max: 5}}
  - node: {{exec: text, name: text, params: {{source: "{data}/sample.srt", loop: true, exit_on_end: false}},
           respawn: true, respawn_delay_s: 0.5, respawn_max: 5}}
  - node: {{exec: synchronizer, name: synchronizer, params: {{reliable_output: true, text_horizon_s: 1.5}},
           respawn: true, respawn_delay_s: 0.5, respawn_max: 5}}
  - node: {{exec: inference, name: inference, params: {{backend: {backend}, reliable: true, print_estimates: false}},
           respawn: true, respawn_delay_s: 0.5, respawn_max: 5}}
  - node: {{exec: console, name: console, params: {{topics: [/perception/emotion], reliable: true, every_n: 1000000}},
           respawn: true, respawn_delay_s: 0.5, respawn_max: 5}}
"""


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def pids(run_dir: Path) -> dict[str, int]:
    try:
        state = json.loads((run_dir / "processes.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {p["name"]: p["pid"] for p in state if p.get("pid") and p.get("state") == "running"}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 1)


def _sub_drops(stats: dict[str, NodeStats]) -> dict[tuple[str, str], int]:
    """(node, topic) -> cumulative drops of each subscription."""
    return {(name, t["topic"]): int(t.get("drops", 0)) for name, m in stats.items() for t in m.topics
            if t.get("direction") == "sub" and not t["topic"].endswith("/stats")}


def _stable(p99s: list[float | None]) -> bool:
    vals = [v for v in p99s if v is not None]
    if len(vals) < 2:
        return False
    first, last, med = vals[0], vals[-1], statistics.median(vals)
    return last <= max(1.5 * first, first + 25.0) and max(vals) <= 3.0 * med


def run(minutes: float, *, warmup_s: float = 10.0, intervals: int = 10, sample_s: float = 2.0,
        backend: str = "onnxruntime") -> dict:
    seconds = minutes * 60.0
    with tempfile.TemporaryDirectory(prefix="mmsoak-", dir="/tmp") as tmp:
        run_dir = Path(tmp) / "run"
        launch_file = Path(tmp) / "soak.yaml"
        launch_file.write_text(textwrap.dedent(LAUNCH.format(data=REPO / "mmstream/data", backend=backend)))
        env = dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1")
        log = open(Path(tmp) / "launch.log", "w")
        launch = subprocess.Popen([sys.executable, "-m", "mmstream.cli", "launch", str(launch_file)],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return _measure(run_dir, seconds, warmup_s, intervals, sample_s, backend)
        finally:
            try:
                os.killpg(launch.pid, signal.SIGINT)
                launch.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(launch.pid, signal.SIGKILL)
                launch.wait()
            except ProcessLookupError:
                pass
            log.close()


def _measure(run_dir: Path, seconds: float, warmup_s: float, intervals: int, sample_s: float,
             backend: str) -> dict:
    stats: dict[str, NodeStats] = {}
    lat: list[tuple[float, float]] = []  # (monotonic receipt, ms)
    seen = {"count": 0, "gaps": 0, "last_seq": None}
    measuring = [False]
    deadline = time.monotonic() + 60
    while not (run_dir / "processes.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with Node("_bench_soak", run_dir=run_dir, params={"log_level": "warning"}) as probe:
        def on_estimate(est: EmotionEstimate) -> None:
            if not measuring[0]:
                seen["last_seq"] = est.header.seq
                return
            seq, last = est.header.seq, seen["last_seq"]
            if last is not None and seq > last + 1:
                seen["gaps"] += seq - last - 1
            seen["last_seq"] = seq
            seen["count"] += 1
            lat.append((time.monotonic(), (host_now_ns() - est.window_end_ns) / 1e6))

        probe.create_subscription(EmotionEstimate, "/perception/emotion", on_estimate, keep_last=None)
        for name in NODES:
            probe.create_subscription(NodeStats, f"/{name}/stats",
                                      lambda m, name=name: stats.__setitem__(name, m), keep_last=2)
        while (len(pids(run_dir)) < len(NODES) or len(stats) < len(NODES)) and time.monotonic() < deadline:
            probe.spin_once(0.2)
        if len(stats) < len(NODES):
            raise SystemExit(f"bench soak: nodes without stats after 60 s: {sorted(set(NODES) - set(stats))}")
        end_warmup = time.monotonic() + warmup_s
        while time.monotonic() < end_warmup:
            probe.spin_once(0.1)
        procs0 = pids(run_dir)
        cpu0 = {n: cpu_s(p) for n, p in procs0.items()}
        drops0 = _sub_drops(stats)
        rss: dict[str, list[tuple[float, float]]] = {n: [] for n in procs0}
        t0 = time.monotonic()
        end = t0 + seconds
        next_sample = t0
        measuring[0] = True
        while time.monotonic() < end:
            probe.spin_once(0.1)
            now = time.monotonic()
            if now >= next_sample:
                next_sample += sample_s
                for n, p in pids(run_dir).items():
                    if n in rss and p == procs0[n] and (mb := rss_mb(p)) is not None:
                        rss[n].append((now - t0, mb))
        measuring[0] = False
        wall = time.monotonic() - t0
        procs1 = pids(run_dir)
        cpu = {n: round((cpu_s(p) - cpu0[n]) / wall, 4) for n, p in procs1.items() if procs0.get(n) == p}
        time_stats = time.monotonic() + 2.5  # the stats published right after the run
        while time.monotonic() < time_stats:
            probe.spin_once(0.1)
    restarted = sorted(n for n in procs0 if procs1.get(n) != procs0[n])
    drops1 = _sub_drops(stats)
    drops = {f"{node} <- {topic}": drops1[(node, topic)] - drops0.get((node, topic), 0) for node, topic in drops1}
    reliable = {k: v for k, v in drops.items() if k.split(" <- ")[1] in RELIABLE_TOPICS}
    sensor = {k: v for k, v in drops.items() if k not in reliable}
    span = seconds / intervals
    per_interval = []
    for i in range(intervals):
        vals = [ms for t, ms in lat if t0 + i * span <= t < t0 + (i + 1) * span]
        per_interval.append({"from_s": round(i * span, 1), "estimates": len(vals),
                             "p50_ms": _pct(vals, 0.5), "p99_ms": _pct(vals, 0.99)})
    growth = {}
    for n, samples in rss.items():
        first = [mb for t, mb in samples if t < span]
        last = [mb for t, mb in samples if t >= seconds - span]
        if first and last:
            a, b = statistics.median(first), statistics.median(last)
            growth[n] = {"first_mb": round(a, 1), "last_mb": round(b, 1), "max_mb": round(max(mb for _, mb in samples), 1),
                         "growth_pct": round(100.0 * (b - a) / a, 2)}
    p99s = [iv["p99_ms"] for iv in per_interval]
    all_ms = [ms for _, ms in lat]
    targets = {
        "zero_drops_reliable": sum(reliable.values()) == 0 and seen["gaps"] == 0,
        "rss_growth_lt_5pct_every_node": bool(growth) and all(g["growth_pct"] < RSS_GROWTH_MAX_PCT for g in growth.values()),
        "p99_stable": _stable(p99s),
        "no_restarts": not restarted,
    }
    return {
        "bench": "soak", "minutes": round(wall / 60, 2), "backend": backend,
        "pipeline": "camera 640x480@30 + microphone 16 kHz + text (sample files, looping) -> synchronizer "
                    "-(reliable)-> inference -(reliable)-> console + this probe",
        "estimates": seen["count"], "estimate_rate_hz": round(seen["count"] / wall, 3),
        "estimate_seq_gaps": seen["gaps"],
        "drops_reliable": reliable, "drops_reliable_total": sum(reliable.values()),
        "drops_sensor": sensor, "drops_sensor_total": sum(sensor.values()),
        "rss": growth, "rss_growth_max_pct": max((g["growth_pct"] for g in growth.values()), default=None),
        "latency_window_end_to_estimate_ms": {"p50": _pct(all_ms, 0.5), "p99": _pct(all_ms, 0.99),
                                              "intervals": per_interval},
        "cpu_cores": cpu, "cpu_cores_total": round(sum(cpu.values()), 4),
        "restarted": restarted, "targets_met": targets,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="measured time (after the warm-up)")
    ap.add_argument("--warmup-s", type=float, default=10.0, help="seconds after every node reports before measuring")
    ap.add_argument("--intervals", type=int, default=10, help="latency and RSS are compared across these")
    ap.add_argument("--sample-s", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--backend", default="onnxruntime")
    args = ap.parse_args(argv)
    report = run(args.minutes, warmup_s=args.warmup_s, intervals=args.intervals, sample_s=args.sample_s,
                 backend=args.backend)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
