"""``mmstream launch FILE [arg:=value ...]`` and ``mmstream validate FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmstream.graph import default_run_dir
from mmstream.launch import parse_cli_args, parse_launch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="validate a launch file, then start and supervise its nodes")
    p.add_argument("file", help="launch file (YAML)")
    p.add_argument("args", nargs="*", metavar="NAME:=VALUE", help="launch arguments")
    p.add_argument("--run-dir", default=None, help="graph run directory (default: $MMSTREAM_RUN_DIR or "
                                                   "/tmp/mmstream-<uid>/default)")
    p.set_defaults(func=_launch)
    v = sub.add_parser("validate", help="check a launch file without starting anything")
    v.add_argument("file")
    v.add_argument("args", nargs="*", metavar="NAME:=VALUE")
    v.set_defaults(func=_validate)


def _launch(args: argparse.Namespace) -> int:
    from mmstream.supervisor import Supervisor

    desc = parse_launch(args.file, parse_cli_args(args.args))
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir()
    return Supervisor(desc, run_dir).run()


def _validate(args: argparse.Namespace) -> int:
    desc = parse_launch(args.file, parse_cli_args(args.args))
    print(f"{desc.path}: OK — {len(desc.nodes)} node(s): " + ", ".join(f"{n.name} ({n.exec})" for n in desc.nodes))
    return 0
