"""Face detection speed and recall.

1. On the sample video (640×480): full-resolution Haar (the baseline) vs 320 px vs 320 px + tracking.
2. Recall on a grid of the astronaut's face rolled by -40..40° and 30..95 px tall in a 640×480
   frame: upright-only cascade vs the cascade with ±25° retries (the default).
Prints JSON. Usage: python bench/face_detect.py [video]"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2

from mmstream.pretrained.face_detect import FaceDetector, FaceTracker, to_gray


def main() -> int:
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "mmstream/data/sample.mp4"
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(to_gray(f))
    cv2.setNumThreads(1)  # one core per stream: the other runs the model
    out: dict[str, object] = {"video": str(video), "frames": len(frames), "cv2_threads": 1}
    configs = {"full_res_baseline": (FaceDetector(detect_side_px=10_000), None),
               "side_320": (FaceDetector(detect_side_px=320), None),
               "side_320_track10": (FaceDetector(detect_side_px=320), 10)}
    for name, (det, every) in configs.items():
        tracker = FaceTracker(det, redetect_every=every) if every else None
        hits, t0 = 0, time.perf_counter()
        for g in frames:
            boxes = tracker.update(g) if tracker else det.detect(g)
            hits += bool(boxes)
        dt = time.perf_counter() - t0
        out[name] = {"ms_per_frame": round(1000 * dt / len(frames), 2), "fps": round(len(frames) / dt, 1),
                     "recall": round(hits / len(frames), 4)}
    from skimage import data

    photo = data.astronaut()
    grid = []
    for angle in (-40, -30, -20, -10, 0, 10, 20, 30, 40):
        for face_px in (30, 45, 60, 95):
            m = cv2.getRotationMatrix2D((224, 113), angle, face_px / 95)
            m[:, 2] += (320 - 224, 240 - 113)
            img = cv2.warpAffine(photo, m, (640, 480), borderMode=cv2.BORDER_CONSTANT, borderValue=(110, 110, 110))
            grid.append((angle, face_px, to_gray(img, "rgb8")))
    for name, det in (("grid_upright_only_320", FaceDetector(detect_side_px=320, tilt_angles_deg=())),
                      ("grid_tilt25_320", FaceDetector(detect_side_px=320))):
        found, t0 = [], time.perf_counter()
        for angle, face_px, g in grid:
            boxes = det.detect(g)
            ok = any(abs((b.x1 + b.x2) / 2 - 320) < 30 and abs((b.y1 + b.y2) / 2 - 240) < 30 for b in boxes)
            found.append((angle, face_px, ok))
        dt = time.perf_counter() - t0
        big = [ok for a, px, ok in found if px >= 60]
        out[name] = {"recall_all": f"{sum(ok for *_, ok in found)}/{len(found)}",
                     "recall_face_ge_60px": f"{sum(big)}/{len(big)}", "ms_per_image": round(1000 * dt / len(grid), 1)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
