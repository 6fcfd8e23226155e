"""Where tasks run: this process, a local process pool, or a Ray cluster — same tasks, same results.

Each executor yields one :class:`TaskResult` per task, in completion order. A task whose worker
fails (a crash, a killed process, a bug surfacing as an exception) is retried up to ``retries``
times; after that its result carries the error and the run goes on. A bad bag is not a failure
here: :func:`run_task` reports it in the result and returns normally.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mmstream.errors import MmstreamError
from mmstream.process.config import ProcessConfig
from mmstream.process.task import BagTask, TaskResult, run_task
from mmstream.process import worker

log = logging.getLogger("mmstream.process.executors")


def _failed(task: BagTask, why: str) -> TaskResult:
    return TaskResult(task, error=f"bag {task.bag} range {task.index + 1}/{task.ranges}: {why}")


class InlineExecutor:
    """Tasks one after another in this process (``--workers 1``): no start-up cost, live progress."""

    name = "inline"

    def __init__(self, model_dir: str, cfg: ProcessConfig, *, retries: int = 2) -> None:
        self.model_dir, self.cfg, self.retries = model_dir, cfg, retries
        worker.single_core()
        self.pipeline = worker.open_pipeline(model_dir, cfg)

    def results(self, tasks: list[BagTask], on_windows: Callable[[int], None] | None = None) -> Iterator[TaskResult]:
        for task in tasks:
            yield run_task(task, self.cfg, self.pipeline, on_windows=on_windows)

    def close(self) -> None:
        pass


class PoolExecutor:
    """A local process pool (spawned workers, one core each, the pipeline opened once per worker)."""

    name = "pool"

    def __init__(self, model_dir: str, cfg: ProcessConfig, *, workers: int, retries: int = 2) -> None:
        self.model_dir, self.cfg, self.workers, self.retries = model_dir, cfg, workers, retries
        self._pool = self._new_pool()
        self._warm(self._pool)

    def _warm(self, pool: ProcessPoolExecutor) -> None:
        """Start every worker now (each opens the model in its initializer), not at its first bag."""
        pids = {f.result() for f in [pool.submit(worker.ready, 0.2) for _ in range(self.workers)]}
        log.info("process pool: %d workers up (%s)", len(pids), sorted(pids))

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker.init_worker, initargs=(self.model_dir, self.cfg))

    def results(self, tasks: list[BagTask], on_windows: Callable[[int], None] | None = None) -> Iterator[TaskResult]:
        tries: dict[BagTask, int] = {}
        running: dict[Future, BagTask] = {}
        queue = list(tasks)

        def submit(task: BagTask) -> None:
            tries[task] = tries.get(task, 0) + 1
            running[self._pool.submit(worker.pool_task, task, self.model_dir, self.cfg)] = task

        while queue and len(running) < self.workers * 2:
            submit(queue.pop(0))
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                task = running.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool as exc:
                    broken = True
                    yield from self._retry(task, tries, queue, f"worker process died ({exc})")
                except Exception as exc:  # a bug in a worker: retried, then reported; the batch goes on
                    yield from self._retry(task, tries, queue, f"{type(exc).__name__}: {exc}")
            if broken:  # every task still running on the dead pool is resubmitted on a new one
                for fut, task in list(running.items()):
                    fut.cancel()
                    running.pop(fut)
                    queue.insert(0, task)
                    tries[task] -= 1
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            while queue and len(running) < self.workers * 2:
                submit(queue.pop(0))

    def _retry(self, task: BagTask, tries: dict[BagTask, int], queue: list[BagTask], why: str) -> Iterator[TaskResult]:
        if tries[task] <= self.retries:
            log.warning("bag %s range %d: %s; retrying (%d of %d)", task.bag, task.index + 1, why, tries[task],
                        self.retries)
            queue.insert(0, task)
            return
        yield _failed(task, f"failed {tries[task]} times, last: {why}")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """One Ray task per bag range; the model bundle is put in the object store once."""

    name = "ray"

    def __init__(self, model: str, cfg: ProcessConfig, *, address: str, workers: int, retries: int = 2) -> None:
        try:
            import ray
        except ImportError:
            raise MmstreamError("mmstream process --ray needs Ray, which is not installed: "
                                "pip install 'mmstream[ray]'") from None

        from mmstream.process.model_bundle import make_bundle

        self.cfg, self.retries = cfg, retries
        self._started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if address == "local":
                ray.init(num_cpus=workers or None, **kw)
            else:
                ray.init(address="auto" if address == "auto" else address, **kw)
            self._started = True
        self._ray = ray
        bundle = make_bundle(model)
        self.bundle_bytes = bundle.size_bytes
        self._bundle_ref = ray.put(bundle)
        self._task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(worker.bundle_task)
        # one warm-up task per CPU: workers unpack the bundle and open the model before the first bag
        warm = ray.remote(num_cpus=1)(worker.bundle_ready)
        ray.get([warm.remote(self._bundle_ref, cfg) for _ in range(int(ray.cluster_resources().get("CPU", 1)))])

    def results(self, tasks: list[BagTask], on_windows: Callable[[int], None] | None = None) -> Iterator[TaskResult]:
        ray = self._ray
        pending = {self._task.remote(t, self._bundle_ref, self.cfg): t for t in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # RayTaskError / WorkerCrashedError after max_retries
                    yield _failed(task, f"failed after {self.retries} retries: {type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0] if str(exc) else ''}")

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_executor(model_dir: str, model: str, cfg: ProcessConfig, *, workers: int, ray: str = "",
                  retries: int = 2) -> Any:
    if ray:
        return RayExecutor(model, cfg, address=ray, workers=workers, retries=retries)
    if workers < 1:
        raise MmstreamError(f"process: --workers must be >= 1, got {workers}")
    if workers == 1:
        return InlineExecutor(model_dir, cfg, retries=retries)
    return PoolExecutor(model_dir, cfg, workers=workers, retries=retries)
