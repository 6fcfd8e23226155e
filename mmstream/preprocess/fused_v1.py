"""Preprocessing kind ``fused_v1``: windows -> inputs of the trainable FusedModel, outputs -> results.

Inputs (B = number of windows): frames B×T×3×S×S float32, frame_mask B×T float32,
logmel B×M×F float32, audio_mask B×F float32, tokens B×L int64, presence B×3 float32.
Params (``spec["preprocessing"]["params"]``, parsed into :class:`FusedV1Params`; an unknown or
missing key is a ModelError naming model.json and the key): {"video": {frames, size, mean, std,
crop}, "audio": LogMelParams fields, "text": {max_tokens}}; vocabulary from ``spec["vocab"]``.
With ``crop: face`` the face tracker is the stream state (:meth:`new_stream`), and each result
carries the window's main face box with the Haar detector's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmstream.errors import ModelError
from mmstream.messages import MODALITIES, Window
from mmstream.preprocess import Preprocessor, WindowResult, register_preprocessor
from mmstream.preprocess.base import BatchContext, FrameBoxes, check_windows
from mmstream.preprocess.image import prepare_frame
from mmstream.preprocess.logmel import LogMelParams, fit_frames, frame_mask, log_mel, resample_linear
from mmstream.preprocess.spec_params import parse_params
from mmstream.preprocess.tokenizer import Vocab

if TYPE_CHECKING:
    from mmstream.pretrained.face_detect import FaceTracker


def window_text(window: Window) -> str:
    return " ".join(u.text for u in sorted(window.utterances, key=lambda u: u.start_ns) if u.text)


@dataclass(frozen=True)
class VideoParams:
    """``params.video``: ``frames`` slots of size×size RGB, normalized (x/255 - mean) / std; ``crop`` is
    "center" (the centre square) or "face" (the main face found by the Haar detector; none -> masked)."""

    frames: int
    size: int
    mean: float
    std: float
    crop: str = "center"

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 1 or self.std <= 0:
            raise ValueError(f"video frames {self.frames}, size {self.size}, std {self.std}: expected >= 1, >= 1, > 0")
        if self.crop not in ("center", "face"):
            raise ValueError(f"video crop {self.crop!r}: expected 'center' or 'face'")


@dataclass(frozen=True)
class TextParams:
    """``params.text``: token ids per window (0-padded, truncated)."""

    max_tokens: int

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"text max_tokens {self.max_tokens}: expected >= 1")


@dataclass(frozen=True)
class FusedV1Params:
    """``spec["preprocessing"]["params"]`` of a fused_v1 package (written by FusedModelConfig.preprocessing_params)."""

    video: VideoParams
    audio: LogMelParams
    text: TextParams


@register_preprocessor("fused_v1")
class FusedV1Preprocessor(Preprocessor):
    def __init__(self, spec: dict[str, Any], package_dir: Path) -> None:
        super().__init__(spec, package_dir)
        params = parse_params(FusedV1Params, (spec.get("preprocessing") or {}).get("params"), file=self.spec_path)
        self.params = params
        self.frames, self.size = params.video.frames, params.video.size
        self.mean, self.std, self.crop = params.video.mean, params.video.std, params.video.crop
        self.audio = params.audio
        self.max_tokens = params.text.max_tokens
        vocab_name = spec.get("vocab") or "vocab.txt"
        vocab_path = self.package_dir / vocab_name
        try:
            self.vocab = Vocab.load(vocab_path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"vocabulary file {vocab_path}: {exc}") from exc
        self.detector = None
        if self.crop == "face":
            from mmstream.pretrained.face_detect import FaceDetector  # OpenCV; ModelError if not fetched

            self.detector = FaceDetector()
        labels = spec.get("labels") or {}
        self.emotion_labels = list(labels.get("emotion", []))
        self.event_labels = list(labels.get("events", []))

    def new_stream(self) -> FaceTracker | None:
        """With ``crop: face``, the face tracker (tracks run from frame to frame); else None."""
        if self.detector is None:
            return None
        from mmstream.pretrained.face_detect import FaceTracker

        return FaceTracker(self.detector)

    # ------------------------------------------------------------------ windows -> feed
    def prepare(self, windows: list[Window], stream: FaceTracker | None = None
                ) -> tuple[dict[str, np.ndarray], BatchContext]:
        check_windows(windows)
        tracker = stream if stream is not None else self.new_stream()
        b, t, s, a = len(windows), self.frames, self.size, self.audio
        feed = {
            "frames": np.zeros((b, t, 3, s, s), np.float32),
            "frame_mask": np.zeros((b, t), np.float32),
            "logmel": np.zeros((b, a.n_mels, a.n_frames), np.float32),
            "audio_mask": np.zeros((b, a.n_frames), np.float32),
            "tokens": np.zeros((b, self.max_tokens), np.int64),
            "presence": np.zeros((b, 3), np.float32),
        }
        context = BatchContext(size=b)
        for i, w in enumerate(windows):
            context.boxes.append(self._video(w, feed["frames"][i], feed["frame_mask"][i], tracker))
            self._audio(w, feed["logmel"], feed["audio_mask"], i)
            feed["tokens"][i] = self.vocab.encode(window_text(w), self.max_tokens)
            has = (feed["frame_mask"][i].any(), feed["audio_mask"][i].any(), bool(feed["tokens"][i].any()))
            feed["presence"][i] = [float(h and w.presence.get(m, True)) for m, h in zip(MODALITIES, has)]
        return feed, context

    def _video(self, w: Window, out: np.ndarray, mask: np.ndarray, tracker: FaceTracker | None) -> FrameBoxes | None:
        """Fill the frame slots; returns the last face box found (with a face crop), else None."""
        n = w.frames.shape[0]
        if n == 0 or w.frames.shape[1] == 0:
            return None
        slots = np.linspace(0, n - 1, self.frames).round().astype(int) if n > 1 else np.zeros(self.frames, int)
        cache: dict[int, tuple[np.ndarray | None, FrameBoxes | None]] = {}
        face = None
        for j, k in enumerate(slots):
            if not w.frame_mask[k]:
                continue
            if k not in cache:
                cache[k] = self._crop(w, int(k), tracker)
                face = cache[k][1] or face
            if cache[k][0] is not None:
                out[j] = cache[k][0]
                mask[j] = 1.0
        return face

    def _crop(self, w: Window, k: int, tracker: FaceTracker | None) -> tuple[np.ndarray | None, FrameBoxes | None]:
        frame = w.frames[k]
        if tracker is None:
            return prepare_frame(frame, self.size, self.mean, self.std, w.frame_encoding), None
        from mmstream.pretrained.face_detect import main_face, to_gray

        h, wd = frame.shape[:2]
        face = main_face(tracker.update(to_gray(frame, w.frame_encoding)), wd, h)
        if face is None:
            return None, None  # no face: this slot is masked
        side = 1.2 * max(face.width, face.height)
        cx, cy = (face.x1 + face.x2) / 2, (face.y1 + face.y2) / 2
        box = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        found = FrameBoxes(face.as_array()[None], np.array([face.score], np.float32), wd, h)
        return prepare_frame(frame, self.size, self.mean, self.std, w.frame_encoding, box=box), found

    def _audio(self, w: Window, mel_out: np.ndarray, mask_out: np.ndarray, i: int) -> None:
        a = self.audio
        if w.audio.shape[0] == 0:
            mel_out[i] = np.log(1e-6)
            return
        signal = w.audio.astype(np.float32, copy=False)
        signal = signal.mean(axis=1) if signal.shape[1] > 1 else signal[:, 0]  # mono
        sample_mask = w.audio_mask
        if w.sample_rate_hz != a.sample_rate_hz:
            signal = resample_linear(signal, w.sample_rate_hz, a.sample_rate_hz)
            pick = (np.arange(signal.shape[0]) * (w.sample_rate_hz / a.sample_rate_hz)).astype(int)
            sample_mask = sample_mask[np.minimum(pick, sample_mask.shape[0] - 1)]
        mel = log_mel(signal, a)
        mel, mask = fit_frames(mel, frame_mask(sample_mask, a, mel.shape[1]), a.n_frames)
        mel_out[i], mask_out[i] = mel, mask

    # ------------------------------------------------------------------ outputs -> results
    def postprocess(self, outputs: dict[str, np.ndarray], context: BatchContext) -> list[WindowResult]:
        results = []
        for i in range(context.size):
            r = WindowResult()
            if "emotion_probs" in outputs:
                r.labels, r.probs = list(self.emotion_labels), [float(x) for x in outputs["emotion_probs"][i]]
            if "event_probs" in outputs:
                r.event_labels = list(self.event_labels)
                r.event_scores = [float(x) for x in outputs["event_probs"][i]]
            pres = outputs["modality_presence"][i]
            contrib = outputs["contribution"][i]
            r.presence = {m: bool(pres[k] > 0.5) for k, m in enumerate(MODALITIES)}
            face = context.boxes[i]
            if face is not None:  # the main face of the window's last face frame, with the detector's score
                r.boxes, r.box_scores, r.box_labels = face.boxes, face.scores, [face.label] * len(face.boxes)
                r.image_width, r.image_height = face.width, face.height
            r.contribution = {m: float(contrib[k]) for k, m in enumerate(MODALITIES)}
            results.append(r)
        return results
