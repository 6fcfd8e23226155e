"""Damaged and foreign bags: each problem is named (file, topic, what) and the rest still reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mcap.writer import Writer as McapWriter

from bag_helpers import T0
from mmstream.bag.info import bag_info
from mmstream.bag.reader import BagReader
from mmstream.bag.writer import BagWriter
from mmstream.errors import BagError
from mmstream.messages import Header, ImageFrame, TextUtterance


def _frames_bag(path: Path, n: int = 60, chunk_bytes: int = 40_000) -> None:
    rng = np.random.default_rng(3)
    with BagWriter(path, chunk_bytes=chunk_bytes) as w:
        for i in range(n):
            img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
            w.write("/camera/image", ImageFrame(Header(T0 + i, i + 1), "bgr8", 60, 80, img), T0 + i * 1000)
            if i % 10 == 0:
                w.write("/text/utterance", TextUtterance(Header(T0 + i, i // 10 + 1), T0, T0, f"t{i}"), T0 + i * 1000)


def test_truncated_file_reads_up_to_last_complete_chunk(tmp_path: Path) -> None:
    full = tmp_path / "full.mcap"
    _frames_bag(full)
    data = full.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2 + 123])
    reader = BagReader(cut)
    seqs = [m.seq for m in reader.messages(topics=["/camera/image"])]
    assert 5 < len(seqs) < 60 and seqs == list(range(1, len(seqs) + 1))  # a prefix, nothing invented
    assert len(reader.problems) == 1 and "cut.mcap" in reader.problems[0] and "ends early" in reader.problems[0]
    info = bag_info(cut)
    assert not info["complete"] and info["problems"]
    with pytest.raises(BagError, match="cut.mcap.*ends early"):
        list(BagReader(cut, strict=True).messages())


def test_corrupt_chunk_is_skipped_and_named(tmp_path: Path) -> None:
    path = tmp_path / "c.mcap"
    _frames_bag(path)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)  # inside a chunk's compressed payload
    path.write_bytes(bytes(data))
    reader = BagReader(path)
    seqs = [m.seq for m in reader.messages(topics=["/camera/image"])]
    assert 30 < len(seqs) < 60
    assert seqs[0] == 1 and seqs[-1] == 60  # messages after the bad chunk still read
    assert any("c.mcap" in p and "corrupt" in p for p in reader.problems)


def test_not_an_mcap_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.mcap"
    p.write_text("hello")
    with pytest.raises(BagError, match="notes.mcap.*not an MCAP file"):
        BagReader(p)
    q = tmp_path / "old.db3"
    q.write_bytes(b"SQLite format 3\x00" + bytes(100))
    with pytest.raises(BagError, match="sqlite3.*bag directory"):
        BagReader(q)


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nope.mcap")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="no metadata.yaml and no .mcap"):
        BagReader(tmp_path / "empty")
    d = tmp_path / "bagdir"
    d.mkdir()
    (d / "metadata.yaml").write_text("rosbag2_bagfile_information:\n  storage_identifier: mcap\n"
                                     "  relative_file_paths: [gone_0.mcap]\n")
    with pytest.raises(BagError, match="gone_0.mcap"):
        BagReader(d)
    (d / "metadata.yaml").write_text("rosbag2_bagfile_information:\n  storage_identifier: rosbag_v1\n"
                                     "  relative_file_paths: [x.bag]\n")
    with pytest.raises(BagError, match="rosbag_v1.*not supported"):
        BagReader(d)


def test_unknown_schemas_and_bad_messages_skip_only_their_topic(tmp_path: Path) -> None:
    path = tmp_path / "mixed.mcap"
    with open(path, "wb") as fh:
        w = McapWriter(fh)
        w.start(profile="ros2")
        js = w.register_schema("foo/Bar", "jsonschema", b"{}")
        ch_json = w.register_channel("/json/topic", "json", js)
        odd = w.register_schema("nav_msgs/msg/Odometry", "ros2msg", b"float64 x\n")
        ch_odd = w.register_channel("/odom", "cdr", odd)
        from mmstream.bag import schemas

        txt = w.register_schema("mmstream_msgs/msg/TextUtterance", "ros2msg",
                                schemas.schema_text("mmstream_msgs/msg/TextUtterance").encode())
        ch_txt = w.register_channel("/text/utterance", "cdr", txt)
        broken = w.register_schema("mmstream_msgs/msg/TextUtterance", "ros2msg", b"this is not ( a msg\n")
        ch_broken = w.register_channel("/text/broken", "cdr", broken)
        from mcap_ros2._dynamic import serialize_dynamic

        enc = serialize_dynamic("mmstream_msgs/msg/TextUtterance",
                                schemas.schema_text("mmstream_msgs/msg/TextUtterance"))["mmstream_msgs/msg/TextUtterance"]
        good = enc({"header": {"stamp": {"sec": 1, "nanosec": 0}, "frame_id": ""}, "seq": 1, "start_ns": 1,
                    "end_ns": 2, "text": "ok", "source": "", "language": "en"})
        for i in range(3):
            w.add_message(ch_json, log_time=i, publish_time=i, data=json.dumps({"i": i}).encode())
            w.add_message(ch_odd, log_time=i, publish_time=i, data=b"\x00\x01\x00\x00" + bytes(8))
            w.add_message(ch_txt, log_time=i, publish_time=i, sequence=i + 1, data=good if i != 1 else good[:9])
            w.add_message(ch_broken, log_time=i, publish_time=i, data=good)
        w.finish()
    reader = BagReader(path)
    got = list(reader.messages())
    assert [(m.topic, m.seq) for m in got] == [("/text/utterance", 1), ("/text/utterance", 3)]
    text = "\n".join(reader.problems)
    assert "/json/topic" in text and "jsonschema" in text
    assert "/odom" in text and "nav_msgs/msg/Odometry" in text and "not supported" in text
    assert "/text/utterance" in text and "cannot be read" in text and "mixed.mcap" in text
    assert "/text/broken" in text
    assert len(reader.problems) == 4  # each reported once, not per message


def test_record_length_garbage_does_not_allocate(tmp_path: Path) -> None:
    path = tmp_path / "g.mcap"
    _frames_bag(path, n=20)
    data = bytearray(path.read_bytes())
    # first record after the 8-byte magic is the Header record: opcode(1) + length(8)
    data[9:17] = (2**62).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    reader = BagReader(path)
    assert list(reader.messages()) == []
    assert reader.problems and "g.mcap" in reader.problems[0]
