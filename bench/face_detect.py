"""Face detection speed and recall on the sample video: full-resolution Haar (baseline) vs reduced
resolution vs reduced resolution + tracking. Prints JSON. Usage: python bench/face_detect.py [video]"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

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
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
