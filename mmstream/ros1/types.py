"""The ROS 1 types the bridge speaks, and the step between ROS 1 message objects and mmstream.

Coming in, a ROS 1 message is turned into the plain ROS 2-shaped view that
:mod:`mmstream.bag.convert` decodes (a ROS 1 ``time`` ``{secs, nsecs}`` becomes ``{sec, nanosec}``;
every other field has the same name in both), so images, audio and text are decoded by the same
functions as bags and the ROS 2 bridge. Going out, the dicts ``convert`` writes are filled into
ROS 1 message objects.

Types Debian packages (``std_msgs``, ``sensor_msgs``, ``geometry_msgs``) come from their Python
modules; the others (``audio_common_msgs``, ``vision_msgs``, ``mmstream_msgs``) are generated at
start by genpy from their ROS 1 definitions below (what ``rosbag`` does for types it has no code
for), so their MD5 sums equal what ``catkin`` computes from the same ``.msg`` files on a robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from mmstream.bag import convert
from mmstream.messages import Detections, EmotionEstimate, ImageFrame

IMAGE = "sensor_msgs/Image"
COMPRESSED_IMAGE = "sensor_msgs/CompressedImage"
STRING = "std_msgs/String"
AUDIO_DATA = "audio_common_msgs/AudioData"
AUDIO_DATA_STAMPED = "audio_common_msgs/AudioDataStamped"
AUDIO_INFO = "audio_common_msgs/AudioInfo"
EMOTION = "mmstream_msgs/EmotionEstimate"
DETECTION_2D_ARRAY = "vision_msgs/Detection2DArray"

#: what each input of the bridge may be: the ROS 1 types it subscribes to
INBOUND_TYPES: dict[str, tuple[str, ...]] = {
    "image": (IMAGE, COMPRESSED_IMAGE),
    "audio": (AUDIO_DATA, AUDIO_DATA_STAMPED),
    "text": (STRING,),
}

_SEP = "=" * 80 + "\n"

#: ROS 1 definitions of the types Debian does not package (audio_common and vision_msgs as on
#: Noetic); mmstream_msgs comes from the package's own .msg files (valid ROS 1 definitions too)
_DEFINITIONS: dict[str, str] = {
    AUDIO_DATA: "uint8[] data\n",
    AUDIO_DATA_STAMPED: "Header header\naudio_common_msgs/AudioData audio\n",
    AUDIO_INFO: ("uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n"
                 "string coding_format\n"),
    "vision_msgs/ObjectHypothesisWithPose": "int64 id\nfloat64 score\ngeometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/BoundingBox2D": "geometry_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/Detection2D": ("Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                "vision_msgs/BoundingBox2D bbox\nsensor_msgs/Image source_img\n"),
    DETECTION_2D_ARRAY: "Header header\nvision_msgs/Detection2D[] detections\n",
}
#: the types each generated one refers to (in the order genpy needs them after the main text)
_DEPENDS: dict[str, tuple[str, ...]] = {
    AUDIO_DATA_STAMPED: ("std_msgs/Header", AUDIO_DATA),
    EMOTION: ("std_msgs/Header",),
    DETECTION_2D_ARRAY: ("std_msgs/Header", "vision_msgs/Detection2D", "vision_msgs/ObjectHypothesisWithPose",
                         "geometry_msgs/PoseWithCovariance", "vision_msgs/BoundingBox2D", "geometry_msgs/Pose2D",
                         "sensor_msgs/Image"),
}


def _mmstream_definition(name: str) -> str:
    text = resources.files("mmstream.bag").joinpath("msgs", name.split("/")[-1] + ".msg").read_text()
    return text


def _installed(name: str) -> Any | None:
    import roslib.message

    return roslib.message.get_message_class(name)


def _definition_text(name: str) -> str:
    if name in _DEFINITIONS:
        return _DEFINITIONS[name]
    if name.startswith("mmstream_msgs/"):
        return _mmstream_definition(name)
    cls = _installed(name)
    if cls is None:
        raise KeyError(name)
    return cls._full_text  # its own text, then the blocks of what it uses


@dataclass
class Ros1Types:
    """ROS 1 message classes by name: installed ones imported, the rest generated once by genpy."""

    def __post_init__(self) -> None:
        self._classes: dict[str, Any] = {}

    def cls(self, name: str) -> Any:
        if name in self._classes:
            return self._classes[name]
        cls = None if name in _DEFINITIONS or name.startswith("mmstream_msgs/") else _installed(name)
        if cls is None:
            import genpy.dynamic

            blocks = [_definition_text(name)]
            blocks += [f"MSG: {dep}\n{_definition_text(dep)}" for dep in _DEPENDS.get(name, ())]
            generated = genpy.dynamic.generate_dynamic(name, _SEP.join(blocks))
            self._classes.update({k: v for k, v in generated.items() if k not in self._classes})
            cls = generated[name]
        self._classes[name] = cls
        return cls


# --------------------------------------------------------------------------- ROS 1 -> convert's view


def plain(value: Any) -> Any:
    """A ROS 1 message as nested dicts with ROS 2 names (time -> sec/nanosec); bytes stay bytes."""
    import genpy

    if isinstance(value, genpy.TVal):
        return {"sec": int(value.secs), "nanosec": int(value.nsecs)}
    if isinstance(value, genpy.Message):
        return {slot: plain(getattr(value, slot)) for slot in value.__slots__}
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (genpy.Message, genpy.TVal)):
        return [plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- mmstream -> ROS 1


def _header(types: Ros1Types, header: Any) -> Any:
    import genpy

    sec, nsec = divmod(int(header.stamp_ns), 1_000_000_000)
    return types.cls("std_msgs/Header")(seq=int(header.seq) & 0xFFFFFFFF, stamp=genpy.Time(sec, nsec),
                                        frame_id=header.frame_id)


def fill(types: Ros1Types, name: str, fields: dict[str, Any], header: Any) -> Any:
    """A ROS 1 ``name`` from a dict written by ``convert`` (its header replaced by a ROS 1 one)."""
    values = {k: v for k, v in fields.items() if k != "header"}
    return types.cls(name)(header=_header(types, header), **values)


def emotion_to_ros1(types: Ros1Types, msg: EmotionEstimate) -> Any:
    return fill(types, EMOTION, convert.emotion_to_ros(msg), msg.header)


def label_to_ros1(types: Ros1Types, msg: EmotionEstimate) -> Any:
    return types.cls(STRING)(data=msg.top_label)


def image_to_ros1(types: Ros1Types, msg: ImageFrame) -> Any:
    name, fields = convert.to_ros(msg)
    return fill(types, IMAGE if name == convert.IMAGE else COMPRESSED_IMAGE, fields, msg.header)


def detections_to_ros1(types: Ros1Types, msg: Detections, label_ids: dict[str, int]) -> Any:
    """vision_msgs/Detection2DArray: a Detection2D per box, its label as an id (``label_ids`` grows)."""
    header = _header(types, msg.header)
    det_cls, hyp_cls = types.cls("vision_msgs/Detection2D"), types.cls("vision_msgs/ObjectHypothesisWithPose")
    box_cls, pose_cls = types.cls("vision_msgs/BoundingBox2D"), types.cls("geometry_msgs/Pose2D")
    detections = []
    for (x1, y1, x2, y2), score, label in zip(msg.boxes.tolist(), msg.box_scores.tolist(), msg.box_labels):
        class_id = label_ids.setdefault(label, len(label_ids))
        bbox = box_cls(center=pose_cls(x=(x1 + x2) / 2, y=(y1 + y2) / 2, theta=0.0), size_x=x2 - x1, size_y=y2 - y1)
        detections.append(det_cls(header=header, results=[hyp_cls(id=class_id, score=float(score))], bbox=bbox))
    return types.cls(DETECTION_2D_ARRAY)(header=header, detections=detections)
