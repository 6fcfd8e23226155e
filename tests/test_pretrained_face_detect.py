"""Haar face detection at reduced resolution, tracking between scans, and fer-style crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mmstream.errors import ModelError
from mmstream.pretrained.face_detect import FaceBox, FaceDetector, FaceTracker, crop_face, main_face, to_gray
from mmstream.pretrained.cache import require_file
from pretrained_support import fetched_models, sample_streams


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(require_file("face_detector", root=fetched_models()), detect_side_px=320)


def test_reduced_resolution_finds_the_same_face_as_full_resolution(detector: FaceDetector) -> None:
    from skimage import data

    big = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY), (1024, 1024))
    full = FaceDetector(detector.cascade_path, detect_side_px=4096).detect(big)
    small = detector.detect(big)
    assert len(full) == 1 and len(small) == 1
    a, b = full[0].as_array(), small[0].as_array()
    assert np.abs(a - b).max() < 0.12 * full[0].width  # boxes come back in source pixels


def test_no_face_in_photos_without_faces(detector: FaceDetector) -> None:
    from skimage import data

    # (a cat's face, skimage's chelsea, IS found on the tilted retry: the cascade is not human-specific)
    for img in (data.coffee(), data.rocket(), np.dstack([data.brick()] * 3), np.dstack([data.grass()] * 3),
                np.full((480, 640, 3), 128, np.uint8)):
        assert detector.detect(to_gray(img, "rgb8")) == []


def _astronaut_in_frame(angle_deg: float, face_px: float) -> np.ndarray:
    """The astronaut's face centred in a 640×480 gray frame, rolled by angle_deg, face_px tall."""
    from skimage import data

    m = cv2.getRotationMatrix2D((224, 113), angle_deg, face_px / 95)
    m[:, 2] += (320 - 224, 240 - 113)
    img = cv2.warpAffine(data.astronaut(), m, (640, 480), borderMode=cv2.BORDER_CONSTANT, borderValue=(110,) * 3)
    return to_gray(img, "rgb8")


@pytest.mark.parametrize("angle_deg", [-30, 30])
def test_tilted_face_is_found_and_cropped_upright(detector: FaceDetector, angle_deg: float) -> None:
    from mmstream.pretrained.face_detect import normalize_face
    from mmstream.pretrained.face_expression import EXPRESSION_LABELS, load_keras_mini_xception
    import torch

    gray = _astronaut_in_frame(angle_deg, 95)
    upright_only = FaceDetector(detector.cascade_path, tilt_angles_deg=())
    assert upright_only.detect(gray) == []  # the plain cascade misses a 30° roll
    box = main_face(detector.detect(gray), 640, 480)
    assert box is not None and box.angle_deg == -np.sign(angle_deg) * 25
    assert abs((box.x1 + box.x2) / 2 - 320) < 25 and abs((box.y1 + box.y2) / 2 - 240) < 25
    model = load_keras_mini_xception(require_file("face_expression", root=fetched_models()))
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(normalize_face(crop_face(gray, box)))[None, None]), 1)[0]
    assert p[EXPRESSION_LABELS.index("happy")] > 0.9


def test_tracker_skips_full_scans_while_nothing_is_in_view(detector: FaceDetector) -> None:
    tracker = FaceTracker(detector, empty_rescan_every=3)
    empty = np.full((480, 640), 90, np.uint8)
    for _ in range(9):
        assert tracker.update(empty) == []
    assert tracker.full_scans == 3
    face = _astronaut_in_frame(0, 95)
    found = [bool(tracker.update(face)) for _ in range(3)]
    assert any(found) and found[-1]  # found at the next scheduled scan at the latest


def test_tracker_keeps_the_face_on_every_sample_frame_with_few_full_scans(detector: FaceDetector) -> None:
    frames, _fps, _audio, _subs = sample_streams()
    tracker = FaceTracker(detector, redetect_every=10)
    hits = 0
    for f in frames[:120]:
        boxes = tracker.update(to_gray(f))
        hits += bool(boxes)
        if boxes:
            b = boxes[0]
            assert 60 < b.width < 320 and 0 <= b.x1 and b.x2 <= f.shape[1]
    assert hits == 120
    assert tracker.full_scans <= 120 // 10 + 2
    assert tracker.roi_scans >= 100


def test_tracker_rescans_when_the_face_leaves(detector: FaceDetector) -> None:
    frames, *_ = sample_streams()
    tracker = FaceTracker(detector, redetect_every=50)
    assert tracker.update(to_gray(frames[0]))
    scans = tracker.full_scans
    assert tracker.update(np.full(frames[0].shape[:2], 90, np.uint8)) == []
    assert tracker.full_scans == scans + 1  # lost in the region -> a full scan of the same frame


def test_main_face_prefers_large_and_central() -> None:
    central = FaceBox(280, 200, 360, 280)
    corner_bigger = FaceBox(0, 0, 90, 90)
    tiny_center = FaceBox(310, 230, 330, 250)
    assert main_face([corner_bigger, central, tiny_center], 640, 480) == central
    assert main_face([], 640, 480) is None


def test_crop_face_is_square_padded_and_sized() -> None:
    gray = np.zeros((100, 100), np.uint8)
    gray[:, 50:] = 200
    crop = crop_face(gray, FaceBox(60, -10, 110, 60), size=64)  # sticks out of the image
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    # square side 70 (x grows to 50..120), margin 7: the crop covers x 43..127, y -17..67
    assert crop[32, 0] == 0      # x = 43: the dark half
    assert crop[32, 20] == 200   # x ~ 69: the bright half
    assert crop[32, 63] == 100   # x ~ 126: outside, filled with the mean of the bottom rows


def test_a_missing_cascade_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="could not load the Haar cascade"):
        FaceDetector(tmp_path / "nope.xml")


def test_boxes_carry_the_cascades_confidence() -> None:
    """FaceBox.score is OpenCV's levelWeights for the group; the boxes are exactly detectMultiScale's."""
    import cv2
    from skimage import data as skdata

    det = FaceDetector(require_file("face_detector", root=fetched_models()), detect_side_px=512, tilt_angles_deg=())
    gray = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    found = det.detect(gray)
    plain = det.cascade.detectMultiScale(gray, scaleFactor=det.scale_factor, minNeighbors=det.min_neighbors,
                                         minSize=(40, 40))
    _, _, weights = det.cascade.detectMultiScale3(gray, scaleFactor=det.scale_factor, minNeighbors=det.min_neighbors,
                                                  minSize=(40, 40), outputRejectLevels=True)
    assert len(found) == len(plain) >= 1
    pairs = zip(np.asarray(plain).tolist(), np.asarray(weights).reshape(-1).tolist())
    want = sorted(pairs, key=lambda t: -t[0][2] * t[0][3])  # largest first, as detect() sorts
    for box, ((x, y, w, h), weight) in zip(found, want):
        assert (box.x1, box.y1, box.width, box.height) == pytest.approx((x, y, w, h))
        assert box.score == pytest.approx(weight) and box.score > 0
