"""rosbag2 sqlite3 (``.db3``) bags, read through ``rosbags`` (an optional dependency).

Robots on ROS 2 Humble and older record sqlite3 by default. Such a bag directory (with its
``metadata.yaml``) is read here and yields the same :class:`~mmstream.bag.reader.BagMessage` as an
MCAP bag. Definitions come from the bag when it embeds them (rosbag2 >= Iron), else from the
ROS 2 Humble standard types plus our ``mmstream_msgs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mmstream.bag import convert, schemas
from mmstream.errors import BagError


def available() -> bool:
    try:
        import rosbags.highlevel  # noqa: F401
    except ImportError:
        return False
    return True


def typestore() -> Any:
    """ROS 2 Humble types plus mmstream_msgs (for bags that do not embed their definitions)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name in schemas.own_type_names():
        types.update(get_types_from_msg(schemas.definition(name), name))
    store.register(types)
    return store


class SqliteBag:
    """One rosbag2 directory stored as sqlite3."""

    def __init__(self, directory: Path, problem: Callable[[str, str], None]) -> None:
        if not available():
            raise BagError(f"bag {directory} is stored as sqlite3; reading it needs the 'rosbags' package "
                           f"(pip install rosbags), or convert it to MCAP with 'ros2 bag convert'")
        from rosbags.highlevel import AnyReader

        self.directory = directory
        self._problem = problem
        try:
            self._reader = AnyReader([directory], default_typestore=typestore())
            self._reader.open()
        except Exception as exc:  # rosbags raises its own error types for every kind of damage
            raise BagError(f"bag {directory} (sqlite3) cannot be opened: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self._reader.close()

    def topic_types(self) -> dict[str, str]:
        return {c.topic: c.msgtype for c in self._reader.connections}

    def topic_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self._reader.connections:
            out[c.topic] = out.get(c.topic, 0) + c.msgcount
        return out

    def topic_ranges(self) -> dict[str, tuple[int, int]]:
        """{topic: (first, last) log time}, from the index alone (messages are not deserialized)."""
        out: dict[str, tuple[int, int]] = {}
        for conn, t, _raw in self._reader.messages():
            first, last = out.get(conn.topic, (t, t))
            out[conn.topic] = (min(first, t), max(last, t))
        return out

    def metadata(self) -> dict[str, str]:
        """What metadata.yaml says about the recording (rosbag2 version, storage, ROS distro, ...)."""
        import yaml

        try:
            doc = yaml.safe_load((self.directory / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            return {}
        keys = ("version", "storage_identifier", "ros_distro", "compression_format", "compression_mode")
        return {k: str(doc[k]) for k in keys if doc.get(k) not in (None, "")}

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    def messages(self, want: Callable[[str], bool], options: convert.ConvertOptions,
                 start_ns: int | None, end_ns: int | None) -> Iterator[tuple[str, str, int, Any]]:
        """(topic, ros_type, log_time_ns, mmstream message) in log-time order."""
        conns = []
        for c in self._reader.connections:
            if not want(c.topic):
                continue
            if not convert.is_supported(c.msgtype):
                self._problem(f"{self.directory}:{c.topic}:type",
                              f"bag {self.directory}: topic {c.topic}: message type {c.msgtype!r} is not supported "
                              f"(supported: {sorted(convert.ROS_TYPES)}); topic skipped")
                continue
            conns.append(c)
        if not conns:
            return
        stop = None if end_ns is None else end_ns + 1
        try:
            for conn, t, raw in self._reader.messages(connections=conns, start=start_ns, stop=stop):
                try:
                    obj = self._reader.deserialize(raw, conn.msgtype)
                    msg = convert.from_ros(conn.msgtype, obj, seq=0, log_time_ns=t, options=options)
                except Exception as exc:
                    self._problem(f"{self.directory}:{conn.topic}:decode:{type(exc).__name__}",
                                  f"bag {self.directory}: topic {conn.topic} ({conn.msgtype}): message at log time "
                                  f"{t} cannot be read ({type(exc).__name__}: {exc}); such messages are skipped")
                    continue
                yield conn.topic, conn.msgtype, int(t), msg
        except Exception as exc:  # a damaged database: report, keep what was read
            self._problem(f"{self.directory}:corrupt", f"bag {self.directory} (sqlite3): reading stopped "
                          f"({type(exc).__name__}: {exc}); the rest is skipped")
