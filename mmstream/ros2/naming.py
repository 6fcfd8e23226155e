"""ROS 2 names on DDS, as rmw_cyclonedds_cpp and rmw_fastrtps spell them.

A topic ``/camera/image_raw`` is the DDS topic ``rt/camera/image_raw``; a message type
``sensor_msgs/msg/Image`` is the DDS type ``sensor_msgs::msg::dds_::Image_`` (nested types too).
"""

from __future__ import annotations

import re

from mmstream.ros2 import Ros2Error

TOPIC_PREFIX = "rt"
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def fully_qualified(topic: str, namespace: str = "/") -> str:
    """``image`` in namespace ``/robot`` -> ``/robot/image``; checks each token as ROS 2 does."""
    name = topic if topic.startswith("/") else "/".join((namespace.rstrip("/"), topic))
    tokens = [t for t in name.split("/") if t]
    if not tokens or any(not _TOKEN.match(t) for t in tokens) or "//" in name:
        raise Ros2Error(f"invalid ROS 2 topic name {topic!r} (expected tokens of letters, digits and "
                        f"underscores, not starting with a digit, separated by '/')")
    return "/" + "/".join(tokens)


def dds_topic(topic: str, namespace: str = "/") -> str:
    """The DDS topic name of a ROS 2 topic: ``rt`` + its fully qualified name."""
    return TOPIC_PREFIX + fully_qualified(topic, namespace)


def ros_topic(dds_name: str) -> str | None:
    """``rt/camera/image`` -> ``/camera/image``; None for DDS topics that are not ROS topics."""
    prefix = TOPIC_PREFIX + "/"
    return dds_name[len(TOPIC_PREFIX):] if dds_name.startswith(prefix) else None


def split_type(ros_type: str) -> tuple[str, str]:
    """``pkg/msg/Name`` (or ``pkg/Name``) -> (``pkg``, ``Name``)."""
    parts = ros_type.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or parts[1] != "msg" or not all(_TOKEN.match(p) for p in parts):
        raise Ros2Error(f"invalid ROS 2 message type {ros_type!r} (expected pkg/msg/Name)")
    return parts[0], parts[2]


def full_type(ros_type: str) -> str:
    """``sensor_msgs/Image`` and ``sensor_msgs/msg/Image`` -> ``sensor_msgs/msg/Image``."""
    pkg, name = split_type(ros_type)
    return f"{pkg}/msg/{name}"


def dds_type(ros_type: str) -> str:
    """``sensor_msgs/msg/Image`` -> ``sensor_msgs::msg::dds_::Image_``."""
    pkg, name = split_type(ros_type)
    return f"{pkg}::msg::dds_::{name}_"
