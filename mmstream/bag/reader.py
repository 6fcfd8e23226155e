"""Read ROS 2 MCAP bags — ours and other people's — as mmstream messages in log-time order.

Accepts a bare ``.mcap`` file, a series written split (``rec_0.mcap``, ``rec_1.mcap``... given
as ``rec.mcap``), a directory of ``.mcap`` files, or a rosbag2 directory with ``metadata.yaml``
(MCAP, or sqlite3 through ``rosbags`` when it is installed: :mod:`mmstream.bag.sqlite`).
Topics are mapped to our modalities by configuration (``/camera/image_raw`` -> ``camera`` ->
``/camera/image``); Image and CompressedImage are decoded; types we cannot convert are skipped
with a warning naming file and topic.

Damage does not stop reading: a file cut off (recorder killed) yields everything up to its last
complete chunk, a chunk that fails its CRC or decompression is skipped, an unknown schema skips
its topic — each reported once in :attr:`BagReader.problems` and the log, naming file, topic and
problem. Only a file that is not MCAP at all (or does not exist) raises :class:`BagError`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.exceptions import EndOfFile, InvalidMagic, McapError
from mcap.records import Channel, Chunk, Footer, Message as McapMessage, Metadata, Schema
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap_ros2.decoder import DecoderFactory

from mmstream.bag import convert
from mmstream.errors import BagError
from mmstream.messages import Message

log = logging.getLogger("mmstream.bag")

#: modality -> the topic our pipeline reads it from
MODALITY_TOPICS = {
    "camera": "/camera/image", "video": "/camera/image",
    "microphone": "/microphone/audio", "audio": "/microphone/audio",
    "text": "/text/utterance",
}
#: largest record we agree to load (a corrupt length field must not allocate gigabytes)
RECORD_SIZE_LIMIT = 1 << 30


@dataclass
class BagMessage:
    """One message read from a bag."""

    topic: str            # topic in the bag
    out_topic: str        # topic to publish it on (after the topic map)
    log_time_ns: int      # when it was recorded
    seq: int              # MCAP sequence (our header.seq)
    ros_type: str
    msg: Message


@dataclass
class TopicInfo:
    topic: str
    ros_type: str
    count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    supported: bool = True

    @property
    def rate_hz(self) -> float:
        if self.count < 2 or self.first_ns is None or self.last_ns is None or self.last_ns <= self.first_ns:
            return 0.0
        return (self.count - 1) / ((self.last_ns - self.first_ns) / 1e9)


def parse_topic_map(items: Iterable[str] | dict[str, str] | None) -> dict[str, str]:
    """``["/camera/image_raw=camera", "/speech/text=/text/utterance"]`` -> map; values checked."""
    if items is None:
        return {}
    pairs = items.items() if isinstance(items, dict) else (_split_pair(s) for s in items)
    out = {}
    for src, dst in pairs:
        if not dst.startswith("/") and dst not in MODALITY_TOPICS:
            raise BagError(f"topic map {src}={dst}: {dst!r} is neither a topic (starting with '/') "
                           f"nor a modality ({sorted(MODALITY_TOPICS)})")
        out[src if src.startswith("/") else "/" + src] = MODALITY_TOPICS.get(dst, dst)
    return out


def _split_pair(item: str) -> tuple[str, str]:
    src, sep, dst = item.partition("=")
    if not sep or not src or not dst:
        raise BagError(f"topic map entry {item!r}: expected BAG_TOPIC=MODALITY_OR_TOPIC")
    return src.strip(), dst.strip()


def bag_files(path: str | Path) -> list[Path]:
    """The MCAP files that make up the bag at ``path``, in playback order."""
    p = Path(path)
    if p.is_dir():
        meta = p / "metadata.yaml"
        if meta.is_file():
            return _files_from_metadata(meta)
        files = sorted(p.glob("*.mcap"), key=_natural_key)
        if not files:
            raise BagError(f"bag directory {p} holds no metadata.yaml and no .mcap files")
        return files
    if p.is_file():
        return [p]
    series = sorted(p.parent.glob(f"{p.stem}_*.mcap"), key=_natural_key) if p.suffix == ".mcap" else []
    series = [s for s in series if re.fullmatch(rf"{re.escape(p.stem)}_\d+", s.stem)]
    if series:
        return series
    raise BagError(f"bag {p} does not exist (expected a .mcap file, a split series {p.stem}_N.mcap, "
                   f"or a bag directory)")


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _files_from_metadata(meta: Path) -> list[Path]:
    import yaml

    try:
        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        storage = info.get("storage_identifier", "")
        rel = info.get("relative_file_paths") or []
    except Exception as exc:
        raise BagError(f"bag metadata {meta} is not a rosbag2 metadata.yaml ({type(exc).__name__}: {exc})") from None
    if storage and storage not in ("mcap", "sqlite3"):
        raise BagError(f"bag {meta.parent}: storage {storage!r} is not supported (expected mcap or sqlite3)")
    files = [meta.parent / r for r in rel] or sorted(meta.parent.glob("*.mcap"), key=_natural_key)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BagError(f"bag {meta.parent}: metadata.yaml lists files that do not exist: {missing}")
    if not files:
        raise BagError(f"bag {meta.parent}: metadata.yaml lists no files")
    return files


@dataclass
class _RawRecord:
    file: Path
    channel: Channel
    schema: Schema | None
    message: McapMessage


@dataclass
class _FileScan:
    """What one sequential pass over a file found besides the messages."""

    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    complete: bool = False


class BagReader:
    """Read a bag (see module doc). Iterate :meth:`messages`; read :attr:`problems` afterwards."""

    def __init__(self, path: str | Path, *, topic_map: dict[str, str] | Iterable[str] | None = None,
                 options: convert.ConvertOptions = convert.ConvertOptions(), strict: bool = False) -> None:
        """strict: raise :class:`BagError` at the first problem instead of reporting it and going on."""
        self.path = Path(path)
        self.strict = strict
        self.files = bag_files(path)
        self.topic_map = parse_topic_map(topic_map)
        self.options = options
        self.problems: list[str] = []
        self._reported: set[str] = set()
        self._sqlite = None
        if self.path.is_dir() and self.files and all(f.suffix == ".db3" for f in self.files):
            from mmstream.bag.sqlite import SqliteBag

            self._sqlite = SqliteBag(self.files[0].parent, self._problem)
            return
        for f in self.files:
            _check_magic(f)

    # ---------------------------------------------------------------- problems
    def _problem(self, key: str, text: str) -> None:
        """Record and log a problem once per key."""
        if self.strict:
            raise BagError(text)
        if key in self._reported:
            return
        self._reported.add(key)
        self.problems.append(text)
        log.warning("%s", text)

    def out_topic(self, topic: str) -> str:
        return self.topic_map.get(topic, topic)

    # ---------------------------------------------------------------- raw records
    def raw_records(self, *, want: Callable[[str], bool] = lambda t: True,
                    scans: list[_FileScan] | None = None) -> Iterator[_RawRecord]:
        """Every readable message record of every file, in log-time order within each file."""
        for f in self.files:
            scan = _FileScan()
            if scans is not None:
                scans.append(scan)
            yield from self._file_records(f, want, scan)

    def _file_records(self, path: Path, want: Callable[[str], bool], scan: _FileScan) -> Iterator[_RawRecord]:
        size = path.stat().st_size
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        heap: list[tuple[int, int, McapMessage]] = []
        counter = itertools.count()
        chunk_index = 0

        def take(record: Any) -> None:
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, McapMessage):
                ch = channels.get(record.channel_id)
                if ch is None:
                    self._problem(f"{path}:nochannel:{record.channel_id}",
                                  f"bag {path}: message on unknown channel id {record.channel_id} skipped")
                elif want(ch.topic):
                    heapq.heappush(heap, (record.log_time, next(counter), record))
            elif isinstance(record, Metadata):
                scan.metadata[record.name] = dict(record.metadata)

        def pop_until(limit_ns: int | None) -> Iterator[_RawRecord]:
            while heap and (limit_ns is None or heap[0][0] < limit_ns):
                _, _, m = heapq.heappop(heap)
                ch = channels[m.channel_id]
                yield _RawRecord(path, ch, schemas.get(ch.schema_id), m)

        with open(path, "rb") as fh:
            reader = StreamReader(fh, emit_chunks=True, validate_crcs=False, record_size_limit=RECORD_SIZE_LIMIT)
            try:
                for record in reader.records:
                    if isinstance(record, Chunk):
                        yield from pop_until(record.message_start_time)
                        chunk_index += 1
                        try:
                            inner = breakup_chunk(record, validate_crc=True)
                        except Exception as exc:  # CRC mismatch, zstd/lz4 errors, short reads
                            where = reader._stream.count  # noqa: SLF001 (offset for the message only)
                            if where >= size:
                                self._problem(f"{path}:truncated", _truncated(path, chunk_index, size))
                                break
                            self._problem(f"{path}:chunk{chunk_index}",
                                          f"bag {path}: chunk {chunk_index} ({_span(record)}) is corrupt "
                                          f"({type(exc).__name__}: {exc}); its messages are skipped")
                            continue
                        for r in inner:
                            take(r)
                    elif isinstance(record, Footer):
                        scan.complete = True
                        break
                    else:
                        take(record)
            except EndOfFile:
                self._problem(f"{path}:truncated", _truncated(path, chunk_index, size))
            except InvalidMagic:
                self._problem(f"{path}:magic", f"bag {path}: bad magic at the end (file damaged)")
            except (McapError, struct.error, ValueError, UnicodeDecodeError, MemoryError) as exc:
                at = reader._stream.count  # noqa: SLF001
                if at >= size:
                    self._problem(f"{path}:truncated", _truncated(path, chunk_index, size))
                else:
                    self._problem(f"{path}:corrupt", f"bag {path}: corrupt record near byte {at} of {size} "
                                  f"({type(exc).__name__}: {exc}); the rest of this file is skipped")
            yield from pop_until(None)

    # ---------------------------------------------------------------- decoded messages
    def messages(self, *, topics: Iterable[str] | None = None, start_ns: int | None = None,
                 end_ns: int | None = None) -> Iterator[BagMessage]:
        """Converted messages in log-time order. ``topics`` filters by bag topic or mapped topic."""
        wanted = set(topics) if topics is not None else None

        def want(topic: str) -> bool:
            return wanted is None or topic in wanted or self.out_topic(topic) in wanted

        if self._sqlite is not None:
            for topic, ros_type, t, msg in self._sqlite.messages(want, self.options, start_ns, end_ns):
                yield BagMessage(topic, self.out_topic(topic), t, 0, ros_type, msg)
            return

        decoders: dict[tuple[Path, int], Any] = {}  # per (file, channel): ids restart in every file
        skip: set[tuple[Path, int]] = set()
        for raw in self.raw_records(want=want):
            m = raw.message
            if start_ns is not None and m.log_time < start_ns:
                continue
            if end_ns is not None and m.log_time > end_ns:
                continue
            ch = raw.channel
            key = (raw.file, ch.id)
            if key in skip:
                continue
            topic = ch.topic
            ros_type = raw.schema.name if raw.schema is not None else ""
            decoder = decoders.get(key)
            if decoder is None:
                decoder = self._decoder(raw, topic, ros_type)
                if decoder is None:
                    skip.add(key)
                    continue
                decoders[key] = decoder
            try:
                ros_msg = decoder(m.data)
                msg = convert.from_ros(ros_type, ros_msg, seq=m.sequence, log_time_ns=m.log_time,
                                       options=self.options)
            except Exception as exc:  # CDR errors are struct.error/IndexError/ValueError...
                self._problem(f"{raw.file}:{topic}:decode:{type(exc).__name__}",
                              f"bag {raw.file}: topic {topic} ({ros_type}): message at log time {m.log_time} "
                              f"cannot be read ({type(exc).__name__}: {exc}); such messages are skipped")
                continue
            yield BagMessage(topic, self.out_topic(topic), m.log_time, m.sequence, ros_type, msg)

    def _decoder(self, raw: _RawRecord, topic: str, ros_type: str) -> Any:
        ch, schema = raw.channel, raw.schema
        where = f"bag {raw.file}: topic {topic}"
        if schema is None:
            self._problem(f"{raw.file}:{topic}:noschema", f"{where} has no schema; topic skipped")
            return None
        if ch.message_encoding != "cdr" or schema.encoding != "ros2msg":
            self._problem(f"{raw.file}:{topic}:encoding",
                          f"{where} ({ros_type}): encoding {ch.message_encoding!r} with schema encoding "
                          f"{schema.encoding!r} is not supported (expected cdr + ros2msg); topic skipped")
            return None
        if not convert.is_supported(ros_type):
            self._problem(f"{raw.file}:{topic}:type",
                          f"{where}: message type {ros_type!r} is not supported "
                          f"(supported: {sorted(convert.ROS_TYPES)}); topic skipped")
            return None
        try:
            return DecoderFactory().decoder_for("cdr", schema)  # the factory caches by schema id: one per channel
        except Exception as exc:
            self._problem(f"{raw.file}:{topic}:schema",
                          f"{where}: schema {ros_type!r} does not parse ({type(exc).__name__}: {exc}); topic skipped")
            return None

    # ---------------------------------------------------------------- summary
    def topic_types(self) -> dict[str, str]:
        """bag topic -> ROS type, from the summary sections (or a scan of files that have none)."""
        from mcap.reader import make_reader

        if self._sqlite is not None:
            return self._sqlite.topic_types()
        out: dict[str, str] = {}
        for f in self.files:
            summary = None
            try:
                with open(f, "rb") as fh:
                    summary = make_reader(fh).get_summary()
            except Exception:  # truncated: no summary
                summary = None
            if summary is not None:
                for ch in summary.channels.values():
                    schema = summary.schemas.get(ch.schema_id)
                    out.setdefault(ch.topic, schema.name if schema else "")
                continue
            for raw in BagReader(f).raw_records():
                out.setdefault(raw.channel.topic, raw.schema.name if raw.schema else "")
        return out

    def metadata(self) -> dict[str, dict[str, str]]:
        """Metadata records of all files (later files win on equal names)."""
        out: dict[str, dict[str, str]] = {}
        if self._sqlite is not None:
            return out
        for f in self.files:
            out.update(_read_metadata(f))
        return out


def _check_magic(path: Path) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise BagError(f"bag {path} cannot be opened: {exc}") from None
    if head[:8] != b"\x89MCAP0\r\n":
        if head.startswith(b"SQLite format"):
            raise BagError(f"bag {path} is a rosbag2 sqlite3 file: pass its bag directory (with metadata.yaml) "
                           f"to read it through rosbags, or convert it to MCAP ('ros2 bag convert')")
        raise BagError(f"bag {path} is not an MCAP file (first bytes {head[:8]!r}, expected the MCAP magic)")


def _read_metadata(path: Path) -> dict[str, dict[str, str]]:
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as fh:
            return {m.name: dict(m.metadata) for m in make_reader(fh).iter_metadata()}
    except Exception:  # no summary (truncated): scan the file instead
        reader = BagReader(path)
        scans: list[_FileScan] = []
        for _ in reader.raw_records(want=lambda t: False, scans=scans):
            pass
        return scans[0].metadata if scans else {}


def _truncated(path: Path, chunk_index: int, size: int) -> str:
    return (f"bag {path}: file ends early after {size} bytes (recording interrupted?): messages up to the "
            f"last complete chunk (#{max(chunk_index - 1, 0)}) were read, the rest is lost")


def _span(chunk: Chunk) -> str:
    return f"log time {chunk.message_start_time}..{chunk.message_end_time} ns"
