"""Face boxes with OpenCV's Haar cascade (the copy fer ships, pinned and checked), fast enough for 30 fps.

Two speed-ups, both measured by ``bench/face_detect.py``:

* detection runs on a copy scaled so its longer side is ``detect_side_px`` (default 320), and
  boxes are scaled back to source pixels;
* :class:`FaceTracker` runs a full-frame detection only every ``redetect_every`` frames (or when
  the face is lost); in between it searches a region around the last box, which costs a fraction
  of a full scan.

One recall aid: the cascade only sees upright faces (about ±15° of roll), so a scan that finds
nothing is repeated on copies rotated by ``tilt_angles_deg`` (±25°); such a box carries the angle
and :func:`crop_face` turns the face upright before the expression CNN sees it.
Measured (bench/face_detect.py, 36 rolled/scaled astronaut faces): upright only 7/36, with the
retries 18/36 (16/18 of faces at least 60 px tall). Faces under ~50 px in a 640×480 frame are
below the cascade's 24 px window at 320 px and are missed.

OpenCV only (no torch). Needs opencv below 5: the 5.0 wheels dropped ``CascadeClassifier``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from mmstream.errors import ModelError


@dataclass(frozen=True)
class FaceBox:
    """A face in source-image pixels (x1, y1) inclusive to (x2, y2) exclusive.

    ``angle_deg``: the rotation (OpenCV convention, counter-clockwise) about the box centre that
    makes the face upright; 0 for a face found without rotating the image.
    ``score``: the cascade's confidence in the face: the sum of its last stage for the best window of
    the group (OpenCV's ``levelWeights`` from ``detectMultiScale3(..., outputRejectLevels=True)``).
    Higher is surer; it is not a probability and has no fixed range (about 1-8 for real faces here).
    For MTCNN (:mod:`mmstream.pretrained.mtcnn`) it is O-Net's face probability (0..1) and
    ``angle_deg`` comes from the eye line, so the eyes are level after the rotation.
    ``landmarks``: five (x, y) points (left eye, right eye, nose, left and right mouth corner, as seen
    in the image) when the detector gives them, else None. ``track_id``: the :class:`FaceTracker`'s
    id of the face (the same while it is tracked from frame to frame); -1 before tracking.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    angle_deg: float = 0.0
    score: float = 0.0
    landmarks: tuple[tuple[float, float], ...] | None = None
    track_id: int = -1

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def as_array(self) -> np.ndarray:
        return np.array([self.x1, self.y1, self.x2, self.y2], np.float32)

    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def to_gray(image: np.ndarray, encoding: str = "bgr8") -> np.ndarray:
    """H×W×3 (bgr8/rgb8) or H×W(×1) mono8 -> H×W uint8 gray."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[..., 0]
    code = cv2.COLOR_RGB2GRAY if encoding == "rgb8" else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


class FaceDetector:
    """Haar cascade face detection at reduced resolution; boxes come back in source pixels."""

    def __init__(self, cascade_path: str | Path | None = None, *, detect_side_px: int = 320,
                 scale_factor: float = 1.1, min_neighbors: int = 5, min_face_frac: float = 0.08,
                 tilt_angles_deg: tuple[float, ...] = (25.0, -25.0)) -> None:
        if cascade_path is None:
            from mmstream.pretrained.cache import require_file

            cascade_path = require_file("face_detector")
        self.cascade_path = Path(cascade_path)
        self.cascade = cv2.CascadeClassifier(str(self.cascade_path))
        if self.cascade.empty():
            raise ModelError(f"OpenCV could not load the Haar cascade {self.cascade_path} "
                             f"(expected haarcascade_frontalface_default.xml; opencv {cv2.__version__})")
        self.detect_side_px = detect_side_px
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_frac = min_face_frac  # smallest face side, as a fraction of the shorter image side
        # The cascade finds upright faces (about ±15° of roll); when it finds none, the scan is
        # repeated on copies rotated by these angles, so tilted heads are found too.
        self.tilt_angles_deg = tuple(tilt_angles_deg)

    def detect(self, gray: np.ndarray, *, offset_xy: tuple[int, int] = (0, 0), min_side_px: float | None = None,
               scale: float | None = None, angles_deg: tuple[float, ...] | None = None) -> list[FaceBox]:
        """Faces in ``gray`` (H×W uint8), largest first; ``offset_xy`` shifts boxes (for ROIs).

        ``scale`` (default: longer side -> ``detect_side_px``) is the resize applied before the scan.
        ``angles_deg`` (default: 0, then ``tilt_angles_deg``) are tried in order until one finds a face.
        """
        h, w = gray.shape[:2]
        scale = min(1.0, self.detect_side_px / max(h, w) if scale is None else scale)
        small = gray if scale == 1.0 else cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                       interpolation=cv2.INTER_AREA)
        if min_side_px is None:
            min_side_px = self.min_face_frac * min(h, w)
        min_small = max(20, int(min_side_px * scale))  # the cascade's window is 24 px; below 20 is noise
        if min(small.shape[:2]) < min_small:
            return []
        if angles_deg is None:
            angles_deg = (0.0, *self.tilt_angles_deg)
        ox, oy = offset_xy
        sh, sw = small.shape[:2]
        centre = (sw / 2.0, sh / 2.0)
        for angle in angles_deg:
            if angle:
                rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
                view = cv2.warpAffine(small, rot, (sw, sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                back = cv2.invertAffineTransform(rot)
            else:
                view, back = small, None
            # detectMultiScale3 groups exactly as detectMultiScale does and adds each group's confidence
            found, _levels, weights = self.cascade.detectMultiScale3(
                view, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(min_small, min_small), outputRejectLevels=True)
            if not len(found):
                continue
            boxes = []
            for (x, y, bw, bh), weight in zip(found, np.asarray(weights, np.float64).reshape(-1)):
                cx, cy = x + bw / 2.0, y + bh / 2.0
                if back is not None:  # the face centre in the unrotated image
                    cx, cy = back @ np.array([cx, cy, 1.0])
                half_w, half_h = bw / 2.0 / scale, bh / 2.0 / scale
                cx, cy = ox + cx / scale, oy + cy / scale
                boxes.append(FaceBox(float(cx - half_w), float(cy - half_h), float(cx + half_w), float(cy + half_h),
                                     float(angle), float(weight)))
            return sorted(boxes, key=lambda b: -b.width * b.height)
        return []


    def detect_frame(self, image: np.ndarray, encoding: str = "bgr8") -> list[FaceBox]:
        """A full scan of a frame (bgr8/rgb8/mono8), as :class:`FaceTracker` asks for it."""
        return self.detect(to_gray(image, encoding))

    def follow(self, image: np.ndarray, encoding: str, last: list[FaceBox], *, roi_margin: float = 0.5
               ) -> list[FaceBox]:
        """The faces of the last frame looked for again, each in a region around its box scanned so the
        face is ~:data:`ROI_FACE_PX` (a tracked face needs no more detail); the faces not found are dropped."""
        gray = to_gray(image, encoding)
        h, w = gray.shape[:2]
        tracked: list[FaceBox] = []
        for b in last:
            mx, my = b.width * roi_margin, b.height * roi_margin
            x1, y1 = int(max(0, b.x1 - mx)), int(max(0, b.y1 - my))
            x2, y2 = int(min(w, b.x2 + mx)), int(min(h, b.y2 + my))
            side = min(b.width, b.height)
            angles = (b.angle_deg, *(a for a in (0.0, *self.tilt_angles_deg) if a != b.angle_deg))
            found = self.detect(gray[y1:y2, x1:x2], offset_xy=(x1, y1), min_side_px=0.6 * side,
                                scale=ROI_FACE_PX / side, angles_deg=angles)
            if found:
                tracked.append(found[0])
        return tracked


def main_face(boxes: list[FaceBox], width: int, height: int) -> FaceBox | None:
    """The face to classify: the largest, discounted by distance from the image centre (up to half)."""
    if not boxes:
        return None
    cx, cy, half_diag = width / 2, height / 2, 0.5 * float(np.hypot(width, height))

    def score(b: FaceBox) -> float:
        d = np.hypot((b.x1 + b.x2) / 2 - cx, (b.y1 + b.y2) / 2 - cy) / half_diag
        return b.width * b.height * (1.0 - 0.5 * min(1.0, d))

    return max(boxes, key=score)


ROI_FACE_PX = 64.0


class FaceTracker:
    """Detect every ``redetect_every`` frames; in between, look only where the faces were.

    ``update(image, encoding)`` returns the faces for this frame (source pixels), each with a
    ``track_id``: a face found where a face of the last frame was (IoU >= 0.3) keeps its id, any
    other gets a new one. Between full scans the detector's ``follow`` looks for the last faces
    around their boxes (Haar: a scan of the region; MTCNN: O-Net on the carried box). A face lost
    there triggers a full scan of the same frame; a face that appears elsewhere is found at the next
    full scan. While no face is in view, a full scan (with its retries) runs only every
    ``empty_rescan_every`` frames, so an empty scene costs little.
    Works with any detector that has ``detect_frame(image, encoding)`` and
    ``follow(image, encoding, last, roi_margin=...)``: :class:`FaceDetector` (Haar) and
    :class:`~mmstream.pretrained.mtcnn.MtcnnFaceDetector`.
    """

    def __init__(self, detector, *, redetect_every: int = 10, roi_margin: float = 0.5,
                 empty_rescan_every: int = 3) -> None:
        self.detector = detector
        self.redetect_every = max(1, redetect_every)
        self.empty_rescan_every = max(1, empty_rescan_every)
        self.roi_margin = roi_margin
        self._last: list[FaceBox] = []
        self._since_scan = 0
        self._empty_skips = 0
        self._next_id = 0
        self.full_scans = 0
        self.roi_scans = 0

    def reset(self) -> None:
        self._last = []
        self._since_scan = 0
        self._empty_skips = 0

    def _identify(self, found: list[FaceBox]) -> list[FaceBox]:
        out = []
        free = list(self._last)
        for b in found:
            best = max(free, key=lambda p: iou(p, b), default=None)
            if best is not None and iou(best, b) >= 0.3:
                free.remove(best)
                out.append(replace(b, track_id=best.track_id))
            else:
                out.append(replace(b, track_id=self._next_id))
                self._next_id += 1
        return out

    def update(self, image: np.ndarray, encoding: str = "mono8") -> list[FaceBox]:
        if self._last and self._since_scan < self.redetect_every:
            self._since_scan += 1
            self.roi_scans += len(self._last)
            tracked = self.detector.follow(image, encoding, self._last, roi_margin=self.roi_margin)
            if tracked:
                self._last = self._identify(tracked)
                return self._last
        elif not self._last and 0 < self._empty_skips < self.empty_rescan_every:
            self._empty_skips += 1
            return []
        self._since_scan = 0
        self.full_scans += 1
        self._last = self._identify(self.detector.detect_frame(image, encoding))
        self._empty_skips = 0 if self._last else 1
        return self._last


def crop_face(gray: np.ndarray, box: FaceBox, *, size: int = 64, margin: float = 0.1) -> np.ndarray:
    """fer's crop: make the box square (grow the short side), add ``margin``×side on each side,
    pad outside the image with the mean of the bottom rows, resize to size×size (uint8).
    A tilted face (``box.angle_deg``) is first rotated upright about its centre."""
    if box.angle_deg:  # turn the face upright about its centre first
        centre = ((box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0)
        rot = cv2.getRotationMatrix2D(centre, box.angle_deg, 1.0)
        gray = cv2.warpAffine(gray, rot, (gray.shape[1], gray.shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    x, y, w, h = box.x1, box.y1, box.width, box.height
    side = max(w, h)
    x -= (side - w) / 2
    y -= (side - h) / 2
    m = margin * side
    x1, y1, x2, y2 = (int(round(v)) for v in (x - m, y - m, x + side + m, y + side + m))
    ih, iw = gray.shape[:2]
    pad = max(0, -x1, -y1, x2 - iw, y2 - ih)
    if pad:
        fill = float(gray[max(0, ih - 2):].mean())
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        x1, y1, x2, y2 = x1 + pad, y1 + pad, x2 + pad, y2 + pad
    crop = gray[y1:y2, x1:x2]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR)


def normalize_face(face_u8: np.ndarray) -> np.ndarray:
    """uint8 gray -> float32 in [-1, 1], as the fer model was trained."""
    return face_u8.astype(np.float32) / 127.5 - 1.0
