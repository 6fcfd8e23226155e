"""A subscriber that stops reading: a fault for `mmstream bench faults`.

Subscribes to ``topic`` with sensor QoS (keep-last), takes messages normally for ``stall_after_s``,
then its callback blocks for ``stall_s`` (the node's thread does nothing else: no callbacks, no
timers, no stats), then it reads normally again. Its subscription's drops are in its NodeStats.

    exec: bench.stalled_subscriber   (from the repository root)
"""

from __future__ import annotations

import time

from mmstream.messages import ImageFrame
from mmstream.node import Component, Node, Param, run_node

PARAMS = [
    Param("topic", "/camera/image"),
    Param("keep_last", 4, min=1),
    Param("stall_after_s", 3.0, min=0.0, doc="read normally this long first"),
    Param("stall_s", 30.0, min=0.0, doc="then stop reading for this long (once)"),
]


class StalledSubscriber(Component):
    NAME = "stalled_subscriber"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.stall_at = time.monotonic() + p["stall_after_s"]
        self.stalled = False
        self.received = 0
        node.create_subscription(ImageFrame, p["topic"], self.on_message, keep_last=p["keep_last"])

    def on_message(self, msg: ImageFrame) -> None:
        self.received += 1
        if not self.stalled and time.monotonic() >= self.stall_at:
            self.stalled = True
            self.node.log.info("stalling for %.1f s after %d messages", self.node.params["stall_s"], self.received)
            time.sleep(self.node.params["stall_s"])
            self.node.log.info("reading again")


def main(argv: list[str] | None = None) -> int:
    return run_node(StalledSubscriber, argv)


if __name__ == "__main__":
    raise SystemExit(main())
