"""Prints what arrives on a few topics, one line per message (emotion estimates get bars)."""

from __future__ import annotations

import sys

from mmstream.messages import EmotionEstimate, Message
from mmstream.node import Node, Param, run_node

PARAMS = [
    Param("topics", ["/perception/emotion"], type=list, doc="topics to print"),
    Param("every_n", 1, min=1, doc="print one message in N per topic"),
    Param("reliable", False, doc="receive every message (replay) instead of the newest few"),
]


def format_message(topic: str, msg: Message) -> str:
    if isinstance(msg, EmotionEstimate):
        t = (msg.window_end_ns % 10**12) / 1e9
        bars = " ".join(f"{lab[:3]}:{'█' * int(round(p * 10)):<10}" for lab, p in zip(msg.labels, msg.probs))
        present = "".join(m[0].upper() if on else "-" for m, on in msg.presence.items())
        return f"{topic} t={t:9.3f}s {msg.top_label:>9} {msg.top_prob:4.2f} [{present}] {bars}"
    fields = {k: v for k, v in msg.scalar_fields().items() if not isinstance(v, (list, dict))}
    arrays = {n: f"{getattr(msg, n).dtype}{list(getattr(msg, n).shape)}" for n in msg.ARRAYS}
    return f"{topic} seq={msg.header.seq} stamp={msg.header.stamp_ns} {fields} {arrays}"


def setup(node: Node) -> None:
    counts: dict[str, int] = {}
    for topic in node.params["topics"]:
        def on_msg(msg: Message, topic: str = topic) -> None:
            counts[topic] = counts.get(topic, 0) + 1
            if (counts[topic] - 1) % node.params["every_n"] == 0:
                sys.stdout.write(format_message(topic, msg) + "\n")
                sys.stdout.flush()
        node.create_subscription(Message, topic, on_msg, keep_last=None if node.params["reliable"] else 10)


def main(argv: list[str] | None = None) -> int:
    return run_node("console", PARAMS, setup, argv)


if __name__ == "__main__":
    raise SystemExit(main())
