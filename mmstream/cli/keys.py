"""``mmstream keys generate DIR NAME...``: CURVE key pairs for a graph (zmq.auth certificate files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmstream import security


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="CURVE keys for a graph that spans hosts (docs/security.md)")
    s = p.add_subparsers(dest="keys_command", required=True)
    g = s.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (0600) into DIR")
    g.add_argument("dir", help="the graph's key directory (made 0700)")
    g.add_argument("names", nargs="*", default=["default"], help="one name per host or node (default: 'default')")
    g.add_argument("--force", action="store_true", help="overwrite existing key pairs")
    g.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    for path in security.generate_keys(Path(args.dir), args.names, overwrite=args.force):
        print(path)
    print("copy each host's NAME.key_secret only to that host; every host needs the others' NAME.key")
    return 0
