"""``mmstream bench perception [--part asr|face|all]``: the perception stages, JSON on stdout.

asr   speech recognition (mmstream.asr: Silero VAD + pocketsphinx, as the speech node runs it):
      word error rate and real-time factor (process CPU seconds per audio second, one core) on
      espeak-ng speech (several voices and rates) and on the real read speech in pocketsphinx's
      source distribution when given (--real-speech DIR: its test/data, see docs/models.md);
      end-of-speech -> utterance latency: audio pushed in 20 ms chunks at real-time pace, from the
      wall time the chunk holding the last speech sample is pushed to the time the utterance is out.
face  the face stage (added by the face front-end work).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SENTENCES = [
    "the weather is nice today and i would like to go for a walk in the park",
    "please bring me a cup of coffee from the kitchen",
    "i am very happy to see you again my friend",
    "the robot turned left and stopped in front of the door",
    "this is terrible i am so angry about what happened",
    "can you tell me what time the meeting starts tomorrow",
]
VOICES = ("en-us", "en-us+f2", "en-gb-x-rp", "en+m3")
RATES_WPM = (130, 175)
CHUNK_S = 0.02


def _espeak(text: str, voice: str, wpm: int, path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True, timeout=60,
                   capture_output=True)
    audio, rate = sf.read(str(path), dtype="float32")
    return audio, rate


def _decode(stream, audio: np.ndarray, rate: int, *, pace: bool = False, speech_end_s: float | None = None
            ) -> tuple[str, list[float]]:
    """Push ``audio`` in 20 ms chunks (pace: at real time); (text, end-of-speech latencies in seconds)."""
    n = int(rate * CHUNK_S)
    texts, latencies = [], []
    t_end_pushed = None
    start = time.perf_counter()
    for i in range(0, len(audio), n):
        if pace:
            time.sleep(max(0.0, start + (i + n) / rate - time.perf_counter()))  # the chunk is "captured" now
        out = stream.push(audio[i:i + n], 10**12 + i * 10**9 // rate, rate)
        if speech_end_s is not None and t_end_pushed is None and (i + n) / rate >= speech_end_s:
            t_end_pushed = time.perf_counter()
        for r in out:
            if r.final:
                texts.append(r.text)
                if t_end_pushed is not None:
                    latencies.append(time.perf_counter() - t_end_pushed)
    texts += [r.text for r in stream.flush() if r.final]
    return " ".join(texts), latencies


def _stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    a = np.asarray(xs)
    return {"p50": round(float(np.median(a)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4), "n": len(xs)}


def bench_asr(real_speech: Path | None = None, latency_runs: int = 6) -> dict:
    import soundfile as sf

    from mmstream.asr import open_speech_stream, word_error_rate

    stream = open_speech_stream()
    result: dict = {"model": "pocketsphinx 5.1.1 en-us (wheel), Silero VAD segments, second pass off"}
    per_voice: dict[str, dict] = {}
    cpu0, audio0 = stream.cpu_s, stream.audio_s
    all_pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            for wpm in RATES_WPM:
                pairs = []
                for k, text in enumerate(SENTENCES):
                    audio, rate = _espeak(text, voice, wpm, Path(tmp) / "s.wav")
                    pad = np.zeros(rate // 2, np.float32)
                    hyp, _ = _decode(stream, np.concatenate([pad, audio, pad, pad]), rate)
                    pairs.append((text, hyp))
                all_pairs += pairs
                per_voice[f"{voice}@{wpm}wpm"] = {"wer": round(word_error_rate(pairs), 3)}
        result["espeak"] = {"wer": round(word_error_rate(all_pairs), 3), "by_voice": per_voice,
                            "sentences": len(SENTENCES), "real_time_factor":
                                round((stream.cpu_s - cpu0) / (stream.audio_s - audio0), 3)}
        if real_speech is not None:
            pairs, cpu0, audio0 = [], stream.cpu_s, stream.audio_s
            for wav in sorted((real_speech / "librivox").glob("*.wav")):
                audio, rate = sf.read(str(wav), dtype="float32")
                hyp, _ = _decode(stream, np.concatenate([audio, np.zeros(rate, np.float32)]), rate)
                pairs.append((wav.with_suffix(".txt").read_text().strip(), hyp))
            raw = real_speech / "goforward.raw"
            if raw.is_file():
                audio = np.fromfile(raw, np.int16).astype(np.float32) / 32768
                hyp, _ = _decode(stream, np.concatenate([audio, np.zeros(16000, np.float32)]), 16000)
                pairs.append(("go forward ten meters", hyp))
            result["real_read_speech"] = {
                "source": "pocketsphinx-5.1.1 sdist test/data (LibriVox 'Sense and Sensibility' x5, goforward.raw)",
                "utterances": len(pairs), "wer": round(word_error_rate(pairs), 3),
                "real_time_factor": round((stream.cpu_s - cpu0) / max(1e-9, stream.audio_s - audio0), 3)}
        # end-of-speech -> utterance, at real-time pace
        latencies: list[float] = []
        for k in range(latency_runs):
            audio, rate = _espeak(SENTENCES[k % len(SENTENCES)], "en-us+f2", 150, Path(tmp) / "l.wav")
            loud = np.flatnonzero(np.abs(audio) > 0.01)
            lead = np.zeros(rate // 2, np.float32)
            _, lat = _decode(stream, np.concatenate([lead, audio, np.zeros(rate, np.float32)]), rate, pace=True,
                             speech_end_s=(lead.size + loud[-1] + 1) / rate)
            latencies += lat[-1:]
        result["end_of_speech_to_utterance_s"] = _stats(latencies)
        result["end_of_speech_note"] = ("min_silence_s 0.3 of the silence that ends an utterance, plus VAD framing "
                                        "(32 ms) and the final search")
    import resource

    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


# ------------------------------------------------------------------ face stage


def _face_stats(ms: list[float]) -> dict[str, float]:
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
                                 "false_in_nonface_frames": false_nonface, "stage": _face_stats(ms),
                                 "detection": _face_stats(det_ms)}
    # the sample video through the tracker the default model runs (every frame)
    cap = cv2.VideoCapture(str(REPO / "mmstream/data/sample.mp4"))
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
                                     "stage": _face_stats(ms)}
    haar, mtcnn = out["face_set"]["haar"], out["face_set"]["mtcnn"]
    out["targets"] = {"faces_vs_haar": round(mtcnn["faces_found"] / max(1, haar["faces_found"]), 2),
                      "target_faces_vs_haar": 3.0,
                      "stage_p50_ms_vs_haar_face_set": [mtcnn["stage"]["p50_ms"], haar["stage"]["p50_ms"]],
                      "sample_video_p50_ms": out["sample_video"]["mtcnn"]["stage"]["p50_ms"],
                      "budget_p50_ms": 15.0}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("asr", "face", "all"), default="all")
    ap.add_argument("--real-speech", type=Path, help="pocketsphinx's test/data directory (real read speech)")
    ap.add_argument("--latency-runs", type=int, default=6)
    args = ap.parse_args(argv)
    out: dict = {}
    if args.part in ("asr", "all"):
        out["asr"] = bench_asr(args.real_speech, args.latency_runs)
    if args.part in ("face", "all"):
        face = globals().get("bench_face")
        out["face"] = face() if face is not None else {"skipped": "no face part in this file yet"}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
