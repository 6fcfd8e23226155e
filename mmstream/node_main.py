"""A node process's entry point: command line, logging, signals, then the component's run.

``mmstream.node.run_node(Component)`` calls :func:`main`; nodes never call this module directly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmstream.errors import MmstreamError, ParameterError
from mmstream.params import load_params_file, parse_scalar

if TYPE_CHECKING:
    from mmstream.node import Component


def _parse_assignments(items: Sequence[str], sep: str, what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key:
            raise ParameterError(f"{what} {item!r}: expected NAME{sep}VALUE")
        out[key] = value
    return out


def node_arg_parser(default_name: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"mmstream run {default_name}", description=f"the {default_name} node")
    ap.add_argument("--name", default=default_name, help="node name (default: %(default)s)")
    ap.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                    help="set a parameter (YAML value); repeatable")
    ap.add_argument("--params-file", action="append", default=[], help="YAML parameter file; repeatable")
    ap.add_argument("--remap", "-r", action="append", default=[], metavar="FROM:=TO", help="rename a topic")
    ap.add_argument("--run-dir", default=None, help="graph run directory (default: $MMSTREAM_RUN_DIR)")
    ap.add_argument("--list-params", action="store_true", help="print the declared parameters and exit")
    return ap


def parse_node_args(default_name: str,
                    argv: Sequence[str] | None) -> tuple[argparse.Namespace, dict[str, Any], dict[str, str]]:
    args = node_arg_parser(default_name).parse_args(argv)
    given: dict[str, Any] = {}
    for path in args.params_file:
        given.update(load_params_file(path, args.name))
    given.update({k: parse_scalar(v) for k, v in _parse_assignments(args.param, "=", "--param").items()})
    remap = _parse_assignments(args.remap, ":=", "--remap")
    return args, given, remap


def setup_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(levelname)s [%(name)s] %(message)s", datefmt="%H:%M:%S")


def main(component: type[Component], argv: Sequence[str] | None = None) -> int:
    """Parse, build the node, construct ``component``, spin, drain, close. Exit codes: 0 clean stop,
    1 runtime failure, 2 bad parameters or arguments."""
    from mmstream.node import Node

    default_name = component.NAME or component.__name__.lower()
    setup_logging()
    declared = tuple(component.PARAMS)
    try:
        args, given, remap = parse_node_args(default_name, argv)
        if args.list_params:
            for p in declared:
                print(f"{p.name}: {p.value_type.__name__} = {p.default!r}  {p.doc}")
            return 0
        node = Node(args.name, params=given, declared=declared, remap=remap, run_dir=args.run_dir)
    except ParameterError as exc:
        logging.getLogger(default_name).error("%s", exc)
        return 2
    except MmstreamError as exc:
        logging.getLogger(default_name).error("%s", exc)
        return 1

    def _stop(signum: int, _frame: object) -> None:
        again = not node.ok()
        node.log.info("received %s, %s", signal.Signals(signum).name,
                      "stopping now" if again else "shutting down (draining what is in flight)")
        node.shutdown()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    # a signal landing on another thread still ends the node thread's poll at once
    previous_fd = signal.set_wakeup_fd(node.wakeup_fd, warn_on_full_buffer=False)
    instance: Component | None = None
    try:
        instance = component(node)
        node.spin(instance, drain_timeout_s=node.params["drain_timeout_s"])
        return 0
    except ParameterError as exc:
        node.log.error("%s", exc)
        return 2
    except MmstreamError as exc:
        node.log.error("%s", exc)
        return 1
    finally:
        try:
            if instance is not None:
                instance.close()
        finally:
            signal.set_wakeup_fd(previous_fd)
            node.close(linger_s=node.params["drain_timeout_s"])
