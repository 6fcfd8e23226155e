"""The recorder: subscribes to topics of a running graph and writes them into MCAP bags.

Never slows a publisher: the node's executor only moves each message into a bounded queue
(full queue: the message is dropped and counted per topic); a writer thread converts,
compresses and writes. Topics appear by discovery (all topics, or the listed ones, as their
publishers start). Every ``flush_s`` the chunk in progress is closed, so ``kill -9`` loses at
most that much; the drops are reported at the end, and a progress line shows while it runs.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mmstream import graph
from mmstream.bag.writer import SplittingBagWriter
from mmstream.clock import host_now_ns
from mmstream.errors import BagError
from mmstream.messages import REGISTRY, Message


@dataclass
class RecorderConfig:
    output: str
    topics: list[str] = field(default_factory=list)        # empty: every topic of the graph
    exclude: list[str] = field(default_factory=list)
    compression: str = "zstd"
    chunk_mb: float = 4.0
    split_mb: float = 0.0
    split_s: float = 0.0
    queue_size: int = 512
    flush_s: float = 1.0
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class RecorderStats:
    received: int = 0
    written: int = 0
    bytes: int = 0
    queue_drops: dict[str, int] = field(default_factory=dict)
    #: messages lost before they reached the recorder (transport, receive queue): gaps in seq
    seq_gaps: dict[str, int] = field(default_factory=dict)
    first_seq: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)
    write_errors: dict[str, int] = field(default_factory=dict)
    started_s: float = field(default_factory=time.monotonic)

    @property
    def drops(self) -> int:
        return sum(self.queue_drops.values()) + sum(self.seq_gaps.values())


class Recorder:
    """Queue + writer thread. Call :meth:`put` from the receiving thread, :meth:`close` at the end."""

    def __init__(self, cfg: RecorderConfig) -> None:
        self.cfg = cfg
        self.stats = RecorderStats()
        self._queue: queue.Queue[tuple[str, Message, int] | None] = queue.Queue(maxsize=cfg.queue_size)
        self._writer = SplittingBagWriter(cfg.output, split_bytes=int(cfg.split_mb * 1e6),
                                          split_duration_s=cfg.split_s, compression=cfg.compression,
                                          chunk_bytes=int(cfg.chunk_mb * 1024 * 1024), metadata=cfg.metadata)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bag-writer", daemon=True)
        self._thread.start()

    @property
    def paths(self) -> list[Path]:
        return list(self._writer.paths)

    def put(self, topic: str, msg: Message, log_time_ns: int | None = None) -> bool:
        """Queue ``msg`` (never blocks). False if the queue was full and it was dropped."""
        if self._error is not None:
            raise BagError(f"recorder writing {self.cfg.output} failed: {self._error}")
        self.stats.received += 1
        seq = msg.header.seq
        last = self.stats.last_seq.get(topic)
        if last is not None and seq > last + 1:
            self.stats.seq_gaps[topic] = self.stats.seq_gaps.get(topic, 0) + seq - last - 1
        self.stats.last_seq[topic] = seq
        self.stats.first_seq.setdefault(topic, seq)
        try:
            self._queue.put_nowait((topic, msg, host_now_ns() if log_time_ns is None else log_time_ns))
            return True
        except queue.Full:
            self.stats.queue_drops[topic] = self.stats.queue_drops.get(topic, 0) + 1
            return False

    def _run(self) -> None:
        next_flush = time.monotonic() + self.cfg.flush_s
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.05)
                except queue.Empty:
                    item = False  # nothing to write: only the periodic flush below
                if item is None:  # close() asked to finish
                    break
                if item:
                    self._write(*item)
                if time.monotonic() >= next_flush:
                    self._writer.flush()
                    next_flush = time.monotonic() + self.cfg.flush_s
                self.stats.bytes = self._writer.size_bytes
        except BaseException as exc:  # disk full, permission: surface it on the next put()
            self._error = exc
        finally:
            try:
                self._writer.close()
            finally:
                self.stats.bytes = sum(p.stat().st_size for p in self._writer.paths if p.exists())

    def _write(self, topic: str, msg: Message, log_ns: int) -> None:
        try:
            self._writer.write(topic, msg, log_ns)
            self.stats.written += 1
        except BagError as exc:  # a message that cannot be encoded: counted, reported once per topic
            n = self.stats.write_errors.get(topic, 0) + 1
            self.stats.write_errors[topic] = n
            if n == 1:
                print(f"recorder: {exc}", file=sys.stderr)

    def close(self, timeout_s: float = 60.0) -> None:
        """Write what is queued, finish the file(s)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
        if self._error is not None:
            raise BagError(f"recorder writing {self.cfg.output} failed: {self._error}")

    def progress_line(self) -> str:
        s = self.stats
        return (f"recording {time.monotonic() - s.started_s:7.1f} s  {s.written:8d} msgs  "
                f"{s.bytes / 1e6:8.1f} MB  queue {self._queue.qsize():4d}/{self.cfg.queue_size}  drops {s.drops}")

    def summary(self) -> dict[str, Any]:
        """queue_drops: dropped by the recorder's own queue; transport_drops: never reached it (seq gaps)."""
        s = self.stats
        return {"files": [str(p) for p in self.paths], "messages": s.written, "received": s.received,
                "bytes": s.bytes, "duration_s": round(time.monotonic() - s.started_s, 3),
                "queue_drops": dict(s.queue_drops), "transport_drops": dict(s.seq_gaps),
                "seq_range": {t: [s.first_seq[t], s.last_seq[t]] for t in s.first_seq},
                "write_errors": dict(s.write_errors)}


def wanted_topics(cfg: RecorderConfig, run_dir: Path | None) -> dict[str, type[Message]]:
    """topic -> message class of the graph's topics that the recorder should subscribe to."""
    out = {}
    for topic, entry in graph.list_topics(run_dir).items():
        if cfg.topics and topic not in cfg.topics:
            continue
        if topic in cfg.exclude:
            continue
        cls = REGISTRY.get(entry.get("type", ""))
        if cls is not None:
            out[topic] = cls
    return out


def print_progress(line: str, stream: TextIO = sys.stderr) -> None:
    if stream.isatty():
        stream.write("\r" + line)
    else:
        stream.write(line + "\n")
    stream.flush()


def summary_text(summary: dict[str, Any]) -> str:
    return "recorder finished: " + json.dumps(summary)
