"""``mmstream node list``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmstream import graph


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node", help="inspect the nodes of a running graph")
    s = p.add_subparsers(dest="node_command", required=True)
    ls = s.add_parser("list", help="list nodes with pid, state and topics")
    ls.add_argument("--run-dir", default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir) if args.run_dir else None
    nodes = graph.list_nodes(run_dir)
    if args.json:
        print(json.dumps(nodes, indent=1))
        return 0
    if not nodes:
        print(f"no nodes in {run_dir or graph.default_run_dir()}")
        return 0
    for n in nodes:
        state = "running" if n["alive"] else "dead"
        print(f"/{n['name']:<20} pid {n['pid']:<8} {state:<8} pub {len(n.get('pub', []))} sub {len(n.get('sub', []))}")
    return 0
