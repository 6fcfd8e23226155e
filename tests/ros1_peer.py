"""A ROS 1 peer for the bridge tests, run by the *system* Python with Debian's rospy (no mmstream).

    /usr/bin/python3 tests/ros1_peer.py pub KIND TOPIC [--count N] [--rate HZ]
    /usr/bin/python3 tests/ros1_peer.py echo TOPIC [--count N]

pub kinds: image (rgb8 64x48, a ramp), frames (raw rgb8 frames from --raw, stamped now), compressed (a PNG from the bytes in --png), audio (AudioData,
320 S16LE samples), audio_stamped, audio_info_mp3, text, bad_encoding (yuv422), bad_step (step too
small for the width). It waits for a subscriber before the first message and prints "sent N".
echo subscribes with AnyMsg, decodes with the definition the publisher sent in its connection
header (genpy, as rosbag does), and prints one JSON line per message: type, md5 and fields.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import genpy
import genpy.dynamic
import rospy
from std_msgs.msg import Header, String
from sensor_msgs.msg import CompressedImage, Image

AUDIO_DATA = "uint8[] data\n"
SEP = "=" * 80 + "\n"


def _audio_classes():
    header_text = Header._full_text
    data = genpy.dynamic.generate_dynamic("audio_common_msgs/AudioData", AUDIO_DATA)["audio_common_msgs/AudioData"]
    stamped = genpy.dynamic.generate_dynamic(
        "audio_common_msgs/AudioDataStamped",
        "Header header\naudio_common_msgs/AudioData audio\n" + SEP + "MSG: std_msgs/Header\n" + header_text + SEP
        + "MSG: audio_common_msgs/AudioData\n" + AUDIO_DATA)["audio_common_msgs/AudioDataStamped"]
    info = genpy.dynamic.generate_dynamic(
        "audio_common_msgs/AudioInfo",
        "uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\nstring coding_format\n",
    )["audio_common_msgs/AudioInfo"]
    return data, stamped, info


def make(kind: str, i: int, args: argparse.Namespace):
    stamp = rospy.Time(1_000 + i, 5_000_000)
    if kind == "frames":  # raw rgb8 frames from --raw (width x height each), looped, stamped now
        size = args.width * args.height * 3
        raw = open(args.raw, "rb").read()
        k = i % (len(raw) // size)
        msg = Image(width=args.width, height=args.height, encoding="rgb8", step=args.width * 3,
                    data=raw[k * size:(k + 1) * size])
        msg.header.stamp, msg.header.frame_id = rospy.Time.now(), "cam"
        return Image, msg
    if kind in ("image", "bad_encoding", "bad_step"):
        w, h = 64, 48
        msg = Image(width=w, height=h, encoding="rgb8", step=w * 3, data=bytes((x % 251 for x in range(w * h * 3))))
        msg.header.stamp, msg.header.frame_id = stamp, "cam"
        if kind == "bad_encoding":
            msg.encoding = "yuv422"
        if kind == "bad_step":
            msg.step = w  # 64 bytes a row for a 64-pixel rgb8 row (192 expected)
        return Image, msg
    if kind == "compressed":
        msg = CompressedImage(format="png", data=open(args.png, "rb").read())
        msg.header.stamp = stamp
        return CompressedImage, msg
    data_cls, stamped_cls, info_cls = _audio_classes()
    samples = b"".join(int(1000 * ((k % 40) - 20)).to_bytes(2, "little", signed=True) for k in range(320))
    if kind == "audio":
        return data_cls, data_cls(data=samples)
    if kind == "audio_stamped":
        msg = stamped_cls(audio=data_cls(data=samples))
        msg.header.stamp = stamp
        return stamped_cls, msg
    if kind == "audio_info_mp3":
        return info_cls, info_cls(channels=1, sample_rate=16000, sample_format="S16LE", bitrate=0, coding_format="mp3")
    if kind == "text":
        return String, String(data=f"hello robot {i}")
    raise SystemExit(f"unknown kind {kind}")


def pub(args: argparse.Namespace) -> None:
    rospy.init_node("peer_pub", anonymous=True, disable_signals=True)
    cls, _ = make(args.kind, 0, args)
    p = rospy.Publisher(args.topic, cls, queue_size=100, latch=args.kind == "audio_info_mp3")
    deadline = time.monotonic() + 20
    while p.get_num_connections() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    rate = rospy.Rate(args.rate)
    for i in range(args.count):
        p.publish(make(args.kind, i, args)[1])
        rate.sleep()
    print(f"sent {args.count}", flush=True)
    if args.linger:
        time.sleep(args.linger)


def echo(args: argparse.Namespace) -> None:
    rospy.init_node("peer_echo", anonymous=True, disable_signals=True)
    got = []
    classes: dict[str, type] = {}

    def on(raw: rospy.AnyMsg) -> None:
        hdr = raw._connection_header
        name = hdr["type"]
        if name not in classes:
            classes[name] = genpy.dynamic.generate_dynamic(name, hdr["message_definition"])[name]
        msg = classes[name]().deserialize(raw._buff)
        out = {"type": name, "md5": hdr["md5sum"]}
        for slot in msg.__slots__:
            value = getattr(msg, slot)
            if isinstance(value, genpy.Message) and slot == "header":
                out["stamp_ns"] = value.stamp.to_nsec()
            elif slot == "detections":
                out["detections"] = [{"id": d.results[0].id, "score": round(d.results[0].score, 3),
                                      "cx": d.bbox.center.x, "w": d.bbox.size_x} for d in value]
            elif not isinstance(value, genpy.Message):
                out[slot] = list(value) if isinstance(value, tuple) else value
        print(json.dumps(out), flush=True)
        got.append(out)

    rospy.Subscriber(args.topic, rospy.AnyMsg, on)
    print("subscribed", flush=True)
    deadline = time.monotonic() + args.timeout
    while len(got) < args.count and time.monotonic() < deadline:
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pub")
    p.add_argument("kind")
    p.add_argument("topic")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--png", default="")
    p.add_argument("--raw", default="")
    p.add_argument("--width", type=int, default=0)
    p.add_argument("--height", type=int, default=0)
    p.add_argument("--linger", type=float, default=0.5)
    e = sub.add_parser("echo")
    e.add_argument("topic")
    e.add_argument("--count", type=int, default=1)
    e.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    pub(args) if args.cmd == "pub" else echo(args)
    rospy.signal_shutdown("done")
    sys.exit(0)


if __name__ == "__main__":
    main()
