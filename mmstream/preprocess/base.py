"""What every preprocessor is: windows in, a batched numpy feed out; model outputs in, results out.

numpy only (no torch): the ONNX Runtime path must run with numpy + onnxruntime alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.messages import Window


@dataclass
class WindowResult:
    """The model's answer for one window, ready to become EmotionEstimate / Detections.

    labels/probs: emotion classes and their probabilities (empty when the model has no emotion head)
    presence: modality -> present in this window ("video", "audio", "text")
    contribution: modality -> share of the fused representation (sums to 1 over present ones, or all 0)
    event_labels/event_scores: multi-label window events (empty when the model has no detection head)
    boxes (N×4 x1,y1,x2,y2 pixels) / box_scores (N) / box_labels: optional per-box detections
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


class Preprocessor:
    """Base class. Subclasses set ``kind`` (via the registry decorator) and implement two methods.

    ``spec`` is the parsed model.json of the model package; ``package_dir`` is its directory
    (for the vocabulary file and anything else the package ships).
    """

    kind: str = ""

    def __init__(self, spec: dict[str, Any], package_dir: Path) -> None:
        self.spec = spec
        self.package_dir = Path(package_dir)
        #: milliseconds per named stage of the last :meth:`prepare` (e.g. ``{"faces": 3.1}``), for the
        #: latency breakdown of each estimate; preprocessors without stages leave it empty
        self.stage_ms: dict[str, float] = {}

    def prepare(self, windows: list[Window]) -> dict[str, np.ndarray]:
        """Batched feed: input name -> array with leading dim len(windows), dtypes as in spec["inputs"]."""
        raise NotImplementedError

    def postprocess(self, outputs: dict[str, np.ndarray], windows: list[Window]) -> list[WindowResult]:
        """One WindowResult per window from the backend's outputs (output name -> batched array)."""
        raise NotImplementedError
