"""Player node: replays a ROS 2 MCAP bag into the graph and publishes the simulated clock.

    python -m nodes.player --param bag=session.mcap --param rate=2.0
    python -m nodes.player --param bag=robot_bag/ --param topic_map='{/camera/image_raw: camera}' --param fast=true

Keys (when stdin is a terminal): space pause/resume, s step, + / - rate x2 / /2, q stop.
Control socket (``control_endpoint``): send pause | resume | toggle | step [N] | rate X | stop | status.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from mmstream.bag import convert
from mmstream.bag.info import bag_info
from mmstream.bag.play import CLOCK_TOPIC, ControlSocket, Keyboard, PlayConfig, Player, PlayerControl
from mmstream.messages import Clock
from mmstream.node import Node, Param, run_node

PARAMS = [
    Param("bag", "", type=str, doc="bag: .mcap file, split series, or rosbag2 directory"),
    Param("rate", 1.0, min=1e-3, doc="playback speed factor (ignored with fast)"),
    Param("start_s", 0.0, min=0.0, doc="skip this many seconds from the bag's start"),
    Param("duration_s", 0.0, min=0.0, doc="play only this many seconds (0: to the end)"),
    Param("loop", False, doc="start over at the end"),
    Param("topics", [], type=list, doc="play only these topics (bag or mapped names; empty: all)"),
    Param("topic_map", {}, type=dict, doc="bag topic -> modality (camera, microphone, text) or topic"),
    Param("fast", False, doc="as fast as possible, waiting for subscribers instead of dropping"),
    Param("reliable", True, doc="publishers wait for slow subscribers instead of dropping"),
    Param("clock", True, doc="publish the simulated clock on /clock"),
    Param("clock_hz", 100.0, min=0.0, doc="clock ticks per second of bag time where no message came"),
    Param("clock_every_message", True, doc="a tick after every message time (false: at most clock_hz per bag "
                                           "second: a faster replay, but see docs/bags.md)"),
    Param("wait_for_subscribers", 0, min=0, doc="wait for this many subscribers on every topic before playing"),
    Param("wait_timeout_s", 10.0, min=0.0, doc="give up waiting for subscribers after this long"),
    Param("control_endpoint", "", type=str, doc="ZeroMQ endpoint of the control socket (empty: <run_dir>/player.ctl)"),
    Param("keyboard", True, doc="read control keys from a terminal stdin"),
    Param("exit_on_end", True, doc="exit when the bag is done (false: keep running until stopped)"),
    Param("linger_s", 5.0, min=0.0, doc="at the end, keep the process up this long so messages still queued "
                                        "(a fast replay runs ahead by the socket buffers) reach slow subscribers"),
    Param("progress_s", 1.0, min=0.0, doc="print a progress line this often, wall seconds (0: never)"),
    Param("decode_jpeg", False, doc="publish CompressedImage JPEG as decoded bgr8 frames"),
    Param("audio_sample_rate_hz", 16000, min=1, doc="audio_common_msgs/AudioData: sample rate (not in the message)"),
    Param("audio_channels", 1, min=1, doc="audio_common_msgs/AudioData: channels"),
    Param("audio_sample_format", "S16LE", choices=("S16LE", "F32LE"), doc="audio_common_msgs/AudioData: layout"),
]


def setup(node: Node) -> None:
    p = node.params
    if not p["bag"]:
        from mmstream.errors import ParameterError

        raise ParameterError(f"node {node.name!r} parameter 'bag': required (a .mcap file or bag directory)")
    options = convert.ConvertOptions(decode_jpeg=p["decode_jpeg"], audio_sample_rate_hz=p["audio_sample_rate_hz"],
                                     audio_channels=p["audio_channels"], audio_sample_format=p["audio_sample_format"])
    cfg = PlayConfig(bag=p["bag"], rate=p["rate"], start_s=p["start_s"], duration_s=p["duration_s"], loop=p["loop"],
                     topics=list(p["topics"]), topic_map=dict(p["topic_map"]), fast=p["fast"], clock=p["clock"],
                     clock_hz=p["clock_hz"], clock_every_message=p["clock_every_message"],
                     decode_jpeg=p["decode_jpeg"], convert_options=options)
    control = PlayerControl(rate=p["rate"])
    endpoint = p["control_endpoint"] or f"ipc://{node.run_dir}/{node.name}.ctl"
    sock = ControlSocket(node._ctx, endpoint)  # noqa: SLF001 (the node's context, closed with it)
    keyboard = Keyboard() if p["keyboard"] else None
    node.on_shutdown(sock.close)
    if keyboard is not None:
        node.on_shutdown(keyboard.close)
    reliable = p["reliable"] or p["fast"]
    pubs: dict[str, Any] = {}

    def publisher(topic: str, cls: type) -> Any:
        pub = pubs.get(topic)
        if pub is None:
            pub = pubs[topic] = node.create_publisher(cls, topic, reliable=reliable)
        return pub

    def publish(topic: str, msg: Any) -> int:
        pub = publisher(topic, type(msg))
        pub.publish(msg)
        return pub.seq

    bounds = bag_info(cfg.bag, exact_rates=False) if p["progress_s"] else {}
    next_progress = [time.monotonic() + p["progress_s"]]

    def show_progress() -> None:
        if not p["progress_s"] or time.monotonic() < next_progress[0] or not bounds.get("duration_s"):
            return
        next_progress[0] = time.monotonic() + p["progress_s"]
        done_s = max(0.0, (control.position_ns - bounds["start_ns"]) / 1e9) if control.position_ns else 0.0
        total_s = bounds["duration_s"]
        state = "paused" if control.paused else ("fast" if cfg.fast else f"{control.rate:g}x")
        sys.stderr.write(f"playing {done_s:7.1f}/{total_s:.1f} s ({100 * min(done_s / total_s, 1):3.0f}%)  "
                         f"{control.published} msgs  {state}\n")
        sys.stderr.flush()

    def idle(timeout_s: float) -> None:
        show_progress()
        node.spin_once(timeout_s)
        sock.poll(control)
        if keyboard is not None:
            keyboard.poll(control)
        if not node.ok():
            control.stop = True

    player = Player(cfg, publish, idle, control)
    # publishers up front, so subscribers can connect before the first message
    for topic, ros_type in player.reader.topic_types().items():
        out = player.reader.out_topic(topic)
        skipped = cfg.topics and topic not in cfg.topics and out not in cfg.topics
        if ros_type.endswith("/NodeStats") or out == CLOCK_TOPIC or skipped:
            continue
        cls = convert.ROS_TO_CLASS.get(convert.normalize_type(ros_type))
        if cls is not None:
            publisher(out, cls)
    if cfg.clock:
        publisher(CLOCK_TOPIC, Clock)
    if p["wait_for_subscribers"]:
        for topic, pub in pubs.items():
            if not pub.wait_for_subscribers(p["wait_for_subscribers"], timeout_s=p["wait_timeout_s"]):
                node.log.warning("no %d subscriber(s) on %s after %.1f s; playing anyway",
                                 p["wait_for_subscribers"], topic, p["wait_timeout_s"])
    node.log.info("playing %s (%s, control: %s)", cfg.bag, "as fast as possible" if cfg.fast else f"rate {cfg.rate}",
                  endpoint)

    def loop(_: Node) -> None:
        n = player.play()
        summary = {"published": n, "clock_ticks": player.ticks, "max_lag_s": round(player.lag_max_s, 3),
                   "problems": player.reader.problems}
        node.log.info("player finished: %s", json.dumps(summary))
        if not p["exit_on_end"]:
            while node.ok():
                idle(0.1)
            return
        end = time.monotonic() + p["linger_s"]
        while node.ok() and time.monotonic() < end:  # ZeroMQ keeps sending while we are alive
            node.spin_once(0.05)

    node._player_loop = loop  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    return run_node("player", PARAMS, setup, argv, loop=lambda node: node._player_loop(node))


if __name__ == "__main__":
    raise SystemExit(main())
