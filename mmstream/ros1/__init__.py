"""ROS 1 for the ros1_bridge node: reaching Debian's rospy from the venv, the ROS 1 types, the rospy link.

Nothing here is imported by the rest of mmstream; only ``nodes/ros1_bridge.py`` uses it.
"""
