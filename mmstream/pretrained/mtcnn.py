"""MTCNN face detection with ONNX Runtime and numpy (no torch): boxes, scores and five landmarks.

The three networks are exported from facenet-pytorch's weights by ``mmstream models fetch``
(:mod:`~mmstream.pretrained.mtcnn_export`) into ``<cache>/face_detector/``. The cascade:

1. P-Net over an image pyramid (scale 12 / ``min_face_px``, then ×``factor`` while the image is
   at least 12 px): every 12 px cell (stride 2) above ``thresholds[0]`` is a candidate; NMS per
   scale (IoU 0.5), then over all scales (0.7); box regression; squared.
2. R-Net on 24×24 crops (zero padded outside the image): keep above ``thresholds[1]``, NMS 0.7,
   regression, squared.
3. O-Net on 48×48 crops: keep above ``thresholds[2]``; five landmarks (left eye, right eye, nose,
   left and right mouth corner, in image coordinates: "left" is the image's left); regression;
   NMS 0.7 over the smaller box ("min" overlap), which drops boxes nested in a face.

The score of a face is O-Net's probability (0..1). :meth:`MtcnnDetector.refine` runs O-Net alone
on boxes carried over from the last frame (tracking: one small batch instead of the pyramid).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mmstream.errors import ModelError

NET_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, *, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first. ``mode="min"`` divides the
    overlap by the smaller box instead of the union."""
    if boxes.size == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= iou]
    return np.array(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (the side is the longer side)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w / 2 - side / 2
    out[:, 1] = boxes[:, 1] + h / 2 - side / 2
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + reg * np.stack([w, h, w, h], axis=1)


def _normalize(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB -> 1×3×H×W float32 in MTCNN's range."""
    return ((rgb.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)[None]


def crops(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """N×3×size×size network input: each box cut out (zero outside the image) and resized."""
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes[:, :4], np.float64)):
        sx, sy = size / max(x2 - x1, 1e-3), size / max(y2 - y1, 1e-3)
        m = np.array([[sx, 0.0, -x1 * sx], [0.0, sy, -y1 * sy]])
        cv2.warpAffine(rgb, m, (size, size), dst=out[k], flags=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return ((out.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2)


class MtcnnDetector:
    """The three-stage cascade on an RGB image; returns (boxes N×4, scores N, landmarks N×5×2)."""

    def __init__(self, model_dir: str | Path, *, min_face_px: float = 20.0, factor: float = 0.709,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), max_proposals: int = 32,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        self.model_dir = Path(model_dir)
        missing = [f for f in NET_FILES if not (self.model_dir / f).is_file()]
        if missing:
            from mmstream.pretrained.cache import FETCH_COMMAND

            raise ModelError(f"MTCNN face detector: {missing} not in {self.model_dir}: run `{FETCH_COMMAND}`")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.pnet, self.rnet, self.onet = (
            ort.InferenceSession(str(self.model_dir / f), opts, providers=["CPUExecutionProvider"]) for f in NET_FILES)
        if not 0.0 < factor < 1.0 or min_face_px < 12:
            raise ValueError(f"MTCNN factor {factor} (expected 0..1) / min_face_px {min_face_px} (expected >= 12)")
        self.min_face_px = float(min_face_px)
        self.factor = float(factor)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_proposals = int(max_proposals)  # R-Net costs ~0.1 ms a crop: the best P-Net boxes only

    def scales(self, height: int, width: int, min_face_px: float | None = None) -> list[float]:
        s = 12.0 / (min_face_px or self.min_face_px)
        side = min(height, width) * s
        out = []
        while side >= 12:
            out.append(s)
            s *= self.factor
            side *= self.factor
        return out

    def _proposals(self, rgb: np.ndarray, min_face_px: float | None) -> np.ndarray:
        h, w = rgb.shape[:2]
        found = []
        for s in self.scales(h, w, min_face_px):
            sw, sh = int(np.ceil(w * s)), int(np.ceil(h * s))
            img = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
            prob, reg = self.pnet.run(None, {"image": _normalize(img)})
            ys, xs = np.nonzero(prob[0] >= self.thresholds[0])
            if not ys.size:
                continue
            score = prob[0, ys, xs]
            boxes = np.stack([np.floor((2 * xs + 1) / s), np.floor((2 * ys + 1) / s),
                              np.floor((2 * xs + 12) / s), np.floor((2 * ys + 12) / s)], axis=1).astype(np.float32)
            cand = np.concatenate([boxes, score[:, None], reg[0][:, ys, xs].T], axis=1)
            found.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 4), np.float32)
        cand = np.concatenate(found)
        cand = cand[nms(cand[:, :4], cand[:, 4], 0.7)[:self.max_proposals]]
        return _square(_regress(cand[:, :4], cand[:, 5:9]))

    def _refine(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if not len(boxes):
            return boxes
        prob, reg = self.rnet.run(None, {"image": crops(rgb, boxes, 24)})
        keep = prob >= self.thresholds[1]
        boxes, prob, reg = boxes[keep], prob[keep], reg[keep]
        idx = nms(boxes, prob, 0.7)
        return _square(_regress(boxes[idx], reg[idx]))

    def refine(self, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net on ``boxes`` (N×4, squared first): (boxes, scores, landmarks N×5×2) of those kept."""
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        if not len(boxes):
            return empty
        boxes = _square(np.asarray(boxes, np.float32))
        prob, reg, marks = self.onet.run(None, {"image": crops(rgb, boxes, 48)})
        keep = prob >= self.thresholds[2]
        boxes, prob, reg, marks = boxes[keep], prob[keep], reg[keep], marks[keep]
        if not len(boxes):
            return empty
        w, h = boxes[:, 2:3] - boxes[:, 0:1], boxes[:, 3:4] - boxes[:, 1:2]
        points = np.stack([boxes[:, 0:1] + w * marks[:, :5], boxes[:, 1:2] + h * marks[:, 5:]], axis=2)
        boxes = _regress(boxes, reg)
        idx = nms(boxes, prob, 0.7, mode="min")
        return boxes[idx].astype(np.float32), prob[idx].astype(np.float32), points[idx].astype(np.float32)

    def detect(self, rgb: np.ndarray, *, min_face_px: float | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Faces in an H×W×3 uint8 RGB image: boxes N×4 (x1, y1, x2, y2), scores N, landmarks N×5×2."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"MTCNN expects an H×W×3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        return self.refine(rgb, self._refine(rgb, self._proposals(rgb, min_face_px)))


def _to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    return image if encoding == "rgb8" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def eye_angle_deg(points: np.ndarray) -> float:
    """The rotation (OpenCV's, counter-clockwise) that levels the eyes: the eye line's angle in the image."""
    (lx, ly), (rx, ry) = points[0], points[1]
    return float(np.degrees(np.arctan2(ry - ly, rx - lx)))


class MtcnnFaceDetector:
    """The default face detector: MTCNN on a copy scaled to ``detect_side_px``, retried on the copy
    turned by ±90° when nothing is found; :class:`~mmstream.pretrained.face_detect.FaceBox` out, with
    O-Net's probability as score, five landmarks, and the eye-line angle as ``angle_deg``.

    Measured on the face set of :mod:`mmstream.pretrained.face_set` (bench/bench_perception.py):
    the retries take recall from 57 to 104 of 150 faces (rolls of 60–90° come back) for a second and
    third scan only on frames where the first found nothing. ``min_face_px`` is the smallest face in
    the scaled copy (12: 24 px in a 640×480 frame at the default 320).
    ``follow`` (tracking between full scans) runs O-Net alone on each carried face, cut out of the
    full-resolution frame turned upright by the face's angle: ~1 ms a face instead of a scan.
    """

    def __init__(self, model_dir: str | Path | None = None, *, detect_side_px: int = 320, min_face_px: float = 12.0,
                 retry_angles_deg: tuple[int, ...] = (90, -90), threads: int = 1) -> None:
        if model_dir is None:
            from mmstream.pretrained.cache import face_detector_dir

            model_dir = face_detector_dir()
        self.net = MtcnnDetector(model_dir, min_face_px=min_face_px, threads=threads)
        self.detect_side_px = int(detect_side_px)
        if any(a not in (90, -90, 180) for a in retry_angles_deg):
            raise ValueError(f"retry_angles_deg {retry_angles_deg}: expected a subset of (90, -90, 180)")
        self.retry_angles_deg = tuple(retry_angles_deg)

    def _boxes(self, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, back: np.ndarray) -> list:
        """FaceBoxes in source pixels from detections in a view mapped back by the 2×3 affine ``back``."""
        from mmstream.pretrained.face_detect import FaceBox

        out = []
        zoom = float(np.hypot(back[0, 0], back[1, 0]))
        for (x1, y1, x2, y2), score, pts in zip(boxes, scores, points):
            cx, cy = back @ np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0, 1.0])
            half = max(x2 - x1, y2 - y1) * zoom / 2.0
            src = np.hstack([pts, np.ones((5, 1))]) @ back.T
            out.append(FaceBox(float(cx - half), float(cy - half), float(cx + half), float(cy + half),
                               eye_angle_deg(src), float(score), tuple((float(x), float(y)) for x, y in src)))
        return sorted(out, key=lambda b: -b.width * b.height)

    def detect_frame(self, image: np.ndarray, encoding: str = "bgr8") -> list:
        rgb = _to_rgb(image, encoding)
        h, w = rgb.shape[:2]
        scale = min(1.0, self.detect_side_px / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                     interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        unscale = np.array([[1.0 / scale, 0.0, 0.0], [0.0, 1.0 / scale, 0.0]])
        for angle in (0, *self.retry_angles_deg):
            if angle == 0:
                view, back = small, np.eye(3)[:2]
            else:  # the view turned by angle (counter-clockwise); back maps view pixels to small's
                code = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, -90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180}[angle]
                view = cv2.rotate(small, code)
                back = {90: np.array([[0.0, -1.0, sw - 1.0], [1.0, 0.0, 0.0]]),
                        -90: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, sh - 1.0]]),
                        180: np.array([[-1.0, 0.0, sw - 1.0], [0.0, -1.0, sh - 1.0]])}[angle]
            boxes, scores, points = self.net.detect(view)
            if len(boxes):
                full = unscale @ np.vstack([back, [0.0, 0.0, 1.0]])
                return self._boxes(boxes, scores, points, full)
        return []

    def follow(self, image: np.ndarray, encoding: str, last: list, *, roi_margin: float = 0.5) -> list:
        """O-Net on each face of the last frame: a square around its box (``roi_margin`` is unused:
        O-Net's regression moves the box), turned upright by its angle; faces O-Net rejects are dropped."""
        if not last:
            return []
        rgb = _to_rgb(image, encoding)
        found = []
        for b in last:
            cx, cy = b.centre()
            side = max(b.width, b.height)
            # view (48×48, upright face) -> source: rotate by -angle about the centre, scale side / 48
            t = np.radians(b.angle_deg)
            k = side / 48.0
            back = np.array([[k * np.cos(t), -k * np.sin(t), 0.0], [k * np.sin(t), k * np.cos(t), 0.0]])
            back[:, 2] = (cx, cy) - back[:, :2] @ (24.0, 24.0)
            fwd = cv2.invertAffineTransform(back)
            view = cv2.warpAffine(rgb, fwd, (48, 48), flags=cv2.INTER_AREA if k > 1 else cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
            boxes, scores, points = self.net.refine(view, np.array([[0.0, 0.0, 48.0, 48.0]], np.float32))
            if len(boxes):
                found.extend(self._boxes(boxes[:1], scores[:1], points[:1], back))
        return found
