"""ROS 2 over DDS without ROS: naming, QoS, discovery, type support and the bridge logic.

Nothing here imports cyclonedds at module level except :mod:`mmstream.ros2.dds` (the one module
that talks to Cyclone DDS); the rest is plain Python tested without a network. See docs/ros.md.
"""

from mmstream.errors import MmstreamError


class Ros2Error(MmstreamError):
    """A ROS 2 bridge setting, type or endpoint is not usable (the message names which and why)."""
