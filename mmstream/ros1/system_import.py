"""Reach Debian's ROS 1 Python packages (rospy, genpy, std_msgs, ...) from the project's venv.

Debian installs ROS 1 for the system Python 3.11 into ``/usr/lib/python3/dist-packages``, which a
venv does not see. Putting that whole directory on ``sys.path`` would let the system's numpy,
yaml, cryptography, ... shadow or mix with the venv's; a ``.pth`` file would do it for every process
of the venv. Instead :func:`enable` appends one import finder to the *end* of ``sys.meta_path``
that answers only for the ROS 1 packages (:data:`ROS_PACKAGES`, and any ``*_msgs`` package there)
and for the few pure-Python libraries they need when the venv lacks them (:data:`SUPPORT_PACKAGES`):

* the venv always wins: the finder is consulted only after the venv's own finders failed;
* nothing else in the system dist-packages becomes importable;
* it runs only when a ROS 1 bridge imports rospy, not in any other mmstream process.

The ROS 1 Python code is pure Python; its only compiled dependency (PyYAML's ``_yaml``) comes
from the venv. ``MMSTREAM_ROS1_DIST_PACKAGES`` (a ``:``-separated list) overrides where to look.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from mmstream.errors import MmstreamError

#: where Debian (and Ubuntu) put Python packages for the system interpreter
DEFAULT_DIST_PACKAGES = ("/usr/lib/python3/dist-packages",)

#: the ROS 1 client library, its tools and their message packages
ROS_PACKAGES = frozenset({
    "rospy", "rosgraph", "roslib", "rospkg", "genpy", "genmsg", "rosmaster", "rostopic", "rosbag",
    "roscpp", "catkin", "catkin_pkg", "rosservice", "rosnode", "rosparam", "roslaunch",
})
#: pure-Python libraries the ROS packages import, used only when the venv has none of its own
SUPPORT_PACKAGES = frozenset({"defusedxml", "pyparsing", "distro", "netifaces", "dateutil", "six", "docutils"})

#: Debian packages that provide what the bridge needs (named in errors)
DEBIAN_PACKAGES = ("python3-rospy", "python3-rosmaster", "python3-rostopic", "python3-sensor-msgs", "python3-std-msgs")


class Ros1Unavailable(MmstreamError):
    """ROS 1's Python packages cannot be imported (not installed, or a broken install)."""


class _SystemRosFinder(importlib.abc.MetaPathFinder):
    """Finds allow-listed top-level packages (and their submodules) in the system dist-packages."""

    def __init__(self, dirs: Sequence[str]) -> None:
        self.dirs = [d for d in dirs if os.path.isdir(d)]

    def allowed(self, top: str) -> bool:
        return top in ROS_PACKAGES or top in SUPPORT_PACKAGES or top.endswith("_msgs")

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if "." in fullname or not self.allowed(fullname):
            return None  # submodules are found through their package's __path__, inside the allowed tree
        return importlib.machinery.PathFinder.find_spec(fullname, self.dirs)


_finder: _SystemRosFinder | None = None


def dist_package_dirs() -> list[str]:
    override = os.environ.get("MMSTREAM_ROS1_DIST_PACKAGES")
    return [d for d in override.split(":") if d] if override else list(DEFAULT_DIST_PACKAGES)


def enable() -> None:
    """Install the finder (once). Safe to call when rospy is importable anyway: the venv wins."""
    global _finder
    if _finder is None:
        _finder = _SystemRosFinder(dist_package_dirs())
        sys.meta_path.append(_finder)


def import_rospy() -> ModuleType:
    """``import rospy`` from the venv or, through :func:`enable`, from the system's ROS 1 packages."""
    enable()
    try:
        import genpy  # noqa: F401
        import rospy
        import std_msgs.msg  # noqa: F401
    except ImportError as exc:
        dirs = ", ".join(dist_package_dirs())
        raise Ros1Unavailable(
            f"ROS 1 is not importable ({exc}); looked in the venv and in {dirs}. Install the Debian packages "
            f"{' '.join(DEBIAN_PACKAGES)} (scripts/setup.sh --ros1 does), or point MMSTREAM_ROS1_DIST_PACKAGES "
            f"at the directory that holds rospy") from None
    return rospy


def origin(module: ModuleType) -> str:
    """Where a module came from (for the start-up log line)."""
    return str(Path(getattr(module, "__file__", "") or "?").parent)
