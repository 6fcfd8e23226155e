"""Preprocessing of the default pretrained model (kind ``pretrained_default``): numpy + OpenCV + ONNX Runtime.

Per window:
  video  up to ``face_slots`` frames with ``frame_mask`` set, one per equal part of the window on a
         time grid anchored at zero (so overlapping windows share frames, and each source frame is
         scanned once: results are cached by frame stamp); in each, the Haar tracker finds faces
         (at ``detect_side_px``, tracking between full scans); the main face (largest, most
         central) is cropped as fer does and normalized to [-1, 1]. No face -> slot masked.
  audio  Silero VAD run over the audio stream (:class:`VadStream`: each 32 ms frame once, state
         carried from window to window) gives the speech probabilities of the frames inside the
         window; its speech_prob is their 80th percentile; prosody cues come from the frames VAD calls speech.
         No real audio -> audio_present 0; silence -> speech_prob ~0, which gates the audio expert off.
  text   VADER scores of the utterances overlapping the window, joined. None -> text_present 0;
         typed text -> 1; recognized speech (source "asr") -> ASR_TEXT_WEIGHT (0.5): a weaker gate.
         When the MiniLM text encoder was fetched (``text_encoder_dir`` in the preprocessing params,
         ``../text_encoder`` next to the package), also its 7 prototype emotion probabilities
         (text_emotion, text_emotion_present 1); otherwise zeros and text_emotion_present 0, and the
         model's text expert is VADER alone. Which one is used is logged once.

State that runs from window to window (the graph feeds windows in time order) lives in a
:class:`DefaultStream` the caller owns (:meth:`PretrainedDefaultPreprocessor.new_stream`; the
inference pipeline holds one): the face tracker, the VAD stream and the faces of recent frames. A
window that starts no later than the previous one (a replay restarting) or more than 1 s after its
end resets it. With nothing in view, every 2nd frame slot gets a full scan (with tilted retries).
The preprocessor itself keeps only the loaded models and a memo of text scores (a pure function).

Params (``spec["preprocessing"]["params"]``) are parsed into :class:`PretrainedDefaultParams`: an
unknown key is a ModelError naming model.json, the key and the keys allowed.
Detections: the boxes of the window's latest face frame (clipped to the frame) with the detector's
score (:attr:`~mmstream.pretrained.face_detect.FaceBox.score`: MTCNN's O-Net probability by default,
the Haar cascade's confidence with ``face_detector: haar``) as box_scores.
Face detector (``face_detector``): MTCNN (:class:`~mmstream.pretrained.mtcnn.MtcnnFaceDetector`, on
a ``detect_side_px`` copy, ±90° retries, O-Net tracking between full scans; the crop is turned so
the eyes are level) or the Haar cascade. Expression smoothing (``expression_smoothing_s``): the face
expert of each window is replaced by an exponential moving average of the main face's expression
over the windows of its track (:class:`~mmstream.pretrained.expression_smoothing.ExpressionSmoother`),
applied in postprocess by re-weighting the fused log-probabilities (exact for the gated log-linear fusion).
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.clock import NS_PER_S
from mmstream.errors import ModelError
from mmstream.messages import MODALITIES, Window
from mmstream.preprocess import Preprocessor, WindowResult, register_preprocessor
from mmstream.preprocess.base import BatchContext, FrameBoxes, check_windows
from mmstream.preprocess.logmel import resample_linear
from mmstream.preprocess.spec_params import parse_params
from mmstream.pretrained.expression_smoothing import ExpressionSmoother
from mmstream.pretrained.face_detect import (FaceBox, FaceDetector, FaceTracker, crop_face, main_face, normalize_face,
                                             to_gray)
from mmstream.pretrained.prosody import prosody_cues
from mmstream.pretrained.text_emotion import TextEmotion, text_encoder_available, text_weight
from mmstream.pretrained.text_sentiment import TextSentiment
from mmstream.pretrained.vad import FRAME_SAMPLES, SAMPLE_RATE_HZ, SileroVad

MAX_TRACK_GAP_NS = NS_PER_S  # windows further apart than this start a fresh track
TEXT_CACHE_SIZE = 32  # texts whose scores are kept (overlapping windows share their utterances)
log = logging.getLogger("mmstream.preprocess.pretrained_default")


class VadStream:
    """Silero VAD run over the audio *stream*, not per window: each 32 ms frame is computed once, on
    a frame grid that continues from window to window with the model's recurrent state carried over
    (as Silero is meant to run). Overlapping windows (hop < length) then cost only their new part,
    and every window sees the same probability for the same stretch of audio. Frames are placed by
    absolute sample index (window start on the 16 kHz grid); a gap or a jump back restarts the stream.
    """

    def __init__(self, vad: SileroVad) -> None:
        self.vad = vad
        self._next: int | None = None  # absolute index of the first sample of the next frame
        self._probs: collections.OrderedDict[int, float] = collections.OrderedDict()  # frame start -> prob

    def reset(self) -> None:
        self.vad.reset()
        self._next = None
        self._probs.clear()

    def window(self, mono16k: np.ndarray, start_ns: int) -> tuple[int, np.ndarray]:
        """(offset of the first whole frame in the window, probabilities of the whole frames inside)."""
        s0 = start_ns * SAMPLE_RATE_HZ // NS_PER_S
        end = s0 + mono16k.size
        if self._next is None or self._next < s0 or self._next > end:  # first window, a gap, or a jump back
            self.reset()
            self._next = s0
        while self._next + FRAME_SAMPLES <= end:
            i = self._next - s0
            self._probs[self._next] = self.vad.frame_probability(mono16k[i:i + FRAME_SAMPLES])
            self._next += FRAME_SAMPLES
        while self._probs and next(iter(self._probs)) < s0:  # windows come in time order: older frames are done
            self._probs.popitem(last=False)
        starts = [k for k in self._probs if k + FRAME_SAMPLES <= end]
        if not starts:
            return 0, np.zeros(0, np.float32)
        return starts[0] - s0, np.array([self._probs[k] for k in starts], np.float32)


@dataclass(frozen=True)
class PretrainedDefaultParams:
    """``spec["preprocessing"]["params"]`` of a pretrained_default package (see default_model.model_spec)."""

    face_slots: int = 4             # frame slots per window fed to the face CNN
    face_size: int = 64             # face crop side, pixels (the CNN's input)
    face_margin: float = 0.1        # fer's crop margin, as a fraction of the face side
    detect_side_px: int = 320       # face detection runs on a copy whose longer side is this
    face_detector: str = "mtcnn"    # "mtcnn" (default: MTCNN via ONNX Runtime, ±90° retries) or "haar"
    expression_smoothing_s: float = 1.0  # time constant of the per-track face expression EMA (0: off)
    redetect_every: int = 10        # full scans every this many frames while a face is tracked
    empty_rescan_every: int = 2     # full scans every this many frames while none is in view
    speech_threshold: float = 0.5   # VAD probability above which a 32 ms frame counts as speech
    sample_rate_hz: int = SAMPLE_RATE_HZ  # the audio branch's rate (Silero VAD's); windows are resampled to it
    text_encoder_dir: str = ""      # MiniLM text encoder, relative to the package ("": VADER only)

    def __post_init__(self) -> None:
        if min(self.face_slots, self.face_size, self.detect_side_px, self.redetect_every,
               self.empty_rescan_every) < 1:
            raise ValueError("face_slots, face_size, detect_side_px, redetect_every and empty_rescan_every "
                             "must be >= 1")
        if not 0.0 <= self.speech_threshold <= 1.0 or self.face_margin < 0.0:
            raise ValueError(f"speech_threshold {self.speech_threshold} (expected 0..1) / face_margin "
                             f"{self.face_margin} (expected >= 0)")
        if self.face_detector not in ("mtcnn", "haar") or self.expression_smoothing_s < 0:
            raise ValueError(f"face_detector {self.face_detector!r} (expected 'mtcnn' or 'haar') / "
                             f"expression_smoothing_s {self.expression_smoothing_s} (expected >= 0)")
        if self.sample_rate_hz != SAMPLE_RATE_HZ:
            raise ValueError(f"sample_rate_hz {self.sample_rate_hz}: the audio branch runs at {SAMPLE_RATE_HZ} "
                             f"(Silero VAD)")


class DefaultStream:
    """What runs from window to window of one time-ordered stream: the face tracker, the VAD stream,
    the faces of recent source frames (by stamp) and the span of the last window."""

    def __init__(self, tracker: FaceTracker, vad: VadStream, smoother: ExpressionSmoother | None = None) -> None:
        self.tracker = tracker
        self.vad = vad
        self.smoother = smoother if smoother is not None else ExpressionSmoother(0.0)
        self.faces: dict[int, tuple] = {}  # frame stamp -> (crop or None, faces, width, height)
        self.last_start_ns: int | None = None
        self.last_end_ns = 0

    def follow(self, w: Window) -> None:
        """Move on to window ``w``: a replay restarting or a gap makes what was tracked stale."""
        if self.last_start_ns is not None and (w.start_ns <= self.last_start_ns
                                               or w.start_ns - self.last_end_ns > MAX_TRACK_GAP_NS):
            self.tracker.reset()
            self.smoother.reset()
            self.faces.clear()
            self.vad.reset()
        else:  # windows come in time order: frames a window length before this one are not asked for again
            horizon = w.start_ns - (w.end_ns - w.start_ns)
            for stamp in [k for k in self.faces if k < horizon]:
                del self.faces[stamp]
        self.last_start_ns, self.last_end_ns = w.start_ns, w.end_ns


@dataclass
class DefaultBatchContext(BatchContext):
    """BatchContext plus, per window, (track id of the main face of its latest face frame or None,
    window end stamp) and the stream's expression smoother, which postprocess moves in window order."""

    tracks: list[tuple[int | None, int]] = field(default_factory=list)
    smoother: ExpressionSmoother | None = None


@register_preprocessor("pretrained_default")
class PretrainedDefaultPreprocessor(Preprocessor):
    def __init__(self, spec: dict[str, Any], package_dir: Path) -> None:
        super().__init__(spec, package_dir)
        p = parse_params(PretrainedDefaultParams, (spec.get("preprocessing") or {}).get("params"),
                         file=self.spec_path)
        self.params = p
        self.face_slots, self.face_size, self.face_margin = p.face_slots, p.face_size, p.face_margin
        self.speech_threshold = p.speech_threshold
        self.labels = list(spec.get("labels", []))
        self.event_labels = list(spec.get("event_labels", ["face_present", "speech_present"]))
        if not self.labels:
            raise ModelError(f"model spec {spec.get('name', '?')!r} in {package_dir}: no 'labels'")
        if p.face_detector == "mtcnn":
            from mmstream.pretrained.mtcnn import MtcnnFaceDetector

            self.detector = MtcnnFaceDetector(detect_side_px=p.detect_side_px)
        else:
            self.detector = FaceDetector(detect_side_px=p.detect_side_px)
        fusion = spec.get("fusion") or {}
        self._video_gate = float((fusion.get("gate_weights") or {}).get("video", 1.0))
        self._prior_eps = float(fusion.get("prior_eps", 1e-3))
        self.vad = SileroVad()  # the loaded model; each stream runs its own recurrent state on it
        self.text = TextSentiment()
        # packages built before text_emotion existed (builder < 5) have no such inputs: VADER only
        self._emotion_inputs = any(i.get("name") == "text_emotion" for i in spec.get("inputs", []))
        self.text_emotion = self._open_text_emotion(package_dir, p) if self._emotion_inputs else None
        # overlapping windows share their utterances: text scores are a pure function of the text
        self._text_scores = functools.lru_cache(maxsize=TEXT_CACHE_SIZE)(self._score_text)

    def new_stream(self) -> DefaultStream:
        p = self.params
        return DefaultStream(FaceTracker(self.detector, redetect_every=p.redetect_every,
                                         empty_rescan_every=p.empty_rescan_every),
                             VadStream(self.vad.fresh()), ExpressionSmoother(p.expression_smoothing_s))

    # ------------------------------------------------------------------ video
    def _slot_indices(self, w: Window) -> list[int]:
        """Up to ``face_slots`` frames, one per equal part of the window.

        The parts lie on a grid anchored at time zero, not at the window start, so overlapping
        windows (hop < length) pick the *same* source frames where they overlap and the per-frame
        cache answers for them: with the default 1 s / 0.5 s windows half the faces are reused.
        """
        real = [i for i in range(w.frames.shape[0]) if bool(w.frame_mask[i])]
        if len(real) <= self.face_slots:
            return real
        stamps = [int(w.frame_stamps_ns[i]) for i in real]
        period = (w.end_ns - w.start_ns) // self.face_slots
        if period <= 0 or not all(stamps):  # no stamps to anchor on: spread over the window
            pick = np.linspace(0, len(real) - 1, self.face_slots).round().astype(int)
            return [real[i] for i in pick]
        first = -(-w.start_ns // period)  # first grid line at or after the window start
        picks: list[int] = []
        for k in range(self.face_slots):
            centre = (first + k) * period + period // 2
            if centre >= w.end_ns:
                break
            j = min(range(len(real)), key=lambda j: abs(stamps[j] - centre))
            if real[j] not in picks:
                picks.append(real[j])
        return picks

    def _face_of(self, w: Window, i: int, stream: DefaultStream) -> tuple[np.ndarray | None, list[FaceBox], int, int]:
        """(normalized face crop or None, faces found, width, height) of frame ``i``; each source
        frame (by stamp) is scanned once, so the tracker sees frames once and in time order."""
        stamp = int(w.frame_stamps_ns[i])
        hit = stream.faces.get(stamp) if stamp else None
        if hit is not None:
            return hit
        gray = to_gray(w.frames[i], w.frame_encoding)
        height, width = gray.shape[:2]
        found = stream.tracker.update(w.frames[i], w.frame_encoding)
        box = main_face(found, width, height)
        face = None if box is None else normalize_face(crop_face(gray, box, size=self.face_size,
                                                                 margin=self.face_margin))
        result = (face, found, width, height)
        if stamp:
            stream.faces[stamp] = result
        return result

    def _faces(self, w: Window, stream: DefaultStream
               ) -> tuple[np.ndarray, np.ndarray, FrameBoxes | None, int | None]:
        """(face crops, their mask, the boxes of the latest face frame with the size of the frames
        scanned (None when no frame was scanned), the track id of that frame's main face or None)."""
        faces = np.zeros((self.face_slots, 1, self.face_size, self.face_size), np.float32)
        mask = np.zeros(self.face_slots, np.float32)
        latest: list[FaceBox] = []
        track: int | None = None
        scanned = False
        height = width = 0
        for slot, i in enumerate(self._slot_indices(w)):
            face, found, width, height = self._face_of(w, i, stream)
            scanned = True
            if face is None:
                continue
            faces[slot, 0] = face
            mask[slot] = 1.0
            latest = found
            main = main_face(found, width, height)
            track = main.track_id if main is not None else None
        if not scanned:
            return faces, mask, None, None
        boxes = np.stack([b.as_array() for b in latest]) if latest else np.zeros((0, 4), np.float32)
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)  # published inside the frame
        return (faces, mask, FrameBoxes(boxes, np.array([b.score for b in latest], np.float32), width, height),
                track)

    # ------------------------------------------------------------------ audio
    def _audio(self, w: Window, stream: DefaultStream) -> tuple[np.ndarray, float]:
        if not w.presence.get("audio", True) or w.audio.size == 0 or not w.audio_mask.any():
            return np.zeros(4, np.float32), 0.0
        mono = w.audio.astype(np.float32).mean(axis=1)
        mono = resample_linear(mono, int(w.sample_rate_hz), SAMPLE_RATE_HZ)
        real = resample_linear(w.audio_mask.astype(np.float32), int(w.sample_rate_hz), SAMPLE_RATE_HZ) > 0.5
        offset, probs = stream.vad.window(mono, w.start_ns)
        if probs.size == 0:
            return np.zeros(4, np.float32), 1.0
        speech_prob = float(np.percentile(probs, 80))
        speech_mask = np.zeros(mono.size, bool)
        for i, p in enumerate(probs):
            speech_mask[offset + i * FRAME_SAMPLES:offset + (i + 1) * FRAME_SAMPLES] = p > self.speech_threshold
        speech_mask &= real[:mono.size]
        cues = prosody_cues(mono, SAMPLE_RATE_HZ, speech_mask if speech_mask.any() else None)
        return np.array([speech_prob, cues.arousal, cues.loudness, cues.pitch_var], np.float32), 1.0

    # ------------------------------------------------------------------ text
    @staticmethod
    def _open_text_emotion(package_dir: Path, params: PretrainedDefaultParams) -> TextEmotion | None:
        """The MiniLM text emotion scorer when its files are there (else None: VADER only); logged once."""
        rel = params.text_encoder_dir
        directory = (Path(package_dir) / rel).resolve() if rel else None
        if directory is not None and text_encoder_available(directory):
            log.info("text branch: VADER valence + MiniLM emotion scores (%s)", directory)
            return TextEmotion(directory, threads=2)  # like the inference node's intra_op_threads default
        if rel:  # the model can use MiniLM, but it was not fetched
            log.info("text branch: VADER valence only (no MiniLM text encoder at %s; `mmstream models fetch` "
                     "without --no-minilm builds it)", directory)
        return None

    def _score_text(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(VADER scores, MiniLM emotion probabilities or zeros) of ``text``; memoized per preprocessor."""
        emotion = self.text_emotion.probs(text) if self.text_emotion is not None else \
            np.zeros(len(self.labels), np.float32)
        return self.text.scores(text), emotion

    def _text(self, w: Window) -> tuple[np.ndarray, float, np.ndarray, float]:
        """(VADER scores, text_present, MiniLM emotion probabilities or zeros, text_emotion_present).

        text_present is the text expert's gate: 1 for typed text, lower for recognized speech
        (source "asr": :func:`~mmstream.pretrained.text_emotion.text_weight`)."""
        said = [u for u in w.utterances if u.text.strip()]
        text = " ".join(u.text.strip() for u in said)
        if not text or not w.presence.get("text", True):
            return np.array([0.0, 1.0, 0.0, 0.0], np.float32), 0.0, np.zeros(len(self.labels), np.float32), 0.0
        scores, emotion = self._text_scores(text)
        weight = text_weight([u.source for u in said], [len(u.text.strip()) for u in said])
        return scores, weight, emotion, float(self.text_emotion is not None)

    def prepare(self, windows: list[Window], stream: DefaultStream | None = None
                ) -> tuple[dict[str, np.ndarray], BatchContext]:
        check_windows(windows)  # before the stream moves
        stream = stream if stream is not None else self.new_stream()
        b = len(windows)
        feed = {"faces": np.zeros((b, self.face_slots, 1, self.face_size, self.face_size), np.float32),
                "face_mask": np.zeros((b, self.face_slots), np.float32),
                "audio_cues": np.zeros((b, 4), np.float32), "audio_present": np.zeros(b, np.float32),
                "text_scores": np.zeros((b, 4), np.float32), "text_present": np.zeros(b, np.float32),
                "text_emotion": np.zeros((b, len(self.labels)), np.float32),
                "text_emotion_present": np.zeros(b, np.float32)}
        context = DefaultBatchContext(size=b, smoother=stream.smoother)
        stages = {"faces": 0.0, "audio": 0.0, "text": 0.0}  # face detection + CNN crops, VAD + prosody, VADER + MiniLM
        for k, w in enumerate(windows):
            stream.follow(w)
            t0 = time.perf_counter()
            boxes = track = None
            if w.presence.get("video", True):
                feed["faces"][k], feed["face_mask"][k], boxes, track = self._faces(w, stream)
            context.boxes.append(boxes)
            context.tracks.append((track, int(w.end_ns)))
            t1 = time.perf_counter()
            feed["audio_cues"][k], feed["audio_present"][k] = self._audio(w, stream)
            t2 = time.perf_counter()
            (feed["text_scores"][k], feed["text_present"][k], feed["text_emotion"][k],
             feed["text_emotion_present"][k]) = self._text(w)
            t3 = time.perf_counter()
            context.presence.append({"audio": bool(feed["audio_present"][k] > 0.5),
                                     "text": bool(feed["text_present"][k] > 0.0)})
            for stage, ms in (("faces", t1 - t0), ("audio", t2 - t1), ("text", t3 - t2)):
                stages[stage] += ms * 1e3
        if not self._emotion_inputs:
            del feed["text_emotion"], feed["text_emotion_present"]
        context.stage_ms = {k: round(v, 3) for k, v in stages.items()}
        return feed, context

    def _smoothed(self, outputs: dict[str, np.ndarray], context: BatchContext, k: int) -> np.ndarray:
        """Window ``k``'s fused probabilities with its face expert replaced by the track's smoothed one.

        The graph's fusion is log p = (g_f·log f + rest) / (T + eps) + const with f = face_probs,
        g_f = the video gate and T = the sum of gates, so swapping f for the smoothed s adds
        g_f / (T + eps) · (log s - log f), where T = g_f / contribution_video: exact, no second run."""
        probs = np.asarray(outputs["emotion_probs"][k], np.float64)
        tracks = getattr(context, "tracks", None)
        smoother = getattr(context, "smoother", None)
        face = np.asarray(outputs["face_probs"][k], np.float64) if "face_probs" in outputs else None
        if not tracks or smoother is None or face is None or tracks[k][0] is None or face.sum() <= 0:
            return probs.astype(np.float32)
        c_video = float(outputs["contribution"][k][0])
        if c_video <= 0:
            return probs.astype(np.float32)
        track, stamp_ns = tracks[k]
        smoothed = smoother.update(track, face, stamp_ns)
        weight = self._video_gate / (self._video_gate / c_video + self._prior_eps)
        logp = np.log(np.maximum(probs, 1e-12)) + weight * (np.log(np.maximum(smoothed, 1e-12))
                                                           - np.log(np.maximum(face, 1e-12)))
        out = np.exp(logp - logp.max())
        return (out / out.sum()).astype(np.float32)

    def postprocess(self, outputs: dict[str, np.ndarray], context: BatchContext) -> list[WindowResult]:
        results = []
        for k in range(context.size):
            probs = self._smoothed(outputs, context, k)
            contribution = outputs["contribution"][k]
            events = outputs["events"][k]
            face = context.boxes[k]
            boxes = face.boxes if face is not None else np.zeros((0, 4), np.float32)
            presence = {"video": bool(events[0] > 0.5), **context.presence[k]}
            results.append(WindowResult(
                labels=list(self.labels), probs=[float(x) for x in probs], presence=presence,
                contribution={m: float(c) for m, c in zip(MODALITIES, contribution)},
                event_labels=list(self.event_labels), event_scores=[float(x) for x in events],
                boxes=boxes.astype(np.float32),
                box_scores=face.scores if face is not None else np.zeros(0, np.float32),
                box_labels=[face.label if face is not None else "face"] * len(boxes),
                image_width=face.width if face is not None else 0,
                image_height=face.height if face is not None else 0))
        return results
