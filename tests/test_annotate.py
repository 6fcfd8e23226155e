"""Boxes land on the pixels the detections name, on their own and through the annotator node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmstream.messages import Detections, EmotionEstimate, ImageFrame
from mmstream.node import Node
from mmstream.viz.annotate import BOX_COLOR_BGR, FrameAnnotator, draw_boxes, scaled_boxes
from tests.conftest import node_cmd, wait_for

GREEN = np.array(BOX_COLOR_BGR, np.uint8)


def _det(boxes: list[list[float]], w: int, h: int, stamp_ns: int = 1_000_000_000) -> Detections:
    d = Detections(box_labels=["face"] * len(boxes), image_width=w, image_height=h,
                   boxes=np.array(boxes, np.float32).reshape(-1, 4), box_scores=np.full(len(boxes), 0.9, np.float32))
    d.header.stamp_ns = stamp_ns
    return d


def _frame(img: np.ndarray, stamp_ns: int = 1_000_000_000) -> ImageFrame:
    f = ImageFrame(encoding="bgr8", height=img.shape[0], width=img.shape[1], data=img)
    f.header.stamp_ns = stamp_ns
    return f


def _assert_box(img: np.ndarray, x1: int, y1: int, x2: int, y2: int, t: int, *, label_rows: int = 0) -> None:
    """Border pixels green, the pixel just outside and the interior unchanged (gray 50)."""
    for y in (y1, y1 + t - 1, y2 - t + 1, y2):
        assert (img[y, x1:x2 + 1] == GREEN).all(), f"row {y} not green"
    for x in (x1, x1 + t - 1, x2 - t + 1, x2):
        assert (img[y1:y2 + 1, x] == GREEN).all(), f"column {x} not green"
    assert (img[y1 + t:y2 - t + 1, x1 + t:x2 - t + 1] == 50).all(), "interior changed"
    assert (img[y1:y2 + 1, x1 - 1] == 50).all() and (img[y1:y2 + 1, x2 + 1] == 50).all(), "left/right outside changed"
    assert (img[y2 + 1, x1:x2 + 1] == 50).all(), "below the box changed"


def test_boxes_drawn_exactly_where_detections_say() -> None:
    img = np.full((120, 160, 3), 50, np.uint8)
    det = _det([[20, 40, 60, 90], [100, 50, 150, 110]], 160, 120)
    out = draw_boxes(img, scaled_boxes(det, 160, 120), thickness=3)
    _assert_box(out, 20, 40, 60, 90, 3)
    _assert_box(out, 100, 50, 150, 110, 3)
    assert (img == 50).all(), "the input frame was modified"
    # nothing drawn outside the boxes and their labels (labels sit above each box)
    mask = np.zeros(img.shape[:2], bool)
    mask[20:91, 0:70] = mask[30:111, 95:160] = True
    assert (out[~mask] == 50).all()


def test_boxes_scaled_from_detector_resolution_and_clipped() -> None:
    det = _det([[10, 20, 30, 40], [150, 100, 400, 300]], 320, 240)  # detector saw 320x240
    boxes = scaled_boxes(det, 640, 480)
    assert [(b.x1, b.y1, b.x2, b.y2) for b in boxes] == [(20, 40, 60, 80), (300, 200, 639, 479)]
    img = np.full((480, 640, 3), 50, np.uint8)
    out = draw_boxes(img, boxes[:1], thickness=2)
    _assert_box(out, 20, 40, 60, 80, 2)
    assert scaled_boxes(_det([[5, 5, 5, 30]], 64, 64), 64, 64) == []  # zero width: not drawn


def test_annotator_uses_fresh_detections_only_and_shows_emotion() -> None:
    ann = FrameAnnotator(max_age_ns=500_000_000, thickness=2)
    ann.on_detections(_det([[20, 40, 60, 90]], 160, 120, stamp_ns=1_000_000_000))
    est = EmotionEstimate(labels=["happy", "sad"], probs=[0.8, 0.2], top_label="happy", top_prob=0.8)
    est.header.stamp_ns = 1_000_000_000
    ann.on_emotion(est)
    img = np.full((120, 160, 3), 50, np.uint8)
    out = ann.annotate(_frame(img, stamp_ns=1_200_000_000))
    assert out.header.stamp_ns == 1_200_000_000 and out.encoding == "bgr8"
    _assert_box(out.data, 20, 40, 60, 90, 2)
    assert (out.data[20:40, 20:60] != 50).any(), "no emotion label above the box"
    stale = ann.annotate(_frame(img, stamp_ns=3_000_000_000))
    assert (stale.data == 50).all(), "a 2 s old detection was drawn"


@pytest.mark.timeout(60)
def test_annotator_node_republishes_frames_with_boxes(spawn, run_dir: Path) -> None:
    spawn(node_cmd("nodes.annotator", "--param", "thickness=2"))
    got: list[ImageFrame] = []
    with Node("annotate_test", run_dir=run_dir) as node:
        cam = node.create_publisher(ImageFrame, "/camera/image")
        det_pub = node.create_publisher(Detections, "/perception/detections")
        node.create_subscription(ImageFrame, "/camera/annotated", got.append, keep_last=8)
        assert cam.wait_for_subscribers(1, 15) and det_pub.wait_for_subscribers(1, 15)
        img = np.full((240, 320, 3), 50, np.uint8)

        def step() -> bool:
            now = node.now_ns()
            det = _det([[40, 60, 120, 200]], 320, 240, stamp_ns=now)
            det_pub.publish(det)
            cam.publish(_frame(img.copy(), stamp_ns=now))
            node.spin_once(0.1)
            return any((f.data[60, 40:121] == GREEN).all() for f in got)
        wait_for(step, 30, "an annotated frame with the box drawn", step_s=0.05)
    frame = next(f for f in got if (f.data[60, 40:121] == GREEN).all())
    assert frame.data.shape == (240, 320, 3)
    _assert_box(frame.data, 40, 60, 120, 200, 2)
