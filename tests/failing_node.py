"""A node that fails at start (exit code 1) — used by the launch tests."""

from mmstream.errors import MmstreamError
from mmstream.node import Node, Param, run_node

PARAMS = [Param("delay_s", 0.0, min=0.0)]


def setup(node: Node) -> None:
    import time

    time.sleep(node.params["delay_s"])
    raise MmstreamError("failing_node: failed on purpose")


def main(argv: list[str] | None = None) -> int:
    return run_node("failing_node", PARAMS, setup, argv)


if __name__ == "__main__":
    raise SystemExit(main())
