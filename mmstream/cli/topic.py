"""``mmstream topic list | echo TOPIC | hz TOPIC | bw TOPIC`` against a running graph."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import numpy as np

from mmstream import graph
from mmstream.messages import Message


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("topic", help="inspect the topics of a running graph")
    s = p.add_subparsers(dest="topic_command", required=True)
    ls = s.add_parser("list", help="topics with their type, publishers and subscribers")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    for name, helptext, func in (("echo", "print messages", _echo), ("hz", "print the publishing rate", _hz),
                                 ("bw", "print the bandwidth", _bw)):
        c = s.add_parser(name, help=helptext)
        c.add_argument("topic")
        c.add_argument("--count", "-n", type=int, default=0, help="stop after N messages (echo) or reports (hz/bw)")
        c.add_argument("--window", type=int, default=100, help="messages averaged (hz)")
        c.set_defaults(func=func)
    for c in s.choices.values():
        c.add_argument("--run-dir", default=None, help="graph run directory (default: $MMSTREAM_RUN_DIR)")


def _run_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.run_dir) if args.run_dir else None


def _list(args: argparse.Namespace) -> int:
    topics = graph.list_topics(_run_dir(args))
    if args.json:
        print(json.dumps(topics, indent=1))
        return 0
    for topic, info in sorted(topics.items()):
        print(f"{topic:<32} {info['type']:<26} pub: {','.join(info['publishers']) or '-'}  "
              f"sub: {','.join(info['subscribers']) or '-'}")
    if not topics:
        print(f"no topics in {_run_dir(args) or graph.default_run_dir()}")
    return 0


def _listen(args: argparse.Namespace, on_msg) -> int:  # noqa: ANN001
    from mmstream.node import Node

    node = Node(f"_cli_{args.topic_command}_{os.getpid()}", run_dir=_run_dir(args),
                params={"log_level": "warning"})
    node.create_subscription(Message, args.topic, on_msg, keep_last=100)

    def _terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a script's kill, timeout) ends it as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    try:
        while node.ok():
            node.spin_once(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.close()
    return 0


def describe(msg: Message) -> dict:
    """A printable view of a message: scalars as they are, arrays as dtype/shape (+ a few values)."""
    out = {"schema": msg.SCHEMA, "stamp_ns": msg.header.stamp_ns, "seq": msg.header.seq,
           "frame_id": msg.header.frame_id, **msg.scalar_fields()}
    for name in msg.ARRAYS:
        a = getattr(msg, name)
        view = f"{a.dtype}{list(a.shape)}"
        if a.size and a.size <= 8:
            view += f" {a.ravel().tolist()}"
        out[name] = view
    return out


def _echo(args: argparse.Namespace) -> int:
    seen = 0

    def on_msg(msg: Message) -> None:
        nonlocal seen
        print(json.dumps(describe(msg), default=str), flush=True)
        seen += 1
        if args.count and seen >= args.count:
            raise KeyboardInterrupt

    return _listen(args, on_msg)


def _hz(args: argparse.Namespace) -> int:
    stamps: list[float] = []
    reports = 0
    next_report = time.monotonic() + 1.0

    def on_msg(msg: Message) -> None:
        nonlocal reports, next_report
        stamps.append(time.monotonic())
        del stamps[:-args.window - 1]
        if time.monotonic() >= next_report and len(stamps) > 2:
            d = np.diff(stamps)
            print(f"average rate: {1 / d.mean():.3f}\n\tmin: {d.min():.4f}s max: {d.max():.4f}s "
                  f"std dev: {d.std():.5f}s window: {len(d)}", flush=True)
            reports += 1
            next_report = time.monotonic() + 1.0
            if args.count and reports >= args.count:
                raise KeyboardInterrupt

    return _listen(args, on_msg)


def _bw(args: argparse.Namespace) -> int:
    sizes: list[tuple[float, int]] = []
    reports = 0
    next_report = time.monotonic() + 1.0

    def on_msg(msg: Message) -> None:
        nonlocal reports, next_report
        sizes.append((time.monotonic(), msg.nbytes()))
        del sizes[:-args.window - 1]
        if time.monotonic() >= next_report and len(sizes) > 2:
            dt = sizes[-1][0] - sizes[0][0]
            total = sum(s for _, s in sizes[1:])
            mean = total / (len(sizes) - 1)
            print(f"average: {total / dt / 1e6:.3f} MB/s\n\tmean: {mean / 1e6:.3f} MB  window: {len(sizes) - 1}",
                  flush=True)
            reports += 1
            next_report = time.monotonic() + 1.0
            if args.count and reports >= args.count:
                raise KeyboardInterrupt

    return _listen(args, on_msg)
