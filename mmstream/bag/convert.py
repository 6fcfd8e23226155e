"""mmstream messages <-> ROS 2 messages (as plain dicts going out, any attribute object coming in).

:data:`ROS_TYPES` is the one table of the ROS 2 types we know: one :class:`RosType` row per type,
naming the mmstream class it becomes and the functions that convert each way (read-only rows for
other people's types). The recorder, the player and the ROS bridges all go through it.

Going out (:func:`to_ros`) a message becomes ``(ros_type, dict)``, ready for a CDR encoder. Coming
in (:func:`from_ros`) accepts what ``mcap_ros2`` decodes (attribute objects, bytes for ``uint8[]``)
and what ``rosbags`` decodes (dataclasses, numpy arrays), so bags from either library convert.

Bulk data always travels as ``uint8[]`` (raw little-endian bytes): CDR encoders handle that as
one buffer, while a ``float32[]`` of 16 000 samples would be encoded one element at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmstream.errors import BagError
from mmstream.messages import (
    AudioChunk,
    Clock,
    Detections,
    EmotionEstimate,
    Header,
    ImageFrame,
    Message,
    NodeStats,
    TextUtterance,
    Window,
)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CLOCK = "rosgraph_msgs/msg/Clock"
STRING = "std_msgs/msg/String"
PKG = "mmstream_msgs/msg/"

#: ROS 2 types read from other people's bags, beyond our own
AUDIO_DATA_STAMPED = "audio_common_msgs/msg/AudioDataStamped"
AUDIO_DATA = "audio_common_msgs/msg/AudioData"
AUDIO_STAMPED = "audio_common_msgs/msg/AudioStamped"
FOXGLOVE_RAW_AUDIO = "foxglove_msgs/msg/RawAudio"

#: sensor_msgs/Image encodings we decode -> (numpy dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[str, int]] = {
    "bgr8": ("u1", 3), "rgb8": ("u1", 3), "mono8": ("u1", 1), "8UC1": ("u1", 1), "8UC3": ("u1", 3),
    "rgba8": ("u1", 4), "bgra8": ("u1", 4), "mono16": ("u2", 1), "16UC1": ("u2", 1),
}
_SAMPLE_FORMATS = {"F32LE": np.dtype("<f4"), "S16LE": np.dtype("<i2")}

_NS = 1_000_000_000


class ConvertError(BagError):
    """One message could not be converted (the reader names the file and topic around it)."""


@dataclass(frozen=True)
class ConvertOptions:
    """How to read types that do not carry everything we need.

    decode_jpeg: turn CompressedImage JPEG into bgr8 pixels (default: keep JPEG bytes, consumers decode).
    audio_*: layout of audio_common_msgs AudioData, which carries raw bytes only (its AudioInfo
    travels on another topic); classic audio_common defaults are 16 kHz mono S16LE.
    """

    decode_jpeg: bool = False
    audio_sample_rate_hz: int = 16000
    audio_channels: int = 1
    audio_sample_format: str = "S16LE"


@dataclass(frozen=True)
class Incoming:
    """What a from-ROS function gets besides the decoded message."""

    seq: int = 0               # becomes header.seq (ROS 2 headers carry none; bags give the MCAP sequence)
    log_time_ns: int = 0       # when it was recorded: the stamp of types without a header
    options: ConvertOptions = ConvertOptions()


# --------------------------------------------------------------------------- helpers


def stamp_to_ros(stamp_ns: int) -> dict[str, int]:
    sec, nanosec = divmod(int(stamp_ns), _NS)
    return {"sec": sec, "nanosec": nanosec}


def stamp_from_ros(stamp: Any) -> int:
    return int(_get(stamp, "sec")) * _NS + int(_get(stamp, "nanosec"))


def _header_to_ros(h: Header) -> dict[str, Any]:
    return {"stamp": stamp_to_ros(h.stamp_ns), "frame_id": h.frame_id}


def _header_from_ros(ros_header: Any, seq: int) -> Header:
    return Header(stamp_ns=stamp_from_ros(_get(ros_header, "stamp")), seq=int(seq),
                  frame_id=str(_get(ros_header, "frame_id")))


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj[name]
    return getattr(obj, name)


def _bytes(value: Any) -> bytes:
    """uint8[] as decoded by either library (bytes, numpy array, list, array.array) -> bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, np.ndarray):
        return value.astype(np.uint8, copy=False).tobytes()
    return bytes(bytearray(value))


def _list(value: Any) -> list[Any]:
    return value.tolist() if isinstance(value, np.ndarray) else list(value)


def _pairs(keys: list[str], values: list[Any]) -> dict[str, Any]:
    if len(keys) != len(values):
        raise ConvertError(f"{len(keys)} names but {len(values)} values")
    return dict(zip(keys, values))


# --------------------------------------------------------------------------- images


def image_to_ros(msg: ImageFrame) -> dict[str, Any]:
    """sensor_msgs/Image for a bgr8/rgb8/mono8 frame."""
    data = np.ascontiguousarray(msg.data)
    channels = 1 if msg.encoding == "mono8" else 3
    return {"header": _header_to_ros(msg.header), "height": msg.height, "width": msg.width,
            "encoding": msg.encoding, "is_bigendian": 0, "step": msg.width * channels, "data": data.tobytes()}


def compressed_image_to_ros(msg: ImageFrame) -> dict[str, Any]:
    """sensor_msgs/CompressedImage for a JPEG frame."""
    return {"header": _header_to_ros(msg.header), "format": "jpeg", "data": msg.data.tobytes()}


def _is_jpeg(msg: ImageFrame) -> bool:
    return msg.encoding == "jpeg"


def _is_raw(msg: ImageFrame) -> bool:
    return msg.encoding != "jpeg"


def image_from_ros(ros: Any, inc: Incoming) -> ImageFrame:
    """sensor_msgs/Image in any supported encoding -> ImageFrame (bgr8/rgb8/mono8 kept, others to bgr8)."""
    header = _header_from_ros(_get(ros, "header"), inc.seq)
    encoding = str(_get(ros, "encoding"))
    if encoding not in IMAGE_ENCODINGS:
        raise ConvertError(f"unsupported Image encoding {encoding!r} (supported: {sorted(IMAGE_ENCODINGS)})")
    height, width, step = int(_get(ros, "height")), int(_get(ros, "width")), int(_get(ros, "step"))
    kind, channels = IMAGE_ENCODINGS[encoding]
    itemsize = 2 if kind == "u2" else 1
    raw = _bytes(_get(ros, "data"))
    row_bytes = width * channels * itemsize
    if step < row_bytes or len(raw) < step * height:
        raise ConvertError(f"Image {encoding} {width}x{height}: step {step} and {len(raw)} data bytes "
                           f"(expected step >= {row_bytes} and {step * height} bytes)")
    endian = ">" if int(_get(ros, "is_bigendian")) else "<"
    rows = np.frombuffer(raw, np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(f"{endian}{kind}").reshape(height, width, channels)
    if encoding in ("mono16", "16UC1"):
        pixels, encoding = (pixels >> 8).astype(np.uint8), "mono8"
    elif encoding == "8UC1":
        encoding = "mono8"
    elif encoding == "8UC3":
        encoding = "bgr8"
    elif encoding == "rgba8":
        pixels, encoding = pixels[..., :3], "rgb8"
    elif encoding == "bgra8":
        pixels, encoding = pixels[..., :3], "bgr8"
    return ImageFrame(header=header, encoding=encoding, height=height, width=width,
                      data=np.ascontiguousarray(pixels, dtype=np.uint8))


def compressed_image_from_ros(ros: Any, inc: Incoming) -> ImageFrame:
    """sensor_msgs/CompressedImage: JPEG stays JPEG unless ``options.decode_jpeg``; PNG is decoded to bgr8."""
    import cv2  # decoding needs OpenCV; only imported when a compressed image arrives

    decode = inc.options.decode_jpeg
    header = _header_from_ros(_get(ros, "header"), inc.seq)
    fmt = str(_get(ros, "format")).lower()
    data = np.frombuffer(_bytes(_get(ros, "data")), np.uint8)
    is_jpeg = "jpeg" in fmt or "jpg" in fmt
    if not is_jpeg and "png" not in fmt:
        raise ConvertError(f"unsupported CompressedImage format {fmt!r} (supported: jpeg, png)")
    size = jpeg_size(data) if is_jpeg and not decode else None
    if size is not None:  # JPEG passed on undecoded: its size from the header is enough
        return ImageFrame(header=header, encoding="jpeg", height=size[0], width=size[1], data=data.copy())
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ConvertError(f"CompressedImage ({fmt}) of {data.size} bytes does not decode")
    if is_jpeg and not decode:
        return ImageFrame(header=header, encoding="jpeg", height=img.shape[0], width=img.shape[1], data=data.copy())
    return ImageFrame(header=header, encoding="bgr8", height=img.shape[0], width=img.shape[1], data=img)


def jpeg_size(data: np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame marker, without decoding; None if not found."""
    b = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if b[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(b[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(b[i + 5:i + 7], "big"), int.from_bytes(b[i + 7:i + 9], "big")
        i += 2 + length
    return None


# --------------------------------------------------------------------------- audio, text, clock


def audio_to_ros(msg: AudioChunk) -> dict[str, Any]:
    fmt = "S16LE" if msg.samples.dtype == np.int16 else "F32LE"
    data = np.ascontiguousarray(msg.samples, dtype=_SAMPLE_FORMATS[fmt]).tobytes()
    return {"header": _header_to_ros(msg.header), "sample_rate_hz": msg.sample_rate_hz, "channels": msg.channels,
            "sample_format": fmt, "gap_samples": msg.gap_samples, "data": data}


def _samples(raw: bytes, fmt: str, channels: int) -> np.ndarray:
    dtype = _SAMPLE_FORMATS.get(fmt.upper())
    if dtype is None:
        raise ConvertError(f"unsupported audio sample format {fmt!r} (supported: {sorted(_SAMPLE_FORMATS)})")
    frame_bytes = dtype.itemsize * channels
    if channels <= 0 or len(raw) % frame_bytes:
        raise ConvertError(f"audio data of {len(raw)} bytes is not whole {fmt} frames of {channels} channel(s)")
    return np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="), copy=True).reshape(-1, channels)


def audio_from_ros(ros: Any, inc: Incoming) -> AudioChunk:
    channels = int(_get(ros, "channels"))
    samples = _samples(_bytes(_get(ros, "data")), str(_get(ros, "sample_format")), channels)
    return AudioChunk(header=_header_from_ros(_get(ros, "header"), inc.seq),
                      sample_rate_hz=int(_get(ros, "sample_rate_hz")), channels=channels,
                      gap_samples=int(_get(ros, "gap_samples")), samples=samples)


def text_to_ros(msg: TextUtterance) -> dict[str, Any]:
    return {"header": _header_to_ros(msg.header), "seq": msg.header.seq & 0xFFFFFFFF, "start_ns": msg.start_ns,
            "end_ns": msg.end_ns, "text": msg.text, "source": msg.source, "language": msg.language}


def text_from_ros(ros: Any, inc: Incoming) -> TextUtterance:
    return TextUtterance(header=_header_from_ros(_get(ros, "header"), inc.seq), start_ns=int(_get(ros, "start_ns")),
                         end_ns=int(_get(ros, "end_ns")), text=str(_get(ros, "text")),
                         source=str(_get(ros, "source")), language=str(_get(ros, "language")))


def clock_to_ros(msg: Clock) -> dict[str, Any]:
    """rosgraph_msgs/Clock carries the stamp only (``published_seq`` is for our own replay ordering)."""
    return {"clock": stamp_to_ros(msg.header.stamp_ns)}


def clock_from_ros(ros: Any, inc: Incoming) -> Clock:
    return Clock(header=Header(stamp_ns=stamp_from_ros(_get(ros, "clock")), seq=int(inc.seq)))


# --------------------------------------------------------------------------- window and outputs


def window_to_ros(msg: Window) -> dict[str, Any]:
    t, h, w, c = msg.frames.shape
    modalities = sorted(set(msg.presence) | set(msg.coverage))
    return {
        "header": _header_to_ros(msg.header), "start_ns": msg.start_ns, "end_ns": msg.end_ns,
        "frame_encoding": msg.frame_encoding, "frame_count": t, "frame_height": h, "frame_width": w,
        "frame_channels": c, "frames_data": np.ascontiguousarray(msg.frames, np.uint8).tobytes(),
        "frame_mask": [bool(x) for x in msg.frame_mask], "frame_stamps_ns": [int(x) for x in msg.frame_stamps_ns],
        "sample_rate_hz": msg.sample_rate_hz, "audio_samples": msg.audio.shape[0],
        "audio_channels": msg.audio.shape[1],
        "audio_data": np.ascontiguousarray(msg.audio, "<f4").tobytes(),
        "audio_mask": np.ascontiguousarray(msg.audio_mask, np.uint8).tobytes(),
        "audio_chunk_stamps_ns": [int(x) for x in msg.audio_chunk_stamps_ns],
        "utterances": [text_to_ros(u) for u in msg.utterances],
        "modalities": modalities,
        "presence": [bool(msg.presence.get(m, False)) for m in modalities],
        "coverage": [float(msg.coverage.get(m, 0.0)) for m in modalities],
    }


def window_from_ros(ros: Any, inc: Incoming) -> Window:
    t, h, w, c = (int(_get(ros, k)) for k in ("frame_count", "frame_height", "frame_width", "frame_channels"))
    n, ch = int(_get(ros, "audio_samples")), int(_get(ros, "audio_channels"))
    frames = np.frombuffer(_bytes(_get(ros, "frames_data")), np.uint8)
    audio = np.frombuffer(_bytes(_get(ros, "audio_data")), "<f4")
    mask = np.frombuffer(_bytes(_get(ros, "audio_mask")), np.uint8)
    if frames.size != t * h * w * c or audio.size != n * ch or mask.size != n:
        raise ConvertError(f"Window arrays disagree with their sizes: {frames.size} frame bytes for {t}x{h}x{w}x{c}, "
                           f"{audio.size} audio values for {n}x{ch}, {mask.size} mask values for {n}")
    modalities = [str(m) for m in _list(_get(ros, "modalities"))]
    return Window(
        header=_header_from_ros(_get(ros, "header"), inc.seq), start_ns=int(_get(ros, "start_ns")),
        end_ns=int(_get(ros, "end_ns")), sample_rate_hz=int(_get(ros, "sample_rate_hz")),
        frame_encoding=str(_get(ros, "frame_encoding")),
        utterances=[text_from_ros(u, Incoming(seq=int(_get(u, "seq")))) for u in _get(ros, "utterances")],
        presence=_pairs(modalities, [bool(x) for x in _list(_get(ros, "presence"))]),
        coverage=_pairs(modalities, [float(x) for x in _list(_get(ros, "coverage"))]),
        frames=frames.reshape(t, h, w, c).copy(),
        frame_mask=np.array(_list(_get(ros, "frame_mask")), np.bool_).reshape(t),
        frame_stamps_ns=np.array(_list(_get(ros, "frame_stamps_ns")), np.int64).reshape(t),
        audio=audio.astype(np.float32).reshape(n, ch),
        audio_mask=mask.astype(np.bool_),
        audio_chunk_stamps_ns=np.array(_list(_get(ros, "audio_chunk_stamps_ns")), np.int64),
    )


def emotion_to_ros(msg: EmotionEstimate) -> dict[str, Any]:
    return {
        "header": _header_to_ros(msg.header), "window_start_ns": msg.window_start_ns,
        "window_end_ns": msg.window_end_ns, "labels": list(msg.labels), "probs": [float(p) for p in msg.probs],
        "top_label": msg.top_label, "top_prob": float(msg.top_prob),
        "presence_modalities": list(msg.presence), "presence": [bool(v) for v in msg.presence.values()],
        "contribution_modalities": list(msg.contribution),
        "contribution": [float(v) for v in msg.contribution.values()],
        "backend": msg.backend, "latency_stages": list(msg.latency_ms),
        "latency_ms": [float(v) for v in msg.latency_ms.values()],
    }


def emotion_from_ros(ros: Any, inc: Incoming) -> EmotionEstimate:
    g = lambda k: _list(_get(ros, k))  # noqa: E731
    return EmotionEstimate(
        header=_header_from_ros(_get(ros, "header"), inc.seq), window_start_ns=int(_get(ros, "window_start_ns")),
        window_end_ns=int(_get(ros, "window_end_ns")), labels=[str(x) for x in g("labels")],
        probs=[float(x) for x in g("probs")], top_label=str(_get(ros, "top_label")),
        top_prob=float(_get(ros, "top_prob")),
        presence=_pairs([str(x) for x in g("presence_modalities")], [bool(x) for x in g("presence")]),
        contribution=_pairs([str(x) for x in g("contribution_modalities")], [float(x) for x in g("contribution")]),
        backend=str(_get(ros, "backend")),
        latency_ms=_pairs([str(x) for x in g("latency_stages")], [float(x) for x in g("latency_ms")]),
    )


def detections_to_ros(msg: Detections) -> dict[str, Any]:
    return {
        "header": _header_to_ros(msg.header), "window_start_ns": msg.window_start_ns,
        "window_end_ns": msg.window_end_ns, "image_width": msg.image_width, "image_height": msg.image_height,
        "boxes": [float(x) for x in np.asarray(msg.boxes, np.float32).reshape(-1)],
        "box_scores": [float(x) for x in np.asarray(msg.box_scores, np.float32)],
        "box_labels": list(msg.box_labels), "event_labels": list(msg.event_labels),
        "event_scores": [float(x) for x in msg.event_scores],
    }


def detections_from_ros(ros: Any, inc: Incoming) -> Detections:
    boxes = np.array(_list(_get(ros, "boxes")), np.float32)
    if boxes.size % 4:
        raise ConvertError(f"Detections.boxes has {boxes.size} values (expected 4 per box)")
    return Detections(
        header=_header_from_ros(_get(ros, "header"), inc.seq), window_start_ns=int(_get(ros, "window_start_ns")),
        window_end_ns=int(_get(ros, "window_end_ns")), image_width=int(_get(ros, "image_width")),
        image_height=int(_get(ros, "image_height")), boxes=boxes.reshape(-1, 4),
        box_scores=np.array(_list(_get(ros, "box_scores")), np.float32),
        box_labels=[str(x) for x in _list(_get(ros, "box_labels"))],
        event_labels=[str(x) for x in _list(_get(ros, "event_labels"))],
        event_scores=[float(x) for x in _list(_get(ros, "event_scores"))],
    )


_TOPIC_STATS_DEFAULTS: dict[str, Any] = {
    "topic": "", "direction": "", "type": "", "count": 0, "rate_hz": 0.0, "bytes_per_s": 0.0, "drops": 0,
    "rejected": 0, "latency_p50_ms": 0.0, "latency_p99_ms": 0.0,
}


def stats_to_ros(msg: NodeStats) -> dict[str, Any]:
    topics = []
    for t in msg.topics:
        row = {k: type(d)(t.get(k) if t.get(k) is not None else d) for k, d in _TOPIC_STATS_DEFAULTS.items()}
        topics.append(row)
    return {"header": _header_to_ros(msg.header), "node": msg.node, "pid": msg.pid, "state": msg.state,
            "uptime_s": float(msg.uptime_s), "cpu_s": float(msg.cpu_s), "topics": topics}


def stats_from_ros(ros: Any, inc: Incoming) -> NodeStats:
    topics = [{k: type(d)(_get(t, k)) for k, d in _TOPIC_STATS_DEFAULTS.items()} for t in _get(ros, "topics")]
    return NodeStats(header=_header_from_ros(_get(ros, "header"), inc.seq), node=str(_get(ros, "node")),
                     pid=int(_get(ros, "pid")), state=str(_get(ros, "state")), uptime_s=float(_get(ros, "uptime_s")),
                     cpu_s=float(_get(ros, "cpu_s")), topics=topics)


# --------------------------------------------------------------------------- other people's types


def string_from_ros(ros: Any, inc: Incoming) -> TextUtterance:
    """std_msgs/String (no stamp): the utterance is placed at the message's log time."""
    t = inc.log_time_ns
    return TextUtterance(header=Header(stamp_ns=t, seq=inc.seq), start_ns=t, end_ns=t, text=str(_get(ros, "data")),
                         source="std_msgs/String")


def _audio_common_from_ros(ros: Any, seq: int, stamp_ns: int, opts: ConvertOptions) -> AudioChunk:
    samples = _samples(_bytes(_get(ros, "data")), opts.audio_sample_format, opts.audio_channels)
    return AudioChunk(header=Header(stamp_ns=stamp_ns, seq=seq), sample_rate_hz=opts.audio_sample_rate_hz,
                      channels=opts.audio_channels, samples=samples)


def audio_data_from_ros(ros: Any, inc: Incoming) -> AudioChunk:
    """audio_common_msgs/AudioData (bytes only): stamped with its log time, laid out as the options say."""
    return _audio_common_from_ros(ros, inc.seq, inc.log_time_ns, inc.options)


def audio_data_stamped_from_ros(ros: Any, inc: Incoming) -> AudioChunk:
    """audio_common_msgs/AudioDataStamped: AudioData with a header."""
    stamp = stamp_from_ros(_get(_get(ros, "header"), "stamp"))
    return _audio_common_from_ros(_get(ros, "audio"), inc.seq, stamp, inc.options)


#: audio_common (ROS 2) AudioInfo.format holds a PortAudio sample-format constant; the samples sit
#: in the AudioData array of that type: -> (array field, scale to float32 in [-1, 1] or None to keep)
_PORTAUDIO_FORMATS: dict[int, tuple[str, str, float | None]] = {
    1: ("float32_data", "f4", None),          # paFloat32
    2: ("int32_data", "i4", 1 / 2**31),       # paInt32
    8: ("int16_data", "i2", None),            # paInt16
    16: ("int8_data", "i1", 1 / 2**7),        # paInt8
}


def audio_stamped_from_ros(ros: Any, inc: Incoming) -> AudioChunk:
    """audio_common_msgs/AudioStamped (the ROS 2 audio_common): header + Audio{AudioData, AudioInfo}."""
    audio = _get(ros, "audio")
    info, data = _get(audio, "info"), _get(audio, "audio_data")
    fmt, channels, rate = int(_get(info, "format")), int(_get(info, "channels")), int(_get(info, "rate"))
    if fmt not in _PORTAUDIO_FORMATS:
        raise ConvertError(f"{AUDIO_STAMPED}: PortAudio sample format {fmt} is not supported "
                           f"(supported: paFloat32=1, paInt32=2, paInt16=8, paInt8=16)")
    field, dtype, scale = _PORTAUDIO_FORMATS[fmt]
    arr = np.asarray(_get(data, field), dtype=dtype)  # decoders give arrays or lists
    if channels <= 0 or rate <= 0 or arr.size % channels:
        raise ConvertError(f"{AUDIO_STAMPED}: {arr.size} samples in {field} are not whole frames of {channels} "
                           f"channel(s) at {rate} Hz")
    samples = arr.astype(np.float32) * np.float32(scale) if scale is not None else arr
    return AudioChunk(header=_header_from_ros(_get(ros, "header"), inc.seq), sample_rate_hz=rate, channels=channels,
                      samples=np.ascontiguousarray(samples.reshape(-1, channels)))


def raw_audio_from_ros(ros: Any, inc: Incoming) -> AudioChunk:
    """foxglove_msgs/RawAudio: timestamp, interleaved little-endian data, format 'pcm-s16', rate, channels."""
    fmt = str(_get(ros, "format"))
    if fmt != "pcm-s16":
        raise ConvertError(f"{FOXGLOVE_RAW_AUDIO}: format {fmt!r} is not supported (supported: 'pcm-s16')")
    channels = int(_get(ros, "number_of_channels"))
    return AudioChunk(header=Header(stamp_ns=stamp_from_ros(_get(ros, "timestamp")), seq=inc.seq),
                      sample_rate_hz=int(_get(ros, "sample_rate")), channels=channels,
                      samples=_samples(_bytes(_get(ros, "data")), "S16LE", channels))


# --------------------------------------------------------------------------- the registry


def _always(msg: Message) -> bool:
    return True


@dataclass(frozen=True)
class RosType:
    """One row of the registry: a ROS 2 message type and the mmstream class it converts to and from."""

    name: str                                        # full ROS 2 name, ``pkg/msg/Type``
    cls: type[Message]                               # what it becomes
    from_ros: Callable[[Any, Incoming], Message]     # decoded ROS message -> mmstream message
    to_ros: Callable[[Any], dict[str, Any]] | None = None  # mmstream message -> dict; None: read only
    writes: Callable[[Any], bool] = _always          # which messages of ``cls`` are written as this type


#: every ROS 2 type we convert, one row each: ours first, then other people's (read only)
ROWS: tuple[RosType, ...] = (
    RosType(IMAGE, ImageFrame, image_from_ros, image_to_ros, writes=_is_raw),
    RosType(COMPRESSED_IMAGE, ImageFrame, compressed_image_from_ros, compressed_image_to_ros, writes=_is_jpeg),
    RosType(CLOCK, Clock, clock_from_ros, clock_to_ros),
    RosType(PKG + "AudioChunk", AudioChunk, audio_from_ros, audio_to_ros),
    RosType(PKG + "TextUtterance", TextUtterance, text_from_ros, text_to_ros),
    RosType(PKG + "Window", Window, window_from_ros, window_to_ros),
    RosType(PKG + "EmotionEstimate", EmotionEstimate, emotion_from_ros, emotion_to_ros),
    RosType(PKG + "Detections", Detections, detections_from_ros, detections_to_ros),
    RosType(PKG + "NodeStats", NodeStats, stats_from_ros, stats_to_ros),
    RosType(STRING, TextUtterance, string_from_ros),
    RosType(AUDIO_DATA_STAMPED, AudioChunk, audio_data_stamped_from_ros),
    RosType(AUDIO_DATA, AudioChunk, audio_data_from_ros),
    RosType(AUDIO_STAMPED, AudioChunk, audio_stamped_from_ros),
    RosType(FOXGLOVE_RAW_AUDIO, AudioChunk, raw_audio_from_ros),
)


def _by_name(rows: tuple[RosType, ...]) -> dict[str, RosType]:
    out: dict[str, RosType] = {}
    for row in rows:
        if row.name in out:
            raise TypeError(f"ROS type {row.name!r} has two rows in the registry")
        out[row.name] = row
    return out


#: the registry: ROS 2 type name (``pkg/msg/Type``) -> its row
ROS_TYPES: dict[str, RosType] = _by_name(ROWS)

_WRITERS: dict[type[Message], tuple[RosType, ...]] = {
    cls: tuple(r for r in ROWS if r.cls is cls and r.to_ros is not None) for cls in {r.cls for r in ROWS}
}

#: ROS type -> class; kept for callers not yet on :func:`class_for` (nodes/player.py)
ROS_TO_CLASS: dict[str, type[Message]] = {name: row.cls for name, row in ROS_TYPES.items()}


def normalize_type(name: str) -> str:
    """``sensor_msgs/Image`` and ``sensor_msgs/msg/Image`` -> ``sensor_msgs/msg/Image``."""
    parts = name.split("/")
    return f"{parts[0]}/msg/{parts[-1]}" if len(parts) in (2, 3) else name


def row_for(ros_type: str) -> RosType | None:
    """The registry row of a ROS 2 type (either spelling, see :func:`normalize_type`); None if unsupported."""
    return ROS_TYPES.get(normalize_type(ros_type))


def class_for(ros_type: str) -> type[Message] | None:
    """The mmstream class a ROS 2 type becomes; None if unsupported."""
    row = row_for(ros_type)
    return None if row is None else row.cls


def rows_for(cls: type[Message]) -> tuple[RosType, ...]:
    """The rows that write ``cls`` (ImageFrame has two: raw Image and JPEG CompressedImage)."""
    return _WRITERS.get(cls, ())


def is_supported(ros_type: str) -> bool:
    return row_for(ros_type) is not None


def to_ros(msg: Message) -> tuple[str, dict[str, Any]]:
    """``(ros_type, message dict)`` for any mmstream message we write."""
    for row in _WRITERS.get(type(msg), ()):
        if row.writes(msg):
            assert row.to_ros is not None  # _WRITERS holds writing rows only
            return row.name, row.to_ros(msg)
    writable = sorted({r.cls.__name__ for rows in _WRITERS.values() for r in rows})
    raise ConvertError(f"no ROS 2 type for {type(msg).__name__} (convertible: {writable})")


def from_ros(ros_type: str, ros: Any, *, seq: int = 0, log_time_ns: int = 0,
             options: ConvertOptions = ConvertOptions()) -> Message:
    """Any supported ROS 2 message (decoded by mcap_ros2 or rosbags) -> an mmstream message.

    Raises :class:`ConvertError` for unsupported types, encodings or inconsistent sizes.
    """
    row = row_for(ros_type)
    if row is None:
        raise ConvertError(f"unsupported message type {ros_type!r} (supported: {sorted(ROS_TYPES)})")
    try:
        return row.from_ros(ros, Incoming(seq=seq, log_time_ns=log_time_ns, options=options))
    except ConvertError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a field missing or of the wrong kind
        raise ConvertError(f"{row.name}: {type(exc).__name__}: {exc}") from None
