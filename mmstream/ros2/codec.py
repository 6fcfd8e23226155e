"""mmstream messages <-> ROS 2 messages for the live bridge, on top of the bag code's registry.

:mod:`mmstream.bag.convert` holds the one table of ROS 2 types (``ROS_TYPES``); this module adds
what only a live robot needs: camera encodings bags of ours never hold (YUV 4:2:2 and Bayer,
converted to bgr8 with OpenCV), outputs for consumers without our package (the top emotion label
as ``std_msgs/String``, detections as ``vision_msgs/Detection2DArray``), and a strict size check.
Bad input raises :class:`InputRejected` with a short ``kind`` (counted and logged once per kind).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmstream.bag import convert
from mmstream.bag.convert import ConvertError, Incoming
from mmstream.messages import AudioChunk, Clock, Detections, EmotionEstimate, ImageFrame, Message, TextUtterance

STRING = convert.STRING
IMAGE = convert.IMAGE
COMPRESSED_IMAGE = convert.COMPRESSED_IMAGE
DETECTION_2D_ARRAY = "vision_msgs/msg/Detection2DArray"
EMOTION = convert.PKG + "EmotionEstimate"


class InputRejected(ConvertError):
    """A received ROS message we cannot use: ``kind`` names the rule it broke (``encoding``, ``size``,
    ``audio_format``, ``cdr``), the text says what was expected."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


# --------------------------------------------------------------------------- inbound

#: camera encodings converted to bgr8 with OpenCV: encoding -> (cv2 conversion name, bytes per pixel)
#: (ROS ``yuv422`` is UYVY; Bayer names follow cv_bridge: ROS rggb = OpenCV "BayerBG")
CV_ENCODINGS: dict[str, tuple[str, int]] = {
    "yuv422": ("COLOR_YUV2BGR_UYVY", 2), "uyvy": ("COLOR_YUV2BGR_UYVY", 2),
    "yuv422_yuy2": ("COLOR_YUV2BGR_YUY2", 2), "yuyv": ("COLOR_YUV2BGR_YUY2", 2),
    "bayer_rggb8": ("COLOR_BayerBG2BGR", 1), "bayer_bggr8": ("COLOR_BayerRG2BGR", 1),
    "bayer_gbrg8": ("COLOR_BayerGR2BGR", 1), "bayer_grbg8": ("COLOR_BayerGB2BGR", 1),
}

#: Image encodings the bridge takes in
IMAGE_ENCODINGS = tuple(sorted({*convert.IMAGE_ENCODINGS, *CV_ENCODINGS}))


def image_from_ros(ros: Any, inc: Incoming) -> ImageFrame:
    """sensor_msgs/Image: every encoding of :data:`IMAGE_ENCODINGS`; data must be exactly step × height."""
    encoding = str(ros.encoding)
    height, width, step, data = int(ros.height), int(ros.width), int(ros.step), ros.data
    n = len(data)
    if encoding not in IMAGE_ENCODINGS:
        raise InputRejected("encoding", f"Image encoding {encoding!r} is not supported (supported: "
                                        f"{list(IMAGE_ENCODINGS)})")
    if encoding in CV_ENCODINGS:
        conv, bpp = CV_ENCODINGS[encoding]
    else:
        kind, ch = convert.IMAGE_ENCODINGS[encoding]
        bpp = ch * (2 if kind == "u2" else 1)
    if height <= 0 or width <= 0 or step < width * bpp or n != step * height:
        raise InputRejected("size", f"Image {encoding} {width}x{height}: step {step} and {n} data bytes "
                                    f"(expected step >= {width * bpp} and data = step x height = {step * height})")
    if encoding not in CV_ENCODINGS:
        return convert.image_from_ros(ros, inc)
    import cv2

    rows = np.frombuffer(data, np.uint8).reshape(height, step)[:, :width * bpp]
    src = np.ascontiguousarray(rows).reshape(height, width, bpp) if bpp > 1 else np.ascontiguousarray(rows)
    bgr = cv2.cvtColor(src, getattr(cv2, conv))
    return ImageFrame(header=convert._header_from_ros(ros.header, inc.seq), encoding="bgr8", height=height,
                      width=width, data=bgr)


def _classify(exc: ConvertError) -> InputRejected:
    text = str(exc)
    low = text.lower()
    kind = "audio_format" if ("audio" in low or "sample format" in low or "pcm" in low) else \
        "encoding" if ("format" in low or "encoding" in low) else "size"
    return InputRejected(kind, text)


def from_ros(ros_type: str, ros: Any, inc: Incoming) -> Message:
    """A decoded ROS message -> an mmstream message; :class:`InputRejected` if it breaks a rule."""
    try:
        if ros_type == IMAGE:
            return image_from_ros(ros, inc)
        row = convert.row_for(ros_type)
        assert row is not None, ros_type  # routes are checked against the table at start
        return row.from_ros(ros, inc)
    except InputRejected:
        raise
    except ConvertError as exc:
        raise _classify(exc) from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputRejected("fields", f"{ros_type}: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- outbound


def label_to_ros(msg: EmotionEstimate) -> dict[str, Any]:
    """The top emotion label as std_msgs/String, for consumers without mmstream_msgs."""
    return {"data": msg.top_label}


def text_to_string(msg: TextUtterance) -> dict[str, Any]:
    return {"data": msg.text}


def detections_to_ros(msg: Detections) -> dict[str, Any]:
    """vision_msgs/Detection2DArray: one Detection2D per box (x1,y1,x2,y2 -> center and size), its
    label and score as the one hypothesis; per-window events have no place in this type (see docs)."""
    header = convert._header_to_ros(msg.header)
    boxes = np.asarray(msg.boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(msg.box_scores, np.float64).reshape(-1)
    identity_pose = {"pose": {"position": {"x": 0.0, "y": 0.0, "z": 0.0},
                              "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}},
                     "covariance": [0.0] * 36}
    dets = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        label = msg.box_labels[i] if i < len(msg.box_labels) else ""
        dets.append({
            "header": header,
            "results": [{"hypothesis": {"class_id": label, "score": float(scores[i]) if i < scores.size else 0.0},
                         "pose": identity_pose}],
            "bbox": {"center": {"position": {"x": float(x1 + x2) / 2, "y": float(y1 + y2) / 2}, "theta": 0.0},
                     "size_x": float(x2 - x1), "size_y": float(y2 - y1)},
            "id": str(i),
        })
    return {"header": header, "detections": dets}


def detections_from_ros(ros: Any, inc: Incoming) -> Detections:
    """vision_msgs/Detection2DArray -> Detections (what a peer of ours reads back; image size unknown: 0)."""
    boxes, scores, labels = [], [], []
    for d in ros.detections:
        c, sx, sy = d.bbox.center.position, float(d.bbox.size_x), float(d.bbox.size_y)
        boxes.append([c.x - sx / 2, c.y - sy / 2, c.x + sx / 2, c.y + sy / 2])
        hyp = d.results[0].hypothesis if d.results else None
        labels.append(str(hyp.class_id) if hyp else "")
        scores.append(float(hyp.score) if hyp else 0.0)
    return Detections(header=convert._header_from_ros(ros.header, inc.seq),
                      boxes=np.array(boxes, np.float32).reshape(-1, 4), box_scores=np.array(scores, np.float32),
                      box_labels=labels)


@dataclass(frozen=True)
class Outbound:
    """One way to send an mmstream class as a ROS 2 type."""

    cls: type[Message]
    ros_type: str
    to_ros: Callable[[Any], dict[str, Any]]


def _registry_out(name: str) -> Outbound:
    row = convert.ROS_TYPES[name]
    assert row.to_ros is not None
    return Outbound(row.cls, name, row.to_ros)


#: what the bridge publishes to ROS: (mmstream class, ROS type) -> converter
OUTBOUND: dict[tuple[type[Message], str], Outbound] = {(o.cls, o.ros_type): o for o in (
    _registry_out(EMOTION),
    Outbound(EmotionEstimate, STRING, label_to_ros),
    Outbound(Detections, DETECTION_2D_ARRAY, detections_to_ros),
    _registry_out(convert.PKG + "Detections"),
    Outbound(ImageFrame, IMAGE, convert.image_to_ros),
    Outbound(ImageFrame, COMPRESSED_IMAGE, convert.compressed_image_to_ros),
    Outbound(TextUtterance, STRING, text_to_string),
    _registry_out(convert.PKG + "TextUtterance"),
    _registry_out(convert.PKG + "AudioChunk"),
)}

#: what the bridge takes in from ROS: ROS type -> mmstream class (converters: :func:`from_ros`)
INBOUND: dict[str, type[Message]] = {
    IMAGE: ImageFrame, COMPRESSED_IMAGE: ImageFrame,
    convert.AUDIO_DATA_STAMPED: AudioChunk, convert.AUDIO_STAMPED: AudioChunk, convert.AUDIO_DATA: AudioChunk,
    convert.PKG + "AudioChunk": AudioChunk,
    STRING: TextUtterance, convert.PKG + "TextUtterance": TextUtterance,
    convert.CLOCK: Clock,
}

#: outbound type names a consumer may give for a class (``emotion`` topic -> EmotionEstimate, ...)
OUT_CLASSES: dict[str, type[Message]] = {"EmotionEstimate": EmotionEstimate, "Detections": Detections,
                                         "ImageFrame": ImageFrame, "TextUtterance": TextUtterance,
                                         "AudioChunk": AudioChunk}


def outbound_for(ros_type: str, cls: type[Message] | None = None) -> Outbound | None:
    """The outbound converter to ``ros_type`` (from ``cls``, or the one class that has one)."""
    matches = [o for (c, t), o in OUTBOUND.items() if t == ros_type and (cls is None or c is cls)]
    return matches[0] if len(matches) >= 1 and (cls is not None or len(matches) == 1) else None


def describe_supported() -> str:
    ins = ", ".join(sorted(INBOUND))
    outs = ", ".join(sorted(f"{c.__name__}->{t}" for c, t in OUTBOUND))
    return f"inputs: {ins}; outputs: {outs}"
