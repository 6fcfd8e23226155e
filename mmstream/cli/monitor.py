"""``mmstream monitor``: a live full-screen view of a running graph (nodes, topics, emotion)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="live terminal view of a running graph: nodes, topic rates, emotion")
    p.add_argument("--run-dir", default=None, help="graph run directory (default: $MMSTREAM_RUN_DIR)")
    p.add_argument("--once", action="store_true",
                   help="wait for every node's stats (at most --settle seconds), print one view and exit")
    p.add_argument("--duration", type=float, default=0.0, metavar="S",
                   help="run the live view for S seconds, then exit (0: until Ctrl-C)")
    p.add_argument("--settle", type=float, default=3.0, metavar="S", help="--once: how long to wait for stats")
    p.add_argument("--refresh-hz", type=float, default=2.0, help="screen updates per second (default: %(default)s)")
    p.add_argument("--format", dest="fmt", choices=("auto", "rich", "plain"), default="auto",
                   help="auto: full-screen on a terminal, plain text lines when piped")
    p.add_argument("--emotion-topic", default="/perception/emotion")
    p.set_defaults(func=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    from mmstream.errors import ParameterError
    from mmstream.viz.monitor import run_monitor

    if args.refresh_hz <= 0:
        raise ParameterError(f"--refresh-hz must be > 0, got {args.refresh_hz}")
    return run_monitor(Path(args.run_dir) if args.run_dir else None, once=args.once, duration_s=args.duration,
                       refresh_hz=args.refresh_hz, fmt=args.fmt, settle_s=args.settle,
                       emotion_topic=args.emotion_topic)
