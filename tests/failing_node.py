"""A node that fails at start (exit code 1) — used by the launch tests."""

from mmstream.errors import MmstreamError
from mmstream.node import Component, Node, Param, run_node

PARAMS = [Param("delay_s", 0.0, min=0.0)]


class FailingNode(Component):
    NAME = "failing_node"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        import time

        super().__init__(node)
        time.sleep(node.params["delay_s"])
        raise MmstreamError("failing_node: failed on purpose")


def main(argv: list[str] | None = None) -> int:
    return run_node(FailingNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
