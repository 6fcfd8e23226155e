"""``mmstream bag info FILE``: duration, topics, types, counts, rates, size — from the summary
section when the file has one, else by scanning the file (a recording that was cut off)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmstream.bag import convert
from mmstream.bag.reader import BagReader, TopicInfo, _FileScan


def _from_summary(path: Path, topics: dict[str, TopicInfo]) -> tuple[int, int, dict[str, dict[str, str]]] | None:
    """(start_ns, end_ns, metadata) from a complete file's summary; None if it has none."""
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as fh:
            reader = make_reader(fh)
            summary = reader.get_summary()
            if summary is None or summary.statistics is None:
                return None
            stats = summary.statistics
            for ch_id, ch in summary.channels.items():
                schema = summary.schemas.get(ch.schema_id)
                ros_type = schema.name if schema else ""
                info = topics.setdefault(ch.topic, TopicInfo(ch.topic, ros_type, supported=convert.is_supported(ros_type)))
                info.count += stats.channel_message_counts.get(ch_id, 0)
            # per-topic time ranges from the chunk indexes' message index is costly; use file range
            for ch in summary.channels.values():
                info = topics[ch.topic]
                if info.count:
                    info.first_ns = stats.message_start_time if info.first_ns is None else min(info.first_ns, stats.message_start_time)
                    info.last_ns = max(info.last_ns or 0, stats.message_end_time)
            metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
            return stats.message_start_time, stats.message_end_time, metadata
    except Exception:
        return None


def bag_info(path: str | Path, *, exact_rates: bool = True) -> dict[str, Any]:
    """Everything ``mmstream bag info`` prints, as a dict (JSON-able).

    exact_rates: scan the messages for per-topic first/last times (rates per topic); otherwise
    complete files are summarized from their summary section alone (rates over the whole bag).
    """
    reader = BagReader(path)
    if reader._sqlite is not None:  # noqa: SLF001
        return _sqlite_info(path, reader, exact_rates=exact_rates)
    topics: dict[str, TopicInfo] = {}
    metadata: dict[str, dict[str, str]] = {}
    start_ns: int | None = None
    end_ns: int | None = None
    complete = True
    for f in reader.files:
        summarized = None if exact_rates else _from_summary(f, topics)
        if summarized is not None:
            s, e, meta = summarized
            metadata.update(meta)
        else:
            scans: list[_FileScan] = []
            single = BagReader(f)
            s = e = None
            for raw in single.raw_records(scans=scans):
                t = raw.message.log_time
                ros_type = raw.schema.name if raw.schema else ""
                info = topics.setdefault(raw.channel.topic, TopicInfo(raw.channel.topic, ros_type,
                                                                      supported=convert.is_supported(ros_type)))
                info.count += 1
                info.first_ns = t if info.first_ns is None else min(info.first_ns, t)
                info.last_ns = t if info.last_ns is None else max(info.last_ns, t)
                s = t if s is None else min(s, t)
                e = t if e is None else max(e, t)
            reader.problems.extend(single.problems)
            if scans:
                metadata.update(scans[0].metadata)
                complete = complete and scans[0].complete
        if s is not None and e is not None and (s or e):
            start_ns = s if start_ns is None else min(start_ns, s)
            end_ns = e if end_ns is None else max(end_ns, e)
    size = sum(f.stat().st_size for f in reader.files)
    duration_s = ((end_ns - start_ns) / 1e9) if start_ns is not None and end_ns is not None else 0.0
    return {
        "path": str(path),
        "files": [str(f) for f in reader.files],
        "size_bytes": size,
        "complete": complete,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "duration_s": round(duration_s, 6),
        "message_count": sum(t.count for t in topics.values()),
        "topics": [
            {"topic": t.topic, "type": t.ros_type, "count": t.count, "rate_hz": round(t.rate_hz, 3),
             "supported": t.supported}
            for t in sorted(topics.values(), key=lambda t: t.topic)
        ],
        "metadata": metadata,
        "problems": reader.problems,
    }


def _sqlite_info(path: str | Path, reader: BagReader, *, exact_rates: bool) -> dict[str, Any]:
    bag = reader._sqlite  # noqa: SLF001
    assert bag is not None
    duration_s = (bag.end_ns - bag.start_ns) / 1e9
    counts, types = bag.topic_counts(), bag.topic_types()
    ranges = bag.topic_ranges() if exact_rates else {}

    def rate(topic: str, n: int) -> float:  # per topic, like the MCAP path: (n - 1) / (last - first)
        first, last = ranges.get(topic, (bag.start_ns, bag.end_ns))
        return round((n - 1) * 1e9 / (last - first), 3) if n > 1 and last > first else 0.0

    return {
        "path": str(path), "files": [str(f) for f in reader.files],
        "size_bytes": sum(f.stat().st_size for f in reader.files), "complete": True,
        "start_ns": bag.start_ns, "end_ns": bag.end_ns, "duration_s": round(duration_s, 6),
        "message_count": sum(counts.values()),
        "topics": [{"topic": t, "type": types[t], "count": n,
                    "rate_hz": rate(t, n),
                    "supported": convert.is_supported(types[t])} for t, n in sorted(counts.items())],
        "metadata": {"rosbag2": bag.metadata()} if bag.metadata() else {}, "problems": reader.problems,
    }


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _when(ns: int | None) -> str:
    """``2023-11-14 22:13:20.000 UTC (1700000000.000000000 s)``, as ``ros2 bag info`` shows times."""
    if ns is None:
        return "-"
    import datetime

    utc = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return f"{utc:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000 // 1_000_000:03d} UTC ({ns // 10**9}.{ns % 10**9:09d} s)"


def _short(value: Any, limit: int = 40) -> str:
    """One line, at most ``limit`` characters (metadata values may be whole YAML documents)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(str(value))} chars)"


def format_info(info: dict[str, Any]) -> str:
    """A human-readable table, like ``ros2 bag info``."""
    lines = [
        f"Files:       {', '.join(info['files'])}",
        f"Size:        {_human_bytes(info['size_bytes'])}" + ("" if info["complete"] else "  (incomplete: no summary)"),
        f"Duration:    {info['duration_s']:.3f} s",
        f"Start:       {_when(info['start_ns'])}",
        f"End:         {_when(info['end_ns'])}",
        f"Messages:    {info['message_count']}",
        "Topics:",
    ]
    width_t = max([len(t["topic"]) for t in info["topics"]] + [5])
    width_y = max([len(t["type"]) for t in info["topics"]] + [4])
    for t in info["topics"]:
        note = "" if t["supported"] else "  (type not supported for playback)"
        lines.append(f"  {t['topic']:<{width_t}}  {t['type']:<{width_y}}  {t['count']:>8} msgs  "
                     f"{t['rate_hz']:>8.2f} Hz{note}")
    if info["metadata"]:
        lines.append("Metadata:")
        for name, rec in sorted(info["metadata"].items()):
            keys = ", ".join(f"{k}={_short(v)}" for k, v in sorted(rec.items()))
            lines.append(f"  {name}: {keys}")
    for p in info["problems"]:
        lines.append(f"Problem: {p}")
    return "\n".join(lines)


def info_json(info: dict[str, Any]) -> str:
    return json.dumps(info, indent=2)
