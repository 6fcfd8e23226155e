"""The ROS 2 type registry (mmstream/bag/convert.py): the .msg files agree with messages.py, and every
row round-trips through CDR with two independent serializers (mcap-ros2-support and rosbags)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bag_helpers import T0, assert_same, rosbags_typestore, sample_messages
from mmstream import messages
from mmstream.bag import convert, schemas
from mmstream.messages import AudioChunk, Clock, Message, TextUtterance

REPO = Path(__file__).resolve().parents[1]
MSG_DIRS = [REPO / "ros" / "mmstream_msgs" / "msg", REPO / "mmstream" / "bag" / "msgs"]
INTS = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
FLOATS = {"float32", "float64"}

#: messages.py fields that a .msg lays out differently than one field of the same name:
#: (class, field) -> {.msg field: .msg type}
RELAID: dict[tuple[str, str], dict[str, str]] = {
    ("AudioChunk", "samples"): {"sample_format": "string", "data": "uint8[]"},
    ("TextUtterance", "header"): {"header": "std_msgs/Header", "seq": "uint32"},  # seq survives nesting in a Window
    ("Window", "frames"): {"frame_count": "uint32", "frame_height": "uint32", "frame_width": "uint32",
                           "frame_channels": "uint32", "frames_data": "uint8[]"},
    ("Window", "audio"): {"audio_samples": "uint32", "audio_channels": "uint32", "audio_data": "uint8[]"},
    ("Window", "audio_mask"): {"audio_mask": "uint8[]"},
    ("Window", "presence"): {"modalities": "string[]", "presence": "bool[]"},
    ("Window", "coverage"): {"modalities": "string[]", "coverage": "float64[]"},
    ("EmotionEstimate", "presence"): {"presence_modalities": "string[]", "presence": "bool[]"},
    ("EmotionEstimate", "contribution"): {"contribution_modalities": "string[]", "contribution": "float64[]"},
    ("EmotionEstimate", "latency_ms"): {"latency_stages": "string[]", "latency_ms": "float64[]"},
    ("Detections", "boxes"): {"boxes": "float32[]"},  # N×4, flattened
}


def msg_fields(path: Path) -> dict[str, str]:
    """``name -> type`` of a .msg file, comments and constants left out."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line:
            continue
        ftype, name = line.split()[:2]
        assert name not in out, f"{path}: field {name} twice"
        out[name] = ftype
    return out


def allowed_msg_types(cls: type[Message], name: str) -> set[str]:
    """The .msg types a messages.py field may have when it keeps its name."""
    if name == "header":
        return {"std_msgs/Header"}
    hint = typing.get_type_hints(cls)[name]
    if hint is np.ndarray:  # the dtype comes from the field's default
        default = next(f for f in dataclasses.fields(cls) if f.name == name).default_factory()  # type: ignore[misc]
        kind = {"b": "bool", "u": f"uint{default.itemsize * 8}", "i": f"int{default.itemsize * 8}",
                "f": f"float{default.itemsize * 8}"}[default.dtype.kind]
        return {f"{kind}[]"}
    if typing.get_origin(hint) is list:
        (arg,) = typing.get_args(hint)
        if isinstance(arg, type) and issubclass(arg, Message):
            return {f"{arg.__name__}[]"}
        if typing.get_origin(arg) is dict:  # NodeStats.topics: one TopicStats each
            return {"TopicStats[]"}
        return {f"{t}[]" for t in allowed_scalar(arg)}
    return allowed_scalar(hint)


def allowed_scalar(hint: Any) -> set[str]:
    if hint is bool:
        return {"bool"}
    if hint is int:
        return INTS
    if hint is float:
        return FLOATS
    if hint is str:
        return {"string"}
    raise AssertionError(f"no .msg type for {hint!r}")


def test_both_msg_folders_hold_the_same_definitions() -> None:
    names = [sorted(p.name for p in d.glob("*.msg")) for d in MSG_DIRS]
    assert names[0] and names[0] == names[1]
    for name in names[0]:
        assert (MSG_DIRS[0] / name).read_text() == (MSG_DIRS[1] / name).read_text(), name


@pytest.mark.parametrize("msg_dir", MSG_DIRS, ids=lambda d: str(d.relative_to(REPO)))
def test_msg_files_match_messages_py(msg_dir: Path) -> None:
    """Every field of every class has its .msg field(s) of a fitting type, and no .msg field is left over."""
    files = {p.stem: p for p in msg_dir.glob("*.msg")}
    own_rows = {name.rsplit("/", 1)[1]: row for name, row in convert.ROS_TYPES.items() if name.startswith(convert.PKG)}
    assert set(files) - {"TopicStats"} == set(own_rows), "a .msg file without a registry row, or the reverse"
    for stem, row in own_rows.items():
        cls = row.cls
        assert cls.__name__ == stem and messages.REGISTRY[cls.SCHEMA] is cls
        fields = msg_fields(files[stem])
        claimed: set[str] = set()
        for f in dataclasses.fields(cls):
            layout = RELAID.get((stem, f.name))
            if layout is None:
                assert f.name in fields, f"{files[stem]}: no field {f.name!r} for {stem}.{f.name}"
                assert fields[f.name] in allowed_msg_types(cls, f.name), \
                    f"{files[stem]}: {f.name} is {fields[f.name]}, expected one of {allowed_msg_types(cls, f.name)}"
                claimed.add(f.name)
                continue
            for name, ftype in layout.items():
                assert fields.get(name) == ftype, f"{files[stem]}: {name} is {fields.get(name)}, expected {ftype}"
            claimed |= set(layout)
        assert set(fields) == claimed, f"{files[stem]}: fields {sorted(set(fields) - claimed)} belong to no field"
    # TopicStats is NodeStats.topics' dict, whose keys and defaults convert.py lists
    topic_stats = msg_fields(files["TopicStats"])
    assert list(topic_stats) == list(convert._TOPIC_STATS_DEFAULTS)
    for key, default in convert._TOPIC_STATS_DEFAULTS.items():
        assert topic_stats[key] in allowed_scalar(type(default)), key


def test_registry_rows() -> None:
    assert convert.class_for("sensor_msgs/Image") is messages.ImageFrame  # either spelling
    assert convert.class_for("sensor_msgs/msg/CompressedImage") is messages.ImageFrame
    assert convert.class_for("std_msgs/msg/String") is TextUtterance
    assert convert.class_for("geometry_msgs/msg/Twist") is None and not convert.is_supported("geometry_msgs/Twist")
    assert [r.name for r in convert.rows_for(messages.ImageFrame)] == [convert.IMAGE, convert.COMPRESSED_IMAGE]
    assert convert.rows_for(messages.Header) == ()  # type: ignore[arg-type]
    # every row we write has a definition the writer can put into a bag
    for row in convert.ROWS:
        if row.to_ros is not None:
            assert schemas.schema_text(row.name)
    # every registered message class but none is written as some ROS type
    assert {r.cls for r in convert.ROWS if r.to_ros} == set(messages.REGISTRY.values())
    with pytest.raises(convert.ConvertError, match="unsupported message type 'x/msg/Y'"):
        convert.from_ros("x/msg/Y", {})
    with pytest.raises(convert.ConvertError, match="no ROS 2 type for Message"):
        convert.to_ros(Message())
    with pytest.raises(convert.ConvertError, match="mmstream_msgs/msg/TextUtterance: KeyError"):
        convert.from_ros("mmstream_msgs/TextUtterance", {"header": {"stamp": {"sec": 0, "nanosec": 0}}})


# --------------------------------------------------------------------------- CDR round trips


def _mcap_codec(ros_type: str, text: str | None = None) -> tuple[Any, Any]:
    """(encode, decode) for ``ros_type`` from mcap-ros2-support."""
    from mcap_ros2._dynamic import generate_dynamic, serialize_dynamic

    text = text if text is not None else schemas.schema_text(ros_type)
    return serialize_dynamic(ros_type, text)[ros_type], generate_dynamic(ros_type, text)[ros_type]


def test_every_written_row_round_trips_through_cdr() -> None:
    """Ours -> dict -> CDR (mcap-ros2-support, as the recorder writes) -> rosbags decodes -> ours, and the same
    CDR decoded by mcap-ros2-support (as the player reads) -> ours: both equal to what was sent."""
    ts = rosbags_typestore()
    covered = set()
    for topic, sent in sample_messages():
        ros_type, d = convert.to_ros(sent)
        covered.add(ros_type)
        encode, decode = _mcap_codec(ros_type)
        raw = bytes(encode(d))
        assert raw[:4] == b"\x00\x01\x00\x00"  # plain little-endian CDR
        for obj in (ts.deserialize_cdr(raw, ros_type), decode(raw)):
            back = convert.from_ros(ros_type, obj, seq=sent.header.seq)
            if isinstance(sent, Clock):  # rosgraph_msgs/Clock carries the stamp only
                assert isinstance(back, Clock) and back.header.stamp_ns == sent.header.stamp_ns
                continue
            assert_same(sent, back)
    assert covered == {r.name for r in convert.ROWS if r.to_ros is not None}


#: definitions of other people's types we read (as their packages define them)
_OTHER_DEFS = {
    "audio_common_msgs/msg/AudioData": "uint8[] data\n",
    "audio_common_msgs/msg/AudioDataStamped": "std_msgs/Header header\naudio_common_msgs/AudioData audio\n",
    "foxglove_msgs/msg/RawAudio": "builtin_interfaces/Time timestamp\nuint8[] data\nstring format\n"
                                  "uint32 sample_rate\nuint32 number_of_channels\n",
}
#: the ROS 2 audio_common's types (its AudioData differs from the classic one of the same name)
_AUDIO_COMMON_2 = {
    "audio_common_msgs/msg/AudioData": "float32[] float32_data\nint32[] int32_data\nint32[] int24_data\n"
                                       "int16[] int16_data\nint8[] int8_data\nuint8[] uint8_data\n",
    "audio_common_msgs/msg/AudioInfo": "int32 format\nint32 channels\nint32 rate\nint32 chunk\n",
    "audio_common_msgs/msg/Audio": "audio_common_msgs/AudioData audio_data\naudio_common_msgs/AudioInfo info\n",
    "audio_common_msgs/msg/AudioStamped": "std_msgs/Header header\naudio_common_msgs/Audio audio\n",
}


def _schema(name: str, defs: dict[str, str], deps: list[str]) -> str:
    """A ros2msg schema text: the definition, then each dependency after its separator."""
    known = {**schemas.STANDARD, **defs}
    parts = [known[name]] + [f"{'=' * 80}\nMSG: {d.replace('/msg/', '/')}\n{known[d]}" for d in deps]
    return "\n".join(parts)


def _typestore(defs: dict[str, str]) -> Any:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name, text in defs.items():
        types.update(get_types_from_msg(text, name))
    ts.register(types)
    return ts


def test_every_read_only_row_round_trips_through_cdr() -> None:
    """Other people's types as a robot records them: rosbags builds and serializes, then both rosbags and
    mcap-ros2-support decode, and either decoded form converts to the same message."""
    ts, ts2 = _typestore(_OTHER_DEFS), _typestore(_AUDIO_COMMON_2)
    T, T2 = ts.types, ts2.types
    time_deps = ["builtin_interfaces/msg/Time"]
    header_deps = ["std_msgs/msg/Header", "builtin_interfaces/msg/Time"]

    def header(types: Any, t_ns: int) -> Any:
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9,
                                                                                      nanosec=t_ns % 10**9),
                                            frame_id="robot")

    s16 = np.arange(-160, 160, dtype="<i2")
    stereo = np.stack([s16, -s16], axis=1)
    empty = {"float32_data": np.zeros(0, np.float32), "int32_data": np.zeros(0, np.int32),
             "int24_data": np.zeros(0, np.int32), "int16_data": np.zeros(0, np.int16),
             "int8_data": np.zeros(0, np.int8), "uint8_data": np.zeros(0, np.uint8)}
    stamped2 = T2["audio_common_msgs/msg/AudioStamped"](
        header=header(T2, T0 + 3), audio=T2["audio_common_msgs/msg/Audio"](
            audio_data=T2["audio_common_msgs/msg/AudioData"](**{**empty, "int16_data": stereo.reshape(-1)}),
            info=T2["audio_common_msgs/msg/AudioInfo"](format=8, channels=2, rate=48000, chunk=0)))
    mono = AudioChunk(messages.Header(T0 + 2, 5), 16000, 1, 0, s16.reshape(-1, 1))
    cases: list[tuple[str, Any, Any, str, Message]] = [
        (convert.STRING, ts, T["std_msgs/msg/String"](data="hello robot"), _schema(convert.STRING, {}, []),
         TextUtterance(messages.Header(T0, 5), T0, T0, "hello robot", "std_msgs/String")),
        (convert.AUDIO_DATA, ts, T[convert.AUDIO_DATA](data=s16.view(np.uint8)),
         _schema(convert.AUDIO_DATA, _OTHER_DEFS, []), dataclasses.replace(mono, header=messages.Header(T0, 5))),
        (convert.AUDIO_DATA_STAMPED, ts,
         T[convert.AUDIO_DATA_STAMPED](header=header(T, T0 + 2), audio=T[convert.AUDIO_DATA](data=s16.view(np.uint8))),
         _schema(convert.AUDIO_DATA_STAMPED, _OTHER_DEFS, header_deps + [convert.AUDIO_DATA]), mono),
        (convert.AUDIO_STAMPED, ts2, stamped2,
         _schema(convert.AUDIO_STAMPED, _AUDIO_COMMON_2, header_deps + ["audio_common_msgs/msg/Audio",
                                                                        "audio_common_msgs/msg/AudioData",
                                                                        "audio_common_msgs/msg/AudioInfo"]),
         AudioChunk(messages.Header(T0 + 3, 5, "robot"), 48000, 2, 0, stereo)),
        (convert.FOXGLOVE_RAW_AUDIO, ts,
         T[convert.FOXGLOVE_RAW_AUDIO](timestamp=T["builtin_interfaces/msg/Time"](sec=T0 // 10**9, nanosec=7),
                                       data=stereo.reshape(-1).view(np.uint8), format="pcm-s16", sample_rate=44100,
                                       number_of_channels=2),
         _schema(convert.FOXGLOVE_RAW_AUDIO, _OTHER_DEFS, time_deps),
         AudioChunk(messages.Header(T0 // 10**9 * 10**9 + 7, 5), 44100, 2, 0, stereo)),
    ]
    for ros_type, store, obj, text, expected in cases:
        raw = bytes(store.serialize_cdr(obj, ros_type))
        _, decode = _mcap_codec(ros_type, text)
        for decoded in (store.deserialize_cdr(raw, ros_type), decode(raw)):
            back = convert.from_ros(ros_type, decoded, seq=5, log_time_ns=T0)
            assert_same(expected, back)
    read_only = {r.name for r in convert.ROWS if r.to_ros is None}
    assert {c[0] for c in cases} == read_only


def test_header_stamps_survive_the_ros_split() -> None:
    """ROS 2 stamps are (sec, nanosec): every integer ns stamp, including ones before the epoch, comes back."""
    for stamp in (0, 1, T0 + 999_999_999, -1, -(10**9) - 5):
        ros = convert.stamp_to_ros(stamp)
        assert 0 <= ros["nanosec"] < 10**9 and convert.stamp_from_ros(ros) == stamp
