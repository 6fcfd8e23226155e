"""Typed, versioned messages: what travels between nodes.

Every message is a dataclass with a :class:`Header` (schema name and version ride on the
class, ``stamp_ns``/``seq``/``frame_id`` on the instance). Fields are either plain values
(int, float, str, bool, lists and dicts of those, lists of nested messages) or numpy arrays.
Arrays travel as raw zero-copy buffers; everything else goes in a small msgpack map
(see :mod:`mmstream.wire`). This module imports neither zmq nor torch.

All stamps are integer nanoseconds on the host clock (or the bag clock on replay).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: schema name -> message class; filled by :func:`register`.
REGISTRY: dict[str, type["Message"]] = {}

IMAGE_ENCODINGS = ("bgr8", "rgb8", "mono8", "jpeg")
MODALITIES = ("video", "audio", "text")


@dataclass
class Header:
    """Stamp (integer ns), per-publisher sequence number, and the sensor's frame id."""

    stamp_ns: int = 0
    seq: int = 0
    frame_id: str = ""


@dataclass
class Message:
    """Base of every message. Subclasses set ``SCHEMA`` and ``VERSION`` and list array fields."""

    SCHEMA: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    ARRAYS: ClassVar[tuple[str, ...]] = ()

    header: Header = field(default_factory=Header)

    @property
    def stamp_ns(self) -> int:
        return self.header.stamp_ns

    def scalar_fields(self) -> dict[str, Any]:
        """Non-array fields (without the header) as msgpack-able values."""
        return {name: _to_plain(getattr(self, name)) for name in _scalar_names(type(self))}

    def array_fields(self) -> list[np.ndarray]:
        """Array fields in ``ARRAYS`` order, each C-contiguous."""
        return [np.ascontiguousarray(getattr(self, name)) for name in self.ARRAYS]

    def nbytes(self) -> int:
        return sum(int(getattr(self, n).nbytes) for n in self.ARRAYS)


def register(cls: type[Message]) -> type[Message]:
    if not cls.SCHEMA:
        raise TypeError(f"{cls.__name__} has no SCHEMA")
    if cls.SCHEMA in REGISTRY and REGISTRY[cls.SCHEMA] is not cls:
        raise TypeError(f"schema {cls.SCHEMA!r} registered twice")
    REGISTRY[cls.SCHEMA] = cls
    return cls


_PLAIN = (int, float, str, bool, type(None))


@functools.cache
def _scalar_names(cls: type[Message]) -> tuple[str, ...]:
    """Non-array, non-header field names in declaration order (computed once per class)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "header" and f.name not in cls.ARRAYS)


def _to_plain(value: Any) -> Any:
    if type(value) in _PLAIN:  # the common case, first: this runs on every publish
        return value
    if isinstance(value, Message):
        return {"header": dataclasses.asdict(value.header), **value.scalar_fields()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


@functools.cache
def _layout(cls: type[Message]) -> tuple[frozenset[str], dict[str, type[Message]]]:
    """(scalar field names, {field: nested message type} for ``list[SomeMessage]`` fields), per class."""
    hints = typing.get_type_hints(cls)
    names = frozenset(f.name for f in dataclasses.fields(cls)) - {"header"} - set(cls.ARRAYS)
    nested = {}
    for name in names:
        args = typing.get_args(hints.get(name))
        if typing.get_origin(hints.get(name)) is list and args and isinstance(args[0], type) \
                and issubclass(args[0], Message):
            nested[name] = args[0]
    return names, nested


def build(cls: type[Message], header: Header, scalars: dict[str, Any], arrays: list[np.ndarray]) -> Message:
    """Construct ``cls`` from decoded parts; raises ``ValueError`` naming what did not fit."""
    expected_scalars, nested = _layout(cls)
    missing = expected_scalars - scalars.keys()
    extra = scalars.keys() - expected_scalars
    if missing or extra:
        raise ValueError(f"{cls.SCHEMA}: fields missing {sorted(missing)} / unexpected {sorted(extra)}")
    if len(arrays) != len(cls.ARRAYS):
        raise ValueError(f"{cls.SCHEMA}: expected {len(cls.ARRAYS)} arrays, got {len(arrays)}")
    kwargs = dict(scalars)
    for name, sub in nested.items():
        if not isinstance(kwargs[name], list):
            raise ValueError(f"{cls.SCHEMA}.{name}: expected a list")
        kwargs[name] = [sub(header=Header(**d.pop("header")), **d) for d in (dict(x) for x in kwargs[name])]
    kwargs.update(zip(cls.ARRAYS, arrays))
    msg = cls(header=header, **kwargs)
    validate = getattr(msg, "validate", None)
    if validate is not None:
        validate()
    return msg


# --------------------------------------------------------------------------- sensors


@register
@dataclass
class ImageFrame(Message):
    """One camera frame: H×W×C uint8 (bgr8/rgb8: C=3, mono8: C=1) or a JPEG byte string."""

    SCHEMA: ClassVar[str] = "mmstream/ImageFrame"
    ARRAYS: ClassVar[tuple[str, ...]] = ("data",)

    encoding: str = "bgr8"
    height: int = 0
    width: int = 0
    data: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8))

    def validate(self) -> None:
        if self.encoding not in IMAGE_ENCODINGS:
            raise ValueError(f"ImageFrame.encoding {self.encoding!r} not one of {IMAGE_ENCODINGS}")
        if self.data.dtype != np.uint8:
            raise ValueError(f"ImageFrame.data dtype {self.data.dtype} (expected uint8)")
        if self.encoding == "jpeg":
            if self.data.ndim != 1:
                raise ValueError("ImageFrame jpeg data must be 1-D bytes")
            return
        channels = 1 if self.encoding == "mono8" else 3
        if self.data.shape != (self.height, self.width, channels):
            raise ValueError(
                f"ImageFrame.data shape {self.data.shape} does not match "
                f"{self.encoding} {self.height}x{self.width}x{channels}"
            )

    def to_bgr(self) -> np.ndarray:
        """The frame as an H×W×3 BGR uint8 array (decodes JPEG)."""
        import cv2  # only consumers that need pixels pay for OpenCV

        if self.encoding == "bgr8":
            return self.data
        if self.encoding == "rgb8":
            return self.data[..., ::-1]
        if self.encoding == "mono8":
            return cv2.cvtColor(self.data, cv2.COLOR_GRAY2BGR)
        img = cv2.imdecode(self.data, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("ImageFrame: JPEG data does not decode")
        return img


@register
@dataclass
class AudioChunk(Message):
    """Consecutive audio samples. ``header.stamp_ns`` is the time of the first sample.

    ``samples`` is N×channels (float32 in [-1, 1] or int16). ``gap_samples`` > 0 says that many
    samples were lost right before this chunk (input overflow, dropped block): never hidden.
    """

    SCHEMA: ClassVar[str] = "mmstream/AudioChunk"
    ARRAYS: ClassVar[tuple[str, ...]] = ("samples",)

    sample_rate_hz: int = 16000
    channels: int = 1
    gap_samples: int = 0
    samples: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))

    def validate(self) -> None:
        if self.sample_rate_hz <= 0:
            raise ValueError(f"AudioChunk.sample_rate_hz {self.sample_rate_hz} must be > 0")
        if self.samples.ndim != 2 or self.samples.shape[1] != self.channels:
            raise ValueError(f"AudioChunk.samples shape {self.samples.shape} (expected N×{self.channels})")
        if self.samples.dtype not in (np.float32, np.int16):
            raise ValueError(f"AudioChunk.samples dtype {self.samples.dtype} (expected float32 or int16)")

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_ns(self) -> int:
        return self.num_samples * 1_000_000_000 // self.sample_rate_hz

    @property
    def end_ns(self) -> int:
        """Stamp one sample period after the last sample (the next chunk's expected stamp)."""
        return self.header.stamp_ns + self.duration_ns

    def as_float32(self) -> np.ndarray:
        if self.samples.dtype == np.int16:
            return self.samples.astype(np.float32) / 32768.0
        return self.samples


@register
@dataclass
class TextUtterance(Message):
    """A piece of text that was said or typed between ``start_ns`` and ``end_ns``."""

    SCHEMA: ClassVar[str] = "mmstream/TextUtterance"

    start_ns: int = 0
    end_ns: int = 0
    text: str = ""
    source: str = ""
    language: str = "en"

    def validate(self) -> None:
        if self.end_ns < self.start_ns:
            raise ValueError(f"TextUtterance end_ns {self.end_ns} before start_ns {self.start_ns}")


CLOCK_TOPIC = "/clock"  # where the bag player publishes Clock (as ROS 2 does)


@register
@dataclass
class Clock(Message):
    """Simulated time published by the bag player; ``header.stamp_ns`` is the bag time.

    ``published_seq`` maps each topic the player published to the ``seq`` of its last message
    sent before this tick. A node on sim time applies the tick only after it has received those
    messages, so replay is deterministic whatever the socket scheduling.
    """

    SCHEMA: ClassVar[str] = "mmstream/Clock"

    published_seq: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- synchronizer


@register
@dataclass
class Window(Message):
    """A time-aligned multimodal window [start_ns, end_ns) cut by the synchronizer.

    frames: T×H×W×C uint8 (T evenly spaced slots; ``frame_mask[t]`` False = no frame near slot t)
    frame_stamps_ns: T int64 stamps of the frames used (0 where masked)
    audio: N×channels float32, exactly the samples whose times fall in [start, end)
    audio_mask: N bool, False where a gap was zero-filled
    utterances: text overlapping the window (or ending within the text horizon before it)
    presence / coverage: per modality ("video", "audio", "text")
    audio_chunk_stamps_ns: stamps of the audio chunks used (traceability)
    """

    SCHEMA: ClassVar[str] = "mmstream/Window"
    ARRAYS: ClassVar[tuple[str, ...]] = ("frames", "frame_mask", "frame_stamps_ns", "audio", "audio_mask",
                                         "audio_chunk_stamps_ns")

    start_ns: int = 0
    end_ns: int = 0
    sample_rate_hz: int = 16000
    frame_encoding: str = "bgr8"
    utterances: list[TextUtterance] = field(default_factory=list)
    presence: dict[str, bool] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)
    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))
    frame_mask: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.bool_))
    frame_stamps_ns: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    audio: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    audio_mask: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.bool_))
    audio_chunk_stamps_ns: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def validate(self) -> None:
        t = self.frames.shape[0]
        if self.frames.ndim != 4 or self.frame_mask.shape != (t,) or self.frame_stamps_ns.shape != (t,):
            raise ValueError(f"Window: frames {self.frames.shape} / frame_mask {self.frame_mask.shape} / "
                             f"frame_stamps_ns {self.frame_stamps_ns.shape} disagree (expected T×H×W×C, T, T)")
        if self.audio.ndim != 2 or self.audio_mask.shape != (self.audio.shape[0],):
            raise ValueError(f"Window: audio {self.audio.shape} / audio_mask {self.audio_mask.shape} disagree")
        if self.end_ns <= self.start_ns:
            raise ValueError(f"Window end_ns {self.end_ns} not after start_ns {self.start_ns}")


# --------------------------------------------------------------------------- outputs


@register
@dataclass
class EmotionEstimate(Message):
    """The model's emotion probabilities for one window."""

    SCHEMA: ClassVar[str] = "mmstream/EmotionEstimate"

    window_start_ns: int = 0
    window_end_ns: int = 0
    labels: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    top_label: str = ""
    top_prob: float = 0.0
    presence: dict[str, bool] = field(default_factory=dict)
    contribution: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    latency_ms: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        if len(self.labels) != len(self.probs):
            raise ValueError(f"EmotionEstimate: {len(self.labels)} labels but {len(self.probs)} probs")


@register
@dataclass
class Detections(Message):
    """Boxes (N×4 float32 x1,y1,x2,y2 in pixels of the source frame) and per-window events."""

    SCHEMA: ClassVar[str] = "mmstream/Detections"
    ARRAYS: ClassVar[tuple[str, ...]] = ("boxes", "box_scores")

    window_start_ns: int = 0
    window_end_ns: int = 0
    box_labels: list[str] = field(default_factory=list)
    image_width: int = 0
    image_height: int = 0
    event_labels: list[str] = field(default_factory=list)
    event_scores: list[float] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))

    def validate(self) -> None:
        n = self.boxes.shape[0]
        if self.boxes.shape != (n, 4) or self.box_scores.shape != (n,) or len(self.box_labels) != n:
            raise ValueError(f"Detections: boxes {self.boxes.shape}, scores {self.box_scores.shape}, "
                             f"{len(self.box_labels)} labels disagree (expected N×4, N, N)")
        if len(self.event_labels) != len(self.event_scores):
            raise ValueError("Detections: event_labels and event_scores differ in length")


@register
@dataclass
class NodeStats(Message):
    """Periodic health of one node: per-topic counts, rates, bytes, drops and latency."""

    SCHEMA: ClassVar[str] = "mmstream/NodeStats"

    node: str = ""
    pid: int = 0
    state: str = "running"
    uptime_s: float = 0.0
    cpu_s: float = 0.0
    #: one dict per topic: topic, direction ("pub"/"sub"), type, count, rate_hz, bytes_per_s,
    #: drops, rejected, latency_p50_ms, latency_p99_ms
    topics: list[dict[str, Any]] = field(default_factory=list)
