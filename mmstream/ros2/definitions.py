"""ROS 2 message definitions (``.msg`` text) of every type the bridge speaks, with their dependencies.

The standard and ``mmstream_msgs`` definitions come from :mod:`mmstream.bag.schemas` (the bag
code's table); this module adds the robot-side types the bags never write: ``vision_msgs``
(Jazzy, 4.x) with the ``geometry_msgs`` it uses, and the two incompatible ``audio_common_msgs``:
ros-drivers/audio_common (``AudioData{uint8[] data}``, ``AudioDataStamped``) and the ROS 2
audio_common of mgonzs13 (``AudioStamped{header, Audio{AudioData audio_data, AudioInfo info}}``).
Both packages are called ``audio_common_msgs`` and both have an ``AudioData``: each top-level type
therefore resolves its dependencies in its own *family* of definitions.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mmstream.bag import schemas
from mmstream.ros2 import Ros2Error
from mmstream.ros2.naming import full_type

_PRIMITIVES = frozenset({
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
})

#: definitions beyond the bag code's table (field order is the wire order: keep it exact)
EXTRA: dict[str, str] = {
    "geometry_msgs/msg/Point": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/msg/Quaternion": "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n",
    "geometry_msgs/msg/Pose": "Point position\nQuaternion orientation\n",
    "geometry_msgs/msg/PoseWithCovariance": "Pose pose\nfloat64[36] covariance\n",
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nObjectHypothesisWithPose[] results\nBoundingBox2D bbox\nstring id\n"),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nDetection2D[] detections\n",
    # ros-drivers/audio_common (ROS 1 and its ROS 2 port)
    "audio_common_msgs/msg/AudioData": "uint8[] data\n",
    "audio_common_msgs/msg/AudioDataStamped": "std_msgs/Header header\naudio_common_msgs/AudioData audio\n",
}

#: mgonzs13/audio_common (ROS 2): same package name, other AudioData; used for AudioStamped only
AUDIO_STAMPED_FAMILY: dict[str, str] = {
    "audio_common_msgs/msg/AudioData": (
        "float32[] float32_data\nint32[] int32_data\nint32[] int24_data\nint16[] int16_data\n"
        "int8[] int8_data\nuint8[] uint8_data\n"),
    "audio_common_msgs/msg/AudioInfo": "int32 format\nint32 channels\nint32 rate\nint32 chunk\n",
    "audio_common_msgs/msg/Audio": "audio_common_msgs/AudioData audio_data\naudio_common_msgs/AudioInfo info\n",
    "audio_common_msgs/msg/AudioStamped": "std_msgs/Header header\naudio_common_msgs/Audio audio\n",
}

_FAMILIES: dict[str, dict[str, str]] = {"audio_common_msgs/msg/AudioStamped": AUDIO_STAMPED_FAMILY}
_SEPARATOR = "=" * 80


def _family(top: str) -> dict[str, str]:
    return _FAMILIES.get(top, {})


def definition(type_name: str, top: str | None = None) -> str:
    """The bare definition text of ``type_name`` as used inside ``top`` (default: itself)."""
    type_name = full_type(type_name)
    fam = _family(top or type_name)
    if type_name in fam:
        return fam[type_name]
    if type_name in EXTRA:
        return EXTRA[type_name]
    try:
        return schemas.definition(type_name)
    except Exception as exc:  # BagError (unknown type) or a malformed name
        raise Ros2Error(f"no ROS 2 definition for {type_name!r}: {exc}") from None


def fields(type_name: str, top: str | None = None) -> list[tuple[str, str]]:
    """``[(field_type, field_name)]`` with field types fully qualified (``pkg/msg/T``, ``T[]``, ...);
    constants and default values dropped."""
    pkg = full_type(type_name).split("/")[0]
    out = []
    for line in definition(type_name, top).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        ftype, rest = line.split(None, 1)
        name = rest.split()[0]
        if "=" in name or "=" in rest.split(None, 1)[0]:
            continue  # a constant
        out.append((_qualify(ftype, pkg), name))
    return out


def _qualify(ftype: str, pkg: str) -> str:
    m = re.match(r"^([^\[]+)(\[.*\])?$", ftype)
    assert m is not None
    base, arr = m.group(1), m.group(2) or ""
    bare = base.split("<=")[0]
    if bare in _PRIMITIVES:
        return base + arr
    if bare == "Header" and pkg != "std_msgs":
        return "std_msgs/msg/Header" + arr
    if "/" in bare:
        return full_type(bare) + arr
    return f"{pkg}/msg/{bare}" + arr


def base_of(ftype: str) -> tuple[str, str]:
    """``pkg/msg/T[]`` -> (``pkg/msg/T``, ``[]``); ``string<=5`` -> (``string``, ``<=5``)."""
    m = re.match(r"^([^\[<]+)((?:<=\d+)?)(\[.*\])?$", ftype)
    if m is None:
        raise Ros2Error(f"cannot parse field type {ftype!r}")
    return m.group(1), (m.group(3) or "")


def is_primitive(base: str) -> bool:
    return base in _PRIMITIVES


def dependencies(top: str) -> list[str]:
    """Every non-primitive type ``top`` uses, depth-first in first-use order."""
    top = full_type(top)
    out: list[str] = []

    def visit(name: str) -> None:
        for ftype, _ in fields(name, top):
            base, _arr = base_of(ftype)
            if not is_primitive(base) and base not in out:
                out.append(base)
                visit(base)

    visit(top)
    return out


@lru_cache(maxsize=None)
def schema_text(top: str) -> str:
    """The ``ros2msg`` text of ``top`` and its dependencies (what mcap_ros2's codec generator reads)."""
    top = full_type(top)
    parts = [definition(top)]
    for dep in dependencies(top):
        pkg, _, name = dep.split("/")
        parts.append(f"{_SEPARATOR}\nMSG: {pkg}/{name}\n{definition(dep, top)}")
    return "\n".join(parts)
