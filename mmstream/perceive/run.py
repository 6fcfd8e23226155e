"""The Perceiver: inputs -> JSON-ready dicts (see the package docstring), optional annotated output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.clock import NS_PER_S
from mmstream.errors import MmstreamError
from mmstream.messages import Header, TextUtterance, Window

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
TEXT_SUFFIXES = (".txt",)
RATE_HZ = 16000
_GAP_NS = 10 * NS_PER_S  # inputs are this far apart on the model's clock, so no face track or VAD state carries over


class PerceiveError(MmstreamError):
    """One input could not be perceived (unreadable, empty, of an unknown kind)."""


def _probs(labels: list[str], probs: list[float]) -> dict[str, float]:
    return {k: round(float(p), 4) for k, p in zip(labels, probs)}


class Perceiver:
    """Holds the default model (ONNX Runtime) and the recognizer; ``perceive(path)`` yields JSON-ready dicts."""

    def __init__(self, model_dir: str | Path | None = None, *, backend: str = "onnxruntime") -> None:
        from mmstream.pretrained.cache import default_model_dir
        from mmstream.runtime.pipeline import InferencePipeline

        self.pipeline = InferencePipeline.open(Path(model_dir) if model_dir else default_model_dir(), backend=backend,
                                               fallback="none")
        self.detector = self.pipeline.preprocessor.detector  # the default model's face detector
        self._speech = None
        self._t_ns = NS_PER_S * 1000

    # ------------------------------------------------------------------ windows
    def _next_ns(self, length_ns: int) -> int:
        self._t_ns += length_ns + _GAP_NS
        return self._t_ns

    def _window(self, *, frame: np.ndarray | None = None, audio: np.ndarray | None = None,
                utterances: list[tuple[str, str]] = (), start_ns: int | None = None, length_ns: int = NS_PER_S
                ) -> Window:
        start = self._next_ns(length_ns) if start_ns is None else start_ns
        end = start + length_ns
        f = np.zeros((1, 1, 1, 3), np.uint8) if frame is None else frame[None]
        a = np.zeros((0, 1), np.float32) if audio is None else audio.reshape(-1, 1).astype(np.float32)
        utts = [TextUtterance(header=Header(stamp_ns=end), start_ns=start, end_ns=end, text=t, source=s)
                for t, s in utterances]
        return Window(header=Header(stamp_ns=end), start_ns=start, end_ns=end, sample_rate_hz=RATE_HZ,
                      frame_encoding="bgr8", utterances=utts,
                      presence={"video": frame is not None, "audio": a.shape[0] > 0, "text": bool(utts)},
                      coverage={}, frames=f, frame_mask=np.array([frame is not None]),
                      frame_stamps_ns=np.array([start + length_ns // 2 if frame is not None else 0], np.int64),
                      audio=a, audio_mask=np.ones(a.shape[0], bool), audio_chunk_stamps_ns=np.zeros(0, np.int64))

    def _estimate(self, w: Window) -> dict[str, float] | None:
        r = self.pipeline.run([w]).results[0]
        return _probs(r.labels, r.probs) if r.probs else None

    # ------------------------------------------------------------------ stages
    def faces(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Every face the model's detector finds, with its expression (the model on a crop around it)."""
        h, w = image.shape[:2]
        out = []
        for box in self.detector.detect_frame(image, "bgr8"):
            x1, y1, x2, y2 = (float(v) for v in box.as_array())
            side = max(x2 - x1, y2 - y1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            c = [int(max(0, cx - side)), int(max(0, cy - side)), int(min(w, cx + side)), int(min(h, cy + side))]
            crop = np.ascontiguousarray(image[c[1]:c[3], c[0]:c[2]])
            expression = self._estimate(self._window(frame=crop)) if crop.size else None
            landmarks = getattr(box, "landmarks", None)
            out.append({"box": [round(max(0.0, x1), 1), round(max(0.0, y1), 1), round(min(float(w), x2), 1),
                                round(min(float(h), y2), 1)],
                        "score": round(float(box.score), 4),
                        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in landmarks]
                        if landmarks is not None else None,
                        "expression": expression})
        return out

    def speech(self, audio16k: np.ndarray) -> list[dict[str, Any]]:
        from mmstream.asr import open_speech_stream

        if self._speech is None:
            self._speech = open_speech_stream()
        results = self._speech.push(audio16k, 0, RATE_HZ) + self._speech.flush()
        return [{"start_s": round(r.start_ns / NS_PER_S, 3), "end_s": round(r.end_ns / NS_PER_S, 3), "text": r.text,
                 "confidence": r.confidence} for r in results if r.final]

    def text_emotion(self, utterances: list[tuple[str, str]]) -> dict[str, float] | None:
        return self._estimate(self._window(utterances=utterances)) if utterances else None

    # ------------------------------------------------------------------ inputs
    def perceive(self, path: str | Path) -> Iterator[dict[str, Any]]:
        path = Path(path)
        if not path.is_file():
            raise PerceiveError(f"{path}: no such file (expected an image, a video, an audio file or a .txt)")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            yield self.image(path)
        elif suffix in VIDEO_SUFFIXES:
            yield from self.video(path)
        elif suffix in AUDIO_SUFFIXES:
            yield self.audio(path)
        elif suffix in TEXT_SUFFIXES:
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise PerceiveError(f"{path}: cannot read it as UTF-8 text: {e}") from None
            yield self.text(text, file=str(path))
        else:
            raise PerceiveError(f"{path}: unknown kind {suffix or '(no suffix)'!r}; expected an image "
                                f"({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_SUFFIXES)}), audio "
                                f"({', '.join(AUDIO_SUFFIXES)}) or text (.txt)")

    def image(self, path: Path) -> dict[str, Any]:
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise PerceiveError(f"{path}: OpenCV cannot read it as an image (expected PNG, JPEG, BMP, WebP or TIFF)")
        return {"file": str(path), "kind": "image", "faces": self.faces(image), "speech": [], "text_emotion": None,
                "estimate": self._estimate(self._window(frame=image)), "_image": image}

    def video(self, path: Path) -> Iterator[dict[str, Any]]:
        import cv2

        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise PerceiveError(f"{path}: OpenCV cannot open it as a video (expected a file ffmpeg can decode)")
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        period_ns = int(NS_PER_S / fps)
        base = self._next_ns(0)
        index = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                start = base + index * period_ns
                yield {"file": str(path), "kind": "video", "frame": index, "stamp_s": round(index / fps, 4),
                       "faces": self.faces(frame), "speech": [], "text_emotion": None,
                       "estimate": self._estimate(self._window(frame=frame, start_ns=start, length_ns=period_ns)),
                       "_image": frame, "_fps": fps}
                index += 1
        finally:
            cap.release()
        self._t_ns = base + index * period_ns
        if index == 0:
            raise PerceiveError(f"{path}: the video has no frames OpenCV can decode")

    def audio(self, path: Path) -> dict[str, Any]:
        import soundfile as sf

        from mmstream.preprocess.logmel import resample_linear

        try:
            samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as e:
            raise PerceiveError(f"{path}: cannot read it as audio (expected wav, flac, ogg or mp3): {e}") from None
        if samples.shape[0] == 0:
            raise PerceiveError(f"{path}: the audio file has no samples")
        mono = resample_linear(samples.mean(axis=1), int(rate), RATE_HZ)
        speech = self.speech(mono)
        utterances = [(s["text"], "asr") for s in speech]
        length_ns = mono.size * NS_PER_S // RATE_HZ
        return {"file": str(path), "kind": "audio", "faces": [], "speech": speech,
                "text_emotion": self.text_emotion(utterances),
                "estimate": self._estimate(self._window(audio=mono, utterances=utterances, length_ns=length_ns))}

    def text(self, text: str, *, file: str = "<text>") -> dict[str, Any]:
        if not text.strip():
            raise PerceiveError(f"{file}: the text is empty")
        emotion = self.text_emotion([(text, "typed")])
        return {"file": file, "kind": "text", "faces": [], "speech": [], "text_emotion": emotion, "estimate": emotion}
