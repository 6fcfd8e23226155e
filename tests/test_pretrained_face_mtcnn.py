"""MTCNN (ONNX Runtime, no torch): recall and false detections on the face set, aligned crops,
real scores, O-Net tracking; the per-track expression smoother and its exact re-fusion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mmstream.pretrained.cache import face_detector_dir
from mmstream.pretrained.expression_smoothing import ExpressionSmoother
from mmstream.pretrained.face_detect import FaceTracker, crop_face, main_face, to_gray
from pretrained_support import fetched_models


@pytest.fixture(scope="module")
def detector():
    from mmstream.pretrained.mtcnn import MtcnnFaceDetector

    return MtcnnFaceDetector(face_detector_dir(root=fetched_models()))


def _astronaut(angle_deg: float) -> np.ndarray:
    from skimage import data

    m = cv2.getRotationMatrix2D((224, 118), angle_deg, 1.0)
    return cv2.warpAffine(data.astronaut(), m, (512, 512), borderValue=(110, 110, 110))


def test_recall_and_false_detections_on_the_face_set(detector) -> None:
    """Measured (bench/bench_perception.py): 99/150 faces, 3 false detections in face frames and 1 in
    the 30 non-face frames; the Haar cascade with ±25° retries finds 29 with 16 false detections."""
    from mmstream.pretrained.face_set import face_frames, nonface_frames, score_frame

    hits = false = 0
    for frame in face_frames() + nonface_frames():
        found = detector.detect_frame(frame.image, "rgb8")
        hit, wrong = score_frame(frame, np.array([b.as_array() for b in found]).reshape(-1, 4))
        hits += hit
        false += wrong
    assert hits >= 90 and false <= 10


@pytest.mark.parametrize("angle_deg", [30, -30, 90])
def test_the_crop_has_level_eyes(detector, angle_deg: float) -> None:
    img = _astronaut(angle_deg)
    box = main_face(detector.detect_frame(img, "rgb8"), 512, 512)
    assert box is not None and box.landmarks is not None and len(box.landmarks) == 5
    # rotating the landmarks as crop_face rotates the image levels the eyes
    rot = cv2.getRotationMatrix2D(box.centre(), box.angle_deg, 1.0)
    (lx, ly), (rx, ry) = (rot @ np.array([*p, 1.0]) for p in box.landmarks[:2])
    assert abs(ry - ly) < 0.03 * box.width and rx > lx  # level, and not upside down
    assert abs(box.angle_deg + angle_deg) < 12  # the astronaut's own head is tilted a few degrees
    crop = crop_face(to_gray(img, "rgb8"), box)
    assert crop.shape == (64, 64)


def test_scores_are_o_nets_probabilities(detector) -> None:
    from skimage import data

    img = data.astronaut()
    found = detector.detect_frame(img, "rgb8")
    small = cv2.resize(img, (320, 320), interpolation=cv2.INTER_AREA)
    _, scores, _ = detector.net.detect(small)
    assert len(found) == 1 and found[0].score == pytest.approx(float(scores[0]))
    assert 0.99 < found[0].score <= 1.0
    assert detector.detect_frame(np.full((480, 640, 3), 128, np.uint8), "bgr8") == []


def test_tracking_follows_with_o_net_and_keeps_the_track_id(detector) -> None:
    tracker = FaceTracker(detector, redetect_every=10)
    ids = set()
    for k in range(6):
        img = np.roll(_astronaut(20), 6 * k, axis=1)  # the face moves 6 px a frame
        found = tracker.update(img, "rgb8")
        assert len(found) == 1
        ids.add(found[0].track_id)
    assert tracker.full_scans == 1 and tracker.roi_scans == 5 and len(ids) == 1


def test_smoother_keeps_the_label_through_one_bad_window() -> None:
    s = ExpressionSmoother(1.0)
    happy, sad = np.array([0.05, 0.0, 0.0, 0.9, 0.05, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 0.1, 0.9, 0.0, 0.0])
    for k in range(4):
        s.update(7, happy, k * 500_000_000)
    out = s.update(7, sad, 2_000_000_000)
    assert np.argmax(out) == 3  # a = 1 - exp(-0.5) = 0.39: still happy
    assert out[4] == pytest.approx(0.05 + (1 - np.exp(-0.5)) * 0.85)
    assert np.argmax(s.update(8, sad, 2_000_000_000)) == 4  # another track starts from its own
    assert np.array_equal(ExpressionSmoother(0.0).update(7, sad, 0), sad)  # 0: off


def test_refusion_with_the_smoothed_face_is_exact() -> None:
    """Postprocess swaps the face expert for the smoothed one in the fused log-probabilities:
    the same as fusing the smoothed face in the first place (gated log-linear pooling)."""
    from mmstream.preprocess.pretrained_default import DefaultBatchContext, PretrainedDefaultPreprocessor

    rng = np.random.default_rng(0)
    face, text = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    smoothed = rng.dirichlet(np.ones(7))
    g, eps, prior = np.array([1.0, 0.0, 0.6]), 1e-3, np.log(np.full(7, 1 / 7))

    def fuse(f: np.ndarray) -> np.ndarray:
        pooled = (g[0] * np.log(f) + g[2] * np.log(text) + eps * prior) / (g.sum() + eps)
        e = np.exp(pooled - pooled.max())
        return e / e.sum()

    class Stub(ExpressionSmoother):
        def update(self, track_id, probs, stamp_ns):  # noqa: ANN001
            return smoothed

    pre = PretrainedDefaultPreprocessor.__new__(PretrainedDefaultPreprocessor)
    pre._video_gate, pre._prior_eps = 1.0, eps
    outputs = {"emotion_probs": fuse(face)[None].astype(np.float32), "face_probs": face[None].astype(np.float32),
               "contribution": (g / g.sum())[None].astype(np.float32)}
    ctx = DefaultBatchContext(size=1, tracks=[(3, 0)], smoother=Stub(1.0))
    assert np.allclose(pre._smoothed(outputs, ctx, 0), fuse(smoothed), atol=1e-5)
