"""The terminal monitor as a launch node: the same view as ``mmstream monitor``.

On a terminal it draws the full-screen view; when its stdout is not a TTY (the launcher pipes
node output) it prints the view as plain text lines every ``plain_period_s`` instead.
"""

from __future__ import annotations

import sys

from mmstream.node import Node, Param, run_node
from mmstream.viz.monitor import EMOTION_TOPIC, GraphState, attach, plain_lines, render

PARAMS = [
    Param("view", "auto", choices=("auto", "plain", "rich"),
          doc="plain: text lines; rich: full-screen view; auto: plain when stdout is not a TTY"),
    Param("refresh_hz", 2.0, min=0.1, max=30.0, doc="full-screen updates per second"),
    Param("plain_period_s", 5.0, min=0.2, doc="seconds between plain-text reports"),
    Param("discover_period_s", 0.5, min=0.1, doc="how often to look for new nodes' stats topics"),
    Param("emotion_topic", EMOTION_TOPIC),
]


def setup(node: Node) -> None:
    p = node.params
    plain = p["view"] == "plain" or (p["view"] == "auto" and not sys.stdout.isatty())
    state = GraphState(node.run_dir, hide_prefix="_")
    discover = attach(node, state, p["emotion_topic"])
    node.create_timer(p["discover_period_s"], discover)  # nodes started after us get their stats watched

    if plain:
        def report() -> None:
            sys.stdout.write("\n".join(plain_lines(state)) + "\n")
            sys.stdout.flush()
        node.create_timer(p["plain_period_s"], report)
        return

    from rich.live import Live

    live = Live(render(state), screen=True, auto_refresh=False)
    live.start()
    node.on_shutdown(live.stop)

    def refresh() -> None:
        live.update(render(state), refresh=True)
    node.create_timer(1.0 / p["refresh_hz"], refresh)


def main(argv: list[str] | None = None) -> int:
    return run_node("monitor", PARAMS, setup, argv)


if __name__ == "__main__":
    raise SystemExit(main())
