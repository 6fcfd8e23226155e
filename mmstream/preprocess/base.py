"""What every preprocessor is: windows in, a batched numpy feed out; model outputs in, results out.

numpy only (no torch): the ONNX Runtime path must run with numpy + onnxruntime alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.errors import BadWindowError
from mmstream.messages import Window


@dataclass
class WindowResult:
    """The model's answer for one window, ready to become EmotionEstimate / Detections.

    labels/probs: emotion classes and their probabilities (empty when the model has no emotion head)
    presence: modality -> present in this window ("video", "audio", "text")
    contribution: modality -> share of the fused representation (sums to 1 over present ones, or all 0)
    event_labels/event_scores: multi-label window events (empty when the model has no detection head)
    boxes (N×4 x1,y1,x2,y2 pixels) / box_scores (N) / box_labels: optional per-box detections; box_scores
    are the detector's own scores (for the Haar face detector its confidence, not a probability)
    """

    labels: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    presence: dict[str, bool] = field(default_factory=dict)
    contribution: dict[str, float] = field(default_factory=dict)
    event_labels: list[str] = field(default_factory=list)
    event_scores: list[float] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    box_labels: list[str] = field(default_factory=list)
    image_width: int = 0
    image_height: int = 0

    @property
    def top(self) -> tuple[str, float]:
        """(top label, its probability), or ("", 0.0) without an emotion head."""
        if not self.probs:
            return "", 0.0
        i = int(np.argmax(self.probs))
        return self.labels[i], float(self.probs[i])


@dataclass(frozen=True)
class FrameBoxes:
    """Detector boxes of one source frame: N×4 float32 x1,y1,x2,y2 in its pixels, N float32 scores
    (what the detector gives; for the Haar face detector its confidence, see
    :class:`~mmstream.pretrained.face_detect.FaceBox`), one label for all, and the frame's size."""

    boxes: np.ndarray
    scores: np.ndarray
    width: int
    height: int
    label: str = "face"

    def __post_init__(self) -> None:
        n = self.boxes.shape[0]
        if self.boxes.shape != (n, 4) or self.scores.shape != (n,):
            raise ValueError(f"FrameBoxes: boxes {self.boxes.shape} and scores {self.scores.shape} (expected N×4, N)")


@dataclass
class BatchContext:
    """What :meth:`Preprocessor.prepare` found out about one micro-batch that :meth:`Preprocessor.postprocess`
    needs: returned with the feed, handed back with the outputs; nothing of it stays on the preprocessor.

    size: number of windows; boxes: per window, the boxes to publish (None: none);
    presence: per window, the modalities the feed marks present (empty where the model reports it);
    stage_ms: milliseconds per named stage of this prepare (e.g. ``{"faces": 3.1}``), for the latency
    breakdown of each estimate (empty for preprocessors without stages).
    """

    size: int
    boxes: list[FrameBoxes | None] = field(default_factory=list)
    presence: list[dict[str, bool]] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)


#: frame encodings a Window may carry into preprocessing, and their channel counts
FRAME_CHANNELS = {"bgr8": 3, "rgb8": 3, "mono8": 1}


def check_windows(windows: list[Window]) -> None:
    """BadWindowError naming the first window (index, span) that preprocessing cannot take, what was
    wrong with it and what was expected. Run on the whole batch before any per-stream state moves."""
    for i, w in enumerate(windows):
        if not isinstance(w, Window):
            raise BadWindowError(f"window {i} of the batch is a {type(w).__name__}, expected a Window")
        where = f"window {i} of the batch [{w.start_ns}, {w.end_ns}) ns"
        try:
            w.validate()
        except (ValueError, AttributeError) as exc:
            raise BadWindowError(f"{where}: {exc}") from exc
        if w.frames.size and w.frame_mask.any():
            if w.frames.dtype != np.uint8:
                raise BadWindowError(f"{where}: frames are {w.frames.dtype}, expected uint8")
            channels = FRAME_CHANNELS.get(w.frame_encoding)
            if channels is None:
                raise BadWindowError(f"{where}: frame_encoding {w.frame_encoding!r}, expected one of "
                                     f"{sorted(FRAME_CHANNELS)} (the synchronizer decodes jpeg)")
            if w.frames.shape[3] != channels:
                raise BadWindowError(f"{where}: {w.frame_encoding} frames with {w.frames.shape[3]} channels "
                                     f"(shape {w.frames.shape}), expected {channels}")
        elif w.frame_mask.any():
            raise BadWindowError(f"{where}: frame_mask marks frames present but frames {w.frames.shape} are empty")
        if w.audio.shape[0]:
            if w.audio.shape[1] == 0:
                raise BadWindowError(f"{where}: audio {w.audio.shape} has no channels, expected N×channels >= 1")
            if not np.issubdtype(w.audio.dtype, np.floating):
                raise BadWindowError(f"{where}: audio is {w.audio.dtype}, expected float32 samples in [-1, 1]")
            if int(w.sample_rate_hz) <= 0:
                raise BadWindowError(f"{where}: sample_rate_hz {w.sample_rate_hz} with {w.audio.shape[0]} samples, "
                                     f"expected a positive rate")
            if not np.isfinite(w.audio).all():
                raise BadWindowError(f"{where}: audio holds NaN or infinite samples")


class Preprocessor:
    """Base class. Subclasses set ``kind`` (via the registry decorator) and implement prepare/postprocess.

    ``spec`` is the parsed model.json of the model package; ``package_dir`` is its directory
    (for the vocabulary file and anything else the package ships).

    A preprocessor holds no per-window state: what postprocess needs of a batch comes back from
    prepare as its :class:`BatchContext`, and state that runs from window to window (face tracks,
    VAD recurrence) lives in a *stream* object the caller owns (:meth:`new_stream`), so a check run
    at open on a throwaway stream leaves nothing behind.
    """

    kind: str = ""

    def __init__(self, spec: dict[str, Any], package_dir: Path) -> None:
        self.spec = spec
        self.package_dir = Path(package_dir)

    @property
    def spec_path(self) -> Path:
        """model.json of the package (named in errors)."""
        return self.package_dir / "model.json"

    def new_stream(self) -> Any:
        """Fresh state carried from window to window of one time-ordered stream of windows; pass it to
        every :meth:`prepare` of that stream. None for a preprocessor without such state."""
        return None

    def prepare(self, windows: list[Window], stream: Any = None) -> tuple[dict[str, np.ndarray], BatchContext]:
        """(batched feed: input name -> array with leading dim len(windows), dtypes as in spec["inputs"];
        the batch's context for :meth:`postprocess`). ``stream``: from :meth:`new_stream`; None = a fresh
        one for this call alone. BadWindowError (before any state moves) for a window it cannot take."""
        raise NotImplementedError

    def postprocess(self, outputs: dict[str, np.ndarray], context: BatchContext) -> list[WindowResult]:
        """One WindowResult per window from the backend's outputs (output name -> batched array) and the
        context :meth:`prepare` returned with the feed."""
        raise NotImplementedError
