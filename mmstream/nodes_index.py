"""Built-in node executables: launch files and ``mmstream run`` name them by these short names."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from mmstream.errors import LaunchError

#: short name -> module with ``main(argv)`` and ``PARAMS``
BUILTIN_NODES = {
    "camera": "nodes.camera",
    "microphone": "nodes.microphone",
    "text": "nodes.text",
    "speech": "nodes.speech",
    "synchronizer": "nodes.synchronizer",
    "inference": "nodes.inference",
    "recorder": "nodes.recorder",
    "player": "nodes.player",
    "console": "nodes.console",
    "test_pattern": "nodes.test_pattern",
    "foxglove_bridge": "nodes.foxglove_bridge",
    "annotator": "nodes.annotator",
    "monitor": "nodes.monitor",
    "ros2_bridge": "nodes.ros2_bridge",
    "ros1_bridge": "nodes.ros1_bridge",
}


def resolve_exec(exec_name: str) -> str:
    """Module path for a launch ``exec``: a built-in short name or a dotted module path."""
    module = BUILTIN_NODES.get(exec_name, exec_name)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise LaunchError(f"executable {exec_name!r} not found: expected one of {sorted(BUILTIN_NODES)} "
                          f"or an importable module path")
    return module


def load_node_module(exec_name: str) -> ModuleType:
    return importlib.import_module(resolve_exec(exec_name))
