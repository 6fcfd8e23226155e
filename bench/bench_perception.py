"""`mmstream bench perception`: the perception stages of the default model, JSON out.

--part face: the per-frame face stage (detection + eye-level crop + expression CNN) on the same
frames for each detector: the face set of mmstream/pretrained/face_set.py (150 faces rolled 0–90°,
20–120 px, a third partly covered, on 5 sources; 30 frames without a face) and the sample video
with the tracker the default model runs. Recall, false detections, CPU ms per frame (thread CPU
time, one OpenCV / ONNX Runtime thread: this machine is shared, wall time varies 2–3× with load),
medians and p99. YuNet (the `yuface` package) is measured when it is installed.
--part asr: the speech recognition part (added by the ASR work). --part all: both.

Usage: python bench/bench_perception.py [--part asr|face|all] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _stats(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.median(ms)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(np.mean(ms)), 2)}


def bench_face() -> dict:
    import cv2
    import onnxruntime as ort

    from mmstream.pretrained.cache import default_model_dir
    from mmstream.pretrained.face_detect import FaceBox, FaceDetector, FaceTracker, crop_face, main_face, \
        normalize_face, to_gray
    from mmstream.pretrained.face_set import face_frames, nonface_frames, score_frame
    from mmstream.pretrained.mtcnn import MtcnnFaceDetector

    cv2.setNumThreads(1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    model = ort.InferenceSession(str(default_model_dir() / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    zeros = {"face_mask": np.ones((1, 1), np.float32), "audio_cues": np.zeros((1, 4), np.float32),
             "audio_present": np.zeros(1, np.float32), "text_scores": np.zeros((1, 4), np.float32),
             "text_present": np.zeros(1, np.float32), "text_emotion": np.zeros((1, 7), np.float32),
             "text_emotion_present": np.zeros(1, np.float32)}

    def expression(gray: np.ndarray, box: FaceBox) -> None:
        face = normalize_face(crop_face(gray, box))[None, None, None]
        model.run(["face_probs"], {"faces": face, **zeros})

    class YuNet:  # detection only, for the comparison (not a run-time path)
        def __init__(self, side: int, retry: bool) -> None:
            import yuface

            self.yuface, self.side, self.retry = yuface, side, retry

        def detect_frame(self, image: np.ndarray, encoding: str) -> list[FaceBox]:
            h, w = image.shape[:2]
            s = self.side / max(h, w)
            small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            bgr = np.ascontiguousarray(small[..., ::-1] if encoding == "rgb8" else small)
            for code in (None, cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_90_CLOCKWISE)[:3 if self.retry else 1]:
                view = bgr if code is None else np.ascontiguousarray(cv2.rotate(bgr, code))
                confs, boxes, _ = self.yuface.detect(view, conf=0.5)
                if len(boxes):
                    out = []
                    for (x, y, bw, bh), c in zip(boxes.astype(float), confs.astype(float)):
                        cx, cy = x + bw / 2, y + bh / 2
                        sh, sw = bgr.shape[:2]
                        if code == cv2.ROTATE_90_COUNTERCLOCKWISE:
                            cx, cy = sw - 1 - cy, cx
                        elif code == cv2.ROTATE_90_CLOCKWISE:
                            cx, cy = cy, sh - 1 - cx
                        half = max(bw, bh) / 2
                        out.append(FaceBox((cx - half) / s, (cy - half) / s, (cx + half) / s, (cy + half) / s,
                                           score=c / 100))
                    return out
            return []

    detectors: dict[str, object] = {"haar": FaceDetector(), "mtcnn": MtcnnFaceDetector(),
                                    "mtcnn_no_retry": MtcnnFaceDetector(retry_angles_deg=())}
    try:
        import yuface  # noqa: F401

        detectors.update({"yunet_640": YuNet(640, False), "yunet_320": YuNet(320, False),
                          "yunet_640_retry90": YuNet(640, True)})
    except ImportError:
        pass
    frames = face_frames() + nonface_frames()
    out: dict = {"face_set": {"face_frames": sum(f.face is not None for f in frames),
                              "nonface_frames": sum(f.face is None for f in frames)}}
    for name, det in detectors.items():
        hits = false_face = false_nonface = 0
        ms, det_ms = [], []
        for fr in frames:
            c0 = time.thread_time()
            found = det.detect_frame(fr.image, "rgb8")
            c1 = time.thread_time()
            box = main_face(found, fr.image.shape[1], fr.image.shape[0])
            if box is not None:
                expression(to_gray(fr.image, "rgb8"), box)
            c2 = time.thread_time()
            det_ms.append((c1 - c0) * 1e3)
            ms.append((c2 - c0) * 1e3)
            hit, wrong = score_frame(fr, np.array([b.as_array() for b in found]).reshape(-1, 4))
            hits += hit
            if fr.face is None:
                false_nonface += wrong
            else:
                false_face += wrong
        out["face_set"][name] = {"faces_found": hits, "false_in_face_frames": false_face,
                                 "false_in_nonface_frames": false_nonface, "stage": _stats(ms),
                                 "detection": _stats(det_ms)}
    # the sample video through the tracker the default model runs (every frame)
    cap = cv2.VideoCapture(str(ROOT / "mmstream/data/sample.mp4"))
    video = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        video.append(f)
    out["sample_video"] = {"frames": len(video)}
    for name in ("haar", "mtcnn"):
        tracker = FaceTracker(detectors[name], redetect_every=10, empty_rescan_every=2)
        ms, found_frames = [], 0
        for f in video:
            c0 = time.thread_time()
            found = tracker.update(f, "bgr8")
            box = main_face(found, f.shape[1], f.shape[0])
            if box is not None:
                expression(to_gray(f), box)
            ms.append((time.thread_time() - c0) * 1e3)
            found_frames += bool(found)
        out["sample_video"][name] = {"frames_with_face": found_frames, "full_scans": tracker.full_scans,
                                     "stage": _stats(ms)}
    haar, mtcnn = out["face_set"]["haar"], out["face_set"]["mtcnn"]
    out["targets"] = {"faces_vs_haar": round(mtcnn["faces_found"] / max(1, haar["faces_found"]), 2),
                      "target_faces_vs_haar": 3.0,
                      "stage_p50_ms_vs_haar_face_set": [mtcnn["stage"]["p50_ms"], haar["stage"]["p50_ms"]],
                      "sample_video_p50_ms": out["sample_video"]["mtcnn"]["stage"]["p50_ms"],
                      "budget_p50_ms": 15.0}
    return out


def bench_asr() -> dict:
    return {"skipped": "the ASR part is added by the speech recognition work"}


PARTS = {"face": bench_face, "asr": bench_asr}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("asr", "face", "all"), default="all")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    names = list(PARTS) if args.part == "all" else [args.part]
    result = {name: PARTS[name]() for name in names}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
