"""Write mmstream messages into ROS 2 MCAP bags (``ros2msg`` schemas, CDR), one file or split.

Built on ``mcap`` + ``mcap-ros2-support``. Chunks are compressed (zstd or lz4) and every completed
chunk reaches the OS at once, so a recorder killed with ``kill -9`` leaves a file readable up to
its last completed chunk (:mod:`mmstream.bag.reader` reads such files and says what was lost).
The ``header.seq`` of each message goes into the MCAP record's ``sequence`` (ROS 2 headers have
no seq); ``log_time`` is when the message was received, ``publish_time`` its header stamp.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mcap.writer import CompressionType
from mcap_ros2.writer import Writer as Ros2Writer

from mmstream.bag import convert, schemas
from mmstream.errors import BagError
from mmstream.messages import Message

COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024


def mmstream_version() -> str:
    try:
        from importlib.metadata import version

        return version("mmstream")
    except Exception:  # running from a checkout that is not installed
        import mmstream

        return getattr(mmstream, "__version__", "0+unknown")


class _FlushingFile:
    """A file whose every write reaches the OS: the MCAP writer writes whole chunks at once."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 (closed in close())

    def write(self, data: bytes) -> int:
        n = self._f.write(data)
        self._f.flush()
        return n

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class BagWriter:
    """One MCAP file. ``write(topic, msg, log_time_ns)``; ``close()`` writes the summary.

    metadata: name -> {key: value} records stored in the file (launch file, parameters, version).
    """

    def __init__(self, path: str | Path, *, compression: str = "zstd", chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 metadata: dict[str, dict[str, str]] | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise BagError(f"bag {path}: compression {compression!r} not one of {sorted(COMPRESSIONS)}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _FlushingFile(self.path)
        self._writer = Ros2Writer(self._file, chunk_size=chunk_bytes, compression=COMPRESSIONS[compression])
        self._schemas: dict[str, Any] = {}
        self._topic_types: dict[str, str] = {}
        self.message_count = 0
        self.first_log_ns: int | None = None
        self.last_log_ns = 0
        self._closed = False
        info = {"version": mmstream_version(), "created_ns": str(time.time_ns()), "compression": compression}
        self._writer.add_metadata("mmstream", info)
        for name, record in (metadata or {}).items():
            self._writer.add_metadata(name, {str(k): str(v) for k, v in record.items()})

    def write(self, topic: str, msg: Message, log_time_ns: int | None = None) -> None:
        ros_type, ros_msg = convert.to_ros(msg)
        known = self._topic_types.setdefault(topic, ros_type)
        if known != ros_type:
            raise BagError(f"bag {self.path}: topic {topic!r} already holds {known}, cannot add {ros_type}")
        self.write_ros(topic, ros_type, ros_msg, log_time_ns=log_time_ns, seq=msg.header.seq,
                       publish_time_ns=msg.header.stamp_ns or None)

    def write_ros(self, topic: str, ros_type: str, ros_msg: Any, *, log_time_ns: int | None = None,
                  seq: int = 0, publish_time_ns: int | None = None) -> None:
        """Write a ROS 2 message given as a dict (any type :mod:`schemas` knows)."""
        if self._closed:
            raise BagError(f"bag {self.path}: write to {topic!r} after close")
        schema = self._schemas.get(ros_type)
        if schema is None:
            schema = self._writer.register_msgdef(ros_type, schemas.schema_text(ros_type))
            self._schemas[ros_type] = schema
        log_time_ns = time.time_ns() if log_time_ns is None else int(log_time_ns)
        try:
            self._writer.write_message(topic, schema, ros_msg, log_time=log_time_ns,
                                       publish_time=publish_time_ns or log_time_ns, sequence=int(seq) & 0xFFFFFFFF)
        except Exception as exc:  # the CDR encoder raises ValueError/struct.error/TypeError
            raise BagError(f"bag {self.path}: cannot encode {ros_type} on {topic!r}: {exc}") from exc
        self.message_count += 1
        if self.first_log_ns is None:
            self.first_log_ns = log_time_ns
        self.last_log_ns = max(self.last_log_ns, log_time_ns)

    def add_metadata(self, name: str, record: dict[str, str]) -> None:
        self._writer.add_metadata(name, {str(k): str(v) for k, v in record.items()})

    def flush(self) -> None:
        """Close the chunk in progress and hand it to the OS (bounds what ``kill -9`` can lose)."""
        self._writer._writer.flush()  # mcap_ros2's Writer exposes no flush; mcap's Writer.flush does this

    @property
    def size_bytes(self) -> int:
        """Bytes on disk so far (completed chunks)."""
        return self._file.tell()

    @property
    def duration_ns(self) -> int:
        return 0 if self.first_log_ns is None else self.last_log_ns - self.first_log_ns

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.finish()
        finally:
            self._file.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SplittingBagWriter:
    """Writes ``<stem>.mcap``, or ``<stem>_0.mcap``, ``<stem>_1.mcap``... when split by size or duration.

    split_bytes / split_duration_s: start a new file once the current one has reached either (0 = never).
    """

    def __init__(self, path: str | Path, *, split_bytes: int = 0, split_duration_s: float = 0.0,
                 **writer_kwargs: Any) -> None:
        path = Path(path)
        if path.suffix != ".mcap":
            path = path.with_suffix(".mcap") if path.suffix == "" else Path(str(path) + ".mcap")
        self.base = path
        self.split_bytes = int(split_bytes)
        self.split_duration_ns = int(split_duration_s * 1e9)
        self._kwargs = writer_kwargs
        self.paths: list[Path] = []
        self.closed_message_count = 0
        self.closed_bytes = 0
        self._current: BagWriter | None = None

    @property
    def splitting(self) -> bool:
        return self.split_bytes > 0 or self.split_duration_ns > 0

    def _path(self, index: int) -> Path:
        if not self.splitting:
            return self.base
        return self.base.with_name(f"{self.base.stem}_{index}.mcap")

    def _writer(self) -> BagWriter:
        cur = self._current
        if cur is not None and self.splitting and cur.message_count and (
                (self.split_bytes and cur.size_bytes >= self.split_bytes)
                or (self.split_duration_ns and cur.duration_ns >= self.split_duration_ns)):
            self._close_current()
            cur = None
        if cur is None:
            cur = self._current = BagWriter(self._path(len(self.paths)), **self._kwargs)
            self.paths.append(cur.path)
        return cur

    def write(self, topic: str, msg: Message, log_time_ns: int | None = None) -> None:
        self._writer().write(topic, msg, log_time_ns)

    def flush(self) -> None:
        if self._current is not None:
            self._current.flush()

    @property
    def message_count(self) -> int:
        return self.closed_message_count + (self._current.message_count if self._current else 0)

    @property
    def size_bytes(self) -> int:
        return self.closed_bytes + (self._current.size_bytes if self._current else 0)

    def _close_current(self) -> None:
        if self._current is not None:
            self._current.close()
            self.closed_message_count += self._current.message_count
            self.closed_bytes += self._current.path.stat().st_size
            self._current = None

    def close(self) -> None:
        self._close_current()

    def __enter__(self) -> SplittingBagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
