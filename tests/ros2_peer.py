"""A stand-in ROS 2 node for the bridge tests, run as its own process: DDS endpoints configured as
rmw_cyclonedds configures them, messages encoded and decoded by rosbags (not the bridge's codec).

    python tests/ros2_peer.py pub TYPE TOPIC --msg JSON [--count N] [--rate HZ] [--qos best_effort]
    python tests/ros2_peer.py echo TYPE TOPIC [--count N]        # one JSON line per sample

``--msg`` is the message as JSON; ``"data": {"fill": N, "len": L}`` makes a uint8[] of L bytes
0,1,2,... (mod 256) starting at N. Prints ``matched`` once a peer matched, ``sent N`` at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmstream.ros2 import definitions as defs  # noqa: E402  (definitions only; the codec is rosbags')
from mmstream.ros2.discovery import apply, from_env  # noqa: E402
from mmstream.ros2.naming import dds_topic  # noqa: E402
from mmstream.ros2.qos import QosProfile, to_cyclone  # noqa: E402
from mmstream.ros2.typesupport import raw, type_support  # noqa: E402

OWN_MSGS = Path(__file__).resolve().parents[1] / "ros" / "mmstream_msgs" / "msg"


def typestore(ros_type: str) -> Any:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    extra: dict[str, Any] = {}
    for t in [ros_type, *defs.dependencies(ros_type)]:
        if t not in store.fielddefs:
            pkg, _, name = t.split("/")
            text = (OWN_MSGS / f"{name}.msg").read_text() if pkg == "mmstream_msgs" else defs.definition(t, ros_type)
            extra.update(get_types_from_msg(text, t))
    store.register(extra)
    return store


def build(store: Any, ros_type: str, value: Any) -> Any:
    """A rosbags message of ``ros_type`` from JSON-ish ``value`` (missing fields: zero values)."""
    cls = store.types[ros_type]
    fields = store.fielddefs[ros_type][1]
    kwargs = {}
    for fname, (kind, spec) in fields:
        v = value.get(fname) if isinstance(value, dict) else None
        kwargs[fname] = _field(store, kind, spec, v)
    return cls(**kwargs)


def _field(store: Any, kind: int, spec: Any, v: Any) -> Any:
    from rosbags.interfaces import Nodetype

    if kind == Nodetype.BASE:
        t = spec[0]
        if t == "string":
            return "" if v is None else str(v)
        if t in ("float32", "float64"):
            return float(v or 0.0)
        if t == "bool":
            return bool(v)
        return int(v or 0)
    if kind == Nodetype.NAME:
        return build(store, spec, v or {})
    # arrays and sequences
    (sub_kind, sub_spec), _n = spec
    if sub_kind == Nodetype.BASE and sub_spec[0] not in ("string", "bool"):
        dtype = {"uint8": np.uint8, "int8": np.int8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
                 "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64, "float32": np.float32,
                 "float64": np.float64}[sub_spec[0]]
        if isinstance(v, dict) and "raw" in v:
            return np.frombuffer(v["raw"], np.uint8).astype(dtype)
        if isinstance(v, dict) and "fill" in v:
            return (np.arange(v["len"]) + v["fill"]).astype(np.uint8).astype(dtype)
        out = np.array(v or [], dtype=dtype)
        if _n and kind == Nodetype.ARRAY and out.size == 0:
            out = np.zeros(_n, dtype)
        return out
    return [_field(store, sub_kind, sub_spec, x) for x in (v or [])]


def summary(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"len": int(value.size), "head": value.reshape(-1)[:8].tolist()} if value.size > 16 else value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        return {k: summary(getattr(value, k)) for k in value.__dataclass_fields__ if k != "__msgtype__"}
    if isinstance(value, list):
        return [summary(x) for x in value]
    return value


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("pub", "echo"))
    ap.add_argument("type")
    ap.add_argument("topic")
    ap.add_argument("--msg", default="{}")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--qos", default="")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--raw", default="", help="Image data: successive step x height chunks of this file, cycled")
    a = ap.parse_args()

    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    disc = from_env()
    apply(disc)
    store = typestore(a.type)
    support = type_support(a.type)  # DDS type name and hash only (rosbags encodes and decodes)
    cls = support.dds_class()
    dp = DomainParticipant(disc.domain_id, qos=Qos(Policy.Userdata(b"enclave=/;")))
    topic = Topic(dp, dds_topic(a.topic), cls)
    deadline = time.monotonic() + a.timeout
    if a.mode == "pub":
        prof = QosProfile(a.qos or "best_effort", 5)
        writer = DataWriter(dp, topic, qos=to_cyclone(prof, user_data=support.user_data))
        while writer.get_publication_matched_status().current_count == 0:
            if time.monotonic() > deadline:
                print("no match", flush=True)
                return 1
            time.sleep(0.02)
        print("matched", flush=True)
        time.sleep(0.3)  # discovery is asymmetric: let the reader side match us as well
        msg = json.loads(a.msg)
        frames = Path(a.raw).read_bytes() if a.raw else b""
        size = int(msg.get("step", 0)) * int(msg.get("height", 0))
        for i in range(a.count):
            if frames:
                k = i % (len(frames) // size)
                msg["data"] = {"raw": frames[k * size:(k + 1) * size]}
                t = time.time_ns()
                msg["header"] = {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "cam"}
            ros = build(store, a.type, msg)
            writer.write(raw(cls, bytes(store.serialize_cdr(ros, a.type))))
            time.sleep(1.0 / a.rate)
        print(f"sent {a.count}", flush=True)
        time.sleep(0.5)
        return 0
    prof = QosProfile(a.qos or "reliable", 10)
    reader = DataReader(dp, topic, qos=to_cyclone(prof, user_data=support.user_data))
    print("subscribed", flush=True)
    got = 0
    while got < a.count and time.monotonic() < deadline:
        for s in reader.take(N=16):
            if not s.sample_info.valid_data:
                continue
            ros = store.deserialize_cdr(bytes(s.cdr), a.type)
            print(json.dumps({"n": got, "msg": summary(ros)}), flush=True)
            got += 1
        time.sleep(0.01)
    return 0 if got >= a.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
