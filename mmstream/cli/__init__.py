"""The ``mmstream`` command. It only parses arguments and calls the library.

Each subcommand group lives in its own module exposing ``register(subparsers)``; the parser
sets ``func`` which returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from mmstream.errors import MmstreamError

#: subcommand modules, in help order; a module that is not present is skipped
GROUPS = ("launch", "run", "topic", "node", "bag", "model", "models", "devices", "monitor", "keys", "process", "perceive", "bench")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mmstream", description="real-time multimodal perception nodes over ZeroMQ")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        try:
            module = importlib.import_module(f"mmstream.cli.{group}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mmstream.cli.{group}":
                continue
            raise
        module.register(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MmstreamError as exc:
        print(f"mmstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
