"""What CURVE costs: a 640×480×3 uint8 stream at 30 Hz over tcp, plaintext and CURVE, in one run.

Publisher and subscriber are separate processes using mmstream's Publisher/Subscription (so
CURVE is set up exactly as a secured launch does). Prints JSON per mode: one-way latency
p50/p99 (publish call to receipt, host clock), frames received, drops, and CPU seconds per
second of publisher and subscriber (user+sys from /proc), plus the CURVE/plaintext ratios.

    python bench/bench_security.py [--seconds 10] [--fps 30] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

TOPIC = "/camera/image"


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _env(cfg_path: str | None, key: str) -> None:
    from mmstream import security

    os.environ.pop(security.ENV_CONFIG, None)
    if cfg_path:
        os.environ[security.ENV_CONFIG] = cfg_path
        os.environ[security.ENV_KEY] = key


def _pub(endpoint: str, cfg_path: str | None, fps: float, seconds: float, q: mp.Queue) -> None:
    import zmq

    from mmstream.clock import host_now_ns
    from mmstream.messages import ImageFrame
    from mmstream.transport import Publisher

    _env(cfg_path, "pub")
    ctx = zmq.Context()
    pub = Publisher(ctx, TOPIC, ImageFrame, endpoint=endpoint, clock=host_now_ns)
    pub.wait_for_subscribers(1, 10.0)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    cpu0, t0 = _cpu_s(), time.monotonic()
    n = int(seconds * fps)
    for i in range(n):
        due = t0 + i / fps
        time.sleep(max(0.0, due - time.monotonic()))
        pub.publish(ImageFrame(encoding="bgr8", height=480, width=640, data=frames[i % 4]))
    q.put(("pub", (_cpu_s() - cpu0) / (time.monotonic() - t0), n))
    time.sleep(0.5)
    pub.close()
    ctx.term()


def _sub(endpoint: str, cfg_path: str | None, n: int, q: mp.Queue) -> None:
    import zmq

    from mmstream.clock import host_now_ns
    from mmstream.messages import ImageFrame
    from mmstream.transport import Subscription

    _env(cfg_path, "sub")
    ctx = zmq.Context()
    lat: list[int] = []
    sub = Subscription(ctx, TOPIC, ImageFrame, lambda m: None, endpoint=endpoint, keep_last=4,
                       clock=host_now_ns, on_reject=lambda r, d: None, log=logging.getLogger("bench"))
    cpu0 = t0 = None
    got = 0
    while got < n and sub.socket.poll(5000):
        sub.receive_available()
        while sub.pending():
            msg = sub.take()
            if msg is None:
                continue
            lat.append(host_now_ns() - msg.header.stamp_ns)
            got += 1
            if cpu0 is None:
                cpu0, t0 = _cpu_s(), time.monotonic()
    dt = time.monotonic() - t0 if t0 else 1.0
    q.put(("sub", ((_cpu_s() - cpu0) / dt if cpu0 is not None else 0.0), lat, sub.stats.drops, got,
           sub.security.mechanism))
    sub.close()
    ctx.term()


def run_mode(mode: str, host: str, fps: float, seconds: float, workdir: Path) -> dict:
    cfg_path = None
    if mode == "curve":
        from mmstream import security

        keys = workdir / "keys"
        if not keys.exists():
            security.generate_keys(keys, ["pub", "sub"])
        cfg = security.SecurityConfig.parse({"key_dir": str(keys), "key": "pub", "allow": {
            "pub": {"publish": [TOPIC]}, "sub": {"subscribe": [TOPIC]}}}, workdir, "bench")
        cfg_path = str(workdir / "security.json")
        Path(cfg_path).write_text(cfg.to_json())
    endpoint = f"tcp://{host}:{_free_port(host)}"
    n = int(seconds * fps)
    q: mp.Queue = mp.get_context("spawn").Queue()
    ctx = mp.get_context("spawn")
    ps = ctx.Process(target=_sub, args=(endpoint, cfg_path, n, q))
    pp = ctx.Process(target=_pub, args=(endpoint, cfg_path, fps, seconds, q))
    ps.start()
    time.sleep(0.3)
    pp.start()
    results = {}
    for _ in range(2):
        item = q.get(timeout=seconds + 60)
        results[item[0]] = item[1:]
    pp.join(10)
    ps.join(10)
    pub_cpu, sent = results["pub"]
    sub_cpu, lat, drops, got, mechanism = results["sub"]
    lat_ms = np.asarray(lat, dtype=np.float64) / 1e6
    return {"mode": mode, "mechanism": mechanism, "sent": sent, "received": got, "drops": drops,
            "latency_p50_ms": round(float(np.percentile(lat_ms, 50)), 3) if lat else None,
            "latency_p99_ms": round(float(np.percentile(lat_ms, 99)), 3) if lat else None,
            "pub_cpu_per_s": round(pub_cpu, 4), "sub_cpu_per_s": round(sub_cpu, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmbench-sec-") as tmp:
        rows = [run_mode(m, args.host, args.fps, args.seconds, Path(tmp)) for m in ("plaintext", "curve")]
    plain, curve = rows
    ratio = {k: round(curve[k] / plain[k], 2) if plain[k] else None
             for k in ("latency_p50_ms", "latency_p99_ms", "pub_cpu_per_s", "sub_cpu_per_s")}
    print(json.dumps({"bench": "security", "frame": "640x480x3 uint8", "fps": args.fps, "seconds": args.seconds,
                      "transport": f"tcp {args.host}", "results": rows, "curve_over_plaintext": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
