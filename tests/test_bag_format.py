"""Bag format: schemas, conversion, our writer/reader, and cross-checks with rosbags (the other library)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bag_helpers import T0, assert_same, rosbags_typestore, sample_messages, write_robot_bag
from mmstream.bag import convert, schemas
from mmstream.bag.info import bag_info, format_info
from mmstream.bag.reader import BagReader, bag_files, parse_topic_map
from mmstream.bag.writer import BagWriter, SplittingBagWriter
from mmstream.errors import BagError
from mmstream.messages import AudioChunk, Header, ImageFrame, TextUtterance


def write_samples(path: Path, **kw: object) -> list[tuple[str, object]]:
    msgs = sample_messages()
    with BagWriter(path, metadata={"launch": {"path": "demo.yaml", "text": "nodes: []"}}, **kw) as w:
        for i, (topic, msg) in enumerate(msgs):
            w.write(topic, msg, log_time_ns=T0 + i * 1000)
    return msgs


def test_schema_texts_parse_with_both_libraries() -> None:
    from mcap_ros2._dynamic import generate_dynamic
    from rosbags.typesys import get_types_from_msg

    for name in schemas.own_type_names() + sorted(schemas.STANDARD):
        text = schemas.schema_text(name)
        assert name in generate_dynamic(name, text)
        get_types_from_msg(schemas.definition(name), name)
    window = schemas.schema_text("mmstream_msgs/msg/Window")
    # dependencies follow the main definition, each once
    assert window.count("MSG: std_msgs/Header") == 1 and "MSG: mmstream_msgs/TextUtterance" in window
    assert "MSG: builtin_interfaces/Time" in window


def test_every_message_type_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "all.mcap"
    msgs = write_samples(path)
    reader = BagReader(path)
    got = list(reader.messages())
    assert reader.problems == []
    assert [g.topic for g in got] == [t for t, _ in msgs]
    for (topic, sent), g in zip(msgs, got):
        assert g.seq == sent.header.seq, topic
        if topic == "/clock":  # rosgraph_msgs/Clock has no frame id / seq of its own
            assert g.msg.header.stamp_ns == sent.header.stamp_ns
            continue
        assert_same(sent, g.msg)
    assert reader.metadata()["launch"] == {"path": "demo.yaml", "text": "nodes: []"}
    assert "version" in reader.metadata()["mmstream"]


@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
def test_rosbags_reads_what_we_write(tmp_path: Path, compression: str) -> None:
    """Cross-check: the independent library decodes our file to the same values."""
    from rosbags.highlevel import AnyReader

    path = tmp_path / f"x_{compression}.mcap"
    msgs = dict(write_samples(path, compression=compression))
    seen = {}
    with AnyReader([path], default_typestore=rosbags_typestore()) as r:
        for conn, t, raw in r.messages():
            seen[conn.topic] = (conn.msgtype, r.deserialize(raw, conn.msgtype), t)
    assert set(seen) == set(msgs)
    img_type, img, _ = seen["/camera/image"]
    assert img_type == "sensor_msgs/msg/Image" and img.encoding == "bgr8" and img.step == 64 * 3
    assert np.array_equal(img.data.reshape(48, 64, 3), msgs["/camera/image"].data)
    assert seen["/camera/jpeg"][0] == "sensor_msgs/msg/CompressedImage"
    assert bytes(seen["/camera/jpeg"][1].data) == msgs["/camera/jpeg"].data.tobytes()
    _, win, _ = seen["/sync/window"]
    sent = msgs["/sync/window"]
    assert win.frame_count == 4 and np.array_equal(np.frombuffer(win.frames_data, np.uint8).reshape(4, 8, 6, 3), sent.frames)
    assert np.array_equal(np.frombuffer(win.audio_data.tobytes(), "<f4").reshape(160, 2), sent.audio)
    assert win.utterances[0].text == "héllo" and list(win.frame_stamps_ns) == list(sent.frame_stamps_ns)
    # and every message converts back through our converter from rosbags' objects
    for topic, (msgtype, obj, t) in seen.items():
        if topic == "/clock":
            continue
        back = convert.from_ros(msgtype, obj, seq=msgs[topic].header.seq, log_time_ns=t)
        assert_same(msgs[topic], back)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_rosbags_bag_directory_plays_with_topic_map(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "robot_bag"
    counts = write_robot_bag(bag, storage=storage)
    assert any(bag.glob("*.db3" if storage == "sqlite3" else "*.mcap"))
    assert (bag / "metadata.yaml").is_file()
    reader = BagReader(bag, topic_map=["/camera/image_raw=camera", "/audio/audio=microphone", "/speech/text=text"])
    got = list(reader.messages())
    assert reader.problems == []
    by_out: dict[str, list] = {}
    for g in got:
        by_out.setdefault(g.out_topic, []).append(g)
    assert len(by_out["/camera/image"]) == counts["image"]
    assert len(by_out["/microphone/audio"]) == counts["audio"]
    assert len(by_out["/text/utterance"]) == counts["text"]
    assert len(by_out["/camera/image_raw/compressed"]) == counts["compressed"]
    first = by_out["/camera/image"][1].msg
    assert isinstance(first, ImageFrame) and first.encoding == "rgb8" and first.data.shape == (48, 64, 3)
    assert tuple(first.data[0, 0]) == (1, 0, 255)
    jpeg = by_out["/camera/image_raw/compressed"][0].msg
    assert jpeg.encoding == "jpeg" and jpeg.to_bgr().shape == (48, 64, 3)
    audio = by_out["/microphone/audio"][0].msg
    assert isinstance(audio, AudioChunk) and audio.samples.dtype == np.int16 and audio.samples.shape == (320, 1)
    assert audio.header.stamp_ns == T0
    text = by_out["/text/utterance"][0].msg
    assert isinstance(text, TextUtterance) and text.text == "hello robot 0" and text.start_ns == T0 + int(0.5e9)
    times = [g.log_time_ns for g in got]
    assert times == sorted(times)
    info = bag_info(bag)
    assert {t["topic"]: t["count"] for t in info["topics"]}["/camera/image_raw"] == counts["image"]
    assert info["duration_s"] == pytest.approx(2.0, abs=0.1)
    rates = {t["topic"]: t["rate_hz"] for t in info["topics"]}  # per topic, the same for both storages
    assert rates["/camera/image_raw"] == pytest.approx(15.0) and rates["/audio/audio"] == pytest.approx(50.0)
    assert rates["/speech/text"] == pytest.approx(1.0)  # two utterances 1 s apart
    text = format_info(info)
    assert "2023-11-14 22:13:20.000 UTC" in text
    if storage == "sqlite3":
        assert info["metadata"]["rosbag2"]["storage_identifier"] == "sqlite3"


@pytest.mark.parametrize("encoding,channels,dtype,expect", [
    ("rgba8", 4, np.uint8, "rgb8"), ("bgra8", 4, np.uint8, "bgr8"), ("mono16", 1, np.uint16, "mono8"),
    ("mono8", 1, np.uint8, "mono8"), ("bgr8", 3, np.uint8, "bgr8"),
])
def test_image_encodings_decode(encoding: str, channels: int, dtype: type, expect: str) -> None:
    rng = np.random.default_rng(1)
    h, w = 5, 7
    pixels = rng.integers(0, np.iinfo(dtype).max, (h, w, channels), dtype=dtype)
    step = w * channels * pixels.itemsize + 6  # padded rows, as some drivers send
    raw = np.zeros((h, step), np.uint8)
    raw[:, :w * channels * pixels.itemsize] = pixels.astype(pixels.dtype.newbyteorder("<")).view(np.uint8).reshape(h, -1)
    ros = {"header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": "f"}, "height": h, "width": w,
           "encoding": encoding, "is_bigendian": 0, "step": step, "data": raw.tobytes()}
    frame = convert.from_ros("sensor_msgs/Image", ros, seq=3)
    assert frame.encoding == expect and frame.header.stamp_ns == 1_000_000_002 and frame.header.seq == 3
    frame.validate()
    if encoding == "mono16":
        assert np.array_equal(frame.data, (pixels >> 8).astype(np.uint8))
    else:
        assert np.array_equal(frame.data, pixels[..., :3] if channels == 4 else pixels)


def test_png_compressed_image_decodes_to_bgr8() -> None:
    import cv2

    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    ok, png = cv2.imencode(".png", img)
    ros = {"header": {"stamp": {"sec": 0, "nanosec": 5}, "frame_id": ""}, "format": "png", "data": png.tobytes()}
    frame = convert.from_ros("sensor_msgs/msg/CompressedImage", ros)
    assert frame.encoding == "bgr8" and np.array_equal(frame.data, img)


def test_unsupported_encodings_are_named() -> None:
    ros = {"header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": ""}, "height": 1, "width": 1,
           "encoding": "bayer_rggb8", "is_bigendian": 0, "step": 1, "data": b"\x00"}
    with pytest.raises(convert.ConvertError, match="bayer_rggb8"):
        convert.from_ros("sensor_msgs/msg/Image", ros)
    with pytest.raises(convert.ConvertError, match="tiff"):
        convert.from_ros("sensor_msgs/msg/CompressedImage", {"header": ros["header"], "format": "tiff", "data": b"x"})
    with pytest.raises(convert.ConvertError, match="U8"):
        convert.from_ros("mmstream_msgs/msg/AudioChunk", {"header": ros["header"], "sample_rate_hz": 1, "channels": 1,
                                                          "sample_format": "U8", "gap_samples": 0, "data": b"\x00"})


def test_split_by_size_and_series_reads_back(tmp_path: Path) -> None:
    base = tmp_path / "rec.mcap"
    img = np.zeros((120, 160, 3), np.uint8)
    rng = np.random.default_rng(0)
    with SplittingBagWriter(base, split_bytes=200_000, chunk_bytes=50_000) as w:
        for i in range(40):
            img[:] = rng.integers(0, 256, img.shape, dtype=np.uint8)  # incompressible: predictable sizes
            w.write("/camera/image", ImageFrame(Header(T0 + i, i + 1), "bgr8", 120, 160, img.copy()), T0 + i)
    files = bag_files(base)
    assert len(files) > 3 and all(f.name.startswith("rec_") for f in files)
    seqs = [m.seq for m in BagReader(base).messages()]
    assert seqs == list(range(1, 41))
    assert bag_info(base)["message_count"] == 40


def test_info_reports_topics_rates_and_size(tmp_path: Path) -> None:
    path = tmp_path / "i.mcap"
    with BagWriter(path) as w:
        for i in range(31):
            w.write("/camera/image", ImageFrame(Header(T0, i + 1), "mono8", 2, 2, np.zeros((2, 2, 1), np.uint8)),
                    T0 + i * 100_000_000)
        for i in range(3):
            w.write("/text/utterance", TextUtterance(Header(T0, i + 1), T0, T0, "x"), T0 + i * 1_000_000_000)
    info = bag_info(path)
    assert info["duration_s"] == pytest.approx(3.0)
    assert info["message_count"] == 34 and info["size_bytes"] == path.stat().st_size and info["complete"]
    cam = next(t for t in info["topics"] if t["topic"] == "/camera/image")
    assert cam["type"] == "sensor_msgs/msg/Image" and cam["count"] == 31 and cam["rate_hz"] == pytest.approx(10.0)
    text = format_info(info)
    assert "/camera/image" in text and "sensor_msgs/msg/Image" in text and "10.00 Hz" in text


def test_topic_map_validation() -> None:
    assert parse_topic_map(["/camera/image_raw=camera", "/a=/b"]) == {"/camera/image_raw": "/camera/image", "/a": "/b"}
    with pytest.raises(BagError, match="modality"):
        parse_topic_map(["/x=lidar"])
    with pytest.raises(BagError, match="BAG_TOPIC"):
        parse_topic_map(["/x"])


def test_topic_cannot_change_type(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "t.mcap") as w:
        w.write("/camera/image", ImageFrame(Header(1, 1), "mono8", 1, 1, np.zeros((1, 1, 1), np.uint8)), 1)
        with pytest.raises(BagError, match="already holds sensor_msgs/msg/Image"):
            w.write("/camera/image", ImageFrame(Header(1, 2), "jpeg", 1, 1, np.zeros(3, np.uint8)), 2)


def test_audio_stamped_and_foxglove_raw_audio_from_other_recorders(tmp_path: Path) -> None:
    """Audio as the ROS 2 audio_common (AudioStamped, PortAudio formats) and Foxglove (RawAudio) record it,
    written by rosbags from the .msg definitions, read back with their own rate/channels/format."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    types: dict = {}
    types.update(get_types_from_msg("float32[] float32_data\nint32[] int32_data\nint32[] int24_data\n"
                                    "int16[] int16_data\nint8[] int8_data\nuint8[] uint8_data\n",
                                    "audio_common_msgs/msg/AudioData"))
    types.update(get_types_from_msg("int32 format\nint32 channels\nint32 rate\nint32 chunk\n",
                                    "audio_common_msgs/msg/AudioInfo"))
    types.update(get_types_from_msg("audio_common_msgs/AudioData audio_data\naudio_common_msgs/AudioInfo info\n",
                                    "audio_common_msgs/msg/Audio"))
    types.update(get_types_from_msg("std_msgs/Header header\naudio_common_msgs/Audio audio\n",
                                    "audio_common_msgs/msg/AudioStamped"))
    types.update(get_types_from_msg("builtin_interfaces/Time timestamp\nuint8[] data\nstring format\n"
                                    "uint32 sample_rate\nuint32 number_of_channels\n", "foxglove_msgs/msg/RawAudio"))
    ts = get_typestore(Stores.ROS2_HUMBLE)
    ts.register(types)
    T = ts.types
    stereo = np.stack([np.arange(320, dtype=np.int16), -np.arange(320, dtype=np.int16)], axis=1)  # 320 frames × 2
    floats = np.linspace(-0.5, 0.5, 160, dtype=np.float32)
    empty = {k: np.zeros(0, d) for k, d in (("float32_data", np.float32), ("int32_data", np.int32),
                                            ("int24_data", np.int32), ("int16_data", np.int16),
                                            ("int8_data", np.int8), ("uint8_data", np.uint8))}

    def stamped(t_ns: int, fmt: int, channels: int, rate: int, **data: np.ndarray):  # noqa: ANN202
        return T["audio_common_msgs/msg/AudioStamped"](
            header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=t_ns // 10**9,
                                                                                  nanosec=t_ns % 10**9), frame_id="mic"),
            audio=T["audio_common_msgs/msg/Audio"](audio_data=T["audio_common_msgs/msg/AudioData"](**{**empty, **data}),
                                                   info=T["audio_common_msgs/msg/AudioInfo"](format=fmt, channels=channels,
                                                                                             rate=rate, chunk=0)))

    bag = tmp_path / "audio_bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c1 = w.add_connection("/audio", "audio_common_msgs/msg/AudioStamped", typestore=ts)
        c2 = w.add_connection("/foxglove/audio", "foxglove_msgs/msg/RawAudio", typestore=ts)
        w.write(c1, T0, ts.serialize_cdr(stamped(T0, 8, 2, 48000, int16_data=stereo.reshape(-1)),
                                         "audio_common_msgs/msg/AudioStamped"))
        w.write(c1, T0 + 10**7, ts.serialize_cdr(stamped(T0 + 10**7, 1, 1, 16000, float32_data=floats),
                                                 "audio_common_msgs/msg/AudioStamped"))
        w.write(c1, T0 + 2 * 10**7, ts.serialize_cdr(stamped(T0 + 2 * 10**7, 4, 1, 16000),  # paInt24: unsupported
                                                     "audio_common_msgs/msg/AudioStamped"))
        raw = T["foxglove_msgs/msg/RawAudio"](timestamp=T["builtin_interfaces/msg/Time"](sec=T0 // 10**9, nanosec=5),
                                              data=stereo.astype("<i2").reshape(-1).view(np.uint8), format="pcm-s16",
                                              sample_rate=44100, number_of_channels=2)
        w.write(c2, T0, ts.serialize_cdr(raw, "foxglove_msgs/msg/RawAudio"))
    reader = BagReader(bag)
    got = {(m.topic, m.msg.header.stamp_ns): m.msg for m in reader.messages()}
    a = got[("/audio", T0)]
    assert (a.sample_rate_hz, a.channels, a.samples.dtype) == (48000, 2, np.int16)
    np.testing.assert_array_equal(a.samples, stereo)
    f = got[("/audio", T0 + 10**7)]
    assert (f.sample_rate_hz, f.channels) == (16000, 1)
    np.testing.assert_array_equal(f.samples[:, 0], floats)
    r = got[("/foxglove/audio", T0 // 10**9 * 10**9 + 5)]
    assert (r.sample_rate_hz, r.channels) == (44100, 2)
    np.testing.assert_array_equal(r.samples, stereo)
    # the paInt24 chunk is reported by name and skipped; the rest played
    assert len(reader.problems) == 1 and "PortAudio sample format 4" in reader.problems[0] and "/audio" in reader.problems[0]
