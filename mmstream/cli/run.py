"""``mmstream run NODE [node options]``: run one node in the foreground."""

from __future__ import annotations

import argparse

from mmstream.nodes_index import BUILTIN_NODES, load_node_module


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one node", description="run one node; built-in nodes: "
                       + ", ".join(sorted(BUILTIN_NODES)), add_help=True)
    p.add_argument("node", help="built-in node name or module path")
    p.add_argument("node_args", nargs=argparse.REMAINDER, help="--param k=v, --params-file F, --remap a:=b, --name N")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return int(load_node_module(args.node).main(args.node_args) or 0)
