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
from mmstream.node import DONE, Component, Node, Param, Wait, run_node
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
    Param("exit_on_end", True, doc="stop when stdin closes or the file is done (false: idle until stopped)"),
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


class Text(Component):
    """Publishes utterances as the source yields them; waits on stdin, the socket or the next cue."""

    NAME = "text"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.source = open_text_source(node)
        self.pub = node.create_publisher(TextUtterance, p["topic"], reliable=p["reliable"])
        if p["wait_for_subscribers"]:
            node.wait_for_subscribers([self.pub], p["wait_for_subscribers"], p["wait_timeout_s"])
        restart = getattr(self.source, "restart_clock", None)
        if restart is not None:
            restart(p["start_stamp_ns"])
        self.announced_end = False
        node.log.info("publishing text from %s on %s", self.source.description, self.pub.topic)

    def step(self) -> Wait:
        if not self.node.ok():
            return DONE
        for utterance in self.source.poll(0.0):
            self.pub.publish(utterance)
        if self.source.finished:
            if not self.announced_end:
                self.announced_end = True
                self.node.log.info("%s finished%s", self.source.description,
                                   "" if self.node.params["exit_on_end"] else "; idle until stopped")
            if self.node.params["exit_on_end"]:
                return DONE
        return self.source.next_wait()

    def close(self) -> None:
        self.source.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(Text, argv)


if __name__ == "__main__":
    raise SystemExit(main())
