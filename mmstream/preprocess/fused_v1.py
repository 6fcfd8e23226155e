"""Preprocessing kind ``fused_v1``: windows -> inputs of the trainable FusedModel, outputs -> results.

Inputs (B = number of windows): frames B×T×3×S×S float32, frame_mask B×T float32,
logmel B×M×F float32, audio_mask B×F float32, tokens B×L int64, presence B×3 float32.
Params (``spec["preprocessing"]["params"]``): {"video": {frames, size, mean, std, crop},
"audio": LogMelParams fields, "text": {max_tokens}}; vocabulary from ``spec["vocab"]`` in the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmstream.errors import ModelError
from mmstream.messages import MODALITIES, Window
from mmstream.preprocess import Preprocessor, WindowResult, register_preprocessor
from mmstream.preprocess.image import prepare_frame
from mmstream.preprocess.logmel import LogMelParams, fit_frames, frame_mask, log_mel, resample_linear
from mmstream.preprocess.tokenizer import Vocab


def window_text(window: Window) -> str:
    return " ".join(u.text for u in sorted(window.utterances, key=lambda u: u.start_ns) if u.text)


@register_preprocessor("fused_v1")
class FusedV1Preprocessor(Preprocessor):
    def __init__(self, spec: dict[str, Any], package_dir: Path) -> None:
        super().__init__(spec, package_dir)
        try:
            params = spec["preprocessing"]["params"]
            v = params["video"]
            self.frames, self.size = int(v["frames"]), int(v["size"])
            self.mean, self.std = float(v["mean"]), float(v["std"])
            self.crop = str(v.get("crop", "center"))
            self.audio = LogMelParams(**params["audio"])
            self.max_tokens = int(params["text"]["max_tokens"])
        except (KeyError, TypeError) as exc:
            raise ModelError(f"model spec {spec.get('name', '?')!r}: fused_v1 preprocessing params incomplete "
                             f"(missing {exc}); expected video/audio/text sections") from exc
        vocab_name = spec.get("vocab") or "vocab.txt"
        vocab_path = self.package_dir / vocab_name
        try:
            self.vocab = Vocab.load(vocab_path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"vocabulary file {vocab_path}: {exc}") from exc
        self.tracker = None
        if self.crop == "face":
            from mmstream.pretrained.face_detect import FaceDetector, FaceTracker  # OpenCV; ModelError if not fetched

            self.tracker = FaceTracker(FaceDetector())
        elif self.crop != "center":
            raise ModelError(f"model spec {spec.get('name', '?')!r}: video crop {self.crop!r} (expected center or face)")
        self._faces: dict[int, tuple[np.ndarray, int, int]] = {}  # id(window) -> (box, width, height)
        labels = spec.get("labels") or {}
        self.emotion_labels = list(labels.get("emotion", []))
        self.event_labels = list(labels.get("events", []))

    # ------------------------------------------------------------------ windows -> feed
    def prepare(self, windows: list[Window]) -> dict[str, np.ndarray]:
        b, t, s, a = len(windows), self.frames, self.size, self.audio
        self._faces = {}
        feed = {
            "frames": np.zeros((b, t, 3, s, s), np.float32),
            "frame_mask": np.zeros((b, t), np.float32),
            "logmel": np.zeros((b, a.n_mels, a.n_frames), np.float32),
            "audio_mask": np.zeros((b, a.n_frames), np.float32),
            "tokens": np.zeros((b, self.max_tokens), np.int64),
            "presence": np.zeros((b, 3), np.float32),
        }
        for i, w in enumerate(windows):
            self._video(w, feed["frames"][i], feed["frame_mask"][i])
            self._audio(w, feed["logmel"], feed["audio_mask"], i)
            feed["tokens"][i] = self.vocab.encode(window_text(w), self.max_tokens)
            has = (feed["frame_mask"][i].any(), feed["audio_mask"][i].any(), bool(feed["tokens"][i].any()))
            feed["presence"][i] = [float(h and w.presence.get(m, True)) for m, h in zip(MODALITIES, has)]
        return feed

    def _video(self, w: Window, out: np.ndarray, mask: np.ndarray) -> None:
        n = w.frames.shape[0]
        if n == 0 or w.frames.shape[1] == 0:
            return
        slots = np.linspace(0, n - 1, self.frames).round().astype(int) if n > 1 else np.zeros(self.frames, int)
        cache: dict[int, np.ndarray | None] = {}
        for j, k in enumerate(slots):
            if not w.frame_mask[k]:
                continue
            if k not in cache:
                cache[k] = self._crop(w, int(k))
            if cache[k] is not None:
                out[j] = cache[k]
                mask[j] = 1.0

    def _crop(self, w: Window, k: int) -> np.ndarray | None:
        frame = w.frames[k]
        if self.tracker is None:
            return prepare_frame(frame, self.size, self.mean, self.std, w.frame_encoding)
        from mmstream.pretrained.face_detect import main_face, to_gray

        h, wd = frame.shape[:2]
        face = main_face(self.tracker.update(to_gray(frame, w.frame_encoding)), wd, h)
        if face is None:
            return None  # no face: this slot is masked
        side = 1.2 * max(face.width, face.height)
        cx, cy = (face.x1 + face.x2) / 2, (face.y1 + face.y2) / 2
        box = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        self._faces[id(w)] = (np.array([[face.x1, face.y1, face.x2, face.y2]], np.float32), wd, h)
        return prepare_frame(frame, self.size, self.mean, self.std, w.frame_encoding, box=box)

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
    def postprocess(self, outputs: dict[str, np.ndarray], windows: list[Window]) -> list[WindowResult]:
        results = []
        for i in range(len(windows)):
            r = WindowResult()
            if "emotion_probs" in outputs:
                r.labels, r.probs = list(self.emotion_labels), [float(x) for x in outputs["emotion_probs"][i]]
            if "event_probs" in outputs:
                r.event_labels = list(self.event_labels)
                r.event_scores = [float(x) for x in outputs["event_probs"][i]]
            pres = outputs["modality_presence"][i]
            contrib = outputs["contribution"][i]
            r.presence = {m: bool(pres[k] > 0.5) for k, m in enumerate(MODALITIES)}
            face = self._faces.pop(id(windows[i]), None)
            if face is not None:
                r.boxes, r.image_width, r.image_height = face
                r.box_scores, r.box_labels = np.ones(1, np.float32), ["face"]
            r.contribution = {m: float(contrib[k]) for k, m in enumerate(MODALITIES)}
            results.append(r)
        return results
