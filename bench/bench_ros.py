"""What the ROS 2 bridge costs: 640×480 rgb8 sensor_msgs/Image from a DDS publisher, at 30 Hz and full rate.

Two paths in the same run, each a set of separate processes on one DDS domain (loopback only):
``dds``: DDS publisher -> DDS subscriber (the baseline: Cyclone DDS, pre-serialized CDR both ends);
``bridge``: the same DDS publisher -> ``ros2_bridge`` -> an mmstream subscriber (ZeroMQ).
Latency is header stamp (host clock, set just before encoding) to receipt. Prints JSON: per path and
rate latency p50/p99 ms, msgs/s received, the bridge's CPU (fraction of one core), and the
per-frame cost of cyclonedds-python's own sequence<uint8> packing vs the pre-serialized path.

    python bench/bench_ros.py [--seconds 6] [--fps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
W, H = 640, 480
ROS_TOPIC, MM_TOPIC, IMAGE = "/bench/image_raw", "/bench/image", "sensor_msgs/msg/Image"


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _dds():
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.topic import Topic

    from mmstream.ros2.discovery import apply, from_env
    from mmstream.ros2.naming import dds_topic
    from mmstream.ros2.typesupport import type_support

    apply(from_env())
    ts = type_support(IMAGE)
    dp = DomainParticipant(from_env().domain_id, qos=Qos(Policy.Userdata(b"enclave=/;")))
    return dp, Topic(dp, dds_topic(ROS_TOPIC), ts.dds_class()), ts


def role_pub(fps: float, seconds: float) -> None:
    from cyclonedds.pub import DataWriter

    from mmstream.ros2.qos import QosProfile, to_cyclone
    from mmstream.ros2.typesupport import raw

    dp, topic, ts = _dds()
    w = DataWriter(dp, topic, qos=to_cyclone(QosProfile("best_effort", 5), user_data=ts.user_data))
    cls = ts.dds_class()
    pixels = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8).tobytes()
    while w.get_publication_matched_status().current_count == 0:
        time.sleep(0.01)
    time.sleep(1.0)
    period = 1.0 / fps if fps > 0 else 0.0
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    n = 0
    while time.monotonic() < end:
        t = time.time_ns()
        msg = {"header": {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "cam"}, "height": H,
               "width": W, "encoding": "rgb8", "is_bigendian": 0, "step": W * 3, "data": pixels}
        w.write(raw(cls, ts.encode(msg)))
        n += 1
        if period:
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))
    print(json.dumps({"sent": n}), flush=True)
    time.sleep(0.5)


def _report(lat_ms: list[float], t_first: float, t_last: float) -> dict:
    a = np.array(lat_ms[5:] or [float("nan")])
    span = max(1e-9, t_last - t_first)
    return {"received": len(lat_ms), "msgs_per_s": round((len(lat_ms) - 1) / span, 1) if len(lat_ms) > 1 else 0.0,
            "latency_p50_ms": round(float(np.percentile(a, 50)), 3), "latency_p99_ms": round(float(np.percentile(a, 99)), 3)}


def role_sub(seconds: float) -> None:
    """The DDS baseline subscriber (best-effort, decodes with the same codec as the bridge)."""
    from cyclonedds.core import ReadCondition, SampleState, ViewState, InstanceState, WaitSet
    from cyclonedds.sub import DataReader
    from cyclonedds.util import duration

    from mmstream.ros2.qos import QosProfile, to_cyclone

    dp, topic, ts = _dds()
    r = DataReader(dp, topic, qos=to_cyclone(QosProfile("best_effort", 5), user_data=ts.user_data))
    ws = WaitSet(dp)
    ws.attach(ReadCondition(r, SampleState.Any | ViewState.Any | InstanceState.Any))
    print(json.dumps({"ready": True}), flush=True)
    lat, first, last = [], 0.0, 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ws.wait(duration(milliseconds=100))
        for s in r.take(N=16):
            if not hasattr(s, "cdr"):
                continue  # an instance-state change (the publisher went away), no data
            m = ts.decode(s.cdr)
            now = time.time_ns()
            np.frombuffer(m.data, np.uint8).reshape(H, W, 3)
            lat.append((now - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6)
            last = time.monotonic()
            first = first or last
    print(json.dumps(_report(lat, first, last)), flush=True)


def role_mmsub(seconds: float, run_dir: str) -> None:
    from mmstream.clock import host_now_ns
    from mmstream.messages import ImageFrame
    from mmstream.node import Node

    node = Node("bench_sub", run_dir=run_dir)
    lat, times = [], []

    def on(msg: ImageFrame) -> None:
        lat.append((host_now_ns() - msg.header.stamp_ns) / 1e6)
        times.append(time.monotonic())

    node.create_subscription(ImageFrame, MM_TOPIC, on, keep_last=4)
    print(json.dumps({"ready": True}), flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        node.spin_once(0.1)
    node.close()
    print(json.dumps(_report(lat, times[0] if times else 0, times[-1] if times else 0)), flush=True)


def _spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=REPO)


def _last_json(p: subprocess.Popen, timeout: float) -> dict:
    out, _ = p.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def run_path(path: str, fps: float, seconds: float, env: dict) -> dict:
    me = str(Path(__file__).resolve())
    run_dir = tempfile.mkdtemp(prefix="mmb-", dir="/tmp")
    env = {**env, "MMSTREAM_RUN_DIR": run_dir}
    total = seconds + 6
    bridge = None
    if path == "dds":
        sub = _spawn([me, "--role", "sub", "--seconds", str(total)], env)
    else:
        sub = _spawn([me, "--role", "mmsub", "--seconds", str(total), "--run-dir", run_dir], env)
        bridge = subprocess.Popen([sys.executable, "-m", "nodes.ros2_bridge", "--run-dir", run_dir,
                                   "-p", f"image_topic={ROS_TOPIC}", "-p", f"image_out={MM_TOPIC}",
                                   "-p", "audio_topic=''", "-p", "text_topic=''", "-p", "emotion_topic=''",
                                   "-p", "detections_topic=''"], env=env, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert sub.stdout is not None
    sub.stdout.readline()  # ready
    pub = _spawn([me, "--role", "pub", "--fps", str(fps), "--seconds", str(seconds)], env)
    cpu0 = t0 = None
    if bridge is not None:
        time.sleep(1.5)  # publisher matched and started; measure the bridge while frames flow
        cpu0, t0 = _proc_cpu_s(bridge.pid), time.monotonic()
    sent = _last_json(pub, seconds + 30)
    result = {"path": path, "fps": fps or "max", **sent}
    if bridge is not None and cpu0 is not None:
        result["bridge_cpu_core_fraction"] = round((_proc_cpu_s(bridge.pid) - cpu0) / (time.monotonic() - t0 - 0.5), 3)
        bridge.send_signal(2)
    result.update(_last_json(sub, total + 10))
    if bridge is not None:
        bridge.wait(10)
    return result


def packing_cost() -> dict:
    """ms per VGA frame: cyclonedds-python packing sequence<uint8> itself vs the pre-serialized bytes."""
    from cyclonedds.idl import make_idl_struct
    from cyclonedds.idl.types import sequence, uint8

    from mmstream.ros2.typesupport import type_support

    Blob = make_idl_struct("Blob", "bench::Blob", {"data": sequence[uint8]})

    data = np.zeros(W * H * 3, np.uint8)
    t = time.perf_counter()
    Blob(data=data.tolist()).serialize()
    slow = (time.perf_counter() - t) * 1e3
    ts = type_support(IMAGE)
    msg = {"header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": ""}, "height": H, "width": W,
           "encoding": "rgb8", "is_bigendian": 0, "step": W * 3, "data": data.tobytes()}
    t = time.perf_counter()
    for _ in range(20):
        cdr = ts.encode(msg)
    enc = (time.perf_counter() - t) / 20 * 1e3
    t = time.perf_counter()
    for _ in range(20):
        ts.decode(cdr)
    dec = (time.perf_counter() - t) / 20 * 1e3
    return {"cyclonedds_sequence_uint8_pack_ms": round(slow, 1), "preserialized_encode_ms": round(enc, 3),
            "preserialized_decode_ms": round(dec, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--role", default="", choices=("", "pub", "sub", "mmsub"))
    ap.add_argument("--run-dir", default="")
    a = ap.parse_args(argv)
    if a.role == "pub":
        role_pub(a.fps, a.seconds)
        return 0
    if a.role == "sub":
        role_sub(a.seconds)
        return 0
    if a.role == "mmsub":
        role_mmsub(a.seconds, a.run_dir)
        return 0
    from mmstream.ros2.discovery import from_env

    env = {**os.environ, "ROS_DOMAIN_ID": str(180 + os.getpid() % 40), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "CYCLONEDDS_URI": from_env({}).cyclone_xml(), "PYTHONUNBUFFERED": "1"}
    runs = [run_path(p, fps, a.seconds, env) for fps in (a.fps, 0.0) for p in ("dds", "bridge")]
    by = {(r["path"], r["fps"]): r for r in runs}
    added = {}
    for fps in (a.fps, "max"):
        d, b = by[("dds", fps)], by[("bridge", fps)]
        added[str(fps)] = {"bridge_adds_p50_ms": round(b["latency_p50_ms"] - d["latency_p50_ms"], 3),
                           "bridge_adds_p99_ms": round(b["latency_p99_ms"] - d["latency_p99_ms"], 3)}
    print(json.dumps({"bench": "ros", "frame": f"{W}x{H} rgb8 sensor_msgs/Image", "seconds": a.seconds,
                      "cpus": os.cpu_count(), "runs": runs, "added": added, "packing": packing_cost()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
