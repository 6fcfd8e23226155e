"""ROS 2 message definitions (``ros2msg`` schema texts) for every type mmstream writes.

Our own types come from the ``.msg`` files of the ROS 2 package ``ros/mmstream_msgs``
(shipped inside this package as ``mmstream/bag/msgs``); the standard types they use are
written out here exactly as ROS 2 defines them. :func:`schema_text` returns the full text
that goes into an MCAP Schema record: the type's own definition followed by every type it
depends on, each after a ``MSG: pkg/Type`` separator (the format ``ros2 bag`` writes).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from mmstream.errors import BagError

MSG_DIR = Path(__file__).with_name("msgs")
PACKAGE = "mmstream_msgs"

_SEPARATOR = "=" * 80

#: the standard ROS 2 definitions our types depend on (comments stripped)
STANDARD: dict[str, str] = {
    "builtin_interfaces/msg/Time": "int32 sec\nuint32 nanosec\n",
    "std_msgs/msg/Header": "builtin_interfaces/Time stamp\nstring frame_id\n",
    "sensor_msgs/msg/Image": (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
        "uint8 is_bigendian\nuint32 step\nuint8[] data\n"
    ),
    "sensor_msgs/msg/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data\n",
    "rosgraph_msgs/msg/Clock": "builtin_interfaces/Time clock\n",
    "std_msgs/msg/String": "string data\n",
}

_PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
}


def own_type_names() -> list[str]:
    """Full names (``mmstream_msgs/msg/X``) of every ``.msg`` file in the package."""
    if not MSG_DIR.is_dir():
        raise BagError(f"message definitions not found: {MSG_DIR} (expected the mmstream_msgs/msg folder)")
    return sorted(f"{PACKAGE}/msg/{p.stem}" for p in MSG_DIR.glob("*.msg"))


def definition(type_name: str) -> str:
    """The bare definition text of one type (``pkg/msg/Type``), comments and blank lines removed."""
    if type_name in STANDARD:
        return STANDARD[type_name]
    pkg, _, name = type_name.split("/")
    if pkg != PACKAGE:
        raise BagError(f"no definition for message type {type_name!r} "
                       f"(known: {sorted(STANDARD)} and {PACKAGE}/msg/*)")
    path = MSG_DIR / f"{name}.msg"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BagError(f"no definition for message type {type_name!r}: {path} does not exist") from None
    lines = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if line:
            lines.append(line)
    return "\n".join(lines) + "\n"


def dependencies(type_name: str) -> list[str]:
    """Every non-primitive type ``type_name`` uses, directly or not, depth-first in first-use order."""
    pkg = type_name.split("/")[0]
    out: list[str] = []

    def visit(name: str, package: str) -> None:
        for line in definition(name).splitlines():
            field_type = line.split()[0]
            base = re.sub(r"\[.*\]$", "", field_type).split("<=")[0]
            if base in _PRIMITIVES:
                continue
            if "/" in base:
                dep_pkg, dep_name = base.split("/")[0], base.split("/")[-1]
            else:
                dep_pkg, dep_name = package, base
            full = f"{dep_pkg}/msg/{dep_name}"
            if full not in out:
                out.append(full)
                visit(full, dep_pkg)

    visit(type_name, pkg)
    return out


@lru_cache(maxsize=None)
def schema_text(type_name: str) -> str:
    """The ``ros2msg`` schema text for ``type_name`` including all its dependencies."""
    parts = [definition(type_name)]
    for dep in dependencies(type_name):
        pkg, _, name = dep.split("/")
        parts.append(f"{_SEPARATOR}\nMSG: {pkg}/{name}\n{definition(dep)}")
    return "\n".join(parts)
