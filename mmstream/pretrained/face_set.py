"""A face set for measuring detectors, made from the photos scikit-image ships (deterministic).

Face frames (640×480 RGB, one face each, pasted on a background photo that has no face):
  sources  the astronaut (Eileen Collins, NASA, public domain), the cameraman (skimage's
           ``camera``, public domain) and three faces of skimage's LFW subset (25×25 crops of
           Labeled Faces in the Wild, enlarged; tight crops with no hair or chin);
  rolls    0, ±30, ±60 and 90 degrees; face heights 20, 32, 48, 80 and 120 px;
  occlusion every third frame has a gray bar over the mouth or over one eye (a third of the face).
Non-face frames: 14 photos and textures with no human face (coffee, a rocket, skimage's cat,
bricks, grass, gravel, coins, the moon, a page of text, Hubble's deep field, a horse silhouette,
a clock, a stained tissue slide, a retina) and a mosaic of LFW's 100 non-face patches, each upright and
turned 90°.

A detection *hits* a face when its centre is within half a face height of the face's centre and
its height is 0.5–2.5× the face's; any other detection is a false detection. Needs scikit-image
(the dev/train extras); used by bench/bench_perception.py and the detector tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FRAME_W, FRAME_H = 640, 480
ROLLS_DEG = (0, 30, -30, 60, -60, 90)
FACE_HEIGHTS_PX = (20, 32, 48, 80, 120)
LFW_FACES = (3, 17, 42)  # indices into skimage.data.lfw_subset() (the first 100 are faces)


@dataclass(frozen=True)
class FaceFrame:
    """One frame of the set: RGB image, the true face (centre x, y, height) or None, and how it was made."""

    image: np.ndarray
    face: tuple[float, float, float] | None
    source: str
    roll_deg: float = 0.0
    occluded: str = ""


def _sources() -> dict[str, tuple[np.ndarray, tuple[float, float, float]]]:
    """name -> (RGB photo, (face centre x, y, face height) in its pixels)."""
    from skimage import data

    out = {"astronaut": (data.astronaut(), (224.0, 118.0, 105.0)),
           "camera": (np.dstack([data.camera()] * 3), (226.0, 157.0, 72.0))}
    lfw = data.lfw_subset()
    for i in LFW_FACES:
        face = cv2.resize((lfw[i] * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        out[f"lfw{i}"] = (np.dstack([face] * 3), (50.0, 54.0, 92.0))
    return out


def _backgrounds() -> list[tuple[str, np.ndarray]]:
    from skimage import data

    def rgb(a: np.ndarray) -> np.ndarray:
        if a.dtype != np.uint8:
            a = a.astype(np.float64)
            a = (255 * (a - a.min()) / max(1e-9, float(a.max() - a.min()))).astype(np.uint8)
        a = np.dstack([a] * 3) if a.ndim == 2 else a[..., :3]
        return cv2.resize(np.ascontiguousarray(a), (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)

    names = ("coffee", "rocket", "chelsea", "brick", "grass", "gravel", "coins", "moon", "page", "hubble_deep_field",
             "horse", "clock", "immunohistochemistry", "retina")
    out = [(n, rgb(getattr(data, n)())) for n in names]
    patches = data.lfw_subset()[100:]
    mosaic = np.vstack([np.hstack(list(patches[r * 10:(r + 1) * 10])) for r in range(10)])
    out.append(("lfw_nonfaces", rgb((mosaic * 255).astype(np.uint8))))
    return out


def face_frames() -> list[FaceFrame]:
    """150 frames with one face each (5 sources × 6 rolls × 5 heights)."""
    rng = np.random.default_rng(14)
    backgrounds = [b for n, b in _backgrounds() if n in ("coffee", "brick", "grass", "gravel", "moon", "page")]
    frames = []
    k = 0
    for name, (photo, (fx, fy, fh)) in _sources().items():
        ph, pw = photo.shape[:2]
        for roll in ROLLS_DEG:
            for height in FACE_HEIGHTS_PX:
                scale = height / fh
                margin = 0.8 * height
                cx = float(rng.uniform(margin, FRAME_W - margin))
                cy = float(rng.uniform(margin, FRAME_H - margin))
                m = cv2.getRotationMatrix2D((fx, fy), roll, scale)
                m[:, 2] += (cx - fx, cy - fy)
                pasted = cv2.warpAffine(photo, m, (FRAME_W, FRAME_H), flags=cv2.INTER_AREA if scale < 1 else
                                        cv2.INTER_LINEAR)
                inside = cv2.warpAffine(np.full((ph, pw), 255, np.uint8), m, (FRAME_W, FRAME_H)) > 127
                image = backgrounds[k % len(backgrounds)].copy()
                image[inside] = pasted[inside]
                occluded = ""
                if k % 3 == 2:  # a gray bar over the mouth or one eye, in the face's own frame
                    occluded = "mouth" if (k // 3) % 2 == 0 else "eye"
                    if occluded == "mouth":
                        bar = np.array([[-0.5, 0.18], [0.5, 0.18], [0.5, 0.5], [-0.5, 0.5]])
                    else:
                        bar = np.array([[-0.5, -0.35], [-0.02, -0.35], [-0.02, 0.0], [-0.5, 0.0]])
                    t = np.deg2rad(-roll)  # OpenCV's roll is counter-clockwise on screen
                    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
                    corners = (bar * height) @ rot.T + (cx, cy)
                    cv2.fillConvexPoly(image, np.round(corners).astype(np.int32), (128, 128, 128))
                frames.append(FaceFrame(image, (cx, cy, float(height)), name, float(roll), occluded))
                k += 1
    return frames


def nonface_frames() -> list[FaceFrame]:
    """30 frames without a human face (15 images, upright and turned 90°)."""
    out = []
    for name, img in _backgrounds():
        out.append(FaceFrame(img, None, name))
        turned = cv2.resize(cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE), (FRAME_W, FRAME_H))
        out.append(FaceFrame(turned, None, name, 90.0))
    return out


def score_frame(frame: FaceFrame, boxes: np.ndarray) -> tuple[bool, int]:
    """(the face was hit, number of false detections) for detected ``boxes`` (N×4 x1, y1, x2, y2)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if frame.face is None:
        return False, len(boxes)
    cx, cy, h = frame.face
    hit_any = False
    false = 0
    for x1, y1, x2, y2 in boxes:
        bh = max(x2 - x1, y2 - y1)
        ok = np.hypot((x1 + x2) / 2 - cx, (y1 + y2) / 2 - cy) <= 0.5 * h and 0.5 * h <= bh <= 2.5 * h
        if ok and not hit_any:
            hit_any = True
        elif not ok:
            false += 1
    return hit_any, false
