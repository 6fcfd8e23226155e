"""The terminal monitor as a launch node: the same view as ``mmstream monitor``.

On a terminal it draws the full-screen view; when its stdout is not a TTY (the launcher pipes
node output) it prints the view as plain text lines every ``plain_period_s`` instead.
"""

from __future__ import annotations

import sys

from mmstream.node import Component, Node, Param, run_node
from mmstream.viz.monitor import EMOTION_TOPIC, GraphState, attach, plain_lines, render

PARAMS = [
    Param("view", "auto", choices=("auto", "plain", "rich"),
          doc="plain: text lines; rich: full-screen view; auto: plain when stdout is not a TTY"),
    Param("refresh_hz", 2.0, min=0.1, max=30.0, doc="full-screen updates per second"),
    Param("plain_period_s", 5.0, min=0.2, doc="seconds between plain-text reports"),
    Param("discover_period_s", 0.5, min=0.1, doc="how often to look for new nodes' stats topics"),
    Param("emotion_topic", EMOTION_TOPIC),
]


class Monitor(Component):
    NAME = "monitor"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.state = GraphState(node.run_dir, hide_prefix="_")
        discover = attach(node, self.state, p["emotion_topic"])
        node.create_timer(p["discover_period_s"], discover)  # nodes started after us get their stats watched
        self.live = None
        if p["view"] == "plain" or (p["view"] == "auto" and not sys.stdout.isatty()):
            node.create_timer(p["plain_period_s"], self.report)
            return
        from rich.live import Live

        self.live = Live(render(self.state), screen=True, auto_refresh=False)
        self.live.start()
        node.create_timer(1.0 / p["refresh_hz"], self.refresh)

    def report(self) -> None:
        sys.stdout.write("\n".join(plain_lines(self.state)) + "\n")
        sys.stdout.flush()

    def refresh(self) -> None:
        assert self.live is not None
        self.live.update(render(self.state), refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
        else:
            self.report()  # the last state of the graph, also when the run was shorter than one period


def main(argv: list[str] | None = None) -> int:
    return run_node(Monitor, argv)


if __name__ == "__main__":
    raise SystemExit(main())
