"""Text node: publishes TextUtterance from stdin, a subtitle/JSON-lines file, or a ZeroMQ socket.

    some_asr | python -m nodes.text                              # one utterance per line
    python -m nodes.text --param source=movie.srt               # also .vtt and .jsonl
    python -m nodes.text --param source=zmq --param endpoint=tcp://127.0.0.1:5599

Bad input (invalid UTF-8, empty, malformed cues, over-long text) is warned about, counted in
``/<node>/stats`` and skipped or truncated; the node keeps running.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mmstream.messages import TextUtterance
from mmstream.node import Node, Param, run_node
from mmstream.sensors.text_sources import (DEFAULT_MAX_CHARS, StreamTextSource, TextPolicy, TextSource,
                                           TimedTextSource, ZmqTextSource)

PARAMS = [
    Param("source", "stdin", type=str, doc="'stdin', 'zmq', or a .srt/.vtt/.jsonl file"),
    Param("endpoint", "tcp://127.0.0.1:5599", doc="zmq: endpoint to bind"),
    Param("socket_type", "PULL", choices=("PULL", "REP"), doc="zmq: PULL (fire and forget) or REP (acknowledged)"),
    Param("max_chars", DEFAULT_MAX_CHARS, min=1, doc="longer text is truncated (with a warning)"),
    Param("language", "en", doc="language of text that does not say"),
    Param("frame_id", "text", doc="header.frame_id"),
    Param("topic", "/text/utterance", doc="topic to publish on"),
    Param("realtime", True, doc="files: release each cue at its end time (false: all at once)"),
    Param("loop", False, doc="files: start again at the end"),
    Param("start_stamp_ns", 0, min=0, doc="files: stamp of the file's time 0 (0: now)"),
    Param("exit_at_end", True, doc="stop when stdin closes or the file is done"),
    Param("reliable", False, doc="wait for slow subscribers instead of dropping"),
    Param("wait_for_subscribers", 0, min=0, doc="wait for this many subscribers before reading"),
    Param("wait_timeout_s", 10.0, min=0.0, doc="how long to wait for them"),
]


def open_text_source(node: Node) -> TextSource:
    p = node.params
    kind = p["source"]
    label = "stdin" if kind == "stdin" else "socket" if kind == "zmq" else f"file:{Path(kind).name}"
    policy = TextPolicy(max_chars=p["max_chars"], language=p["language"], source=label, frame_id=p["frame_id"])
    if kind == "stdin":
        return StreamTextSource(sys.stdin.buffer, policy=policy, reject=node.count_rejected, clock_ns=node.now_ns)
    if kind == "zmq":
        return ZmqTextSource(p["endpoint"], socket_type=p["socket_type"], policy=policy, reject=node.count_rejected,
                             clock_ns=node.now_ns)
    return TimedTextSource(kind, policy=policy, reject=node.count_rejected, realtime=p["realtime"], loop=p["loop"],
                           start_stamp_ns=p["start_stamp_ns"], clock_ns=node.now_ns)


def loop(node: Node) -> None:
    p = node.params
    source = open_text_source(node)
    node.on_shutdown(source.close)
    pub = node.create_publisher(TextUtterance, p["topic"], reliable=p["reliable"])
    if p["wait_for_subscribers"] and not pub.wait_for_subscribers(p["wait_for_subscribers"], p["wait_timeout_s"]):
        node.log.warning("only %d of %d subscriber(s) after %.1f s; publishing anyway",
                         pub.subscription_count, p["wait_for_subscribers"], p["wait_timeout_s"])
    restart = getattr(source, "restart_clock", None)
    if restart is not None:
        restart(p["start_stamp_ns"])
    node.log.info("publishing text from %s on %s", source.description, pub.topic)
    while node.ok():
        for utterance in source.poll(0.05):
            pub.publish(utterance)
        node.spin_once(0.0)
        if source.finished and p["exit_at_end"]:
            node.log.info("%s finished", source.description)
            _grace(node)
            break


def _grace(node: Node, seconds: float = 0.3) -> None:
    """Let queued messages leave the socket before the node closes (sensor publishers do not linger)."""
    import time

    end = time.monotonic() + seconds
    while node.ok() and time.monotonic() < end:
        node.spin_once(0.05)


def main(argv: list[str] | None = None) -> int:
    return run_node("text", PARAMS, lambda node: None, argv, loop=loop)


if __name__ == "__main__":
    raise SystemExit(main())
