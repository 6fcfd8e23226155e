"""Wire format: round trips of every message type (property-based) and hostile input."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmstream import wire
from mmstream.errors import WireError
from mmstream.messages import (REGISTRY, AudioChunk, Clock, Detections, EmotionEstimate, Header, ImageFrame,
                               NodeStats, TextUtterance, Window)

ints = st.integers(min_value=0, max_value=2**62)
text = st.text(max_size=40)
headers = st.builds(Header, stamp_ns=ints, seq=ints, frame_id=text)


@st.composite
def image_frames(draw: st.DrawFn) -> ImageFrame:
    enc = draw(st.sampled_from(["bgr8", "rgb8", "mono8", "jpeg"]))
    if enc == "jpeg":
        data = np.frombuffer(draw(st.binary(min_size=1, max_size=200)), np.uint8)
        return ImageFrame(header=draw(headers), encoding=enc, height=8, width=8, data=data)
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    c = 1 if enc == "mono8" else 3
    data = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 256, (h, w, c), dtype=np.uint8)
    return ImageFrame(header=draw(headers), encoding=enc, height=h, width=w, data=data)


@st.composite
def audio_chunks(draw: st.DrawFn) -> AudioChunk:
    ch, n = draw(st.integers(1, 4)), draw(st.integers(0, 400))
    dtype = draw(st.sampled_from([np.float32, np.int16]))
    samples = (np.random.default_rng(n).standard_normal((n, ch)) * 1000).astype(dtype)
    return AudioChunk(header=draw(headers), sample_rate_hz=draw(st.integers(1, 96000)), channels=ch,
                      gap_samples=draw(st.integers(0, 1000)), samples=samples)


utterances = st.builds(TextUtterance, header=headers, start_ns=st.integers(0, 10**12),
                       end_ns=st.integers(10**12, 2 * 10**12), text=text, source=text, language=text)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    t, n = draw(st.integers(0, 4)), draw(st.integers(0, 300))
    start = draw(st.integers(0, 10**15))
    return Window(header=draw(headers), start_ns=start, end_ns=start + draw(st.integers(1, 10**10)),
                  utterances=draw(st.lists(utterances, max_size=3)),
                  presence={"video": t > 0, "audio": n > 0, "text": draw(st.booleans())},
                  coverage={"video": 1.0, "audio": 0.5, "text": 0.0},
                  frames=np.zeros((t, 4, 6, 3), np.uint8), frame_mask=np.ones(t, bool),
                  frame_stamps_ns=np.arange(t, dtype=np.int64), audio=np.zeros((n, 1), np.float32),
                  audio_mask=np.ones(n, bool), audio_chunk_stamps_ns=np.arange(3, dtype=np.int64))


@st.composite
def emotions(draw: st.DrawFn) -> EmotionEstimate:
    labels = draw(st.lists(text, min_size=1, max_size=7))
    probs = draw(st.lists(st.floats(0, 1), min_size=len(labels), max_size=len(labels)))
    return EmotionEstimate(header=draw(headers), window_start_ns=1, window_end_ns=2, labels=labels, probs=probs,
                           top_label=labels[0], top_prob=probs[0], presence={"video": True},
                           contribution={"video": 0.5}, backend="onnxruntime", latency_ms={"total": 1.5})


@st.composite
def detections(draw: st.DrawFn) -> Detections:
    n = draw(st.integers(0, 5))
    return Detections(header=draw(headers), box_labels=["face"] * n, boxes=np.ones((n, 4), np.float32),
                      box_scores=np.ones(n, np.float32), image_width=640, image_height=480,
                      event_labels=["speech_present"], event_scores=[0.5])


any_message = st.one_of(image_frames(), audio_chunks(), utterances, windows(), emotions(), detections(),
                        st.builds(NodeStats, header=headers, node=text, topics=st.just([{"topic": "/a", "count": 3}])),
                        st.builds(Clock, header=headers, published_seq=st.dictionaries(text, ints, max_size=3)))


def _roundtrip(msg):  # noqa: ANN001, ANN202
    frames = wire.encode("/some/topic", msg)
    # what a socket delivers: independent byte buffers
    return wire.decode([bytes(memoryview(f)) if not isinstance(f, bytes) else f for f in frames])


@given(any_message)
def test_every_message_type_round_trips(msg) -> None:  # noqa: ANN001
    topic, out = _roundtrip(msg)
    assert topic == "/some/topic"
    assert type(out) is type(msg)
    assert out.header == msg.header
    assert out.scalar_fields() == msg.scalar_fields()
    for a, b in zip(out.array_fields(), msg.array_fields()):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def test_all_registered_types_are_covered() -> None:
    assert set(REGISTRY) == {c.SCHEMA for c in (ImageFrame, AudioChunk, TextUtterance, Window, EmotionEstimate,
                                                Detections, NodeStats, Clock)}


def test_arrays_are_sent_without_copy() -> None:
    data = np.zeros((480, 640, 3), np.uint8)
    frames = wire.encode("/cam", ImageFrame(height=480, width=640, data=data))
    assert frames[2] is data  # the array object itself goes to zmq (zero-copy send)


def test_decode_gives_views_not_copies() -> None:
    frames = wire.encode("/cam", ImageFrame(height=4, width=4, data=np.zeros((4, 4, 3), np.uint8)))
    buf = bytearray(memoryview(frames[2]))
    _, msg = wire.decode([frames[0], frames[1], buf])
    buf[0] = 7
    assert msg.data[0, 0, 0] == 7


def _header(**over):  # noqa: ANN003, ANN202
    h = {"s": "mmstream/TextUtterance", "v": 1, "t": 1, "q": 1, "f": "", "a": [],
         "d": {"start_ns": 0, "end_ns": 1, "text": "x", "source": "", "language": "en"}}
    h.update(over)
    return msgpack.packb(h)


@pytest.mark.parametrize("frames,reason", [
    ([b"/t"], "truncated"),
    ([b"/t", b"\xc1\xc1garbage"], "bad-header"),
    ([b"/t", msgpack.packb([1, 2])], "bad-header"),
    ([b"/t", _header(s="mmstream/Nope")], "unknown-schema"),
    ([b"/t", _header(v=99)], "wrong-version"),
    ([b"/t", _header(a=[["|u1", [4]]])], "truncated"),
    ([b"/t", _header(d={"text": "x"})], "bad-fields"),
    ([b"\xff\xfe", _header()], "bad-topic"),
])
def test_malformed_frames_are_rejected_with_a_reason(frames, reason) -> None:  # noqa: ANN001
    with pytest.raises(WireError) as e:
        wire.decode(frames)
    assert e.value.reason == reason


def test_truncated_payload_names_expected_size() -> None:
    frames = wire.encode("/cam", ImageFrame(height=4, width=4, data=np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(WireError, match="expected 48"):
        wire.decode([frames[0], frames[1], b"\x00" * 47])


def test_oversized_messages_are_refused_both_ways() -> None:
    msg = ImageFrame(height=100, width=100, data=np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(WireError, match="oversized"):
        wire.encode("/cam", msg, max_message_bytes=10_000)
    frames = wire.encode("/cam", msg)
    with pytest.raises(WireError) as e:
        wire.decode([bytes(memoryview(f)) if not isinstance(f, bytes) else f for f in frames],
                    max_message_bytes=10_000)
    assert e.value.reason == "oversized"


def test_inconsistent_image_is_rejected() -> None:
    frames = wire.encode("/cam", ImageFrame(height=4, width=4, data=np.zeros((4, 4, 3), np.uint8)))
    header = msgpack.unpackb(frames[1])
    header["d"]["height"] = 5
    with pytest.raises(WireError, match="does not match"):
        wire.decode([frames[0], msgpack.packb(header), bytes(memoryview(frames[2]))])


@given(st.lists(st.binary(max_size=64), min_size=0, max_size=5))
def test_random_bytes_never_crash_the_decoder(frames: list[bytes]) -> None:
    try:
        wire.decode(frames)
    except WireError:
        pass


def test_no_pickle_anywhere_on_the_wire() -> None:
    import pathlib

    for path in pathlib.Path(wire.__file__).parent.rglob("*.py"):
        src = path.read_text()
        assert "import pickle" not in src and "pickle.loads" not in src, path
