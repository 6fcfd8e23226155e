"""The per-process side of a run: one open InferencePipeline per worker process, reused by its tasks.

Workers are single-threaded by design (one core each: ONNX Runtime ``intra_op_threads`` from the
config, OpenCV's thread pool off), so N workers use N cores and their speed adds up.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mmstream.process.config import ProcessConfig
from mmstream.process.task import BagTask, TaskResult, run_task

log = logging.getLogger("mmstream.process.worker")

#: (model directory, backend, threads) -> open pipeline, in this process
_PIPELINES: dict[tuple[str, str, int], Any] = {}
#: bundle digest -> unpacked package directory, in this process
_UNPACKED: dict[str, Path] = {}


def single_core() -> None:
    import cv2

    cv2.setNumThreads(1)


def open_pipeline(model_dir: str, cfg: ProcessConfig, *, verify: bool = True) -> Any:
    """The pipeline for this model in this process, opened on first use (golden check included)."""
    from mmstream.runtime.pipeline import InferencePipeline

    key = (model_dir, cfg.backend, cfg.intra_op_threads)
    pipeline = _PIPELINES.get(key)
    if pipeline is None:
        pipeline = InferencePipeline.open(model_dir, cfg.backend, fallback="onnxruntime", verify=verify,
                                          intra_op_threads=cfg.intra_op_threads, max_batch=cfg.max_batch)
        pipeline.backend.warmup((1,), iterations=2)
        _PIPELINES[key] = pipeline
    return pipeline


def init_worker(model_dir: str, cfg: ProcessConfig) -> None:
    """Process-pool initializer: one core, the pipeline opened before the first task."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    single_core()
    open_pipeline(model_dir, cfg)


def pool_task(task: BagTask, model_dir: str, cfg: ProcessConfig) -> TaskResult:
    return run_task(task, cfg, open_pipeline(model_dir, cfg))


def ready(hold_s: float) -> int:
    """A no-op task that holds its worker briefly, so N of them start N workers (pool warm-up)."""
    import os
    import time

    time.sleep(hold_s)
    return os.getpid()


def _pipeline_from(bundle: Any, cfg: ProcessConfig) -> Any:
    from mmstream.process.model_bundle import unpack

    single_core()
    pkg = _UNPACKED.get(bundle.digest)
    if pkg is None:
        pkg = _UNPACKED[bundle.digest] = unpack(bundle)
    return open_pipeline(str(pkg), cfg)


def bundle_ready(bundle: Any, cfg: ProcessConfig) -> int:
    """Ray warm-up task: the model unpacked and opened in this worker process."""
    import os

    _pipeline_from(bundle, cfg)
    return os.getpid()


def bundle_task(task: BagTask, bundle: Any, cfg: ProcessConfig) -> TaskResult:
    """A Ray task: the model comes from the object store (unpacked once per worker process)."""
    return run_task(task, cfg, _pipeline_from(bundle, cfg))
