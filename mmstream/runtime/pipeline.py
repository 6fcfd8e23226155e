"""Windows in, EmotionEstimate / Detections out: package + preprocessor + backend (+ fallback).

A pure object (no sockets): the inference node feeds it micro-batches. ``InferencePipeline.open``
validates everything at start and raises ModelError naming the file and the mismatch:
a missing/corrupt package or ONNX file, runtime inputs that differ from model.json, a
preprocessor whose feed differs from model.json, or outputs that differ from golden.npz.
A backend that fails at run time is replaced by the fallback backend (logged once).

The check at open runs the preprocessor on synthetic windows with a throwaway stream, so opening
leaves no state behind: the pipeline's own stream (face tracks, VAD; :attr:`InferencePipeline.stream`)
starts fresh with the first window it runs. A window preprocessing must reject raises
:class:`~mmstream.errors.BadWindowError` from :meth:`InferencePipeline.run` (before any state moves);
any other exception is a bug or a backend failure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.errors import BackendError, ModelError
from mmstream.messages import Detections, EmotionEstimate, Header, Window
from mmstream.clock import NS_PER_S
from mmstream.preprocess import Preprocessor, WindowResult, get_preprocessor
from mmstream.runtime.auto import create_backend
from mmstream.runtime.base import Backend
from mmstream.runtime.package import DTYPES, ModelPackage, load_package

log = logging.getLogger("mmstream.runtime.pipeline")

GOLDEN_ATOL = {"fp32": 1e-3, "fp16": 5e-2}


@dataclass
class BatchOutput:
    estimates: list[EmotionEstimate | None] = field(default_factory=list)
    detections: list[Detections | None] = field(default_factory=list)
    results: list[WindowResult] = field(default_factory=list)
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0


def synthetic_window(sample_rate_hz: int = 16000) -> Window:
    """A 1 s window with a 320×240 frame, a tone and no text; used to check a preprocessor's feed."""
    t = np.arange(sample_rate_hz) / sample_rate_hz
    audio = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
    return Window(start_ns=0, end_ns=NS_PER_S, sample_rate_hz=sample_rate_hz,
                  presence={"video": True, "audio": True, "text": False}, coverage={},
                  frames=np.full((2, 240, 320, 3), 128, np.uint8), frame_mask=np.ones(2, bool),
                  frame_stamps_ns=np.array([0, 500_000_000], np.int64), audio=audio,
                  audio_mask=np.ones(sample_rate_hz, bool), audio_chunk_stamps_ns=np.zeros(1, np.int64))


def check_feed(package: ModelPackage, feed: dict[str, np.ndarray], batch: int, where: str) -> None:
    """ModelError if a preprocessor's feed differs from model.json's inputs (names, shapes, dtypes)."""
    spec_path = package.directory / "model.json"
    want = {i["name"]: i for i in package.spec["inputs"]}
    if set(feed) != set(want):
        raise ModelError(f"{spec_path}: preprocessor {where} produces inputs {sorted(feed)}, "
                         f"model.json declares {sorted(want)}")
    for name, arr in feed.items():
        shape = [batch if isinstance(d, str) or d in (-1, None) else int(d) for d in want[name]["shape"]]
        if list(arr.shape) != shape or arr.dtype != np.dtype(DTYPES[want[name]["dtype"]]):
            raise ModelError(f"{spec_path}: input {name!r} from preprocessor {where} is {arr.dtype}{list(arr.shape)}, "
                             f"model.json declares {want[name]['dtype']}{shape}")


class InferencePipeline:
    def __init__(self, package: ModelPackage, preprocessor: Preprocessor, backend: Backend,
                 fallback: str = "none", backend_options: dict[str, Any] | None = None) -> None:
        self.package = package
        self.preprocessor = preprocessor
        self.backend = backend
        self.fallback = fallback
        self.backend_options = backend_options or {}
        self.fell_back = False
        #: state carried from window to window (see Preprocessor.new_stream); windows are run in time order
        self.stream = preprocessor.new_stream()

    @classmethod
    def open(cls, model_dir: str | Path, backend: str = "auto", *, fallback: str = "onnxruntime",
             verify: bool = True, **backend_options: Any) -> "InferencePipeline":
        package = load_package(model_dir)
        preprocessor = get_preprocessor(package.spec, package.directory)
        probe, _ = preprocessor.prepare([synthetic_window()] * 2, preprocessor.new_stream())  # a throwaway stream
        check_feed(package, probe, 2, preprocessor.kind)
        be = create_backend(backend, package, **backend_options)
        if verify:
            verify_golden(package, be)
        return cls(package, preprocessor, be, fallback, backend_options)

    @property
    def backend_name(self) -> str:
        info = self.backend.info()
        providers = info.get("providers")
        if providers and providers[0] != "CPUExecutionProvider":
            return f"{self.backend.name}:{providers[0].removesuffix('ExecutionProvider').lower()}"
        return self.backend.name

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self.backend.infer(feed)
        except BackendError as exc:
            if self.fallback in ("", "none") or self.fell_back:
                raise
            failed = self.backend_name
            self.backend = create_backend(self.fallback, self.package, **{
                k: v for k, v in self.backend_options.items() if k in ("intra_op_threads",)})
            self.fell_back = True
            log.error("backend %s failed (%s); falling back to %s for the rest of this run",
                      failed, exc, self.backend_name)
            return self.backend.infer(feed)

    def run(self, windows: list[Window], received_s: list[float] | None = None) -> BatchOutput:
        """Preprocess, infer and postprocess one micro-batch (windows in time order); builds the output messages.

        ``received_s`` (perf_counter seconds, one per window) times the queue wait. BadWindowError, with
        nothing run and the stream untouched, when a window cannot be preprocessed.
        """
        if received_s is not None and len(received_s) != len(windows):
            raise ValueError(f"InferencePipeline.run: {len(received_s)} arrival times for {len(windows)} windows")
        if not windows:
            return BatchOutput()
        t0 = time.perf_counter()
        feed, context = self.preprocessor.prepare(list(windows), self.stream)
        t1 = time.perf_counter()
        outputs = self._infer(feed)
        t2 = time.perf_counter()
        results = self.preprocessor.postprocess(outputs, context)
        t3 = time.perf_counter()
        out = BatchOutput(results=results, preprocess_ms=(t1 - t0) * 1e3, infer_ms=(t2 - t1) * 1e3)
        backend = self.backend_name
        for i, (w, r) in enumerate(zip(windows, results)):
            start = received_s[i] if received_s else t0
            latency = {"preprocess": out.preprocess_ms, "infer": out.infer_ms, "postprocess": (t3 - t2) * 1e3,
                       "queue": max(0.0, (t0 - start) * 1e3), "total": (t3 - start) * 1e3,
                       **{f"preprocess_{k}": v for k, v in context.stage_ms.items()}}
            latency = {k: round(v, 3) for k, v in latency.items()}
            header = Header(stamp_ns=w.header.stamp_ns or w.end_ns, frame_id=w.header.frame_id)
            est = None
            if r.probs:
                label, prob = r.top
                est = EmotionEstimate(header=header, window_start_ns=w.start_ns, window_end_ns=w.end_ns,
                                      labels=list(r.labels), probs=list(r.probs), top_label=label, top_prob=prob,
                                      presence=dict(r.presence), contribution=dict(r.contribution),
                                      backend=backend, latency_ms=latency)
            det = None
            if r.event_labels or len(r.boxes):
                det = Detections(header=Header(**vars(header)), window_start_ns=w.start_ns, window_end_ns=w.end_ns,
                                 box_labels=list(r.box_labels), image_width=r.image_width,
                                 image_height=r.image_height, event_labels=list(r.event_labels),
                                 event_scores=list(r.event_scores), boxes=r.boxes, box_scores=r.box_scores)
            out.estimates.append(est)
            out.detections.append(det)
        return out

    def advance(self, windows: list[Window]) -> None:
        """Move the pipeline's stream over ``windows`` (in time order) without inferring or emitting
        anything: what a run that starts mid-bag feeds first, so its tracks match the whole-bag run.
        BadWindowError as :meth:`run`, with the stream untouched."""
        if windows:
            self.preprocessor.prepare(list(windows), self.stream)

    def close(self) -> None:
        self.backend.close()


def verify_golden(package: ModelPackage, backend: Backend) -> dict[str, float]:
    """Compare the backend with golden.npz (if the package has one); ModelError on a mismatch."""
    golden = package.golden()
    if not golden:
        return {}
    precision = "fp16" if "fp16" in str(backend.info().get("model", "")) or \
        backend.info().get("precision") == "fp16" else "fp32"
    report = {}
    for case, data in golden.items():
        got = backend.infer(data["in"])
        for name, want in data["out"].items():
            if name not in got:
                raise ModelError(f"{package.directory}: backend {backend.name} has no output {name!r} (golden.npz has)")
            diff = float(np.abs(got[name].astype(np.float32) - want).max())
            if not np.isfinite(diff) or diff > GOLDEN_ATOL[precision]:
                raise ModelError(f"{backend.info().get('model')}: output {name!r} differs from golden.npz case {case!r} "
                                 f"by {diff:.3g} (> {GOLDEN_ATOL[precision]}); the model file does not match its package")
            report[f"{case}/{name}"] = diff
    return report
