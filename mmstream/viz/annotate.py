"""Draw face boxes and the current emotion onto camera frames (pure functions on BGR arrays).

Boxes arrive in pixels of the frame the detector saw (``Detections.image_width/height``); when
the frame being annotated has another size, boxes are scaled to it. :class:`FrameAnnotator`
keeps the newest detections and emotion estimate and draws them on each frame it is given,
as long as they are not older than ``max_age_ns`` relative to the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmstream.messages import Detections, EmotionEstimate, ImageFrame

BOX_COLOR_BGR = (0, 255, 0)
TEXT_COLOR_BGR = (255, 255, 255)
LABEL_BG_BGR = (0, 128, 0)


@dataclass
class Box:
    """One box in pixels of the frame it is drawn on: corner pixel indices (x1, y1, x2, y2), inclusive."""

    x1: int
    y1: int
    x2: int
    y2: int
    label: str = ""
    score: float = 0.0


def scaled_boxes(det: Detections, width: int, height: int) -> list[Box]:
    """The detection boxes in pixels of a ``width``×``height`` frame, clipped to it."""
    sx = width / det.image_width if det.image_width > 0 else 1.0
    sy = height / det.image_height if det.image_height > 0 else 1.0
    out = []
    for (x1, y1, x2, y2), label, score in zip(det.boxes.tolist(), det.box_labels, det.box_scores.tolist()):
        bx1 = int(np.clip(round(x1 * sx), 0, width - 1))
        by1 = int(np.clip(round(y1 * sy), 0, height - 1))
        bx2 = int(np.clip(round(x2 * sx), 0, width - 1))
        by2 = int(np.clip(round(y2 * sy), 0, height - 1))
        if bx2 > bx1 and by2 > by1:
            out.append(Box(bx1, by1, bx2, by2, label, float(score)))
    return out


def draw_boxes(img: np.ndarray, boxes: list[Box], *, caption: str = "", thickness: int = 2,
               color_bgr: tuple[int, int, int] = BOX_COLOR_BGR) -> np.ndarray:
    """Draw ``boxes`` on a copy of the H×W×3 BGR ``img``; ``caption`` (e.g. the emotion) above each box.

    Box corners are pixel indices, both inclusive; the border is ``thickness`` pixels wide and lies
    inside the box, so the box edge pixels are exactly the coordinates the detector gave.
    """
    out = np.ascontiguousarray(img).copy()
    color = np.asarray(color_bgr, np.uint8)
    for b in boxes:
        t = max(1, min(thickness, (b.x2 - b.x1 + 1) // 2, (b.y2 - b.y1 + 1) // 2))
        # the border lies inside the box: rows y1..y1+t-1 and y2-t+1..y2, likewise columns
        out[b.y1:b.y1 + t, b.x1:b.x2 + 1] = color
        out[b.y2 - t + 1:b.y2 + 1, b.x1:b.x2 + 1] = color
        out[b.y1:b.y2 + 1, b.x1:b.x1 + t] = color
        out[b.y1:b.y2 + 1, b.x2 - t + 1:b.x2 + 1] = color
        text = " ".join(part for part in (caption, f"{b.score:.2f}" if b.score else "") if part)
        if text:
            _label(out, text, b.x1, b.y1)
    return out


def draw_caption(img: np.ndarray, caption: str) -> np.ndarray:
    """Write ``caption`` (the current emotion) in the top-left corner, in place; returns ``img``."""
    _label(img, caption, 0, 24, above=False)
    return img


def _label(img: np.ndarray, text: str, x: int, y: int, *, above: bool = True) -> None:
    import cv2

    font, scale, weight = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (tw, th), base = cv2.getTextSize(text, font, scale, weight)
    top = max(0, y - th - base - 2) if above else max(0, y - th - base)
    cv2.rectangle(img, (x, top), (min(img.shape[1] - 1, x + tw + 4), top + th + base + 1), LABEL_BG_BGR, -1)
    cv2.putText(img, text, (x + 2, top + th + 1), font, scale, TEXT_COLOR_BGR, weight, cv2.LINE_AA)


def emotion_caption(est: EmotionEstimate | None) -> str:
    return f"{est.top_label} {est.top_prob:.2f}" if est is not None and est.top_label else ""


class FrameAnnotator:
    """Keeps the newest detections and emotion; draws them on frames no further than ``max_age_ns`` away."""

    def __init__(self, *, max_age_ns: int = 2_000_000_000, thickness: int = 2) -> None:
        self.max_age_ns = max_age_ns
        self.thickness = thickness
        self.detections: Detections | None = None
        self.emotion: EmotionEstimate | None = None

    def on_detections(self, det: Detections) -> None:
        self.detections = det

    def on_emotion(self, est: EmotionEstimate) -> None:
        self.emotion = est

    def _fresh(self, stamp_ns: int, msg_stamp_ns: int | None) -> bool:
        return msg_stamp_ns is not None and abs(stamp_ns - msg_stamp_ns) <= self.max_age_ns

    def annotate(self, frame: ImageFrame) -> ImageFrame:
        """A bgr8 copy of ``frame`` with boxes and the emotion drawn; header stamp and frame id kept."""
        img = frame.to_bgr()
        h, w = img.shape[:2]
        stamp = frame.header.stamp_ns
        det = self.detections
        est = self.emotion
        caption = emotion_caption(est) if est is not None and self._fresh(stamp, est.header.stamp_ns) else ""
        boxes = scaled_boxes(det, w, h) if det is not None and self._fresh(stamp, det.header.stamp_ns) else []
        out = draw_boxes(img, boxes, caption=caption, thickness=self.thickness)
        if caption and not boxes:
            draw_caption(out, caption)
        msg = ImageFrame(encoding="bgr8", height=h, width=w, data=out)
        msg.header.stamp_ns = stamp
        msg.header.frame_id = frame.header.frame_id
        return msg
