"""One unit of work: a bag, or one time range of a long bag, through the graph's windows and the model.

:func:`run_task` is what every executor runs (in this process, a process-pool worker or a Ray
task). A range owns the windows that *start* inside it; it replays from ``warmup_ns`` before its
start so the synchronizer and the preprocessor are in the state the whole-bag replay has there
(warm-up windows go through the preprocessor only, to carry its face track and VAD state, and
are not emitted), and it reads past its end until its last window is out. So ranges put back
together give the windows of the whole bag: none lost, none doubled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mmstream.bag.convert import ConvertOptions
from mmstream import errors
from mmstream.errors import BagError, MmstreamError
from mmstream.messages import Detections, EmotionEstimate, Window
from mmstream.process.config import ProcessConfig
from mmstream.process.graph_clock import GraphReplay

log = logging.getLogger("mmstream.process.task")
#: what preprocessing raises for a window it rejects (the inference node drops such a window alone)
REJECTED_WINDOW = (ValueError, IndexError, *((errors.BadWindowError,) if hasattr(errors, "BadWindowError") else ()))


@dataclass(frozen=True)
class BagTask:
    """Bag ``bag_id`` (its content hash), windows starting in ``[start_ns, end_ns)`` (None: open)."""

    bag: str
    bag_id: str
    index: int = 0          # range number within the bag
    ranges: int = 1
    start_ns: int | None = None
    end_ns: int | None = None


@dataclass
class TaskResult:
    task: BagTask
    estimates: list[EmotionEstimate] = field(default_factory=list)
    detections: list[Detections | None] = field(default_factory=list)
    windows: int = 0
    rejected_windows: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)
    error: str = ""          # the bag could not be processed (why); empty on success
    wall_s: float = 0.0
    cpu_s: float = 0.0
    backend: str = ""


def convert_options(cfg: ProcessConfig) -> ConvertOptions:
    """The player node's conversion options (decode_jpeg off: JPEG frames stay JPEG, as on replay)."""
    return ConvertOptions(audio_sample_rate_hz=cfg.audio_sample_rate_hz, audio_channels=cfg.audio_channels,
                          audio_sample_format=cfg.audio_sample_format)


def reset_preprocessor(pipeline: Any) -> None:
    """Start the preprocessor's per-stream state afresh, as a new inference node would have it.

    Uses ``Preprocessor.reset()`` when the preprocessor has one; otherwise the state the
    ``pretrained_default`` preprocessor resets itself when a replay restarts (face track and cache,
    VAD stream, last window) — a fresh preprocessor costs ~1 s (MiniLM, VAD, cascades) per bag.
    """
    pre = pipeline.preprocessor
    if callable(getattr(pre, "new_stream", None)):  # the stream API: the state lives in pipeline.stream
        pipeline.stream = pre.new_stream()
        return
    if callable(getattr(pre, "reset", None)):
        pre.reset()
        return
    for name in ("tracker", "vad_stream"):
        part = getattr(pre, name, None)
        if part is not None:
            part.reset()
    if hasattr(pre, "_face_cache"):
        pre._face_cache.clear()  # noqa: SLF001 (see the docstring: no public reset yet)
    if hasattr(pre, "_last_start_ns"):
        pre._last_start_ns = None  # noqa: SLF001
        pre._last_end_ns = 0  # noqa: SLF001


def run_task(task: BagTask, cfg: ProcessConfig, pipeline: Any, *, on_windows: Any = None) -> TaskResult:
    """Replay the task's bag range into ``pipeline`` (an open InferencePipeline); never raises for
    a bad bag: the reason is in ``TaskResult.error``. ``on_windows(n)`` reports progress."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = TaskResult(task, backend=pipeline.backend_name)
    reset_preprocessor(pipeline)
    s = cfg.sync
    replay_from = None if task.start_ns is None else task.start_ns - cfg.warmup_ns
    # windows starting before end_ns end by end_ns + window; their watermark or deadline comes
    # at most max_delay + liveness later (then one more tick to be sure)
    read_to = None if task.end_ns is None else task.end_ns + s.window_ns + s.max_delay_ns + s.liveness_timeout_ns + \
        2 * cfg.poll_period_ns
    batch: list[Window] = []

    def flush() -> None:
        if not batch:
            return
        out = _run_batch(pipeline, batch, result)
        for est, det in out:
            if est is not None:
                result.estimates.append(est)
                result.detections.append(det)
        if on_windows is not None:
            on_windows(len(batch))
        batch.clear()

    def on_window(w: Window) -> None:
        if task.start_ns is not None and w.start_ns < task.start_ns:
            _warm_up(pipeline, w)
            return
        if task.end_ns is not None and w.start_ns >= task.end_ns:
            return
        result.windows += 1
        batch.append(w)
        if len(batch) >= cfg.max_batch:
            flush()

    replay = GraphReplay(task.bag, s, topic_map=dict(cfg.topic_map), options=convert_options(cfg),
                         poll_period_ns=cfg.poll_period_ns, clock_hz=cfg.clock_hz, start_ns=replay_from,
                         end_ns=read_to)
    try:
        replay.run(on_window)
        flush()
    except BagError as exc:
        result.error = str(exc)
    except (OSError, EOFError, ValueError) as exc:  # unreadable file content the reader did not classify
        result.error = f"bag {task.bag}: {type(exc).__name__}: {exc}"
    result.problems = replay.problems
    result.messages = replay.messages
    result.wall_s = time.perf_counter() - t0
    result.cpu_s = time.process_time() - c0
    return result


def _warm_up(pipeline: Any, w: Window) -> None:
    """A window before the range: through the preprocessor only (its state moves, nothing is emitted)."""
    try:
        if callable(getattr(pipeline, "advance", None)):
            pipeline.advance([w])
        else:  # before InferencePipeline.advance: prepare() moved the preprocessor's own state
            pipeline.preprocessor.prepare([w])
    except REJECTED_WINDOW:
        pass  # rejected in the whole-bag run too, before any state moved


def _run_batch(pipeline: Any, batch: list[Window], result: TaskResult) -> list[tuple[Any, Any]]:
    """As the inference node's run_batch: a window the preprocessing rejects is dropped alone."""
    try:
        out = pipeline.run(list(batch), None)
        return list(zip(out.estimates, out.detections))
    except REJECTED_WINDOW as exc:
        if len(batch) == 1:
            result.rejected_windows += 1
            log.warning("bag %s: window starting %d ns rejected: %s", result.task.bag, batch[0].start_ns, exc)
            return []
        return [r for w in batch for r in _run_batch(pipeline, [w], result)]


__all__ = ["BagTask", "TaskResult", "run_task", "reset_preprocessor", "MmstreamError"]
