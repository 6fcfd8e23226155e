"""Player node: replays a ROS 2 MCAP bag into the graph and publishes the simulated clock.

    python -m nodes.player --param bag=session.mcap --param rate=2.0
    python -m nodes.player --param bag=robot_bag/ --param topic_map='{/camera/image_raw: camera}' --param fast=true

Keys (when stdin is a terminal): space pause/resume, s step, + / - rate x2 / /2, q stop.
Control socket (``control_endpoint``): send pause | resume | toggle | step [N] | rate X | stop | status.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import zmq

from mmstream.bag import convert
from mmstream.bag.info import bag_info
from mmstream.bag.play import ControlSocket, Keyboard, PlayConfig, Player, PlayerControl
from mmstream.errors import ParameterError
from mmstream.messages import CLOCK_TOPIC, Clock
from mmstream.node import DONE, Component, Node, Param, Wait, run_node

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
    Param("progress_s", 1.0, min=0.0, doc="print a progress line this often, wall seconds (0: never)"),
    Param("decode_jpeg", False, doc="publish CompressedImage JPEG as decoded bgr8 frames"),
    Param("audio_sample_rate_hz", 16000, min=1, doc="audio_common_msgs/AudioData: sample rate (not in the message)"),
    Param("audio_channels", 1, min=1, doc="audio_common_msgs/AudioData: channels"),
    Param("audio_sample_format", "S16LE", choices=("S16LE", "F32LE"), doc="audio_common_msgs/AudioData: layout"),
]


class PlayerNode(Component):
    """Publishes the bag's messages and clock ticks as they fall due; sleeps on the control socket,
    the terminal and the next message's time in between."""

    NAME = "player"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        if not p["bag"]:
            raise ParameterError(f"node {node.name!r} parameter 'bag': required (a .mcap file or bag directory)")
        options = convert.ConvertOptions(decode_jpeg=p["decode_jpeg"], audio_sample_rate_hz=p["audio_sample_rate_hz"],
                                         audio_channels=p["audio_channels"],
                                         audio_sample_format=p["audio_sample_format"])
        self.config = PlayConfig(
            bag=p["bag"], rate=p["rate"], start_s=p["start_s"], duration_s=p["duration_s"], loop=p["loop"],
            topics=list(p["topics"]), topic_map=dict(p["topic_map"]), fast=p["fast"], clock=p["clock"],
            clock_hz=p["clock_hz"], clock_every_message=p["clock_every_message"], decode_jpeg=p["decode_jpeg"],
            convert_options=options)
        self.control = PlayerControl(rate=p["rate"])
        endpoint = p["control_endpoint"] or f"ipc://{node.run_dir}/{node.name}.ctl"
        self.control_socket = ControlSocket(node.create_socket(zmq.REP), endpoint)
        self.keyboard = Keyboard() if p["keyboard"] else None
        self.reliable = p["reliable"] or p["fast"]
        self.pubs: dict[str, Any] = {}
        self.player = Player(self.config, self.publish, control=self.control)
        # publishers up front, so subscribers can connect before the first message
        for topic, cls in self.player.output_topics().items():
            self.publisher(topic, cls)
        if self.config.clock:
            self.publisher(CLOCK_TOPIC, Clock)
        if p["wait_for_subscribers"]:
            node.wait_for_subscribers(self.pubs.values(), p["wait_for_subscribers"], p["wait_timeout_s"])
        self.bounds = bag_info(self.config.bag, exact_rates=False) if p["progress_s"] else {}
        self.next_progress_s = time.monotonic() + p["progress_s"]
        self.steps = self.player.steps()
        self.finished = False
        node.log.info("playing %s (%s, control: %s)", self.config.bag,
                      "as fast as possible" if self.config.fast else f"rate {self.config.rate}", endpoint)

    def publisher(self, topic: str, cls: type) -> Any:
        pub = self.pubs.get(topic)
        if pub is None:
            pub = self.pubs[topic] = self.node.create_publisher(cls, topic, reliable=self.reliable)
        return pub

    def publish(self, topic: str, msg: Any) -> int:
        pub = self.publisher(topic, type(msg))
        pub.publish(msg)
        return pub.seq

    def step(self) -> Wait:
        self.control_socket.poll(self.control)
        if self.keyboard is not None:
            self.keyboard.poll(self.control)
        if not self.node.ok():
            self.control.stop = True
        if self.finished:
            if not self.node.ok():
                return DONE
            return Wait.until_ready(self.control_socket.socket)  # answer the control socket until stopped
        self.show_progress()
        try:
            wait_s = next(self.steps)
        except StopIteration as end:
            return self.finish(int(end.value))
        inputs = [self.control_socket.socket] + ([self.keyboard] if self.keyboard and self.keyboard.fileno() else [])
        timeout_s = None if math.isinf(wait_s) else wait_s
        if self.config.fast or self.node.params["progress_s"] == 0 or timeout_s == 0:
            return Wait.until_ready(*inputs, timeout_s=timeout_s)
        until_progress = max(0.0, self.next_progress_s - time.monotonic())
        return Wait.until_ready(*inputs, timeout_s=until_progress if timeout_s is None else min(timeout_s,
                                                                                              until_progress))

    def finish(self, published: int) -> Wait:
        summary = {"published": published, "clock_ticks": self.player.ticks,
                   "max_lag_s": round(self.player.lag_max_s, 3), "problems": self.player.reader.problems}
        self.node.log.info("player finished: %s", json.dumps(summary))
        self.finished = True
        self.node.set_state("finished")  # a launch now stops the graph, upstream first
        # exit_on_end: the node drains and closes; each reliable publisher ends its stream and waits for
        # its subscribers to confirm they have everything (Publisher.finish), then the process exits
        return DONE if self.node.params["exit_on_end"] else self.step()

    def show_progress(self) -> None:
        p = self.node.params
        if not p["progress_s"] or time.monotonic() < self.next_progress_s or not self.bounds.get("duration_s"):
            return
        self.next_progress_s = time.monotonic() + p["progress_s"]
        position = self.control.position_ns
        done_s = max(0.0, (position - self.bounds["start_ns"]) / 1e9) if position else 0.0
        total_s = self.bounds["duration_s"]
        state = "paused" if self.control.paused else ("fast" if self.config.fast else f"{self.control.rate:g}x")
        sys.stderr.write(f"playing {done_s:7.1f}/{total_s:.1f} s ({100 * min(done_s / total_s, 1):3.0f}%)  "
                         f"{self.control.published} msgs  {state}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.keyboard is not None:
            self.keyboard.close()
        self.control_socket.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(PlayerNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
