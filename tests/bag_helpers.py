"""Helpers shared by the bag tests: sample messages and a bag written by rosbags (the other library)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmstream.bag import schemas
from mmstream.messages import (
    AudioChunk, Clock, Detections, EmotionEstimate, Header, ImageFrame, NodeStats, TextUtterance, Window,
)

T0 = 1_700_000_000_000_000_000


def sample_messages() -> list[tuple[str, Any]]:
    """One message of every type, with non-trivial values in every field."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    import cv2

    ok, jpeg = cv2.imencode(".jpg", img)
    assert ok
    win = Window(header=Header(T0 + 5, 9, "sync"), start_ns=T0, end_ns=T0 + 1_000_000_000, sample_rate_hz=16000,
                 frame_encoding="bgr8", utterances=[TextUtterance(Header(T0 + 1, 2, "asr"), T0, T0 + 3, "héllo", "asr", "fr")],
                 presence={"video": True, "audio": True, "text": False},
                 coverage={"video": 0.75, "audio": 1.0, "text": 0.0},
                 frames=rng.integers(0, 256, (4, 8, 6, 3), dtype=np.uint8),
                 frame_mask=np.array([True, False, True, True]), frame_stamps_ns=np.array([T0, 0, T0 + 2, T0 + 3]),
                 audio=rng.standard_normal((160, 2)).astype(np.float32), audio_mask=rng.random(160) > 0.2,
                 audio_chunk_stamps_ns=np.array([T0, T0 + 10_000_000], np.int64))
    return [
        ("/camera/image", ImageFrame(Header(T0, 1, "cam"), "bgr8", 48, 64, img)),
        ("/camera/rgb", ImageFrame(Header(T0 + 1, 2, "cam"), "rgb8", 48, 64, img[..., ::-1].copy())),
        ("/camera/mono", ImageFrame(Header(T0 + 2, 3, "cam"), "mono8", 48, 64, img[..., :1].copy())),
        ("/camera/jpeg", ImageFrame(Header(T0 + 3, 4, "cam"), "jpeg", 48, 64, jpeg.reshape(-1))),
        ("/microphone/audio", AudioChunk(Header(T0 + 4, 5, "mic"), 16000, 1, 3,
                                         rng.standard_normal((320, 1)).astype(np.float32))),
        ("/microphone/s16", AudioChunk(Header(T0 + 5, 6, "mic"), 48000, 2, 0,
                                       rng.integers(-32768, 32767, (96, 2), dtype=np.int16))),
        ("/text/utterance", TextUtterance(Header(T0 + 6, 7, ""), T0 - 5, T0 + 6, "the quick fox", "subtitles", "en")),
        ("/clock", Clock(Header(T0 + 7, 8, ""))),
        ("/sync/window", win),
        ("/perception/emotion", EmotionEstimate(Header(T0 + 8, 10, ""), T0, T0 + 1, ["happy", "sad"], [0.25, 0.75],
                                                "sad", 0.75, {"video": True, "audio": False}, {"video": 0.6, "audio": 0.4},
                                                "onnxruntime", {"encode": 1.5, "fuse": 0.25})),
        ("/perception/detections", Detections(Header(T0 + 9, 11, ""), T0, T0 + 1, ["face", "hand"], 64, 48,
                                              ["speaking"], [0.5],
                                              np.array([[1, 2, 3, 4], [5.5, 6, 7, 8]], np.float32),
                                              np.array([0.875, 0.5], np.float32))),
        ("/node/stats", NodeStats(Header(T0 + 10, 12, ""), "node", 42, "running", 1.5, 0.25,
                                  [{"topic": "/a", "direction": "pub", "type": "mmstream/ImageFrame", "count": 3,
                                    "rate_hz": 30.0, "bytes_per_s": 100.0, "drops": 1, "rejected": 0,
                                    "latency_p50_ms": 1.0, "latency_p99_ms": 2.0}])),
    ]


def assert_same(a: Any, b: Any) -> None:
    """Field-by-field equality of two mmstream messages (arrays compared exactly, with dtype)."""
    import dataclasses

    assert type(a) is type(b), (type(a), type(b))
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape, (f.name, va.dtype, vb.dtype, va.shape, vb.shape)
            assert np.array_equal(va, vb), f.name
        elif isinstance(va, list) and va and dataclasses.is_dataclass(va[0]):
            assert len(va) == len(vb)
            for x, y in zip(va, vb):
                assert_same(x, y)
        else:
            assert va == vb, (type(a).__name__, f.name, va, vb)


def rosbags_typestore() -> Any:
    """A rosbags typestore knowing ROS 2 Humble plus our mmstream_msgs (from the .msg files)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name in schemas.own_type_names():
        types.update(get_types_from_msg(schemas.definition(name), name))
    types.update(get_types_from_msg("uint8[] data\n", "audio_common_msgs/msg/AudioData"))
    types.update(get_types_from_msg("std_msgs/Header header\naudio_common_msgs/AudioData audio\n",
                                    "audio_common_msgs/msg/AudioDataStamped"))
    ts.register(types)
    return ts


def write_robot_bag(path: Path, *, seconds: float = 2.0, fps: float = 15.0, sample_rate_hz: int = 16000,
                    width: int = 64, height: int = 48, storage: str = "mcap") -> dict[str, int]:
    """A rosbag2 directory (metadata.yaml + .mcap) written by rosbags, as a robot would record it:
    /camera/image_raw (sensor_msgs/Image rgb8), /camera/image_raw/compressed (CompressedImage),
    /audio/audio (audio_common_msgs/AudioDataStamped, S16LE 16 kHz), /speech/text (std_msgs/String)."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = rosbags_typestore()
    Image = ts.types["sensor_msgs/msg/Image"]
    CompressedImage = ts.types["sensor_msgs/msg/CompressedImage"]
    HeaderT = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    String = ts.types["std_msgs/msg/String"]
    AudioData = ts.types["audio_common_msgs/msg/AudioData"]
    AudioStamped = ts.types["audio_common_msgs/msg/AudioDataStamped"]

    def header(t_ns: int) -> Any:
        return HeaderT(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id="robot")

    counts = {"image": 0, "compressed": 0, "audio": 0, "text": 0}
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        c_img = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        c_cmp = w.add_connection("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=ts)
        c_aud = w.add_connection("/audio/audio", "audio_common_msgs/msg/AudioDataStamped", typestore=ts)
        c_txt = w.add_connection("/speech/text", "std_msgs/msg/String", typestore=ts)
        events = []
        for i in range(int(seconds * fps)):
            events.append((T0 + int(i * 1e9 / fps), "image", i))
        block = sample_rate_hz // 50
        for i in range(int(seconds * 50)):
            events.append((T0 + int(i * 2e7), "audio", i))
        events.append((T0 + int(0.5e9), "text", 0))
        events.append((T0 + int(1.5e9), "text", 1))
        for t, kind, i in sorted(events):
            if kind == "image":
                img = np.full((height, width, 3), (i * 7) % 256, np.uint8)
                img[0, 0] = (i, 0, 255)
                w.write(c_img, t, ts.serialize_cdr(Image(header=header(t), height=height, width=width,
                                                         encoding="rgb8", is_bigendian=0, step=width * 3,
                                                         data=img.reshape(-1)), "sensor_msgs/msg/Image"))
                ok, jpg = cv2.imencode(".jpg", img)
                w.write(c_cmp, t, ts.serialize_cdr(CompressedImage(header=header(t), format="rgb8; jpeg compressed bgr8",
                                                                   data=jpg.reshape(-1)), "sensor_msgs/msg/CompressedImage"))
                counts["image"] += 1
                counts["compressed"] += 1
            elif kind == "audio":
                samples = (np.sin(np.arange(block) / 5.0) * 1000).astype("<i2")
                w.write(c_aud, t, ts.serialize_cdr(AudioStamped(header=header(t), audio=AudioData(
                    data=samples.view(np.uint8))), "audio_common_msgs/msg/AudioDataStamped"))
                counts["audio"] += 1
            else:
                w.write(c_txt, t, ts.serialize_cdr(String(data=f"hello robot {i}"), "std_msgs/msg/String"))
                counts["text"] += 1
    return counts
