"""Transport benchmark: mmstream publisher/subscription vs raw pyzmq, in separate processes.

Prints JSON: for 640×480×3 and 1920×1080×3 uint8 frames, paced at 30 Hz and at full rate,
over ipc and tcp — one-way latency p50/p99 (publish call to callback, host clock), msgs/s,
GB/s and drops, for raw pyzmq (PUB/SUB, zero-copy multipart) and mmstream, plus the ratio.

    python bench/bench_transport.py [--seconds-30hz 3] [--count-full 300] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time

import numpy as np

SIZES = {"640x480": (480, 640, 3), "1920x1080": (1080, 1920, 3)}


def _endpoint(kind: str, tag: str, port: int) -> str:
    if kind == "tcp":
        return f"tcp://127.0.0.1:{port}"
    return f"ipc://{tempfile.gettempdir()}/mmbench-{os.getpid()}-{tag}.sock"


# ----------------------------------------------------------------------------- raw pyzmq

def _raw_sub(endpoint: str, n: int, q: mp.Queue) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 1000)
    s.connect(endpoint)
    s.setsockopt(zmq.SUBSCRIBE, b"/cam")
    lat, count, t_first, t_last = [], 0, None, None
    while s.poll(3000):
        topic, stamp, payload = s.recv_multipart(copy=False)
        now = time.time_ns()
        arr = np.frombuffer(payload.buffer, np.uint8)  # touch like a consumer would (no copy)
        lat.append(now - int.from_bytes(stamp.bytes, "little"))
        t_first = t_first or now
        t_last = now
        count += 1
        if count == n:
            break
        del arr
    q.put((lat, count, t_first, t_last))


def _raw_pub(endpoint: str, frames: list[np.ndarray], period_s: float) -> None:
    import zmq

    ctx = zmq.Context()
    p = ctx.socket(zmq.XPUB)
    p.bind(endpoint)
    p.poll(10000)
    p.recv()  # subscription arrived (same handshake as mmstream)
    t0 = time.monotonic()
    for i, f in enumerate(frames):
        if period_s:
            time.sleep(max(0.0, t0 + i * period_s - time.monotonic()))
        p.send_multipart([b"/cam", time.time_ns().to_bytes(8, "little"), f], copy=False)
    time.sleep(0.5)
    p.close(linger=1000)
    ctx.term()


# ----------------------------------------------------------------------------- mmstream

def _mm_sub(run_dir: str, n: int, reliable: bool, q: mp.Queue) -> None:
    from mmstream.clock import host_now_ns
    from mmstream.messages import ImageFrame
    from mmstream.node import Node

    lat: list[int] = []
    times: list[int] = []

    def cb(msg: ImageFrame) -> None:
        now = host_now_ns()
        lat.append(now - msg.header.stamp_ns)
        times.append(now)

    node = Node("bench_sub", run_dir=run_dir, params={"log_level": "warning"})
    sub = node.create_subscription(ImageFrame, "/cam", cb, keep_last=None if reliable else 4)
    deadline = time.monotonic() + 120
    idle_since = time.monotonic()
    while len(lat) < n and time.monotonic() < deadline:
        before = len(lat)
        node.spin_once(0.05)
        if len(lat) != before:
            idle_since = time.monotonic()
        elif lat and time.monotonic() - idle_since > 3:
            break
    drops = sub.stats.drops
    node.close()
    q.put((lat, len(lat), times[0] if times else None, times[-1] if times else None, drops))


def _mm_pub(run_dir: str, frames: list[np.ndarray], period_s: float, reliable: bool) -> None:
    from mmstream.messages import ImageFrame
    from mmstream.node import Node

    node = Node("bench_pub", run_dir=run_dir, params={"log_level": "warning"})
    pub = node.create_publisher(ImageFrame, "/cam", reliable=reliable)
    pub.wait_for_subscribers(1, timeout_s=10)
    h, w, _ = frames[0].shape
    t0 = time.monotonic()
    for i, f in enumerate(frames):
        if period_s:
            time.sleep(max(0.0, t0 + i * period_s - time.monotonic()))
        pub.publish(ImageFrame(encoding="bgr8", height=h, width=w, data=f))  # stamp set at publish
    time.sleep(0.5)
    node.close()


# ----------------------------------------------------------------------------- runner

def _summary(lat: list[int], count: int, t_first: int | None, t_last: int | None, sent: int, nbytes: int,
             drops_counted: int | None = None) -> dict:
    out = {"received": count, "sent": sent, "drops": sent - count}
    if drops_counted is not None:
        out["drops_counted_by_subscriber"] = drops_counted
    if lat:
        a = np.asarray(lat, np.float64) / 1e6
        out.update(latency_p50_ms=round(float(np.percentile(a, 50)), 3),
                   latency_p99_ms=round(float(np.percentile(a, 99)), 3))
    if t_first and t_last and count > 1:
        dt = (t_last - t_first) / 1e9
        out.update(msgs_per_s=round((count - 1) / dt, 1), gb_per_s=round((count - 1) * nbytes / dt / 1e9, 3))
    return out


def run_case(impl: str, kind: str, size: str, rate: str, n: int, port: int) -> dict:
    ctx = mp.get_context("spawn")
    shape = SIZES[size]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(4)]
    frames = [frames[i % 4] for i in range(n)]
    period = 1 / 30 if rate == "30hz" else 0.0
    q: mp.Queue = ctx.Queue()
    if impl == "raw_pyzmq":
        ep = _endpoint(kind, f"raw{port}", port)
        sub = ctx.Process(target=_raw_sub, args=(ep, n, q))
        sub.start()
        _raw_pub(ep, frames, period)
        lat, count, t0, t1 = q.get(timeout=180)
        sub.join(10)
        return _summary(lat, count, t0, t1, n, frames[0].nbytes)
    run_dir = tempfile.mkdtemp(prefix="mmb-", dir="/tmp")
    if kind == "tcp":
        os.environ["MMSTREAM_ENDPOINTS"] = json.dumps({"/cam": f"tcp://127.0.0.1:{port}"})
    else:
        os.environ.pop("MMSTREAM_ENDPOINTS", None)
    reliable = rate == "full"  # full rate: measure throughput without loss (backpressure)
    sub = ctx.Process(target=_mm_sub, args=(run_dir, n, reliable, q))
    sub.start()
    _mm_pub(run_dir, frames, period, reliable)
    lat, count, t0, t1, drops = q.get(timeout=180)
    sub.join(10)
    return _summary(lat, count, t0, t1, n, frames[0].nbytes, drops)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds-30hz", type=float, default=4.0)
    ap.add_argument("--count-full", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="640x480 over ipc only")
    args = ap.parse_args(argv)
    results = []
    port = 47000 + os.getpid() % 1000
    kinds = ["ipc"] if args.quick else ["ipc", "tcp"]
    sizes = ["640x480"] if args.quick else list(SIZES)
    for kind in kinds:
        for size in sizes:
            for rate in ("30hz", "full"):
                n = int(args.seconds_30hz * 30) if rate == "30hz" else args.count_full
                row = {"transport": kind, "frame": size, "rate": rate, "messages": n}
                for impl in ("raw_pyzmq", "mmstream"):
                    port += 1
                    row[impl] = run_case(impl, kind, size, rate, n, port)
                    print(f"# {kind} {size} {rate} {impl}: {row[impl]}", file=sys.stderr, flush=True)
                r, m = row["raw_pyzmq"], row["mmstream"]
                if "latency_p50_ms" in r and "latency_p50_ms" in m:
                    row["p50_latency_ratio_mmstream_over_raw"] = round(m["latency_p50_ms"] / r["latency_p50_ms"], 3)
                if "msgs_per_s" in r and "msgs_per_s" in m:
                    row["throughput_ratio_mmstream_over_raw"] = round(m["msgs_per_s"] / r["msgs_per_s"], 3)
                results.append(row)
    print(json.dumps({"benchmark": "transport", "cpu_count": os.cpu_count(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
