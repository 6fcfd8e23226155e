"""Benchmark of the window synchronizer at 30 fps 640×480 bgr8 + 16 kHz audio (20 ms chunks) + text.

Two parts, one JSON document:

* ``realtime``: messages are pushed at their arrival time on the host clock (frames 3-8 ms after
  capture, audio chunks 1-4 ms after their last sample, an utterance every 2 s at its end) and a
  10 ms timer polls, as the node does. Reported: added latency = emission time − window end
  (p50/p99, and beyond max_delay), sync CPU per window (thread CPU time inside push/poll, p50/p99)
  and the CPU fraction of one core the synchronizer used.
* ``simulated``: the same streams on a simulated clock as fast as possible: sync cost per window
  over many windows (wall time per emitted window, all push/poll calls included).

Baseline measured in the same run: the unavoidable copy of one window's payload (stacking T
frames and copying the audio), so the synchronizer's own overhead can be read off.

    python bench/bench_sync.py --seconds 20 --sim-seconds 120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

import numpy as np

from mmstream.messages import AudioChunk, ImageFrame, TextUtterance
from mmstream.sync import SyncConfig, WindowSynchronizer

S = 1_000_000_000
MS = 1_000_000
FPS = 30
RATE = 16000
CHUNK = 320


def streams(t0_ns: int, seconds: float, rng: random.Random) -> list[tuple[int, object]]:
    """(arrival_ns, message) in arrival order."""
    frames = [np.full((480, 640, 3), i, np.uint8) for i in range(8)]  # a few distinct images, reused
    out: list[tuple[int, object]] = []
    for i in range(int(seconds * FPS)):
        t = t0_ns + i * S // FPS
        f = ImageFrame(encoding="bgr8", height=480, width=640, data=frames[i % 8])
        f.header.stamp_ns, f.header.seq = t, i + 1
        out.append((t + rng.randint(3 * MS, 8 * MS), f))
    block = np.zeros((CHUNK, 1), np.float32)
    for j in range(int(seconds * RATE / CHUNK)):
        t = t0_ns + j * CHUNK * S // RATE
        a = AudioChunk(sample_rate_hz=RATE, samples=block)
        a.header.stamp_ns, a.header.seq = t, j + 1
        out.append((t + CHUNK * S // RATE + rng.randint(1 * MS, 4 * MS), a))
    for k in range(int(seconds // 2)):
        start = t0_ns + k * 2 * S + 300 * MS
        u = TextUtterance(start_ns=start, end_ns=start + 1200 * MS, text=f"utterance {k}")
        u.header.stamp_ns, u.header.seq = start + 1200 * MS, k + 1
        out.append((start + 1200 * MS + rng.randint(1 * MS, 20 * MS), u))
    out.sort(key=lambda x: x[0])
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def realtime(cfg: SyncConfig, seconds: float) -> dict:
    rng = random.Random(1)
    t0 = time.time_ns() + 200 * MS
    events = streams(t0, seconds, rng)
    sync = WindowSynchronizer(cfg)
    latency_ms: list[float] = []
    cpu_per_window_ms: list[float] = []
    cpu_total_ns = 0
    cpu_since_emit = 0
    next_tick = t0
    start_wall = time.monotonic_ns()
    start_cpu = time.process_time_ns()
    i = 0
    end_ns = events[-1][0] + cfg.max_delay_ns + 100 * MS
    while True:
        now = time.time_ns()
        if now > end_ns:
            break
        due = events[i][0] if i < len(events) else end_ns
        wake = min(due, next_tick)
        if wake > now:
            time.sleep((wake - now) / 1e9)
            continue
        c0 = time.thread_time_ns()
        if i < len(events) and events[i][0] <= now:
            sync.push(events[i][1], now)
            i += 1
        elif next_tick <= now:
            next_tick += 10 * MS
        windows = sync.poll(time.time_ns())
        emitted_at = time.time_ns()
        c1 = time.thread_time_ns()
        cpu_total_ns += c1 - c0
        cpu_since_emit += c1 - c0
        for w in windows:
            latency_ms.append((emitted_at - w.end_ns) / MS)
        if windows:
            cpu_per_window_ms.append(cpu_since_emit / MS / len(windows))
            cpu_since_emit = 0
    wall_ns = time.monotonic_ns() - start_wall
    beyond = [x - cfg.max_delay_ns / MS for x in latency_ms]
    return {
        "stream_seconds": seconds,
        "windows": len(latency_ms),
        "added_latency_ms_p50": pct(latency_ms, 50),
        "added_latency_ms_p99": pct(latency_ms, 99),
        "added_latency_ms_max": max(latency_ms),
        "beyond_max_delay_ms_p99": pct(beyond, 99),
        "sync_cpu_ms_per_window_p50": pct(cpu_per_window_ms, 50),
        "sync_cpu_ms_per_window_p99": pct(cpu_per_window_ms, 99),
        "sync_cpu_fraction_of_one_core": cpu_total_ns / wall_ns,
        "process_cpu_fraction_of_one_core": (time.process_time_ns() - start_cpu) / wall_ns,
        "stats": {k: v for k, v in sync.stats.as_dict().items() if k in
                  ("emitted", "emitted_by_watermark", "emitted_by_deadline", "late", "dropped", "skipped_empty")},
    }


def simulated(cfg: SyncConfig, seconds: float) -> dict:
    events = streams(10 * S, seconds, random.Random(2))
    sync = WindowSynchronizer(cfg)
    t_start = time.perf_counter_ns()
    per_window_ns: list[int] = []
    since = time.perf_counter_ns()
    n = 0
    tick = events[0][0]
    for arrival, msg in events:
        while tick < arrival:
            if sync.poll(tick):
                pass
            tick += 10 * MS
        sync.push(msg, arrival)
        got = sync.poll(arrival)
        if got:
            now = time.perf_counter_ns()
            per_window_ns.append((now - since) // len(got))
            since = now
            n += len(got)
    total = time.perf_counter_ns() - t_start
    return {"stream_seconds": seconds, "windows": n, "wall_s": total / 1e9,
            "sync_ms_per_window_mean": total / max(n, 1) / MS,
            "sync_ms_per_window_p50": pct([x / MS for x in per_window_ns], 50),
            "sync_ms_per_window_p99": pct([x / MS for x in per_window_ns], 99),
            "stream_seconds_per_wall_second": seconds / (total / 1e9)}


def baseline(cfg: SyncConfig, repeats: int = 200) -> dict:
    frames = [np.full((480, 640, 3), i, np.uint8) for i in range(cfg.frames_per_window)]
    audio = np.zeros((RATE, 1), np.float32)
    t = time.perf_counter_ns()
    for _ in range(repeats):
        out = np.zeros((cfg.frames_per_window, 480, 640, 3), np.uint8)
        for i, f in enumerate(frames):
            out[i] = f
        a = audio.copy()
    del out, a
    return {"payload_copy_ms_per_window": (time.perf_counter_ns() - t) / repeats / MS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="real-time part, seconds of streams")
    ap.add_argument("--sim-seconds", type=float, default=120.0, help="simulated part, seconds of streams")
    ap.add_argument("--frames-per-window", type=int, default=8)
    ap.add_argument("--max-delay-s", type=float, default=0.3)
    args = ap.parse_args()
    cfg = SyncConfig(window_ns=S, hop_ns=S // 2, frames_per_window=args.frames_per_window,
                     max_delay_ns=int(args.max_delay_s * S), text_horizon_ns=500 * MS)
    result = {
        "benchmark": "sync",
        "config": {"window_s": 1.0, "hop_s": 0.5, "frames_per_window": cfg.frames_per_window,
                   "max_delay_s": args.max_delay_s, "video": "30 fps 640x480 bgr8",
                   "audio": "16 kHz mono, 20 ms chunks", "text": "1 utterance / 2 s"},
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
        "baseline": baseline(cfg),
        "simulated": simulated(cfg, args.sim_seconds),
        "realtime": realtime(cfg, args.seconds),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
